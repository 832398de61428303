"""Activity regularisation (issue #12; train/loop/regularization.py). The frontier it serves:
tests/test_frontier.py.
"""

from __future__ import annotations

import json

import pytest
import torch

from snn_toolchain.errors import ToolchainError
from snn_toolchain.train.model.delay_snn import DelaySNN
from snn_toolchain.train.loop.config import TrainConfig
from snn_toolchain.train.data.loading import build_datasets
from snn_toolchain.export.activity import measure_activity
from snn_toolchain.train.data.loading import make_loader
from snn_toolchain.train.model.quantize import quantize_model
from snn_toolchain.train.loop.regularization import (ActivityRegularizer, SynapsePruner, parse_prune, parse_rate_bounds,
                                                pruning_target)
from snn_toolchain.train.loop.trainer import train
from training_support import TINY, run_single_and_ddp

def active_model(seed: int = 0) -> DelaySNN:
    torch.manual_seed(seed)
    model = DelaySNN(20, 4, 12, max_delay=4, dropout=0.0, train_init_state="zero")
    with torch.no_grad():
        for block in model.blocks:
            block.synapse.weight.mul_(4.0)
        model.readout.synapse.weight[:, 0] = 0.0        # a zero weight is not an operation
    return model


def test_settings_are_checked_in_one_line():
    assert parse_rate_bounds("") is None and parse_rate_bounds("0.01:0.2") == (0.01, 0.2)
    for text in ("0.3:0.1", "a:b", "0.1", "-1:0.5"):
        with pytest.raises(ToolchainError, match="--rate-bounds"):
            parse_rate_bounds(text)
    with pytest.raises(ToolchainError, match="--rate-penalty needs --rate-bounds"):
        TrainConfig(rate_penalty=1.0).validate()
    with pytest.raises(ToolchainError, match="--rate-bounds needs --rate-penalty"):
        TrainConfig(rate_bounds="0.01:0.2").validate()
    for bad in (-1.0, float("inf")):
        with pytest.raises(ToolchainError, match="must be 0"):
            TrainConfig(synops_penalty=bad).validate()
    assert ActivityRegularizer.from_config(TrainConfig()) is None       # off by default


