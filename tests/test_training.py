"""The training loop: bounds, rounded evaluation delays, checkpoints and bit-for-bit resume,
data-parallel equivalence, and the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from official_layout import write_shd_folder
from snn_toolchain.cli import main as cli_main
from snn_toolchain.errors import ToolchainError
from snn_toolchain.neurons.dynamics import PARAM_NAMES
from snn_toolchain.train.model.delay_snn import DelaySNN
from snn_toolchain.train.loop.config import TrainConfig, preset_config
from snn_toolchain.train.data.loading import build_datasets
from snn_toolchain.train.loop.trainer import train

TINY = dict(hidden=16, batch_size=8, max_delay=5, epochs=2, dropout=0.0, device="cpu")


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    # dense enough (2-4k spikes per sample) that every layer spikes and every parameter gets gradient
    return write_shd_folder(tmp_path_factory.mktemp("shd"), n_train=48, n_test=16, n_speakers=6, spikes=(2000, 4000))


@pytest.mark.parametrize("variant", ["lif", "adlif", "adlif+"])
def test_bounds_hold_after_many_aggressive_steps(variant):
    torch.manual_seed(0)
    model = DelaySNN(20, 4, 12, variant=variant, max_delay=6, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameter_groups(lr_weights=0.5, lr_delays=5.0))
    x = (torch.rand(6, 30, 20) < 0.3).float()
    y = torch.randint(0, 4, (6,))
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.clamp_()
    for block in model.blocks:
        for name in PARAM_NAMES:
            low, high = block.neuron.bounds[name]
            values = getattr(block.neuron, name)
            assert values.min() >= low and values.max() <= high, (variant, name)
    for synapse in [b.synapse for b in model.blocks] + [model.readout.synapse]:
        assert synapse.delay.min() >= 0 and synapse.delay.max() <= 6
    moved = model.blocks[0].synapse.delay.detach()
    assert moved.abs().sum() > 0  # the delays did train


def test_lif_has_no_trainable_adaptation():
    model = DelaySNN(10, 3, 8, variant="lif")
    names = {n for n, _ in model.named_parameters()}
    assert "blocks.0.neuron.alpha" in names
    assert not {"blocks.0.neuron.a", "blocks.0.neuron.b", "blocks.0.neuron.beta"} & names


def test_evaluation_uses_rounded_delays():
    torch.manual_seed(1)
    model = DelaySNN(10, 3, 8, max_delay=8, dropout=0.0).eval()
    x = (torch.rand(4, 40, 10) < 0.3).float()
    with torch.no_grad():
        for synapse in [b.synapse for b in model.blocks] + [model.readout.synapse]:
            synapse.delay.uniform_(0, 8)
            synapse.weight.mul_(6)  # strong enough that both hidden layers spike
        fractional, spikes = model(x, return_spikes=True)
        assert spikes[1].sum() > 0 and fractional.abs().sum() > 0
        for synapse in [b.synapse for b in model.blocks] + [model.readout.synapse]:
            synapse.delay.copy_(synapse.delay.round())
        torch.testing.assert_close(model(x), fractional, rtol=0, atol=0)
        model.train()
        model.blocks[0].neuron.train_init_state = "zero"
        model.blocks[1].neuron.train_init_state = "zero"
        for synapse in [b.synapse for b in model.blocks] + [model.readout.synapse]:
            synapse.delay.add_(0.3)
        assert not torch.equal(model(x), fractional)  # training mode interpolates


def test_two_learning_rates_and_presets():
    model = DelaySNN(10, 3, 8)
    groups = model.parameter_groups(0.01, 0.1)
    assert [g["lr"] for g in groups] == [0.01, 0.1] and len(groups[1]["params"]) == 3
    assert len(DelaySNN(10, 3, 8, delays=False).parameter_groups(0.01, 0.1)) == 1
    shd, ssc = preset_config("shd"), preset_config("ssc", epochs=3)
    assert (shd.hidden, shd.epochs, shd.batch_size, shd.dropout, shd.lr_weights, shd.lr_delays) == \
           (128, 100, 128, 0.5, 0.01, 0.1)
    assert (ssc.hidden, ssc.epochs, ssc.batch_size, ssc.dropout, ssc.lr_weights, ssc.lr_delays) == \
           (512, 3, 32, 0.25, 0.001, 0.01)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_resume_is_bit_for_bit(tiny_folder, tmp_path):
    splits = build_datasets("shd", tiny_folder, pad_steps=5, seed=0)
    config = TrainConfig(**{**TINY, "epochs": 3, "dropout": 0.3})
    straight = train(config, tmp_path / "straight", splits=splits, progress=False, make_plots=False, log=lambda *_: None)
    interrupted = TrainConfig(**{**TINY, "epochs": 2, "dropout": 0.3})
    train(interrupted, tmp_path / "resumed", splits=splits, progress=False, make_plots=False, log=lambda *_: None)
    resumed = train(config, tmp_path / "resumed", splits=splits, resume=True, progress=False, make_plots=False,
                    log=lambda *_: None)
    a, b = _state(straight.model), _state(resumed.model)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    rows_a = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    rows_b = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    strip = lambda rows: [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in rows]
    assert strip(rows_a) == strip(rows_b) and len(rows_a) == 3
    for name in ("checkpoint.pt", "best.pt", "metrics.csv", "result.json", "curves.png"):
        assert (tmp_path / "straight" / name).exists() or name == "curves.png"
    result = json.loads((tmp_path / "straight" / "result.json").read_text())
    assert result["best_epoch"] == 1 + max(range(3), key=lambda i: (rows_a[i]["valid_acc"], -i))


def test_resume_refuses_other_settings_and_bad_checkpoints(tiny_folder, tmp_path):
    splits = build_datasets("shd", tiny_folder, pad_steps=5, seed=0)
    train(TrainConfig(**{**TINY, "epochs": 1}), tmp_path, splits=splits, progress=False, make_plots=False,
          log=lambda *_: None)
    with pytest.raises(ToolchainError, match="other settings \\(hidden\\)"):
        train(TrainConfig(**{**TINY, "hidden": 12}), tmp_path, splits=splits, resume=True, log=lambda *_: None)
    (tmp_path / "checkpoint.pt").write_bytes(b"truncated")
    with pytest.raises(ToolchainError, match="not a readable checkpoint"):
        train(TrainConfig(**TINY), tmp_path, splits=splits, resume=True, log=lambda *_: None)
    with pytest.raises(ToolchainError, match="no checkpoint to resume from"):
        train(TrainConfig(**TINY), tmp_path / "empty", splits=splits, resume=True, log=lambda *_: None)


def test_plots_are_written(tiny_folder, tmp_path):
    splits = build_datasets("shd", tiny_folder, pad_steps=5, seed=0)
    train(TrainConfig(**{**TINY, "epochs": 1}), tmp_path, splits=splits, progress=False, log=lambda *_: None)
    for name in ("curves.png", "delays.png", "neuron_parameters.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name


DDP_SCRIPT = r"""
import json, sys, torch
from snn_toolchain.train.loop.config import TrainConfig
from snn_toolchain.train.data.loading import build_datasets
from snn_toolchain.train.loop.trainer import train
folder, out = sys.argv[1], sys.argv[2]
extra = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
splits = build_datasets("shd", folder, pad_steps=5, seed=0)
config = TrainConfig(**{**dict(hidden=64, batch_size=8, max_delay=5, epochs=1, dropout=0.0, device="cpu",
                               shuffle=False, train_init_state="zero", max_train_batches=3,
                               norm="none"), **extra})  # CPU BatchNorm is per rank
