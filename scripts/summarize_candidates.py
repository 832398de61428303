#!/usr/bin/env python3
"""Summarize the tuned preset's candidate campaign (issue #21, docs/results.md "The two presets").

Each candidate is trained on top of the paper preset, 3 seeds per (set, neuron) pair; the run folders
are named ``{set}_{neuron}_{candidate}_s{seed}`` inside one campaign folder (for example
``emb_dadlifp_both_s0``). The candidates: ``paper`` (Table 3 exactly), ``batch`` (--min-updates 32),
``aug`` (the four augmentations), ``both``.

    .venv/bin/python scripts/summarize_candidates.py CAMPAIGN_DIR [--out FILE.json]

Prints, per set and neuron, each candidate's validation-selected validation and test accuracy (%,
mean over the seeds found), the paired validation difference against ``paper`` (same seed), and the
spikes per hidden neuron per sample of the selected model (layer 1 / layer 2). A candidate enters the
tuned preset only when its paired validation difference is positive on at least two sets of
different sizes; the test column is shown and never used for that choice.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

CANDIDATES = ("paper", "batch", "aug", "both")


def _mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation; the deviation of one value is unknown (NaN), not 0."""
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


def summarize(campaign: Path) -> list[dict]:
    runs: dict[tuple[str, str, str], dict[int, dict]] = {}
    for result in sorted(campaign.glob("*_s*/result.json")):
        name = result.parent.name
        stem, seed = name.rsplit("_s", 1)
        parts = stem.split("_")
        if len(parts) != 3 or parts[2] not in CANDIDATES or not seed.isdigit():
            continue
        runs.setdefault(tuple(parts), {})[int(seed)] = json.loads(result.read_text())
    rows = []
    for (dataset, neuron, candidate), by_seed in sorted(runs.items()):
        base = runs.get((dataset, neuron, "paper"), {})
        paired = [100 * (r["best_valid_acc"] - base[s]["best_valid_acc"]) for s, r in by_seed.items() if s in base]
        spikes = [r["selected_model_analysis"]["spikes_per_neuron_per_sample"] for r in by_seed.values()]
        rows.append({
            "set": dataset, "neuron": neuron, "candidate": candidate, "seeds": sorted(by_seed),
            "valid": _mean_sd([100 * r["best_valid_acc"] for r in by_seed.values()]),
            "test": _mean_sd([100 * r["test_acc"] for r in by_seed.values()]),
            "valid_vs_paper": _mean_sd(paired),
            "spikes_per_neuron": [statistics.fmean(layer) for layer in zip(*spikes)],
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("campaign", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = summarize(args.campaign)
    print("| set | neuron | candidate | seeds | validation | test (not used to choose) | validation vs paper, paired | spikes/neuron |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        spikes = " / ".join(f"{x:.1f}" for x in r["spikes_per_neuron"])
        print(f"| {r['set']} | {r['neuron']} | {r['candidate']} | {len(r['seeds'])} | {r['valid'][0]:.2f} ± {r['valid'][1]:.2f} "
              f"| {r['test'][0]:.2f} ± {r['test'][1]:.2f} | {r['valid_vs_paper'][0]:+.2f} ± {r['valid_vs_paper'][1]:.2f} | {spikes} |")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
