"""The trained model is the deployed model (train/model/deployed.py; docs/fixed_point.md, "One timing"):

- the deployed arithmetic rule by rule: a spike arrives one step plus its delay later, a shifted
  synaptic input floors each delay group as Lava does, and the device-side (torch) twins of the
  quantization rules give export's integers (snn_toolchain/fixed_point.py);
- trained models with folded BatchNorm (every hidden neuron has a bias), AdLIF+, LIF (deployed as
  lava-dl's CUBA) and graded GSC inputs: the model in its deployed arithmetic equals the emulator of
  its exported .net on every spike of every layer at every step, on every test sample, and equals
  Lava fixed_pt too (three-way parity);
- the timing: the float model runs Lava's run steps, a model trained without the latency integrates
  its biases early once deployed (what the latency removes), and runs from before the option keep
  their timing;
- the training path through the deployed arithmetic: its hand-derived backward equals autograd's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lava_support import replace_lava_by_the_emulator, run_isolated
from model_support import trained_like_model as _trained_like_model
from snn_toolchain.cli import main as cli_main
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.export.netfile import read_net
from snn_toolchain.neurons.dynamics import (
    CubaFixedParams,
    FixedNeuronParams,
    NeuronState,
    adlif_fixed_step,
    cuba_fixed_step,
)
from snn_toolchain.evaluation import compare_runs
from snn_toolchain.train.model.delay_snn import DelaySNN
from snn_toolchain.train.data.loading import build_datasets
from snn_toolchain.train.model.deployed import deployed_synaptic_input, run_fixed_point, surrogate_spike
from snn_toolchain.train.model.float_backend import FloatModelBackend
from snn_toolchain.train.model.quantize import quantize_model
from snn_toolchain.train.model.recurrence import run_deployed_adlif
from snn_toolchain.train.model.checkpoint import load_model

MAX_DELAY = 6
SHORT = dict(epochs=3, hidden=24, max_delay=MAX_DELAY, device="cpu", batch_size=32, seed=0)
LAVA_SAMPLES = 4


def graded_embedded_splits():
    """The embedded set's spike counts smoothed over 3 steps (real-valued features, as GSC's
    log-mel energies are) and encoded as 8-bit graded payloads, with the GSC path's own encoder:
    a real speech task whose trained network fires."""
    from snn_toolchain.input_encoding import fit_encoding
    from snn_toolchain.train.data.splits import DatasetSplits, TensorFeatureDataset

    counts = build_datasets("shd", None, pad_steps=0)

    def features(split):
        x = torch.stack([split[i][0] for i in range(len(split))])
        smooth = torch.nn.functional.avg_pool1d(x.transpose(1, 2), 3, stride=1, padding=1, count_include_pad=False)
        return smooth.transpose(1, 2).contiguous(), torch.tensor([int(split[i][1]) for i in range(len(split))])

    parts = {name: features(getattr(counts, name)) for name in ("train", "valid", "test")}
    encoding = fit_encoding(parts["train"][0].numpy(), 8)
    datasets = {name: TensorFeatureDataset(encoding.encode_(x), y, MAX_DELAY) for name, (x, y) in parts.items()}
    return DatasetSplits("shd-graded", datasets["train"], datasets["valid"], datasets["test"], counts.n_inputs,
                         counts.n_classes, counts.time_steps + MAX_DELAY, counts.class_names,
                         "the embedded set, smoothed counts as 8-bit graded payloads", input_encoding=encoding)


def splits_of(which: str):
    return graded_embedded_splits() if which == "graded" else build_datasets("shd", None, pad_steps=MAX_DELAY)


def train_and_export(run_dir: Path, which: str) -> Path:
    from snn_toolchain.export.exporter import export_run
    from snn_toolchain.train.loop.config import TrainConfig
    from snn_toolchain.train.loop.trainer import train

    splits = splits_of(which)
    config = TrainConfig(dataset="shd", neuron="lif" if which == "lif" else "adlif+", **SHORT)
    train(config, run_dir, splits=splits, progress=False, make_plots=False, log=lambda *_: None)
    export_run(run_dir, splits, log=lambda *_: None)
    return run_dir


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory):
    """Three short trainings with the default BatchNorm on the embedded set: delay-AdLIF+,
    delay-LIF, and delay-AdLIF+ on graded inputs (an input shift in the first layer)."""
    tmp_path = tmp_path_factory.mktemp("deployed")
    return {which: train_and_export(tmp_path / which.replace("+", "_"), which) for which in ("adlif+", "lif", "graded")}


@pytest.mark.parametrize("which", ["adlif+", "lif", "graded"])
def test_the_trained_model_in_its_deployed_arithmetic_is_the_emulator_on_every_spike(trained_runs, which):
    run_dir = trained_runs[which]
    network, splits = read_net(run_dir / "model.net"), splits_of(which)
    model = load_model(run_dir / "best.pt")
    assert model.config["norm"] == "batchnorm" and model.latency == 1
    # folded BatchNorm: every hidden layer holds biases, not zeros
    for layer in network.spiking_layers:
        assert np.count_nonzero(layer.bias) > 0.5 * layer.bias.size
    assert network.layers[0].neuron_kind.name == ("cuba" if which == "lif" else "adlif")
    if which == "graded":
        assert network.input_encoding is not None and network.layers[0].input_shift > 0
    x = torch.stack([splits.test[i][0] for i in range(len(splits.test))])      # graded features unrounded
    emulated = Emulator(network).run(torch.stack([splits.deployed().test[i][0] for i in range(len(splits.test))]))
    deployed = FloatModelBackend(model, arithmetic="deployed")(x)
    comparison = compare_runs(emulated, deployed, ("emulator", "model"))
    assert comparison.ok, comparison.first_difference
    assert sum(emulated.spike_counts()) > 100, "silent layers would make the equality trivial"
    # the float model runs the same run steps; it differs from the deployed one only by rounding
    floating = FloatModelBackend(model)(x)
    assert [s.shape for s in floating.spikes] == [s.shape for s in emulated.spikes]


def three_way_worker(net_path: str, which: str, n_samples: int):
    from snn_toolchain.lava_models.parity import parity_check

    return parity_check(net_path, splits_of(which), n_samples, progress=False)


@pytest.mark.parametrize("which", ["adlif+", "lif", "graded"])
def test_three_way_parity_model_emulator_and_lava(trained_runs, which, tmp_path):
    report = run_isolated("test_deployed:three_way_worker",
                          (str(trained_runs[which] / "model.net"), which, LAVA_SAMPLES), tmp_path, timeout_s=300)
    assert report.ok and report.deployed_identical, report.verdict()
    assert report.verdict().startswith("PARITY OK: model (deployed arithmetic) == emulator == Lava fixed_pt")
    assert report.predictions["deployed"] == report.predictions["emulator"] == report.predictions["lava"]
    assert min(report.spike_counts["lava"]) > 0
    # the float model's accuracy beside the deployed one, on validation samples too
    assert report.accuracy["float"] is not None
    assert 0 < report.validation["samples"] <= LAVA_SAMPLES and "validation (" in report.verdict()


# ------------------------------------------------------------------------------------ timing

def test_a_model_without_the_latency_integrates_its_biases_early_once_deployed():
    """The pre-roll: trained with latency 0, hidden layer l sees only its bias for l + 1 steps on
    Lava. Its deployed arithmetic (Lava's timing) then differs from the float model by more than
    rounding: with a bias that fires a neuron alone, the deployed network spikes before any input
    can arrive; the latency-1 model fires there in float too."""
    torch.manual_seed(0)
    for latency in (0, 1):
        model = DelaySNN(6, 3, hidden=4, max_delay=2, dropout=0.0, norm="none", latency=latency).eval()
        with torch.no_grad():
            model.blocks[0].synapse.bias.fill_(3.0)          # fires on its bias alone
        x = torch.zeros(1, 5, 6)
        deployed = FloatModelBackend(model, arithmetic="deployed")(x)
        floating = FloatModelBackend(model)(x)
        assert deployed.spikes[0][0, 0].sum() > 0          # step 0: bias only, no input yet
        if latency:
            assert np.array_equal(floating.spikes[0], deployed.spikes[0])
        else:
            assert floating.spikes[0].shape[1] == 5 and deployed.spikes[0].shape[1] == 8


def test_runs_from_before_the_latency_keep_their_timing(tmp_path, capsys):
    options = ["--dataset", "shd", "--hidden", "8", "--max-delay", "3", "--device", "cpu", "--max-train-batches", "2"]
    run_dir = tmp_path / "old"
    assert cli_main(["train", "--epochs", "1", "--run-dir", str(run_dir), *options]) == 0
    for name in ("checkpoint.pt", "best.pt"):    # as written before the option existed
        state = torch.load(run_dir / name, weights_only=False)
        del state["config"]["latency"]
        del state["model_config"]["latency"]
        torch.save(state, run_dir / name)
    assert load_model(run_dir / "best.pt").latency == 0
    capsys.readouterr()
    resume = ["train", "--epochs", "2", "--run-dir", str(run_dir), "--resume", *options]
    assert cli_main(resume) == 2
    assert "other settings (latency) (it predates --latency 0: pass that)" in capsys.readouterr().err
    assert cli_main(resume + ["--latency", "0"]) == 0
    assert load_model(run_dir / "checkpoint.pt").latency == 0
    # its export says what its float figures leave out
    capsys.readouterr()
    assert cli_main(["export", "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "trained with latency 0 (the paper's timing)" in out
    assert json.loads((run_dir / "export.json").read_text())["latency"] == 0


# ------------------------------------------------------------------- training through it

def test_the_fixed_point_steps_compute_the_same_on_floats_as_on_integers():
    rng = np.random.default_rng(3)
    n, batch = 9, 5
    threshold = np.full(n, 77 << 6)
    adlif = FixedNeuronParams(rng.integers(0, 4097, n), rng.integers(0, 4097, n), rng.integers(-4096, 4097, n),
                              rng.integers(0, 2 * threshold[0], n), rng.integers(-300, 300, n), threshold)
    cuba = CubaFixedParams(rng.integers(0, 4097, n), rng.integers(0, 4097, n), rng.integers(-300, 300, n), threshold)
    for step, params in ((adlif_fixed_step, adlif), (cuba_fixed_step, cuba)):
        ints = NeuronState(*(np.zeros((batch, n), dtype=np.int64) for _ in range(3)))
        floats = NeuronState(*(np.zeros((batch, n)) for _ in range(3)))
        float_params = type(params)(*(torch.as_tensor(p, dtype=torch.float64) for p in params))
        floats = NeuronState(*(torch.as_tensor(s) for s in floats))
        for t in range(60):
            drive = rng.integers(-4000, 9000, (batch, n))     # negative products truncate toward zero
            ints = step(params, ints, drive)
            floats = step(float_params, floats, torch.as_tensor(drive, dtype=torch.float64))
            for a, b in zip(ints, floats):
                assert np.array_equal(a, b.numpy())
        assert ints.s.sum() > 0


def test_the_deployed_recurrence_trains_with_the_float_backward():
    """run_deployed_adlif: the deployed integers forward, the float recurrence's backward; equal to
    autograd through the fixed-point step with straight-through truncations."""
    torch.manual_seed(0)
    batch, steps, n = 4, 40, 8

    def whole(high, low=0.0):
        return torch.round(low + torch.rand(n, dtype=torch.float64) * (high - low)).requires_grad_()

    threshold = torch.full((n,), 100.0 * 64, dtype=torch.float64)
    params = FixedNeuronParams(whole(4096), whole(4096), whole(4096), whole(6400), whole(60, -20), threshold)
    synaptic_input = torch.round(torch.rand(batch, steps, n, dtype=torch.float64) * 300).requires_grad_()
    fast = run_deployed_adlif(params, synaptic_input)
    reference = run_fixed_point(params, synaptic_input, surrogate_spike)
    assert torch.equal(fast, reference) and fast.sum() > 0
    weights = torch.randn(batch, steps, n, dtype=torch.float64)
    inputs = [synaptic_input, *params[:5]]
    for a, b in zip(torch.autograd.grad((fast * weights).sum(), inputs),
                    torch.autograd.grad((reference * weights).sum(), inputs)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
        assert b.abs().sum() > 0


def test_one_scale_per_layer_is_an_export_option_the_model_follows(trained_runs, tmp_path):
    """``export --scales layer`` writes one scale per AdLIF layer (a file of format version 1/2);
    parity's model then computes that too, and equals the emulator of that file."""
    from snn_toolchain.export.exporter import export_run
    from snn_toolchain.lava_models.parity import load_float_model

    splits = splits_of("adlif+")
    report = export_run(trained_runs["adlif+"], splits, out=tmp_path / "layer.net", log=lambda *_: None,
                        per_neuron_scales=False)
    network = read_net(tmp_path / "layer.net")
    assert network.format_version == 1 and not any(layer.per_neuron_scale for layer in network.layers)
    assert all(isinstance(scale, int) for scale in report["weight_scale"])
    model = load_float_model(trained_runs["adlif+"] / "best.pt", network)
    assert model.per_neuron_scales is False
    x = torch.stack([splits.test[i][0] for i in range(len(splits.test))])
    assert compare_runs(Emulator(network).run(x), FloatModelBackend(model, arithmetic="deployed")(x)).ok
    # and the default file holds a scale per AdLIF neuron, never coarser than the layer's
    default = read_net(trained_runs["adlif+"] / "model.net")
    for per_layer, per_neuron in zip(network.spiking_layers, default.spiking_layers):
        assert per_neuron.per_neuron_scale and np.all(per_neuron.weight_scale >= per_layer.weight_scale)


def test_parity_says_when_the_checkpoint_is_not_the_files_source(trained_runs, monkeypatch):
    from snn_toolchain.lava_models import parity

    replace_lava_by_the_emulator(monkeypatch)
    net, splits = trained_runs["adlif+"] / "model.net", splits_of("adlif+")
    report = parity.parity_check(net, splits, 6, progress=False)
    assert report.ok and report.deployed_identical
    other = parity.parity_check(net, splits, 6, checkpoint=trained_runs["graded"] / "best.pt", progress=False)
    assert not other.ok and other.deployed_identical is False and other.spikes_identical   # emulator == Lava still
    assert any("is not the checkpoint this .net was exported from" in note for note in other.notes)
    # a checkpoint that cannot run these samples is a note, not a crash
    monkeypatch.setattr(parity, "load_float_model", lambda checkpoint, network: _Raising())
    skipped = parity.parity_check(net, splits, 6, progress=False)
    assert skipped.ok and skipped.deployed_identical is None
    assert any("does not run these samples" in note for note in skipped.notes)


class _Raising:
    latency = 1

    def to(self, device):
        return self

    def __getattr__(self, name):
        raise RuntimeError("this model cannot run")


def test_qat_refuses_what_the_deployed_network_does_not_have():
    from snn_toolchain.errors import ToolchainError
    from snn_toolchain.train.loop.config import TrainConfig

    for extra in ({"latency": 0}, {"zero_start_epochs": 3}):
        with pytest.raises(ToolchainError, match="--qat trains the deployed network"):
            TrainConfig(qat=True, **extra).validate()


# ----------------------------------------------------------- the deployed arithmetic, rule by rule

def test_synapse_latency_is_one_step_plus_the_delay():
    spikes = torch.zeros(1, 10, 2, dtype=torch.int64)
    spikes[0, 2, 0] = 1
    spikes[0, 4, 1] = 3   # graded
    weight = torch.tensor([[5, -2]])
    delay = torch.tensor([[0, 3]])
    a = deployed_synaptic_input(spikes, weight, delay).to(torch.int64)[0, :, 0]
    expected = torch.zeros(10, dtype=torch.int64)
    expected[3] = 5        # step 2 + 1 + 0
    expected[8] = -6       # step 4 + 1 + 3, weight -2 x 3
    torch.testing.assert_close(a, expected)


def test_shifted_synaptic_input_floors_each_delay_group_as_lava_does():
    rng = np.random.default_rng(2)
    weight = rng.integers(-256, 255, size=(4, 5))
    delay = rng.integers(0, 3, size=(4, 5))
    x = rng.integers(0, 256, size=(3, 9, 5))
    shift = 5
    got = deployed_synaptic_input(torch.as_tensor(x), torch.as_tensor(weight), torch.as_tensor(delay),
                                  float(1 << shift)).to(torch.int64)
    expected = np.zeros((3, 9, 4), dtype=np.int64)
    for b in range(3):
        for r in range(9):
            for j in range(4):
                for d in np.unique(delay[j]):
                    source = r - 1 - d
                    if source < 0:
                        continue
                    group = int(sum(weight[j, i] * x[b, source, i] for i in range(5) if delay[j, i] == d))
                    expected[b, r, j] += group >> shift        # Python's >> floors, as numpy's right_shift
    assert np.array_equal(got.numpy(), expected)
    unshifted = deployed_synaptic_input(torch.as_tensor(x), torch.as_tensor(weight), torch.as_tensor(delay)).to(torch.int64)
    assert not np.array_equal(got.numpy() << shift, unshifted.numpy())   # flooring per group is visible


def test_emulator_equals_the_model_in_the_deployed_arithmetic():
    """The model computes in the deployed integers (its own blocks, with Lava's latency) exactly what
    the emulator computes from the exported .net; the float model predicts nearly the same."""
    torch.manual_seed(2)
    model = _trained_like_model(max_delay=4)
    x = (torch.rand(64, 30, 14) < 0.3).float()
    qnet = quantize_model(model, time_steps=30)
    emulated = Emulator(qnet).run(x)
    deployed = FloatModelBackend(model, arithmetic="deployed")(x)
    assert compare_runs(emulated, deployed).ok
    floating = FloatModelBackend(model)(x)
    assert [s.shape for s in floating.spikes] == [s.shape for s in emulated.spikes]   # the same run steps
    assert np.mean(floating.predictions() == emulated.predictions()) > 0.8


def test_the_device_side_rules_equal_the_exported_ones():
    """The torch twins of the quantization rules (train/model/deployed.py), which the model's deployed
    arithmetic and --qat run on the device, give export's integers (snn_toolchain/fixed_point.py):
    random layers with zero rows, zero and negative biases, biases that limit a neuron's scale,
    tiny weights (input shifts up to 8, the 17-bit cap) and large ones."""
    from snn_toolchain.fixed_point import neuron_scales, scale_and_shift
    from snn_toolchain.train.model.deployed import deployed_connection, neuron_scales_torch, scale_and_shift_torch

    rng = np.random.default_rng(7)
    shifts = set()
    for case in range(400):
        out_features, in_features = rng.integers(1, 6), rng.integers(1, 7)
        weight = rng.standard_normal((out_features, in_features)) * 10.0 ** rng.uniform(-7, 1.5)
        weight[rng.random(out_features) < 0.2] = 0.0                      # neurons without weights
        weight[0, 0] = abs(weight[0, 0]) + 1e-9                           # one positive weight at least
        bias = rng.standard_normal(out_features) * 10.0 ** rng.uniform(-3, 2.5) * (rng.random(out_features) < 0.7)
        scale, shift = scale_and_shift(weight, bias)
        shifts.add(shift)
        w, b = torch.as_tensor(weight), torch.as_tensor(bias)
        scale_t, factor_t = scale_and_shift_torch(w, b)
        assert (int(scale_t), int(factor_t)) == (scale, 1 << shift), case
        scales = neuron_scales(weight, bias, scale, shift)
        assert neuron_scales_torch(w, b, scale_t, factor_t).numpy().astype(np.int64).tolist() == scales.tolist(), case
        connection = deployed_connection(w, b, torch.zeros_like(w), 0, per_neuron=True)
        assert np.array_equal(connection.weight.numpy(), np.round(weight * (scales << shift)[:, None])), case
        assert np.array_equal(connection.bias.numpy(), np.round(bias * scales)), case
    assert shifts >= {0, 1, 8}
    # a weight beyond 254 thresholds: export refuses it, the device side keeps S >= 1 (no 0 threshold)
    scale_t, _ = scale_and_shift_torch(torch.tensor([[300.0, 1.0]]), None)
    assert int(scale_t) == 1
