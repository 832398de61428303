#!/usr/bin/env python3
"""What the change from the trained float model to the deployed network is made of, per run and
over seeds (docs/results.md, "From float to deployed"; docs/fixed_point.md).

For each training run folder (its best.pt, the data it was trained on), on the validation and the
test split:

- ``float``: the model as trained (its own latency; from the zero state, as deployed);
- ``float_uniform_start``: the same from the uniform initial state it trains from (the start-state cost);
- ``lava_timing``: the float model with Lava's latency (equal to ``float`` for a model trained with
  ``--latency 1``; for a ``--latency 0`` model the difference is the **bias pre-roll**);
- ``rounded_inputs``: that, on the deployed integer payloads (the **input rounding** of graded inputs);
- ``deployed``: the exported network (the emulator, equal to Lava): the rest is **weight rounding**
  (weights, biases, delays, 12-bit decays, integer arithmetic), with a scale (threshold) per AdLIF
  neuron as export writes it;
- alternatives, measured the same way: ``per_layer_scale`` (one scale per layer, as format
  versions 1 and 2 held them) and ``clip99.9`` / ``clip99.99`` (one scale per layer set by that
  percentile of |W|, larger weights clipped).

    .venv/bin/python scripts/deployment_gap.py RUN_DIR [RUN_DIR ...] [--data-dir DIR] [--out FILE.json]

Prints one JSON line per run and a markdown table of means and sample standard deviations (points).
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from snn_toolchain import constants as C
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.input_encoding import GradedInputEncoding
from snn_toolchain.evaluation import evaluate_backend
from snn_toolchain.train.data.loading import build_datasets, make_loader
from snn_toolchain.train.model.float_backend import FloatModelBackend
from snn_toolchain.train.model.quantize import quantize_model
from snn_toolchain.train.model.checkpoint import load_model, model_from_config

COLUMNS = ("float", "float_uniform_start", "lava_timing", "rounded_inputs", "deployed", "per_layer_scale",
           "clip99.9", "clip99.99")


def accuracy(backend, split) -> float:
    return evaluate_backend(backend, make_loader(split, 256), keep_run=False).accuracy


def clone(model, **changes):
    """The same weights in a model built with ``changes`` to its configuration."""
    copy = model_from_config({**model.config, **changes})
    copy.load_state_dict(model.state_dict())
    return copy.set_eval_init_state("zero").eval()


def clipped_scales(model, time_steps: int, percentile: float):
    """One scale per layer, set by the ``percentile`` of |W| instead of its maximum (larger weights clipped)."""
    folded = clone(model).folded().eval()
    with torch.no_grad():
        for block in list(folded.blocks) + [folded.readout]:
            weight = block.synapse.weight
            limit = torch.quantile(weight.abs().flatten().double(), percentile / 100).to(weight.dtype)
            weight.clamp_(-limit, limit)
    return quantize_model(folded, time_steps, per_neuron_scales=False)


def measure(run_dir: Path, data_dir: Path | None, cache_dir: Path | None) -> dict:
    config = json.loads((run_dir / "config.json").read_text())
    model = load_model(run_dir / "best.pt")
    encoding = GradedInputEncoding.from_dict(model.config.get("input_encoding"))
    splits = build_datasets(config["dataset"], data_dir, pad_steps=config["max_delay"],
                            valid_fraction=config["valid_fraction"], seed=config["seed"], input_encoding=encoding,
                            cache_dir=cache_dir)
    deployed_splits, steps = splits.deployed(), splits.time_steps
    lava_timing = model if model.latency == C.SYNAPSE_LATENCY_STEPS else clone(model, latency=C.SYNAPSE_LATENCY_STEPS)
    networks = {"deployed": quantize_model(model, steps),
                "per_layer_scale": quantize_model(model, steps, per_neuron_scales=False),
                "clip99.9": clipped_scales(model, steps, 99.9), "clip99.99": clipped_scales(model, steps, 99.99)}
    row = {"run": run_dir.name, "latency": model.latency, "variant": model.config["variant"],
           "weight_scale": [int(layer.weight_scale) for layer in networks["per_layer_scale"].layers],
           "input_shift": [layer.input_shift for layer in networks["deployed"].layers]}
    for split in ("valid", "test"):
        raw, rounded = getattr(splits, split), getattr(deployed_splits, split)
        figures = {"float": accuracy(FloatModelBackend(model), raw),
                   "float_uniform_start": accuracy(FloatModelBackend(clone(model).set_eval_init_state("uniform")), raw),
                   "lava_timing": accuracy(FloatModelBackend(lava_timing), raw),
                   "rounded_inputs": accuracy(FloatModelBackend(lava_timing), rounded)}
        figures.update({name: accuracy(Emulator(network).run, rounded) for name, network in networks.items()})
        row[split] = {key: 100 * value for key, value in figures.items()}
    return row


def summary_table(rows: list[dict]) -> str:
    def cell(split, key):
        values = [r[split][key] for r in rows]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.fmean(values):.2f} ± {spread:.2f}"

    def change(split, key, base="float"):
        values = [r[split][key] - r[split][base] for r in rows]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.fmean(values):+.2f} ± {spread:.2f}"

    lines = [f"{len(rows)} runs: {', '.join(r['run'] for r in rows)}", "",
             "| split | " + " | ".join(COLUMNS) + " |", "|---|" + "---|" * len(COLUMNS)]
    for split in ("valid", "test"):
        lines.append(f"| {split} | " + " | ".join(cell(split, key) for key in COLUMNS) + " |")
    lines += ["", "Changes against the float model (points; mean ± sd over runs):", "",
              "| split | uniform start | pre-roll (Lava timing) | input rounding | weight rounding | float -> deployed | "
              "per-layer scale | clip 99.9 | clip 99.99 |", "|---|---|---|---|---|---|---|---|---|"]
    for split in ("valid", "test"):
        lines.append(f"| {split} | {change(split, 'float_uniform_start')} | {change(split, 'lava_timing')} | "
                     f"{change(split, 'rounded_inputs', 'lava_timing')} | {change(split, 'deployed', 'rounded_inputs')} | "
                     f"{change(split, 'deployed')} | {change(split, 'per_layer_scale')} | {change(split, 'clip99.9')} | "
                     f"{change(split, 'clip99.99')} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="training run folders (best.pt, config.json)")
    parser.add_argument("--data-dir", type=Path, default=None, help="the data the runs trained on (default: embedded)")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="write every run's figures here (JSON)")
    args = parser.parse_args()
    rows = []
    for run_dir in args.runs:
        rows.append(measure(run_dir, args.data_dir, args.cache_dir))
        print(json.dumps(rows[-1]), flush=True)
    print(summary_table(rows))
    if args.out:
        args.out.write_text(json.dumps({"runs": rows, "table": summary_table(rows)}, indent=1))


if __name__ == "__main__":
    main()
