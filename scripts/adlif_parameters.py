#!/usr/bin/env python3
"""Why AdLIF falls below LIF on small sets (issue #21, item 5): the trained coupling ``a`` of the
selected model, per hidden layer, against the run's firing and validation accuracy.

AdLIF (SparCH's adLIF) lets ``a`` take either sign, in [-1, 1]; AdLIF+ keeps it in [0, 1]
(SPEC.md). With ``a < 0`` the adaptation current follows the membrane with the opposite sign and
drives it further instead of pulling it back: a resonating neuron that fires more.

    .venv/bin/python scripts/adlif_parameters.py CAMPAIGN_DIR [--pattern '*_adlif_*'] [--out FILE.json]

Prints one line per run folder (``best.pt`` and ``result.json`` in it): the share of neurons with
``a < 0`` and the mean ``a`` in each hidden layer, the spikes per hidden neuron per sample of the
selected model, its validation and test accuracy (%); then, over all runs, the correlation between
the first layer's share of ``a < 0`` and its spikes per neuron.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def coupling_by_layer(checkpoint: Path) -> list[np.ndarray]:
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["model"]
    names = sorted((key for key in state if key.endswith("neuron.a")), key=lambda key: int(key.split(".")[1]))
    return [state[name].float().numpy() for name in names]


def analyse(run: Path) -> dict:
    result = json.loads((run / "result.json").read_text())
    couplings = coupling_by_layer(run / "best.pt")
    return {
        "run": run.name,
        "share_negative_a": [float((a < 0).mean()) for a in couplings],
        "mean_a": [float(a.mean()) for a in couplings],
        "spikes_per_neuron": result["selected_model_analysis"]["spikes_per_neuron_per_sample"],
        "valid": 100 * result["best_valid_acc"],
        "test": 100 * result["test_acc"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("campaign", type=Path)
    parser.add_argument("--pattern", default="*_adlif*_s*", help="run folders to read (glob)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = [analyse(run) for run in sorted(args.campaign.glob(args.pattern))
            if (run / "result.json").is_file() and (run / "best.pt").is_file()]
    for row in rows:
        layers = "  ".join(f"L{i + 1}: {100 * share:4.0f}% a<0, mean a {mean:+.3f}"
                           for i, (share, mean) in enumerate(zip(row["share_negative_a"], row["mean_a"])))
        spikes = " / ".join(f"{s:.1f}" for s in row["spikes_per_neuron"])
        print(f"{row['run']:28s} {layers}  spikes {spikes}  valid {row['valid']:.1f} test {row['test']:.1f}")
    if len(rows) > 2:
        share = [row["share_negative_a"][0] for row in rows]
        spikes = [row["spikes_per_neuron"][0] for row in rows]
        print(f"over {len(rows)} runs: correlation of layer 1's share of a<0 with its spikes per neuron "
              f"{np.corrcoef(share, spikes)[0, 1]:+.2f}")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
