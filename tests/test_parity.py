"""parity_check (lava_models/parity.py): float model vs emulator vs Lava fixed_pt on samples of the
embedded SHD set.

- A small randomly initialised AdLIF+ model with random delays (fast): the verdict must be OK and
  the report's fields consistent with each other; a BatchNorm network (folded at export) too.
- The comparison logic on a Lava run that differs in one spike (a stand-in runner, no Lava): the
  report must name that sample, layer, step and neuron.
- The outputs: the verdict is printed even when the report cannot be written; the traces are
  written as NIR data.
- ``long``: a model trained for a few epochs, 50 test samples: the issue's bar, emulator and Lava
  fixed_pt agree exactly on every spike of every layer at every step.

Lava runs in a worker subprocess under a timeout (tests/lava_support.py).
"""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest
import torch

from cli_support import one_line_error
from lava_support import replace_lava_by_the_emulator, run_isolated
from model_support import batchnorm_model
from snn_toolchain.cli import main as cli_main
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.export.netfile import read_net, write_net
from snn_toolchain.train.model.quantize import quantize_model
from snn_toolchain.lava_models import parity
from snn_toolchain.lava_models.build import LavaTimings, SampleResult
from snn_toolchain.train.model.delay_snn import DelaySNN

MAX_DELAY = 10
FAST_SAMPLES = 4


def small_model(seed: int = 0) -> DelaySNN:
    torch.manual_seed(seed)
    model = DelaySNN(140, 20, hidden=24, variant="adlif+", delays=True, max_delay=MAX_DELAY, dropout=0.0)
    with torch.no_grad():
        for block in list(model.blocks) + [model.readout]:
            block.synapse.delay.uniform_(0, MAX_DELAY)
            block.synapse.weight.mul_(4.0)           # enough drive for both hidden layers to fire
    return model.eval()


def export(model: DelaySNN, folder, time_steps: int) -> str:
    checkpoint = folder / "model.pt"
    torch.save({"model": model.state_dict(), "model_config": model.config}, checkpoint)
    network = quantize_model(model, time_steps, settings={"source_checkpoint": str(checkpoint)})
    return str(write_net(network, folder / "model.net"))


def parity_worker(net_path: str, n_samples: int, synapse: str):
    from snn_toolchain.lava_models.lava_backend import run_lava

    report = parity.parity_check(net_path, "shd", n_samples, synapse=synapse, progress=False)
    return report, run_lava(net_path, "shd", n_samples, synapse="stock", progress=False)


@pytest.fixture(scope="module")
def small_net(tmp_path_factory):
    return export(small_model(), tmp_path_factory.mktemp("parity"), 100 + MAX_DELAY)


@pytest.fixture(scope="module")
def small_results(small_net, tmp_path_factory):
    return run_isolated("test_parity:parity_worker", (small_net, FAST_SAMPLES, "ring"),
                        tmp_path_factory.mktemp("parity_worker"), timeout_s=300)


@pytest.fixture(scope="module")
def small_report(small_results):
    return small_results[0]


def test_parity_ok_on_embedded_samples(small_report):
    report = small_report
    assert report.ok, report.verdict()
    assert report.verdict().startswith("PARITY OK: model (deployed arithmetic) == emulator == Lava fixed_pt on every "
                                       "spike of 2 hidden layers")
    assert report.deployed_identical and report.deployed_first_difference is None
    assert f"x {report.run_steps} steps x {FAST_SAMPLES} samples" in report.verdict()
    assert report.first_difference is None and report.mismatched_samples == []