result = train(config, out, splits=splits, progress=False, make_plots=False, log=lambda *_: None)
import torch.distributed as dist
if not dist.is_initialized() or dist.get_rank() == 0:
    torch.save(torch.load(out + "/checkpoint.pt")["model"], out + "/final_weights.pt")
"""


def run_single_and_ddp(tiny_folder, tmp_path, extra: dict | None = None):
    """The same 3-step training in one process and under torchrun with 2 gloo ranks; returns the
    final weights of both."""
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    overrides = [json.dumps(extra or {})]
    single = subprocess.run([sys.executable, str(script), str(tiny_folder), str(tmp_path / "single"), *overrides],
                            env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(script), str(tiny_folder), str(tmp_path / "ddp"), *overrides],
                         env=env, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    return torch.load(tmp_path / "single" / "final_weights.pt"), torch.load(tmp_path / "ddp" / "final_weights.pt")


def test_ddp_matches_single_process_on_the_same_global_batch(tiny_folder, tmp_path):
    a, b = run_single_and_ddp(tiny_folder, tmp_path)
    for key in a:
        # Adam divides by sqrt(v): float-rounding differences of the all-reduce show up at ~1e-6
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=2e-5)
    torch.manual_seed(0)  # the seed-0 initialisation that train() builds
    initial = DelaySNN(140, 20, 64, max_delay=5, dropout=0.0, train_init_state="zero").state_dict()
    moved = {k for k in a if not torch.allclose(initial[k], a[k])}
    # Three optimizer steps moved the weights, delays and neuron parameters of both hidden layers.
    # (From a zero initial state the second hidden layer barely fires yet, so its b and the readout
    # weights may still sit at their initial values.)
    assert {f"blocks.{i}.{name}" for i in (0, 1) for name in
            ("synapse.weight", "synapse.delay", "neuron.alpha", "neuron.a")} <= moved


def test_cli_train_and_resume(tiny_folder, tmp_path, capsys):
    args = ["train", "--dataset", "shd", "--data-dir", str(tiny_folder), "--hidden", "8", "--batch-size", "8",
            "--max-delay", "3", "--dropout", "0", "--device", "cpu", "--run-dir", str(tmp_path / "run")]
    assert cli_main(args + ["--epochs", "1"]) == 0
    assert cli_main(args + ["--epochs", "2", "--resume"]) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "test accuracy" in out
    rows = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2]
    assert cli_main(["train", "--dataset", "shd", "--data-dir", str(tiny_folder), "--resume"]) == 2
    assert "--resume needs --run-dir" in capsys.readouterr().err


@pytest.mark.long
def test_short_training_on_the_embedded_set_beats_the_count_baseline(tmp_path):
    """A few epochs of the SHD preset for the embedded spoken digits must clearly beat a
    logistic regression on per-channel spike counts, which cannot use timing. ``long`` (it trains 12 epochs
    of the embedded set): scripts/test.sh --long runs it."""
    from snn_toolchain.train.data.baseline import logistic_regression_baseline

    splits = build_datasets("shd", None, pad_steps=25, seed=0)
    baseline = logistic_regression_baseline(splits.train, splits.valid, splits.test, splits.n_classes)
    config = preset_config("shd", embedded=True, epochs=12, device="cpu")
    result = train(config, tmp_path, splits=splits, progress=False, make_plots=False, log=lambda *_: None)
    assert 0.3 < baseline.test_accuracy < 0.8  # the set is learnable, but not trivially
    assert result.test_acc > baseline.test_accuracy + 0.08, (result.test_acc, baseline.test_accuracy)


def test_sweep_aggregates_mean_and_max_and_skips_finished_runs(tiny_folder, tmp_path):
    from snn_toolchain.train.sweeps.sweep import DataSource, run_sweep

    base = TrainConfig(**{**TINY, "epochs": 1})
    loader = DataSource("shd", tiny_folder)
    logs = []
    table = run_sweep(base, tmp_path, seeds=2, variants=["LIF", "delay-AdLIF+"], data=loader,
                      log=logs.append)
    for variant, (neuron, delays) in (("LIF", ("lif", False)), ("delay-AdLIF+", ("adlif+", True))):
        runs = [json.loads((tmp_path / variant / f"seed{s}" / "result.json").read_text()) for s in (0, 1)]
        assert [r["config"]["neuron"] for r in runs] == [neuron, neuron]
        assert [r["config"]["delays"] for r in runs] == [delays, delays]
        assert [r["config"]["seed"] for r in runs] == [0, 1]
        valid = [100 * r["best_valid_acc"] for r in runs]
        assert table[variant]["valid_mean"] == pytest.approx(sum(valid) / 2)
        assert table[variant]["valid_max"] == pytest.approx(max(valid))
        assert table[variant]["seeds"] == 2
    assert "| delay-AdLIF+ | " in (tmp_path / "sweep.md").read_text()
    logs.clear()
    run_sweep(base, tmp_path, seeds=2, variants=["LIF"], data=loader, log=logs.append)
    assert sum("done earlier" in line for line in logs) == 2
    with pytest.raises(ToolchainError, match="unknown variant"):
        run_sweep(base, tmp_path, seeds=1, variants=["GRU"], data=loader)


def test_resume_is_bit_for_bit_with_loader_workers(tiny_folder, tmp_path):
    splits = build_datasets("shd", tiny_folder, pad_steps=5, seed=0)
    quiet = dict(splits=splits, progress=False, make_plots=False, log=lambda *_: None)
    config = TrainConfig(**{**TINY, "epochs": 3, "dropout": 0.3, "num_workers": 2})
    straight = train(config, tmp_path / "straight", **quiet)
    train(TrainConfig(**{**TINY, "epochs": 1, "dropout": 0.3, "num_workers": 2}), tmp_path / "resumed", **quiet)
    resumed = train(config, tmp_path / "resumed", resume=True, **quiet)
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_checkpoints_load_under_weights_only_defaults(tiny_folder, tmp_path):
    """torch >= 2.6 loads with weights_only=True by default; our loader must not depend on the default."""
    from snn_toolchain.train.model.checkpoint import load_checkpoint

    splits = build_datasets("shd", tiny_folder, pad_steps=5, seed=0)
    train(TrainConfig(**{**TINY, "epochs": 1}), tmp_path, splits=splits, progress=False, make_plots=False,
          log=lambda *_: None)
    with pytest.raises(Exception):
        torch.load(tmp_path / "checkpoint.pt", weights_only=True)   # what a newer torch does by default
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 0


def test_bad_options_and_an_occupied_run_folder_are_one_line_errors(tiny_folder, tmp_path, capsys):
    base = ["train", "--dataset", "shd", "--data-dir", str(tiny_folder), "--run-dir", str(tmp_path / "run")]
    for extra, message in [(["--neuron", "gru"], "--neuron gru"), (["--batch-size", "0"], "--batch-size 0"),
                           (["--dropout", "2"], "--dropout 2"), (["--bounds", "alpha=1:0"], "--bounds"),
                           (["--max-delay", "70"], "--max-delay 70"), (["--device", "tpu"], "--device tpu")]:
        assert cli_main(base + extra) == 2, extra
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and err.count("\n") == 1, err
    assert cli_main(base + ["--epochs", "1", "--hidden", "8", "--max-delay", "3"]) == 0
    capsys.readouterr()
    assert cli_main(base + ["--epochs", "1", "--hidden", "8", "--max-delay", "3"]) == 2
    assert "holds a training run already" in capsys.readouterr().err


def test_quantization_aware_training_trains_the_deployed_network(tiny_folder, tmp_path):
    """--qat fine-tunes the deployed network itself: the forward runs the deployed integers, with
    BatchNorm folded in at its frozen running statistics (so the model in training computes exactly
    what the exported .net computes), and the straight-through gradients still reach the float
    weights and BatchNorm's scale and shift."""
    from snn_toolchain.export.emulator import Emulator
    from snn_toolchain.evaluation import compare_runs
    from snn_toolchain.train.model.float_backend import FloatModelBackend
    from snn_toolchain.train.model.quantize import quantize_model

    splits = build_datasets("shd", tiny_folder, pad_steps=5, seed=0)
    quiet = dict(splits=splits, progress=False, make_plots=False, log=lambda *_: None)
    train(TrainConfig(**{**TINY, "epochs": 1, "norm": "batchnorm"}), tmp_path / "float", **quiet)
    tuned = train(TrainConfig(**{**TINY, "epochs": 1, "qat": True, "norm": "batchnorm",
                                 "init_checkpoint": str(tmp_path / "float" / "best.pt")}), tmp_path / "qat", **quiet)
    model = tuned.model
    assert model.arithmetic == "deployed" and model.config["norm"] == "batchnorm"
    start = torch.load(tmp_path / "float" / "best.pt", weights_only=False)["model"]
    for name, value in model.state_dict().items():      # the statistics stay frozen; the weights move
        if "running" in name:
            torch.testing.assert_close(value, start[name])
    assert not torch.equal(model.blocks[0].synapse.weight.detach(), start["blocks.0.synapse.weight"])
    # what the model computes in training is the exported network's every spike
    x = torch.stack([splits.test[i][0] for i in range(len(splits.test))])
    qnet = quantize_model(model, splits.time_steps)
    assert compare_runs(Emulator(qnet).run(x), FloatModelBackend(model, arithmetic="deployed")(x)).ok
    # the selected model's recorded test accuracy is the deployed network's
    labels = np.array([int(splits.test[i][1]) for i in range(len(splits.test))])
    assert Emulator(qnet).run(x).accuracy(labels) == pytest.approx(tuned.summary["saved_model"]["test_acc"])
    # and the straight-through gradient reaches the float weights, biases, delays and neurons
    model.train()
    x0, y0 = splits.train[0]
    torch.nn.functional.cross_entropy(model(x0[None]), torch.tensor([y0])).backward()
    for name in ("synapse.weight", "synapse.bias", "synapse.delay", "neuron.alpha", "norm.weight", "norm.bias"):
        grad = model.blocks[0].get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    with pytest.raises(ToolchainError, match="does not match these settings"):
        train(TrainConfig(**{**TINY, "hidden": 9, "init_checkpoint": str(tmp_path / "float" / "best.pt")}),
              tmp_path / "bad", **quiet)


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