def test_the_penalty_counts_spikes_times_non_zero_fan_out_and_has_gradients():
    """Synaptic operations per sample: each spike once per non-zero synapse it reaches. Counted by
    hand on a hand-made raster, then synapse by synapse (not spike by spike, as the regulariser
    sums) on the model's own spikes; the penalty is per million operations and has gradients."""
    model = active_model()
    with torch.no_grad():
        hidden, readout = model.blocks[1].synapse.weight, model.readout.synapse.weight
        hidden.zero_()
        hidden[:3, 0] = 1.0              # hidden-1 neuron 0 reaches 3 neurons of hidden 2
        hidden[7, 1] = -0.5              # neuron 1 reaches 1; neuron 2 reaches none
        readout.zero_()
        readout[:, 5] = 0.3              # hidden-2 neuron 5 reaches all 4 classes
        readout[2, 6] = 1.0              # neuron 6 reaches 1; neuron 0 none
    first, second = torch.zeros(2, 3, 12), torch.zeros(2, 3, 12)     # (samples, steps, neurons)
    first[0, 0, 0] = first[0, 2, 0] = 1    # sample 0: 2 spikes x 3
    first[0, 1, 1] = 1                     #           1 spike x 1
    first[0, 0, 2] = 1                     #           1 spike x 0
    first[1, 1, 0] = 1                     # sample 1: 1 spike x 3         -> 6 + 1 + 0 + 3 = 10
    second[0, 0, 5] = 1                    # sample 0: 1 spike x 4
    second[1, :, 5] = 1                    # sample 1: 3 spikes x 4
    second[1, 2, 6] = 1                    #           1 spike x 1
    second[1, 0, 0] = 1                    #           1 spike x 0         -> 4 + 12 + 1 + 0 = 17
    penalty, synops = ActivityRegularizer(synops_penalty=2.0)(model, [first, second])
    assert synops.item() == pytest.approx((10 + 17) / 2)               # per sample
    assert penalty.item() == pytest.approx(2.0 * 13.5 / 1e6)

    model = active_model()
    x = (torch.rand(5, 30, 20, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    _, spikes = model(x, return_spikes=True)
    penalty, synops = ActivityRegularizer(synops_penalty=2.0)(model, spikes)
    expected = 0
    for layer_spikes, target in zip(spikes, [model.blocks[1], model.readout]):
        weight = target.synapse.weight.detach()
        for _, i in zip(*torch.nonzero(weight, as_tuple=True)):        # every synapse that exists ...
            expected += int(layer_spikes[:, :, i].detach().sum())       # ... carries every spike of its source
    assert expected / 5 > 100 and synops.item() == pytest.approx(expected / 5, rel=1e-6)
    assert penalty.item() == pytest.approx(2.0 * expected / 5 / 1e6, rel=1e-6)
    penalty.backward()
    grad = model.blocks[0].synapse.weight.grad
    assert grad is not None and grad.abs().sum() > 0          # through the surrogate of the spikes
    # the rate bounds: a layer above HIGH is pushed down
    model.zero_grad()
    _, spikes = model(x, return_spikes=True)
    rate_penalty, _ = ActivityRegularizer(rate_bounds=(0.0, 0.01), rate_penalty=1.0)(model, spikes)
    assert rate_penalty.item() > 0
    rate_penalty.backward()
    assert model.blocks[0].synapse.weight.grad.abs().sum() > 0


def test_a_strong_penalty_lowers_the_activity_and_is_logged(tiny_folder, tmp_path):
    splits = build_datasets("shd", tiny_folder, pad_steps=5, seed=0)
    rows = {}
    for strength in (0.0, 3000.0):
        config = TrainConfig(**{**TINY, "epochs": 3, "synops_penalty": strength})
        train(config, tmp_path / f"s{strength:g}", splits=splits, progress=False, make_plots=False,
              log=lambda *_: None)
        rows[strength] = json.loads((tmp_path / f"s{strength:g}" / "metrics.json").read_text())
    assert rows[0.0][-1]["train_synops_per_sample"] == ""                 # off: not computed
    logged = [r["train_synops_per_sample"] for r in rows[3000.0]]
    assert all(isinstance(v, float) and v >= 0 for v in logged)
    assert logged[-1] < 0.5 * logged[0], logged                          # the penalty did its job
    header = (tmp_path / "s3000" / "metrics.csv").read_text().splitlines()[0]
    assert "train_synops_per_sample" in header


@pytest.mark.parametrize("extra", [{"synops_penalty": 50.0, "rate_bounds": "0.01:0.3", "rate_penalty": 1.0},
                                   {"prune": "0.5,0.3", "prune_epochs": 3, "synops_penalty": 20.0}],
                         ids=["penalties", "pruning"])
def test_resume_with_the_penalty_or_pruning_is_bit_for_bit(tiny_folder, tmp_path, extra):
    splits = build_datasets("shd", tiny_folder, pad_steps=5, seed=0)
    settings = {**TINY, "dropout": 0.3, **extra}
    straight = train(TrainConfig(**{**settings, "epochs": 3}), tmp_path / "straight", splits=splits, progress=False,
                     make_plots=False, log=lambda *_: None)
    train(TrainConfig(**{**settings, "epochs": 2}), tmp_path / "resumed", splits=splits, progress=False,
          make_plots=False, log=lambda *_: None)
    resumed = train(TrainConfig(**{**settings, "epochs": 3}), tmp_path / "resumed", splits=splits, resume=True,
                    progress=False, make_plots=False, log=lambda *_: None)
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    a = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    b = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    for field in ("train_synops_per_sample", "pruned"):
        assert [r[field] for r in a] == [r[field] for r in b]


def test_the_penalty_under_ddp_matches_one_process(tiny_folder, tmp_path):
    """The synaptic-operations penalty is a per-sample mean, so averaging the ranks' gradients gives
    the single process's (equal shares of the batch)."""
    a, b = run_single_and_ddp(tiny_folder, tmp_path, {"synops_penalty": 200.0})
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=2e-5)


def test_pruning_settings_and_ramp():
    assert parse_prune("") == () and parse_prune("0.6") == (0.6,) and parse_prune("0.6,0.2,0") == (0.6, 0.2, 0.0)
    for text in ("a", "1.0", "-0.1", "0.5,,0"):
        with pytest.raises(ToolchainError, match="--prune"):
            TrainConfig(prune=text).validate()
    with pytest.raises(ToolchainError, match="--prune-epochs"):
        TrainConfig(prune="0.5", prune_epochs=-1).validate()
    assert SynapsePruner.from_config(TrainConfig(prune="0,0")) is None            # all zero: off
    assert SynapsePruner.from_config(TrainConfig(prune="0.5", epochs=30)).ramp_epochs == 15
    targets = [pruning_target(0.6, epoch, 10) for epoch in range(14)]
    assert all(a < b for a, b in zip(targets[:10], targets[1:10]))               # rises ...
    assert targets[9:] == [pytest.approx(0.6)] * 5 and 0 < targets[0] < 0.6      # ... reaches 0.6 and holds it
    assert targets[0] > targets[9] - targets[8]                                  # fast first, slow last
    with pytest.raises(ToolchainError, match="4 fractions for a network of 3 connections"):
        SynapsePruner((0.1, 0.1, 0.1, 0.1), 2).update(active_model(), 0)


def test_pruning_removes_the_smallest_weights_and_keeps_them_removed():
    model = active_model()
    first = model.blocks[0].synapse.weight
    magnitudes = first.detach().abs().flatten().sort().values
    pruner = SynapsePruner((0.5,), ramp_epochs=1)
    assert pruner.update(model, 0) == [pytest.approx(0.5, abs=1 / first.numel())]
    kept = first.detach().abs()[first != 0]
    assert kept.numel() == first.numel() // 2 and kept.min() >= magnitudes[first.numel() // 2 - 1]
    assert (model.blocks[1].synapse.weight != 0).all()                          # other connections untouched
    with torch.no_grad():
        first.add_(0.01)                                                        # an optimizer step moves them all
    pruner.apply_(model)
    assert int((first == 0).sum()) == first.numel() // 2
    # a later, smaller target never grows a synapse back
    assert pruner.update(model, 0) == [pytest.approx(0.5, abs=1 / first.numel())]


def test_pruned_training_exports_fewer_input_operations(tiny_folder, tmp_path):
    """Training with --prune removes the first connection's synapses; the exported network holds
    zeros there, and the operation count of the deployed network drops with the fan-out."""
    splits = build_datasets("shd", tiny_folder, pad_steps=5, seed=0)
    counts = {}
    for prune in ("", "0.7"):
        config = TrainConfig(**{**TINY, "epochs": 3, "prune": prune, "prune_epochs": 2})
        result = train(config, tmp_path / f"p{prune}", splits=splits, progress=False, make_plots=False,
                       log=lambda *_: None)
        rows = json.loads((tmp_path / f"p{prune}" / "metrics.json").read_text())
        checkpoint = torch.load(tmp_path / f"p{prune}" / "checkpoint.pt", weights_only=False)
        first = checkpoint["model"]["blocks.0.synapse.weight"]
        network = quantize_model(result.model, splits.time_steps)
        activity, _ = measure_activity(network, make_loader(splits.deployed().test, 16))
        counts[prune] = activity[0].per_sample(activity[0].synaptic_ops)
        if prune:
            n = first.numel()
            assert [r["pruned"] for r in rows] == [f"{round(pruning_target(0.7, e, 2) * n) / n:.3f}" for e in range(3)]
            assert rows[-1]["pruned"] == "0.700"
            assert (first == 0).float().mean().item() == pytest.approx(0.7, abs=0.01)
            assert (network.layers[0].weight == 0).mean() >= 0.7 - 0.01
            header = (tmp_path / "p0.7" / "metrics.csv").read_text().splitlines()[0]
            assert "pruned" in header
        else:
            assert all(r["pruned"] == "" for r in rows) and (first != 0).all()
    assert counts["0.7"] < 0.45 * counts[""], counts


def test_pruning_under_ddp_matches_one_process(tiny_folder, tmp_path):
    a, b = run_single_and_ddp(tiny_folder, tmp_path, {"prune": "0.5"})
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=2e-5)
    assert torch.equal(a["blocks.0.synapse.weight"] == 0, b["blocks.0.synapse.weight"] == 0)
    assert (a["blocks.0.synapse.weight"] == 0).float().mean() > 0.1


