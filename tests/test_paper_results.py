"""What the paper's results need beyond its equations: BatchNorm folded at export, the two readings
of the AdLIF+ beta bound, the evaluation's initial state, delay rounding, both evaluation protocols,
data augmentation, parallel sweeps and the sweep's analyses."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lava_support import run_isolated
from official_layout import write_shd_folder
from snn_toolchain.cli import _parse_bounds, build_parser, config_from_args
from snn_toolchain.cli import main as cli_main
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.export.netfile import read_net, write_net
from snn_toolchain.train.model.quantize import quantize_model
from snn_toolchain.neurons.dynamics import BOUNDS_PRESETS, NEURON_BOUNDS, resolve_bounds
from snn_toolchain.train.data import augment
from snn_toolchain.train.model.delay_snn import DelaySNN
from snn_toolchain.train.model.model_evaluation import evaluate_model
from snn_toolchain.train.loop.config import TrainConfig, preset_config
from snn_toolchain.train.data.loading import build_datasets, make_loader
from snn_toolchain.train.sweeps.sweep import DataSource, aggregate, run_sweep
from snn_toolchain.train.loop.trainer import PAPER_PROTOCOL_LABEL, selections, train

TINY = dict(hidden=16, batch_size=8, max_delay=5, epochs=2, dropout=0.0, device="cpu")


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return write_shd_folder(tmp_path_factory.mktemp("shd"), n_train=48, n_test=16, n_speakers=6, spikes=(2000, 4000))


def batchnorm_model(seed: int = 0, hidden: int = 24, max_delay: int = 10) -> DelaySNN:
    """An AdLIF+ network with delays and BatchNorm whose statistics and affine parameters are far
    from the identity, so folding them is not a no-op."""
    torch.manual_seed(seed)
    model = DelaySNN(140, 20, hidden=hidden, variant="adlif+", delays=True, max_delay=max_delay, dropout=0.0,
                     norm="batchnorm")
    with torch.no_grad():
        for block in list(model.blocks) + [model.readout]:
            block.synapse.delay.uniform_(0, max_delay)
            block.synapse.bias.uniform_(-0.2, 0.2)
        for block in model.blocks:
            block.norm.running_mean.uniform_(-0.5, 0.5)
            block.norm.running_var.uniform_(0.05, 0.3)
            block.norm.weight.uniform_(0.5, 1.5)
            block.norm.bias.uniform_(-0.3, 0.6)
    return model.eval()


# ------------------------------------------------------------------------------ BatchNorm

def test_batchnorm_acts_on_the_synaptic_current_with_two_parameters_per_neuron():
    plain = DelaySNN(140, 20, hidden=128, variant="lif", delays=False, norm="none")
    normed = DelaySNN(140, 20, hidden=128, variant="lif", delays=False, norm="batchnorm")
    assert normed.parameter_count() - plain.parameter_count() == 2 * 2 * 128
    # the paper's Table 1 counts: LIF 37.9k, AdLIF 38.7k, delay-LIF 74.8k
    assert round(normed.parameter_count() / 100) / 10 == 37.9
    assert round(DelaySNN(140, 20, variant="adlif", delays=False, norm="batchnorm").parameter_count() / 100) / 10 == 38.7
    assert round(DelaySNN(140, 20, variant="lif", delays=True, norm="batchnorm").parameter_count() / 100) / 10 == 74.8
    x = torch.rand(8, 30, 140)
    normed.train()
    current = normed.blocks[0].norm(normed.blocks[0].synapse(x).reshape(-1, 128))
    # normalised over batch and time together
    assert current.mean(0).abs().max() < 1e-5 and (current.var(0, unbiased=False) - 1).abs().max() < 1e-3


def test_folded_model_equals_the_batchnorm_model_in_evaluation():
    model = batchnorm_model()
    folded = model.folded()
    assert all(block.norm is None for block in folded.blocks)
    x = (torch.rand(6, 60, 140) < 0.08).float()
    scores, spikes = model(x, return_spikes=True)
    folded_scores, folded_spikes = folded(x, return_spikes=True)
    for a, b in zip(spikes, folded_spikes):
        assert min(a.sum(), b.sum()) > 0
        # float32 rounding can flip a spike whose membrane sits on the threshold; there is none here
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(scores, folded_scores, rtol=1e-5, atol=1e-4)
    # the synaptic currents themselves agree to float tolerance
    block, folded_block = model.blocks[0], folded.blocks[0]
    reference = block.norm(block.synapse(x).reshape(-1, 24)).view(6, 60, 24)
    torch.testing.assert_close(folded_block.synapse(x), reference, rtol=1e-5, atol=1e-5)


def test_export_folds_batchnorm_so_the_net_file_holds_none(tmp_path):
    model = batchnorm_model()
    network = quantize_model(model, 110)
    folded_network = quantize_model(model.folded(), 110)
    for layer, folded_layer in zip(network.layers, folded_network.layers):
        np.testing.assert_array_equal(layer.weight, folded_layer.weight)
        np.testing.assert_array_equal(layer.bias, folded_layer.bias)
    assert np.abs(network.layers[0].bias).max() > 0, "the BN shift must reach the neuron's bias"
    path = write_net(network, tmp_path / "model.net")
    import h5py

    with h5py.File(path, "r") as handle:
        names = []
        handle.visit(names.append)
    assert not [n for n in names if "norm" in n.lower() or "running" in n.lower()]
    back = read_net(path)
    np.testing.assert_array_equal(back.layers[0].bias, network.layers[0].bias)


def _bn_parity_worker(net_path: str, n_samples: int):
    from snn_toolchain.lava_models import parity

    return parity.parity_check(net_path, "shd", n_samples, synapse="ring", progress=False)


def test_batchnorm_network_parity_is_bit_exact(tmp_path):
    model = batchnorm_model(hidden=24)
    checkpoint = tmp_path / "model.pt"
    torch.save({"model": model.state_dict(), "model_config": model.config}, checkpoint)
    network = quantize_model(model, 110, settings={"source_checkpoint": str(checkpoint)})
    net_path = str(write_net(network, tmp_path / "model.net"))
    report = run_isolated("test_paper_results:_bn_parity_worker", (net_path, 3), tmp_path / "worker", timeout_s=300)
    assert report.ok, report.verdict()
    assert min(report.spike_counts["lava"]) > 0
    assert report.accuracy["float"] is not None   # the BN float model was loaded from its checkpoint


# ------------------------------------------------------------------------------ bounds

def test_adlif_plus_beta_follows_section_4_3_and_both_readings_are_presets():
    adlif_beta = NEURON_BOUNDS["adlif"]["beta"]
    assert NEURON_BOUNDS["adlif+"]["beta"] == adlif_beta
    assert NEURON_BOUNDS["adlif+"]["alpha"] == (0.0, 1.0) and NEURON_BOUNDS["adlif+"]["a"] == (0.0, 1.0)
    assert resolve_bounds("adlif+", BOUNDS_PRESETS["beta-appendix"])["beta"] == (0.0, 1.0)
    assert resolve_bounds("adlif+", BOUNDS_PRESETS["beta-section4.3"])["beta"] == adlif_beta
    assert _parse_bounds("beta-appendix") == {"beta": (0.0, 1.0)}
    assert _parse_bounds("beta-appendix,alpha=0.5:1") == {"beta": (0.0, 1.0), "alpha": (0.5, 1.0)}
    assert math.isclose(adlif_beta[0], math.exp(-1 / 30)) and math.isclose(adlif_beta[1], math.exp(-1 / 120))


# ------------------------------------------------------------------------------ initial state, delays

def test_evaluation_initial_state_is_selectable_and_deterministic():
    torch.manual_seed(0)
    model = DelaySNN(140, 20, hidden=24, delays=False, dropout=0.0).eval()
    with torch.no_grad():
        for block in model.blocks:
            block.synapse.weight.mul_(4.0)
    x = (torch.rand(3, 20, 140) < 0.1).float()
    zero_scores = model(x)
    model.set_eval_init_state("uniform")
    scores = model(x)
    model.reset_eval_randomness()
    again = model(x)
    torch.testing.assert_close(scores, again)      # the same draws in every evaluation pass
    first, second = model.blocks[0].neuron, model.blocks[1].neuron
    assert first.eval_generator.initial_seed() != second.eval_generator.initial_seed()   # layers differ
    from snn_toolchain.train.model.recurrence import initial_state

    draws = initial_state(4, 24, "uniform", generator=first.eval_generator)
    assert not torch.equal(draws.u[0], draws.u[1])  # samples of a batch differ
    assert not torch.equal(scores, zero_scores)
    rng_before = torch.get_rng_state()
    model(x)
    assert torch.equal(torch.get_rng_state(), rng_before), "evaluation must not consume training's random stream"


def test_training_can_end_on_the_deployed_integer_delays():
    torch.manual_seed(0)
    model = DelaySNN(10, 3, hidden=6, max_delay=6, dropout=0.0)
    with torch.no_grad():
        for synapse in [b.synapse for b in model.blocks] + [model.readout.synapse]:
            synapse.delay.uniform_(0, 6)
    x = (torch.rand(4, 20, 10) < 0.3).float()
    model.train().set_delay_rounding(training=True)
    rounded = model.blocks[0].synapse(x)
    model.eval()
    torch.testing.assert_close(rounded, model.blocks[0].synapse(x))   # training sees the eval (deployed) delays
    model.train()
    model.blocks[0].synapse(x).sum().backward()
    assert model.blocks[0].synapse.delay.grad.abs().sum() > 0          # straight-through: delays still learn
    model.set_delay_rounding(evaluation=False).eval()
    fractional = model.blocks[0].synapse(x)
    assert not torch.allclose(fractional, rounded)


# ------------------------------------------------------------------------------ protocols

def test_selections_report_both_protocols():
    history = [{"epoch": 1, "valid_acc": 0.5, "valid_loss": 1.9, "test_acc": 0.40, "test_loss": 2.0},
               {"epoch": 2, "valid_acc": 0.7, "valid_loss": 1.2, "test_acc": 0.55, "test_loss": 1.5},
               {"epoch": 3, "valid_acc": 0.6, "valid_loss": 1.1, "test_acc": 0.65, "test_loss": 1.2},
               {"epoch": 4, "valid_acc": 0.7, "valid_loss": 1.3, "test_acc": 0.50, "test_loss": 1.6}]
    picks = selections(history)
    assert picks["valid_selected"] == {"epoch": 2, "valid_acc": 0.7, "test_acc": 0.55, "test_loss": 1.5}
    # the other selection rules, on validation only: the lowest loss, the best running mean
    assert selections(history, "loss")["valid_selected"]["epoch"] == 3
    assert selections(history, "running-mean")["valid_selected"]["epoch"] == 4   # the mean of all four, 0.625
    from snn_toolchain.train.loop.config import selection_scores

    assert selection_scores([0.5, 0.7, 0.6, 0.7], [0, 0, 0, 0], "running-mean") == pytest.approx([0.5, 0.6, 0.6, 0.625])
    assert picks["test_selected"]["epoch"] == 3 and picks["test_selected"]["test_acc"] == 0.65
    assert picks["test_selected"]["label"] == PAPER_PROTOCOL_LABEL == "test-selected (paper protocol)"


@pytest.mark.parametrize("protocol", ["valid", "paper"])
def test_result_carries_both_figures_and_the_protocol_picks_best_pt(tiny_folder, tmp_path, protocol):
    config = TrainConfig(**{**TINY, "epochs": 4, "protocol": protocol, "norm": "batchnorm"})
    splits = build_datasets("shd", tiny_folder, pad_steps=config.max_delay)
    result = train(config, tmp_path, splits=splits, progress=False, make_plots=False, log=lambda *_: None)
    saved = json.loads((tmp_path / "result.json").read_text())
    history = json.loads((tmp_path / "metrics.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3, 4] and all("test_acc" in row for row in history)
    picks = selections(history)
    assert saved["test_acc"] == picks["valid_selected"]["test_acc"] == result.test_acc
    assert saved["test_selected"]["test_acc"] == max(r["test_acc"] for r in history) == result.test_selected_acc
    assert saved["test_selected"]["label"] == PAPER_PROTOCOL_LABEL
    best = torch.load(tmp_path / "best.pt", weights_only=False)
    expected = picks["test_selected" if protocol == "paper" else "valid_selected"]["epoch"]
    assert best["epoch"] + 1 == expected == saved["saved_model"]["epoch"]
    analysis = saved["selected_model_analysis"]
    assert set(analysis) >= {"test_acc_zero_init", "test_acc_uniform_init", "test_acc_fractional_delays",
                             "spikes_per_neuron_per_sample"}
    assert len(analysis["spikes_per_neuron_per_sample"]) == 2
    assert saved["parameters"] == result.model.parameter_count()
    # the saved model's test accuracy is the one the history recorded at its epoch
    assert saved["saved_model"]["test_acc"] == pytest.approx(history[expected - 1]["test_acc"])


def test_cli_train_prints_both_protocols(tiny_folder, tmp_path, capsys):
    code = cli_main(["train", "--dataset", "shd", "--data-dir", str(tiny_folder), "--epochs", "1", "--hidden", "8",
                     "--batch-size", "8", "--max-delay", "3", "--device", "cpu", "--run-dir", str(tmp_path / "run"),
                     "--norm", "none", "--eval-init", "uniform", "--bounds", "beta-appendix"])
    out = capsys.readouterr().out
    assert code == 0
    assert "test accuracy of that model" in out and "test-selected (paper protocol):" in out
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["norm"] == "none" and config["eval_init"] == "uniform" and config["bounds"]["beta"] == [0.0, 1.0]
    code = cli_main(["train", "--dataset", "shd", "--data-dir", str(tiny_folder), "--epochs", "1", "--latency", "2",
                     "--run-dir", str(tmp_path / "latency")])
    assert code == 2 and "--latency 2: 0 (the paper's timing) or 1" in capsys.readouterr().err


# ------------------------------------------------------------------------------ augmentation

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


def _roll_zero(sample, shift, dim):
    out = torch.zeros_like(sample)
    length = sample.shape[dim]
    if shift >= 0:
        out.narrow(dim, shift, length - shift).copy_(sample.narrow(dim, 0, length - shift))
    else:
        out.narrow(dim, 0, length + shift).copy_(sample.narrow(dim, -shift, length + shift))
    return out


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


def _explains(mixed, x, partner, stretch, target, own_label, partner_label) -> bool:
    if not torch.equal(mixed[stretch], x[partner][stretch]):
        return False
    share = float(x[partner][stretch].sum() / mixed.sum())
    return torch.allclose(target, (1 - share) * own_label + share * partner_label, atol=1e-5)


def test_training_with_every_augmentation_runs_and_resumes_exactly(tiny_folder, tmp_path):
    spec = "time-shift=2,channel-shift=2,time-mask=4,channel-mask=4,mix=0.5"
    config = TrainConfig(**{**TINY, "epochs": 3, "augment": spec})
    splits = build_datasets("shd", tiny_folder, pad_steps=config.max_delay)
    whole = train(config, tmp_path / "whole", splits=splits, progress=False, make_plots=False, log=lambda *_: None)
    import dataclasses

    train(dataclasses.replace(config, epochs=1), tmp_path / "split", splits=splits, progress=False, make_plots=False,
          log=lambda *_: None)
    resumed = train(config, tmp_path / "split", splits=splits, resume=True, progress=False, make_plots=False,
                    log=lambda *_: None)
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


# ------------------------------------------------------------------------------ sweep

def test_parallel_sweep_equals_the_sequential_one_and_writes_the_analyses(tiny_folder, tmp_path):
    base = TrainConfig(**{**TINY, "epochs": 2})
    data = DataSource("shd", tiny_folder)
    variants = ["LIF", "AdLIF+"]
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))   # what each of 2 workers gets: same sums, same order
    try:
        sequential = run_sweep(base, tmp_path / "seq", seeds=2, variants=variants, data=data, log=lambda *_: None)
    finally:
        torch.set_num_threads(threads)
    logs = []
    parallel = run_sweep(base, tmp_path / "par", seeds=2, variants=variants, data=data, parallel=2, log=logs.append)
    for variant in variants:
        for key in ("test_per_seed", "paper_per_seed", "valid_mean", "spikes_per_neuron"):
            assert sequential[variant][key] == pytest.approx(parallel[variant][key]), (variant, key)
        assert (tmp_path / "par" / variant / "seed1" / "train.log").read_text().count("[train] epoch") == 2
    markdown = (tmp_path / "par" / "sweep.md").read_text()
    assert "test-selected (paper protocol)" in markdown and "| AdLIF+ | 38," not in markdown  # hidden 16 here
    assert "Table 4" in markdown and "Fig. 3" in markdown and "Fig. 5" in markdown
    for figure in ("seeds.png", "adaptation_grid.png"):
        assert (tmp_path / "par" / figure).read_bytes()[:4] == b"\x89PNG"
    runs = json.loads((tmp_path / "par" / "sweep.json").read_text())["runs"]
    row = parallel["AdLIF+"]
    tests = [100 * r["test_acc"] for r in runs["AdLIF+"]]
    assert row["test_mean"] == pytest.approx(np.mean(tests)) and row["test_std"] == pytest.approx(np.std(tests, ddof=1))
    assert row["paper_max"] >= row["test_max"] - 1e-9   # the test-selected figure can only be higher
    # finished runs are not trained again
    run_sweep(base, tmp_path / "par", seeds=2, variants=variants, data=data, parallel=2, log=logs.append)
    assert sum("done earlier" in line for line in logs) == 4


def test_aggregate_means_spreads_and_maxima():
    def run(test, paper, valid):
        return {"test_acc": test, "best_valid_acc": valid, "parameters": 10,
                "test_selected": {"test_acc": paper}, "selected_model_analysis": {
                    "test_acc_zero_init": test, "test_acc_uniform_init": test - 0.1,
                    "test_acc_fractional_delays": test, "spikes_per_neuron_per_sample": [2.0, 4.0]}}

    table = aggregate({"AdLIF": [run(0.8, 0.85, 0.7), run(0.9, 0.95, 0.75), run(0.7, 0.9, 0.72)]})
    row = table["AdLIF"]
    assert row["test_mean"] == pytest.approx(80) and row["test_max"] == pytest.approx(90)
    assert row["test_std"] == pytest.approx(10) and row["paper_mean"] == pytest.approx(90)
    assert row["test_acc_uniform_init"] == pytest.approx(70) and row["spikes_per_neuron"] == pytest.approx(3)


def test_adaptation_grid_counts_what_the_neuron_would_fire():
    from snn_toolchain.train.sweeps.report import adaptation_grid

    model = batchnorm_model(hidden=24)
    x = (torch.rand(60, 140) < 0.1).float()
    data = adaptation_grid(model, x.numpy(), grid=5)
    assert data["counts"].shape == (5, 5)
    i, j = 2, 3
    neuron = data["neuron"]
    with torch.no_grad():
        model.blocks[0].neuron.a[neuron] = float(data["a"][i])
        model.blocks[0].neuron.b[neuron] = float(data["b"][j])
        _, spikes = model(x[None], return_spikes=True)
    assert spikes[0][0, :, neuron].sum().item() == data["counts"][i, j]
    # stronger spike-triggered adaptation never makes this neuron fire more, at a = 0
    assert np.all(np.diff(data["counts"][0]) <= 0)


def test_two_presets_and_the_batch_from_the_data(tmp_path):
    """--preset paper is the paper's Table 3 exactly (the default with --data-dir); --preset tuned adds
    the measured improvements (the default on the embedded set), among them the batch rule: the
    paper's batch halved until an epoch has 32 updates, 128 at the real SHD's size, 32 on the
    embedded set's, whichever folder the data came from."""
    from snn_toolchain.train.loop.config import TUNED_PRESET, resolve_batch

    parser = build_parser()
    embedded = config_from_args(parser.parse_args(["train", "--dataset", "shd"]))
    real = config_from_args(parser.parse_args(["train", "--dataset", "shd", "--data-dir", str(tmp_path)]))
    tuned_real = config_from_args(parser.parse_args(["train", "--dataset", "shd", "--data-dir", str(tmp_path),
                                                     "--preset", "tuned"]))
    paper_embedded = config_from_args(parser.parse_args(["train", "--dataset", "shd", "--preset", "paper"]))
    assert (embedded.preset, real.preset, tuned_real.preset, paper_embedded.preset) == ("tuned", "paper", "tuned", "paper")
    assert real == paper_embedded and embedded == tuned_real
    assert (real.batch_size, real.min_updates, real.augment) == (128, 0, "")
    assert all(getattr(embedded, key) == value for key, value in TUNED_PRESET.items())
    # the batch from the data
    assert resolve_batch(embedded, 1120)[0].batch_size == 32          # the embedded set: 35 updates
    assert resolve_batch(embedded, 7340)[0].batch_size == 128         # SHD after the hold-out: 57
    assert resolve_batch(embedded, 795)[0].batch_size == 16
    assert resolve_batch(embedded, 60)[0].batch_size == 8 and "the smallest batch" in resolve_batch(embedded, 60)[1]
    assert resolve_batch(real, 1120)[0].batch_size == 128              # the paper's preset: as given
    chosen = config_from_args(parser.parse_args(["train", "--dataset", "shd", "--batch-size", "64"]))
    assert resolve_batch(chosen, 1120)[0].batch_size == 32 and chosen.min_updates == 32
    assert preset_config("ssc", embedded=True) == preset_config("ssc")   # no embedded SSC: the paper's


