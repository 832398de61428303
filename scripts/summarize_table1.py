#!/usr/bin/env python3
"""Summarize a Table 1 campaign (issue #21, docs/results.md "Table 1 on every development set").

The run folders sit in one campaign folder, named ``{set}_{variant}_{preset}_s{seed}``: ``set`` is
a development set's short name (``emb``, ``deva``, ``devb``), ``variant`` one of ``lif``, ``adlif``,
``adlifp`` (AdLIF+), ``dlif`` (delay-LIF), ``dadlifp`` (delay-AdLIF+), ``preset`` one of
``PRESET_LABELS``: ``paper`` and ``both`` (the tuned preset) under the validation protocol,
``pprot`` and ``tprot`` the same two under the paper protocol (``--protocol paper --valid-fraction
0``): those have no validation split, so only their test-selected column is filled and the ordering
is checked on it).

    .venv/bin/python scripts/summarize_table1.py CAMPAIGN_DIR [--preset paper] [--out FILE.json]
    .venv/bin/python scripts/summarize_table1.py CAMPAIGN_DIR --preset paper --preset both --preset pprot --preset tprot

With several ``--preset``, each one's tables are printed, then one side-by-side table: a row per set
and preset with the five means and the ordering's verdict (``--out`` then holds every preset's table).

Prints per set the five variants' test accuracy of the validation-selected model (%, mean ± sample
standard deviation over the seeds found, n), their validation accuracy, the test-selected figure
(labelled: it selects on the test split, as the paper's protocol does) and the spikes per hidden
neuron per sample (layer 1 / layer 2) of the selected model; then whether the paper's ordering holds
in the means: LIF < AdLIF < AdLIF+ < delay-AdLIF+ and delay-LIF > LIF, each comparison named.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

VARIANTS = ("lif", "adlif", "adlifp", "dlif", "dadlifp")
LABELS = {"lif": "LIF", "adlif": "AdLIF", "adlifp": "AdLIF+", "dlif": "delay-LIF", "dadlifp": "delay-AdLIF+"}
ORDER = (("lif", "adlif"), ("adlif", "adlifp"), ("adlifp", "dadlifp"), ("lif", "dlif"))
PRESET_LABELS = {"paper": "paper, validation protocol", "both": "tuned, validation protocol",
                 "pprot": "paper, paper protocol (test-selected)", "tprot": "tuned, paper protocol (test-selected)"}
SET_LABELS = {"emb": "embedded", "deva": "dev-a", "devb": "dev-b"}


def _mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation; one value's deviation is unknown (NaN), not 0."""
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else math.nan)


def collect(campaign: Path, preset: str) -> dict[str, dict[str, dict[int, dict]]]:
    runs: dict[str, dict[str, dict[int, dict]]] = {}
    for result in sorted(campaign.glob(f"*_{preset}_s*/result.json")):
        stem, seed = result.parent.name.rsplit("_s", 1)
        parts = stem.split("_")
        if len(parts) != 3 or parts[1] not in VARIANTS or not seed.isdigit():
            continue
        runs.setdefault(parts[0], {}).setdefault(parts[1], {})[int(seed)] = json.loads(result.read_text())
    return runs


def summarize(runs: dict[str, dict[str, dict[int, dict]]]) -> dict:
    table = {}
    for dataset, by_variant in runs.items():
        rows = {}
        for variant in VARIANTS:
            by_seed = by_variant.get(variant, {})
            spikes = [r["selected_model_analysis"]["spikes_per_neuron_per_sample"] for r in by_seed.values()]
            rows[variant] = {
                "seeds": sorted(by_seed),
                # a run without a validation split (--valid-fraction 0) has no validation-selected figure
                "test": _mean_sd([100 * r["test_acc"] for r in by_seed.values() if not r.get("validation_is_test")]),
                "valid": _mean_sd([100 * r["best_valid_acc"] for r in by_seed.values()
                                   if not r.get("validation_is_test")]),
                "test_selected": _mean_sd([100 * r["test_selected"]["test_acc"] for r in by_seed.values()
                                           if r.get("test_selected")]),
                "spikes_per_neuron": [statistics.fmean(layer) for layer in zip(*spikes)],
            }
        # the paper protocol's runs (--protocol paper --valid-fraction 0) have only the test-selected figure
        compared = "test" if any(not math.isnan(row["test"][0]) for row in rows.values()) else "test_selected"
        ordering = []
        for low, high in ORDER:
            a, b = rows[low][compared][0], rows[high][compared][0]
            holds = None if math.isnan(a) or math.isnan(b) else b > a
            ordering.append({"lower": low, "higher": high, "difference": b - a, "holds": holds})
        table[dataset] = {"rows": rows, "ordering": ordering, "compared": compared}
    return table