def test_parity_report_is_consistent(small_report, small_net):
    report = small_report
    network = read_net(small_net)
    assert report.samples == FAST_SAMPLES == len(report.labels)
    assert report.run_steps == network.run_steps == report.time_steps + 3
    assert report.layer_sizes == [24, 24] and report.classes == 20
    for key in ("float", "deployed", "emulator", "lava"):
        assert len(report.predictions[key]) == FAST_SAMPLES
        assert 0.0 <= report.accuracy[key] <= 1.0
        assert len(report.spike_counts[key]) == 2
    assert report.predictions["deployed"] == report.predictions["emulator"] == report.predictions["lava"]
    assert report.spike_counts["deployed"] == report.spike_counts["emulator"] == report.spike_counts["lava"]
    assert min(report.spike_counts["lava"]) > 0, "a silent layer would make the parity trivial"
    labels = np.array(report.labels)
    assert report.accuracy["lava"] == pytest.approx(np.mean(np.array(report.predictions["lava"]) == labels))
    assert report.accuracy_gap == pytest.approx(100 * (report.accuracy["float"] - report.accuracy["emulator"]))
    assert report.float_fixed_agreement == pytest.approx(
        np.mean(np.array(report.predictions["float"]) == np.array(report.predictions["emulator"])))
    # the float model ran from the checkpoint named in the .net, and its counts are of the same order
    for fixed, floating in zip(report.spike_counts["emulator"], report.spike_counts["float"]):
        assert 0.5 * fixed <= floating <= 2 * fixed
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is True and data["verdict"] == report.verdict()
    assert data["timings"]["lava_samples"] == FAST_SAMPLES and data["timings"]["lava_seconds_per_sample"] > 0


def test_run_lava_agrees_with_the_parity_run(small_results):
    report, summary = small_results
    assert summary["samples"] == FAST_SAMPLES and summary["synapse"] == "stock"
    assert summary["predictions"] == report.predictions["lava"]
    assert summary["labels"] == report.labels
    assert summary["spike_counts"] == report.spike_counts["lava"]
    assert summary["accuracy"] == pytest.approx(report.accuracy["lava"])
    assert summary["spikes_per_neuron_per_sample"] == pytest.approx(report.spikes_per_neuron_per_sample["lava"])
    assert summary["seconds_per_sample"] > 0 and summary["run_steps"] == report.run_steps


class _OneSpikeOffRunner:
    """Stands in for LavaRunner: the emulator's integers with one spike flipped."""

    def __init__(self, network, samples, flip):
        self.network, self.samples, self.flip = network, samples, flip
        self.timings = LavaTimings(samples=len(samples))

    def run(self, progress=True):
        result = Emulator(self.network)(torch.as_tensor(self.samples))
        sample, layer, step, neuron = self.flip
        out = []
        for k in range(len(self.samples)):
            spikes = [s[k].numpy().copy() for s in result.spikes]
            if k == sample:
                spikes[layer][step, neuron] ^= 1
            out.append(SampleResult(spikes, result.readout_input[k].numpy(), result.scores[k].numpy()))
        return out


def test_report_names_the_first_difference(small_net, monkeypatch):
    flip = (1, 0, 17, 3)
    monkeypatch.setattr(parity, "build_lava_network",
                        lambda network, *, samples, synapse: _OneSpikeOffRunner(network, samples, flip))
    report = parity.parity_check(small_net, "shd", 3, progress=False)
    assert not report.ok and not report.spikes_identical and report.readout_identical
    assert report.mismatched_samples == [1]
    difference = report.first_difference
    assert (difference["sample"], difference["layer"], difference["step"]) == (1, "1", 17)
    assert difference["neurons"] == [3] and difference["emulator"] != difference["lava"]
    assert report.deployed_identical      # the model still equals the emulator: the stand-in Lava is the odd one
    assert report.verdict().startswith("PARITY FAILED: emulator vs Lava: first difference at sample 1, layer 1, "
                                       "step 17")


def test_float_model_is_skipped_with_a_note(small_net, monkeypatch, tmp_path):
    monkeypatch.setattr(parity, "build_lava_network",
                        lambda network, *, samples, synapse: _OneSpikeOffRunner(network, samples, (0, 0, 0, 0)))
    report = parity.parity_check(small_net, "shd", 2, checkpoint=tmp_path / "missing.pt", progress=False)
    assert report.accuracy["float"] is None and report.accuracy_gap is None
    assert any("float model skipped" in note for note in report.notes)
    assert "accuracy float n/a" in report.verdict() and report.deployed_identical is None


# ------------------------------------------------------------------------------ the bar

def trained_parity_worker(run_dir: str, n_samples: int):
    from snn_toolchain.train.loop.config import TrainConfig
    from snn_toolchain.train.loop.trainer import train

    from pathlib import Path

    # About 40 s on 2 CPU cores; reaches roughly 70% on the embedded test split.
    config = TrainConfig(dataset="shd", epochs=15, hidden=128, batch_size=64, device="cpu", max_delay=25, seed=0)
    result = train(config, Path(run_dir), progress=False, make_plots=False, log=lambda *_: None)
    checkpoint = Path(run_dir) / "best.pt"
    network = quantize_model(result.model.eval(), 100 + config.max_delay, settings={"source_checkpoint": str(checkpoint)})
    net_path = write_net(network, Path(run_dir) / "model.net")
    report = parity.parity_check(net_path, "shd", n_samples, synapse="ring", progress=False)
    return report, result.test_acc


