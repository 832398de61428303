"""Which epoch a run keeps: best.pt while it trains (``BestEpoch``) and both protocols' picks from
its history afterwards (``selections``). Epochs count from 0 here and from 1 in the metrics rows."""

from __future__ import annotations

import math
from dataclasses import dataclass

from snn_toolchain.train.loop.config import selection_scores

# How the paper-protocol figure is labelled wherever it is shown: it was selected on the test split.
PAPER_PROTOCOL_LABEL = "test-selected (paper protocol)"


def headline_label(run_summary: dict) -> str:
    """What a run's headline ``test_acc`` (result.json) is: the validation-selected model's test
    accuracy, or, where the test split stood in for validation (``--valid-fraction 0``), a
    test-selected figure, labelled as the paper protocol's."""
    return PAPER_PROTOCOL_LABEL if run_summary.get("validation_is_test") else "validation-selected"


def selection_split(protocol: str) -> str:
    """The metrics column best.pt is chosen on: the test split's under ``--protocol paper``."""
    return "test_acc" if protocol == "paper" else "valid_acc"


@dataclass
class BestEpoch:
    """The epoch kept as best.pt so far (-1: none yet). ``score`` is what --select ranks by (an
    accuracy, a negated loss, a running mean); ``accuracy`` is that epoch's accuracy on the selection
    split, what the log and metrics show."""

    score: float = -math.inf
    accuracy: float = -1.0
    epoch: int = -1

    @classmethod
    def from_checkpoint(cls, state: dict) -> "BestEpoch":
        # runs from before --select ranked by accuracy and stored no score
        return cls(state.get("best_score", state["best_valid_acc"]), state["best_valid_acc"], state["best_epoch"])

    def checkpoint_fields(self) -> dict:
        return {"best_valid_acc": self.accuracy, "best_score": self.score, "best_epoch": self.epoch}

    def consider(self, epoch: int, history: list[dict], valid: dict, test: dict, rule: str, split: str) -> bool:
        """Keep ``epoch`` if it scores above the best so far; ``history`` holds the metrics rows of the
        epochs before it, ``valid`` and ``test`` are its evaluations. True when it is kept."""
        scores = selection_scores([row["valid_acc"] for row in history] + [valid["accuracy"]],
                                  [row["valid_loss"] for row in history] + [valid["loss"]], rule)
        score = {"valid_acc": scores[-1], "test_acc": test["accuracy"]}[split]
        if score > self.score:
            self.score, self.epoch = score, epoch
            self.accuracy = {"valid_acc": valid["accuracy"], "test_acc": test["accuracy"]}[split]
            return True
        return False


def selections(history: list[dict], rule: str = "accuracy") -> dict:
    """Both protocols' picks from a run's per-epoch history (first epoch wins a tie): the epoch the
    selection ``rule`` keeps on validation (train/loop/config.py ``selection_scores``) and its test accuracy,
    and the epoch with the best test accuracy."""
    if not history:
        return {"valid_selected": None, "test_selected": None}
    scores = selection_scores([row["valid_acc"] for row in history], [row["valid_loss"] for row in history], rule)
    by_valid = history[max(range(len(history)), key=lambda i: (scores[i], -i))]
    by_test = max(history, key=lambda row: (row["test_acc"], -row["epoch"]))
    return {"valid_selected": {"epoch": by_valid["epoch"], "valid_acc": by_valid["valid_acc"],
                               "test_acc": by_valid["test_acc"], "test_loss": by_valid["test_loss"]},
            "test_selected": {"label": PAPER_PROTOCOL_LABEL, "epoch": by_test["epoch"],
                              "test_acc": by_test["test_acc"], "valid_acc": by_test["valid_acc"]}}