def _cell(mean_sd: tuple[float, float], n: int) -> str:
    mean, sd = mean_sd
    if math.isnan(mean):
        return "-"
    return f"{mean:.1f} ± {sd:.1f} ({n})" if not math.isnan(sd) else f"{mean:.1f} ({n})"


def render(table: dict) -> str:
    lines = []
    for dataset, entry in table.items():
        lines.append(f"## {dataset}")
        lines.append("| variant | test (valid-selected) | validation | test-selected (selects on test) | spikes/neuron/sample |")
        lines.append("|---|---|---|---|---|")
        for variant, row in entry["rows"].items():
            n = len(row["seeds"])
            spikes = " / ".join(f"{s:.2f}" for s in row["spikes_per_neuron"]) or "-"
            lines.append(f"| {LABELS[variant]} | {_cell(row['test'], n)} | {_cell(row['valid'], n)} | "
                         f"{_cell(row['test_selected'], n)} | {spikes} |")
        checks = []
        for check in entry["ordering"]:
            verdict = {True: "holds", False: "FAILS", None: "not measured"}[check["holds"]]
            checks.append(f"{LABELS[check['lower']]} < {LABELS[check['higher']]}: {verdict}"
                          + ("" if check["holds"] is None else f" ({check['difference']:+.1f})"))
        lines.append(f"ordering ({entry['compared'].replace('_', '-')} means): " + "; ".join(checks))
        lines.append("")
    return "\n".join(lines)


def render_side_by_side(tables: dict[str, dict]) -> str:
    """One row per set and preset: the five means (test, or test-selected where the protocol has
    no validation split), seeds in brackets, and the comparisons of the ordering that fail."""
    lines = ["| set | preset, protocol | " + " | ".join(LABELS[v] for v in VARIANTS) + " | ordering |",
             "|---|---|" + "---|" * len(VARIANTS) + "---|"]
    datasets = [d for d in SET_LABELS if any(d in t for t in tables.values())]
    datasets += sorted({d for t in tables.values() for d in t} - set(datasets))
    for dataset in datasets:
        for preset, table in tables.items():
            entry = table.get(dataset)
            if entry is None:       # said, not left out: the table shows what is still to run
                lines.append(f"| {SET_LABELS.get(dataset, dataset)} | {PRESET_LABELS.get(preset, preset)} | "
                             + " | ".join("-" for _ in VARIANTS) + " | not measured |")
                continue
            cells = [_cell(entry["rows"][v][entry["compared"]], len(entry["rows"][v]["seeds"])) for v in VARIANTS]
            failing = [f"{LABELS[c['lower']]} < {LABELS[c['higher']]} FAILS ({c['difference']:+.1f})"
                       for c in entry["ordering"] if c["holds"] is False]
            unmeasured = any(c["holds"] is None for c in entry["ordering"])
            verdict = "; ".join(failing) or ("not all measured" if unmeasured else "all four hold")
            lines.append(f"| {SET_LABELS.get(dataset, dataset)} | {PRESET_LABELS.get(preset, preset)} | "
                         + " | ".join(cells) + f" | {verdict} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("campaign", type=Path)
    parser.add_argument("--preset", action="append",
                        help="the preset part of the run folders' names (default paper); repeat it for "
                             "the side-by-side table")
    parser.add_argument("--out", type=Path, help="also write the table as JSON here")
    args = parser.parse_args()
    presets = args.preset or ["paper"]
    tables = {preset: summarize(collect(args.campaign, preset)) for preset in presets}
    for preset, table in tables.items():
        if len(tables) > 1:
            print(f"# {PRESET_LABELS.get(preset, preset)} (runs *_{preset}_s*)\n")
        print(render(table))
    if len(tables) > 1:
        print("# side by side\n")
        print(render_side_by_side(tables))
    if args.out:
        written = tables[presets[0]] if len(tables) == 1 else tables
        args.out.write_text(json.dumps(written, indent=1) + "\n")


if __name__ == "__main__":
    main()