def test_the_paper_protocol_can_train_on_the_whole_train_file(tiny_folder, tmp_path, capsys):
    """--valid-fraction 0 with --protocol paper: no speaker hold-out, the test split stands in for
    validation (the paper's schedule and selection), and the run says so; refused otherwise."""
    from snn_toolchain.errors import ToolchainError

    with pytest.raises(ToolchainError, match="--valid-fraction 0.0: must be in \\(0, 0.5\\), or 0 with --protocol paper"):
        TrainConfig(valid_fraction=0.0).validate()
    args = ["train", "--dataset", "shd", "--data-dir", str(tiny_folder), "--epochs", "2", "--hidden", "8",
            "--batch-size", "8", "--max-delay", "3", "--device", "cpu", "--run-dir", str(tmp_path / "run"),
            "--protocol", "paper", "--valid-fraction", "0"]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert "no validation split (--valid-fraction 0)" in out and "best validation accuracy" not in out
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["validation_is_test"] is True and result["data"].startswith("shd: 48 train / ")
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert all(row["valid_acc"] == row["test_acc"] for row in rows)


def test_validation_halves_compare_selection_rules_without_the_test_split(tiny_folder, tmp_path):
    config = TrainConfig(dataset="shd", epochs=3, hidden=8, batch_size=8, max_delay=3, device="cpu")
    splits = build_datasets("shd", tiny_folder, pad_steps=3, seed=0)
    train(config, tmp_path / "run", splits=splits, progress=False, make_plots=False, log=lambda *_: None)
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    n = len(splits.valid)
    for row in rows:   # the halves are the split: their accuracies average back to the whole
        whole = (float(row["valid_acc_even"]) * ((n + 1) // 2) + float(row["valid_acc_odd"]) * (n // 2)) / n
        assert whole == pytest.approx(float(row["valid_acc"]))
    done = subprocess.run([sys.executable, "scripts/compare_selection.py", f"tiny={tmp_path / 'run'}",
                           "--out", str(tmp_path / "rules.json")], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    rules = json.loads((tmp_path / "rules.json").read_text())
    assert set(rules["tiny"]) == {"accuracy", "loss", "running-mean"}
    assert all(0 <= rule["mean"] <= 100 for rule in rules["all"].values())


@pytest.mark.parametrize("rule", ["loss", "running-mean"])
def test_every_selection_rule_saves_the_epoch_it_selects(tiny_folder, tmp_path, rule):
    """--select loss ranks by the negated loss: with a loss above 1 no epoch beat the old starting
    value (an accuracy of -1), so best.pt was never written. The saved model is the rule's pick."""
    config = TrainConfig(dataset="shd", epochs=2, hidden=8, batch_size=8, max_delay=3, device="cpu", select=rule)
    splits = build_datasets("shd", tiny_folder, pad_steps=3, seed=0)
    train(config, tmp_path / "run", splits=splits, progress=False, make_plots=False, log=lambda *_: None)
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (tmp_path / "run" / "best.pt").exists()
    assert result["saved_model"]["epoch"] == selections(history, rule)["valid_selected"]["epoch"] >= 1
    assert 0 <= result["best_valid_acc"] <= 1
