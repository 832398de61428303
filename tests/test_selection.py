"""Which epoch a run keeps (train/loop/selection.py): both protocols' picks from a history, every
selection rule saving the epoch it selects, and the validation halves that compare the rules
without the test split (scripts/compare_selection.py).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from snn_toolchain.train.data.loading import build_datasets
from snn_toolchain.train.loop.config import TrainConfig
from snn_toolchain.train.loop.trainer import PAPER_PROTOCOL_LABEL, selections, train


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


def _fake_result(folder: Path, test_acc: float, *, no_validation: bool) -> None:
    folder.mkdir(parents=True)
    result = {"test_acc": test_acc, "best_valid_acc": test_acc, "validation_is_test": no_validation,
              "test_selected": {"label": PAPER_PROTOCOL_LABEL, "test_acc": test_acc + 0.01},
              "selected_model_analysis": {"spikes_per_neuron_per_sample": [5.0, 2.0]}}
    (folder / "result.json").write_text(json.dumps(result))


def test_table1_summary_puts_presets_and_protocols_side_by_side(tmp_path):
    """scripts/summarize_table1.py: the validation protocol is compared on the validation-selected
    test figure, the paper protocol (no validation split) on the test-selected one; a failing
    comparison is named with its difference, a missing variant is 'not all measured'."""
    means = {"lif": 0.70, "adlif": 0.68, "adlifp": 0.80, "dlif": 0.75, "dadlifp": 0.85}
    for variant, acc in means.items():
        for seed, jitter in enumerate((-0.01, 0.0, 0.01)):
            _fake_result(tmp_path / f"deva_{variant}_paper_s{seed}", acc + jitter, no_validation=False)
            _fake_result(tmp_path / f"deva_{variant}_pprot_s{seed}", acc + 0.05 + jitter, no_validation=True)
    _fake_result(tmp_path / "devb_lif_pprot_s0", 0.7, no_validation=True)
    done = subprocess.run([sys.executable, "scripts/summarize_table1.py", str(tmp_path), "--preset", "paper",
                           "--preset", "pprot", "--out", str(tmp_path / "table.json")],
                          capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    side = done.stdout.split("# side by side", 1)[1]
    rows = [line for line in side.splitlines() if line.startswith("| dev")]
    assert rows[0].startswith("| dev-a | paper, validation protocol | 70.0 ± 1.0 (3) | 68.0 ± 1.0 (3)")
    assert rows[0].endswith("| LIF < AdLIF FAILS (-2.0) |")
    assert rows[1].startswith("| dev-a | paper, paper protocol (test-selected) | 76.0 ± 1.0 (3)")
    assert rows[1].endswith("| LIF < AdLIF FAILS (-2.0) |")
    assert rows[2] == "| dev-b | paper, validation protocol | - | - | - | - | - | not measured |"
    assert rows[3] == "| dev-b | paper, paper protocol (test-selected) | 71.0 (1) | - | - | - | - | not all measured |"
    table = json.loads((tmp_path / "table.json").read_text())
    assert table["pprot"]["deva"]["compared"] == "test_selected" and table["paper"]["deva"]["compared"] == "test"
