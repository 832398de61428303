"""The training loop (train/loop/trainer.py): bit-for-bit resume (with loader workers, with every
augmentation), data-parallel equivalence, both evaluation protocols in the result, the paper's
protocol on the whole train file, quantization-aware training of the deployed network, and
(``long``) a short training that beats the count baseline.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from snn_toolchain.cli import main as cli_main
from snn_toolchain.errors import ToolchainError
from snn_toolchain.train.data.loading import build_datasets
from snn_toolchain.train.loop.config import TrainConfig, preset_config
from snn_toolchain.train.loop.trainer import PAPER_PROTOCOL_LABEL, selections, train
from snn_toolchain.train.model.delay_snn import DelaySNN
from training_support import TINY, run_single_and_ddp


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


def test_resume_is_bit_for_bit_with_loader_workers(tiny_folder, tmp_path):
    splits = build_datasets("shd", tiny_folder, pad_steps=5, seed=0)
    quiet = dict(splits=splits, progress=False, make_plots=False, log=lambda *_: None)
    config = TrainConfig(**{**TINY, "epochs": 3, "dropout": 0.3, "num_workers": 2})
    straight = train(config, tmp_path / "straight", **quiet)
    train(TrainConfig(**{**TINY, "epochs": 1, "dropout": 0.3, "num_workers": 2}), tmp_path / "resumed", **quiet)
    resumed = train(config, tmp_path / "resumed", resume=True, **quiet)
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


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


# --------------------------------------------------------------------------------------- protocols

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
    epoch_lines = [line for line in out.splitlines() if line.startswith("[train] epoch ")]
    assert len(epoch_lines) == 2 and all("test (standing in for valid)" in line and ", valid " not in line
                                         for line in epoch_lines)
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["validation_is_test"] is True and result["data"].startswith("shd: 48 train / ")
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert all(row["valid_acc"] == row["test_acc"] for row in rows)


# --------------------------------------------------------------------- quantization-aware training

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


# -------------------------------------------------------------------------------------------- long

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
