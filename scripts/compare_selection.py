#!/usr/bin/env python3
"""Compare model-selection rules on validation alone (docs/results.md, "The two presets").

Each training run records, per epoch, the accuracy and loss of the validation split's even- and
odd-numbered samples (metrics.csv: valid_acc_even, valid_loss_even, valid_acc_odd, valid_loss_odd).
A rule (train/loop/config.py: SELECTION_RULES) picks an epoch from one half; the other half scores the
pick; both directions are averaged. No test figure enters the comparison.

    .venv/bin/python scripts/compare_selection.py GROUP=RUN_DIR[,RUN_DIR...] [GROUP=...] [--out FILE.json]

Prints, per group (e.g. a development set) and over all, the mean held-out-half accuracy (%) of the
epochs each rule picks, with the sample standard deviation over runs.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

from snn_toolchain.train.loop.config import SELECTION_RULES, selection_scores


def held_out_accuracy(rows: list[dict], rule: str) -> float:
    """The accuracy (%) on the other half of the epoch ``rule`` picks on one half, both ways averaged."""
    scores = []
    for pick, score in (("even", "odd"), ("odd", "even")):
        accuracies = [float(r[f"valid_acc_{pick}"]) for r in rows]
        losses = [float(r[f"valid_loss_{pick}"]) for r in rows]
        ranked = selection_scores(accuracies, losses, rule)
        epoch = max(range(len(rows)), key=lambda i: (ranked[i], -i))
        scores.append(100 * float(rows[epoch][f"valid_acc_{score}"]))
    return statistics.fmean(scores)


def read_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("valid_acc_even") not in (None, "")]
    if not rows:
        raise SystemExit(f"{run_dir}/metrics.csv: no per-half validation columns (a run from before they existed)")
    return rows


def _sd(values: list[float]) -> float:
    """Sample standard deviation; NaN for one value (unknown, not 0)."""
    return statistics.stdev(values) if len(values) > 1 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("groups", nargs="+", help="NAME=RUN_DIR[,RUN_DIR...]")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    table, everything = {}, {rule: [] for rule in SELECTION_RULES}
    paired = {}   # each rule against the first (best accuracy), run by run
    for group in [*args.groups, None]:
        if group is None:
            name, values_of = "all", everything
        else:
            name, _, dirs = group.partition("=")
            runs = [Path(d) for d in dirs.split(",") if d]
            values_of = {rule: [held_out_accuracy(read_rows(run), rule) for run in runs] for rule in SELECTION_RULES}
            for rule in SELECTION_RULES:
                everything[rule] += values_of[rule]
        table[name] = {rule: {"mean": statistics.fmean(v), "sd": _sd(v), "runs": len(v)}
                       for rule, v in values_of.items()}
        base = values_of[SELECTION_RULES[0]]
        paired[name] = {}
        for rule in SELECTION_RULES[1:]:
            diffs = [a - b for a, b in zip(values_of[rule], base)]
            paired[name][rule] = {"mean_difference": statistics.fmean(diffs),
                                  "standard_error": _sd(diffs) / len(diffs) ** 0.5,
                                  "wins": sum(d > 0 for d in diffs), "losses": sum(d < 0 for d in diffs)}
    print("| group | " + " | ".join(SELECTION_RULES) + " |")
    print("|---|" + "---|" * len(SELECTION_RULES))
    for name, rules in table.items():
        print(f"| {name} ({rules[SELECTION_RULES[0]]['runs']} runs) | "
              + " | ".join(f"{r['mean']:.2f} ± {r['sd']:.2f}" for r in rules.values()) + " |")
    print(f"\npaired against {SELECTION_RULES[0]} (mean difference ± standard error, wins / losses):")
    for name, rules in paired.items():
        print(f"- {name}: " + "; ".join(f"{rule} {p['mean_difference']:+.2f} ± {p['standard_error']:.2f} "
                                        f"({p['wins']} / {p['losses']})" for rule, p in rules.items()))
    table["paired"] = paired
    if args.out:
        args.out.write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
