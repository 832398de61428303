"""The accuracy-energy frontier (export/frontier.py): its points, table and figure, strengths crossed
with pruning levels, and its refusals (seeds below one, a bad pruning level) before anything is
trained or written. The penalty and the pruning it trains with: tests/test_regularization.py.
"""

from __future__ import annotations

import json

import pytest

from snn_toolchain.errors import ToolchainError
from snn_toolchain.export.frontier import run_frontier
from snn_toolchain.train.loop.config import TrainConfig
from snn_toolchain.train.sweeps.sweep import DataSource
from training_support import TINY


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
    assert "Chosen on validation" in markdown and "| 1000 | - | 2 |" in markdown
    png = (tmp_path / "frontier" / "frontier.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    with pytest.raises(ToolchainError, match="at least two strengths"):
        run_frontier(base, tmp_path / "x", [1], seeds=1, data=DataSource("shd", tiny_folder))


def test_the_frontier_crosses_strengths_with_pruning_levels(tiny_folder, tmp_path):
    base = TrainConfig(**{**TINY, "epochs": 2, "max_train_batches": 2})
    summary = run_frontier(base, tmp_path / "frontier", [0, 100], seeds=1, data=DataSource("shd", tiny_folder),
                           log=lambda *_: None, prune_levels=["0.8", "0"])
    assert [(r["strength"], r["prune"]) for r in summary["rows"]] == [(0, ""), (100, ""), (0, "0.8"), (100, "0.8")]
    assert summary["reference"]["prune"] == "" and summary["reference"]["strength"] == 0
    unpruned, pruned = summary["rows"][0], summary["rows"][2]
    input_ops = [r["synops_per_sample"] - r["hidden_synops_per_sample"] for r in (unpruned, pruned)]
    assert input_ops[1] < 0.5 * input_ops[0]                  # the first layer's fan-out is what pruning cuts
    assert (tmp_path / "frontier" / "lambda100-prune0.8" / "seed0" / "checkpoint.pt").is_file()
    markdown = (tmp_path / "frontier" / "frontier.md").read_text()
    assert "| 100 | 0.8 | 1 |" in markdown and "Chosen with the test split in view" in markdown
    with pytest.raises(ToolchainError, match="--prune-levels only"):
        run_frontier(TrainConfig(**{**TINY, "prune": "0.5"}), tmp_path / "x", [0, 1], seeds=1,
                     data=DataSource("shd", tiny_folder), prune_levels=["0", "0.5"])


def test_the_frontier_command_refuses_a_bad_pruning_level_in_one_line(tmp_path, capsys):
    from snn_toolchain.cli import main

    assert main(["frontier", "--dataset", "shd", "--strengths", "0,10", "--prune-levels", "0", "0.7,x",
                 "--run-dir", str(tmp_path / "f")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--prune '0.7,x'" in error[0], error
    assert not (tmp_path / "f").exists()                     # refused before any training


@pytest.mark.parametrize("seeds", [0, -1])
def test_frontier_refuses_seeds_below_one_before_writing(seeds, tiny_folder, tmp_path):
    from snn_toolchain.export.frontier import run_frontier

    with pytest.raises(ToolchainError, match=f"--seeds {seeds}: must be a whole number, at least 1"):
        run_frontier(TrainConfig(**TINY), tmp_path / "frontier", [0, 1], seeds=seeds,
                     data=DataSource("shd", tiny_folder), log=lambda *_: None)
    assert not (tmp_path / "frontier").exists()