@pytest.mark.long
def test_trained_model_parity_on_50_samples(tmp_path):
    report, float_test_acc = run_isolated("test_parity:trained_parity_worker", (str(tmp_path / "run"), 50),
                                          tmp_path / "worker", timeout_s=1500)
    print(report.verdict())
    assert report.ok, report.verdict()
    assert report.samples == 50
    assert min(report.spike_counts["lava"]) > 0
    # trained, not chance (5%), and the fixed-point network classifies like the float one
    assert report.accuracy["float"] is not None and report.accuracy["float"] > 0.4
    assert report.accuracy["emulator"] > 0.4 and report.float_fixed_agreement > 0.6


# ------------------------------------------------------------------ more networks, and the outputs

def _bn_parity_worker(net_path: str, n_samples: int):
    from snn_toolchain.lava_models import parity

    return parity.parity_check(net_path, "shd", n_samples, synapse="ring", progress=False)


def test_batchnorm_network_parity_is_bit_exact(tmp_path):
    model = batchnorm_model(hidden=24)
    checkpoint = tmp_path / "model.pt"
    torch.save({"model": model.state_dict(), "model_config": model.config}, checkpoint)
    network = quantize_model(model, 110, settings={"source_checkpoint": str(checkpoint)})
    net_path = str(write_net(network, tmp_path / "model.net"))
    report = run_isolated("test_parity:_bn_parity_worker", (net_path, 3), tmp_path / "worker", timeout_s=300)
    assert report.ok, report.verdict()
    assert min(report.spike_counts["lava"]) > 0
    assert report.accuracy["float"] is not None   # the BN float model was loaded from its checkpoint


def test_the_parity_verdict_survives_an_unwritable_report(finished_run, tiny_folder, tmp_path, capsys, monkeypatch):
    replace_lava_by_the_emulator(monkeypatch)
    base = ["parity", "--net", str(finished_run / "model.net"), "--dataset", "shd", "--data-dir", str(tiny_folder),
            "--samples", "3"]
    # an output that cannot be a file is refused before the run
    assert cli_main(base + ["--nir-traces", str(tmp_path)]) == 2
    one_line_error(capsys, "--nir-traces", "is a folder")
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert cli_main(base + ["--report", str(blocker / "sub" / "parity.json")]) == 2
    one_line_error(capsys, "--report")
    # the report goes where it is asked, and the verdict is printed first whatever happens to it
    assert cli_main(base + ["--report", str(tmp_path / "elsewhere.json")]) == 0
    out = capsys.readouterr().out
    assert "[parity] PARITY OK" in out and json.loads((tmp_path / "elsewhere.json").read_text())["ok"]
    def unwritable(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("snn_toolchain.atomic.write_json", unwritable)
    assert cli_main(base + ["--report", str(tmp_path / "full.json")]) == 0
    captured = capsys.readouterr()
    assert "[parity] PARITY OK" in captured.out and "could not be written" in captured.err


def test_parity_traces_are_written_as_nir_data_and_read_back(tmp_path):
    from snn_toolchain.lava_models.parity import write_nir_traces
    from snn_toolchain.evaluation import RunResult

    rng = np.random.default_rng(0)
    runs = {name: RunResult(np.zeros((3, 2)), [rng.integers(0, 2, (3, 9, 4)).astype(np.uint8),
                                               rng.integers(0, 2, (3, 9, 2)).astype(np.uint8)])
            for name in ("emulator", "lava")}
    path = write_nir_traces(tmp_path / "traces.h5", runs, dt=0.01)
    data = nir.read_data(path)
    for backend, run in runs.items():
        for index, spikes in enumerate(run.spikes):
            grid = data.nodes[f"{backend}_layer{index}"].observables["spikes"]
            assert grid.dt == 0.01 and grid.data.dtype == bool
            np.testing.assert_array_equal(grid.data, spikes.astype(bool))
