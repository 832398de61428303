"""Activity regularisation (issue #12; train/regularization.py) and the frontier (export/frontier.py)."""

from __future__ import annotations

import json

import pytest
import torch

from official_layout import write_shd_folder
from snn_toolchain.errors import ToolchainError
from snn_toolchain.export.frontier import run_frontier
from snn_toolchain.train.blocks import DelaySNN
from snn_toolchain.train.config import TrainConfig
from snn_toolchain.train.data import build_datasets
from snn_toolchain.train.regularization import ActivityRegularizer, parse_rate_bounds
from snn_toolchain.train.sweep import DataSource
from snn_toolchain.train.trainer import train
from test_training import run_single_and_ddp

TINY = dict(hidden=16, batch_size=8, max_delay=5, epochs=2, dropout=0.0, device="cpu")


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return write_shd_folder(tmp_path_factory.mktemp("shd"), n_train=48, n_test=16, n_speakers=6, spikes=(2000, 4000))


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
    model = active_model()
    x = (torch.rand(5, 30, 20, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    _, spikes = model(x, return_spikes=True)
    regularizer = ActivityRegularizer(synops_penalty=2.0)
    penalty, synops = regularizer(model, spikes)
    expected = 0.0
    for layer_spikes, target in zip(spikes, [model.blocks[1], model.readout]):
        fan_out = (target.synapse.weight != 0).sum(0).numpy()
        expected += float((layer_spikes.detach().sum((0, 1)).numpy() * fan_out).sum()) / 5
    assert expected > 100 and synops.item() == pytest.approx(expected, rel=1e-6)
    assert penalty.item() == pytest.approx(2.0 * expected / 1e6, rel=1e-6)
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


def test_resume_with_the_penalty_is_bit_for_bit(tiny_folder, tmp_path):
    splits = build_datasets("shd", tiny_folder, pad_steps=5, seed=0)
    settings = {**TINY, "dropout": 0.3, "synops_penalty": 50.0, "rate_bounds": "0.01:0.3", "rate_penalty": 1.0}
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
    assert [r["train_synops_per_sample"] for r in a] == [r["train_synops_per_sample"] for r in b]


def test_the_penalty_under_ddp_matches_one_process(tiny_folder, tmp_path):
    """The synaptic-operations penalty is a per-sample mean, so averaging the ranks' gradients gives
    the single process's (equal shares of the batch)."""
    a, b = run_single_and_ddp(tiny_folder, tmp_path, {"synops_penalty": 200.0})
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=2e-5)


def test_the_frontier_writes_its_points_table_and_figure(tiny_folder, tmp_path):
    base = TrainConfig(**{**TINY, "epochs": 1, "max_train_batches": 2})
    summary = run_frontier(base, tmp_path / "frontier", [0, 100, 1000], seeds=2,
                           data=DataSource("shd", tiny_folder), log=lambda *_: None)
    assert [row["strength"] for row in summary["rows"]] == [0, 100, 1000]
    assert summary["reference"]["strength"] == 0 and summary["reduction"] >= 1.0
    payload = json.loads((tmp_path / "frontier" / "frontier.json").read_text())
    assert len(payload["points"]) == 6
    for point in payload["points"]:
        assert point["synops_per_sample"] > 0 and 0 <= point["fixed_test_acc"] <= 1
        assert point["loihi2_dynamic_uj"][0] < point["loihi2_dynamic_uj"][1]
    markdown = (tmp_path / "frontier" / "frontier.md").read_text()
    assert "Chosen on validation" in markdown and "| 1000 | 2 |" in markdown
    png = (tmp_path / "frontier" / "frontier.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    with pytest.raises(ToolchainError, match="at least two strengths"):
        run_frontier(base, tmp_path / "x", [1], seeds=1, data=DataSource("shd", tiny_folder))
