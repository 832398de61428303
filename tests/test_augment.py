"""Data augmentation (train/data/augment.py): the documented names and their refusals, shifts that
move whole samples, masks of one block, and mix, which pastes a stretch of another sample and
weighs the two labels by their share of the spikes. Training with every augmentation resumes
exactly: tests/test_trainer.py.
"""

from __future__ import annotations

import pytest
import torch

from snn_toolchain.train.data import augment
from snn_toolchain.train.loop.config import TrainConfig


def test_parse_augment_accepts_the_documented_names_and_refuses_the_rest():
    assert augment.parse_augment("") == {}
    assert augment.parse_augment("time-shift=5, mix=0.5") == {"time-shift": 5, "mix": 0.5}
    for text, message in (("warp=3", "unknown augmentation 'warp'"), ("time-shift", "write time-shift="),
                          ("mix=1.5", "in \\[0, 1\\]"), ("time-mask=-1", ">= 0")):
        with pytest.raises(ValueError, match=message):
            augment.parse_augment(text)
    assert TrainConfig(augment="channel-mask=4").validate()
    with pytest.raises(Exception, match="--augment"):
        TrainConfig(augment="warp=3").validate()


def _batch(seed=0, batch=16, steps=40, channels=12):
    torch.manual_seed(seed)
    return (torch.rand(batch, steps, channels) < 0.2).float(), torch.randint(0, 5, (batch,))


def _roll_zero(sample, shift, dim):
    out = torch.zeros_like(sample)
    length = sample.shape[dim]
    if shift >= 0:
        out.narrow(dim, shift, length - shift).copy_(sample.narrow(dim, 0, length - shift))
    else:
        out.narrow(dim, 0, length + shift).copy_(sample.narrow(dim, -shift, length + shift))
    return out


def test_time_and_channel_shift_move_whole_samples():
    x, y = _batch()
    for name, dim in (("time-shift", 1), ("channel-shift", 2)):
        torch.manual_seed(1)
        shifted, labels = augment.augment_batch(x, y, {name: 3}, 5)
        assert torch.equal(labels, y) and shifted.shape == x.shape
        for k in range(len(x)):
            # each sample equals the original moved by one amount in [-3, 3], zero-filled
            matches = [s for s in range(-3, 4)
                       if torch.equal(shifted[k], _roll_zero(x[k], s, dim - 1))]
            assert matches, (name, k)


def test_masks_silence_one_block_of_at_most_the_given_width():
    x = torch.ones(32, 40, 12)
    y = torch.zeros(32, dtype=torch.int64)
    torch.manual_seed(2)
    masked, _ = augment.augment_batch(x, y, {"time-mask": 6}, 5)
    silent_steps = (masked.sum(2) == 0).sum(1)
    assert silent_steps.max() <= 6 and silent_steps.max() > 0
    for k in range(32):   # one contiguous block per sample
        steps = torch.nonzero(masked[k].sum(1) == 0).flatten()
        assert len(steps) == 0 or steps[-1] - steps[0] + 1 == len(steps)
    masked, _ = augment.augment_batch(x, y, {"channel-mask": 4}, 5)
    silent_channels = (masked.sum(1) == 0).sum(1)
    assert silent_channels.max() <= 4 and silent_channels.max() > 0


def _explains(mixed, x, partner, stretch, target, own_label, partner_label) -> bool:
    if not torch.equal(mixed[stretch], x[partner][stretch]):
        return False
    share = float(x[partner][stretch].sum() / mixed.sum())
    return torch.allclose(target, (1 - share) * own_label + share * partner_label, atol=1e-5)


def test_mix_pastes_a_stretch_and_weights_the_labels_by_spike_share():
    x, y = _batch(batch=64)
    torch.manual_seed(3)
    mixed, target = augment.augment_batch(x, y, {"mix": 1.0}, 5)
    assert target.shape == (64, 5)
    torch.testing.assert_close(target.sum(1), torch.ones(64))
    assert (augment.hard_labels(target) >= 0).all()
    changed = [k for k in range(64) if not torch.equal(mixed[k], x[k])]
    assert changed, "with probability 1 some samples must change"
    one_hot = torch.nn.functional.one_hot(y, 5).float()
    for k in changed:
        # one contiguous stretch of time comes whole from one partner, and the target weighs the two
        # labels by the spikes each contributed
        steps = torch.nonzero(~(mixed[k] == x[k]).all(1)).flatten()
        stretch = torch.arange(steps[0], steps[-1] + 1)
        assert any(_explains(mixed[k], x, j, stretch, target[k], one_hot[k], one_hot[j]) for j in range(64)), k
    untouched, labels = augment.augment_batch(x, y, {"mix": 0.0}, 5)
    assert torch.equal(untouched, x) and torch.equal(labels, y)
