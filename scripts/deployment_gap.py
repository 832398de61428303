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
  (weights, biases, delays, 12-bit decays, integer arithmetic);
- alternatives to the per-layer weight scale, measured the same way: ``per_neuron_scale`` (a
  threshold per neuron, S_j from each neuron's own largest weight) and ``clip99.9`` /
  ``clip99.99`` (the scale from that percentile of |W|, larger weights clipped).

    .venv/bin/python scripts/deployment_gap.py RUN_DIR [RUN_DIR ...] [--data-dir DIR] [--out FILE.json]

Prints one JSON line per run and a markdown table of means and sample standard deviations (points).
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import torch

from snn_toolchain import constants as C
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.input_encoding import GradedInputEncoding
from snn_toolchain.network import QuantizedLayer, QuantizedNetwork
from snn_toolchain.neuron_dynamics import FixedNeuronParams
from snn_toolchain.runs import evaluate_backend
from snn_toolchain.train.data import build_datasets, make_loader
from snn_toolchain.train.float_backend import FloatModelBackend
from snn_toolchain.train.quantize import quantize_model
from snn_toolchain.train.trainer import load_model, model_from_config

COLUMNS = ("float", "float_uniform_start", "lava_timing", "rounded_inputs", "deployed", "per_neuron_scale",
           "clip99.9", "clip99.99")


def accuracy(backend, split) -> float:
    return evaluate_backend(backend, make_loader(split, 256), keep_run=False).accuracy


def clone(model, **changes):
    """The same weights in a model built with ``changes`` to its configuration."""
    copy = model_from_config({**model.config, **changes})
    copy.load_state_dict(model.state_dict())
    return copy.set_eval_init_state("zero").eval()


def per_neuron_scales(model, time_steps: int) -> QuantizedNetwork:
    """Each AdLIF neuron's threshold S_j from its own largest weight, S_j = floor(254 / (max_i |W_ji| 2^k)),
    never below the layer's S, at most max(S, 4096) (the membrane's headroom) and what its bias allows
    in int16; the layer's input shift k and the readout's one scale are kept. Not validated: a
    .net file holds one scale per layer (the emulator takes a threshold per neuron)."""
    network = quantize_model(model, time_steps)
    folded = model.folded().eval()
    layers = []
    for index, layer in enumerate(network.layers):
        if not isinstance(layer.neuron, FixedNeuronParams):
            layers.append(layer)
            continue
        block = folded.blocks[index]
        weight = block.synapse.weight.detach().double().numpy() * (model.input_gain if index == 0 else 1.0)
        bias = block.synapse.bias.detach().double().numpy()
        scale, shift = layer.weight_scale, layer.input_shift
        own = np.floor(np.floor(C.WEIGHT_MAX / np.abs(weight).max(1)) / 2 ** shift)
        bias_room = np.where(bias != 0, np.floor(C.BIAS_MANT_MAX / np.maximum(np.abs(bias), 1e-12)), np.inf)
        scales = np.clip(own, scale, np.minimum(max(scale, C.SCALE_BEFORE_SHIFT_MAX), bias_room)).astype(np.int64)
        weights = np.round(weight * (scales * 2 ** shift)[:, None]).astype(np.int64)
        biases = np.round(bias * scales).astype(np.int64)
        threshold = scales << C.ACTIVATION_SHIFT
        alpha, beta, a, b = (getattr(block.neuron, p).detach().double().numpy() for p in ("alpha", "beta", "a", "b"))
        params = FixedNeuronParams(*(np.round(x * C.DECAY_UNITY).astype(np.int64) for x in (alpha, beta, a)),
                                   np.round(b * threshold).astype(np.int64), biases, threshold)
        layers.append(QuantizedLayer(layer.name, weights, layer.delay, biases, scale, params, layer.neuron_variant,
                                     shift))
    return QuantizedNetwork(layers, network.time_steps, network.variant, input_encoding=network.input_encoding)


def clipped_scales(model, time_steps: int, percentile: float) -> QuantizedNetwork:
    """The per-layer scale set by the ``percentile`` of |W| instead of its maximum (larger weights clipped)."""
    folded = clone(model).folded().eval()
    with torch.no_grad():
        for block in list(folded.blocks) + [folded.readout]:
            weight = block.synapse.weight
            limit = torch.quantile(weight.abs().flatten().double(), percentile / 100).to(weight.dtype)
            weight.clamp_(-limit, limit)
    return quantize_model(folded, time_steps)


def measure(run_dir: Path, data_dir: Path | None, cache_dir: Path | None) -> dict:
    config = json.loads((run_dir / "config.json").read_text())
    model = load_model(run_dir / "best.pt")
    encoding = GradedInputEncoding.from_dict(model.config.get("input_encoding"))
    splits = build_datasets(config["dataset"], data_dir, pad_steps=config["max_delay"],
                            valid_fraction=config["valid_fraction"], seed=config["seed"], input_encoding=encoding,
                            cache_dir=cache_dir)
    deployed_splits, steps = splits.deployed(), splits.time_steps
    lava_timing = model if model.latency == C.SYNAPSE_LATENCY_STEPS else clone(model, latency=C.SYNAPSE_LATENCY_STEPS)
    networks = {"deployed": quantize_model(model, steps), "per_neuron_scale": per_neuron_scales(model, steps),
                "clip99.9": clipped_scales(model, steps, 99.9), "clip99.99": clipped_scales(model, steps, 99.99)}
    row = {"run": run_dir.name, "latency": model.latency, "variant": model.config["variant"],
           "weight_scale": [layer.weight_scale for layer in networks["deployed"].layers],
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
              "per-neuron scale | clip 99.9 | clip 99.99 |", "|---|---|---|---|---|---|---|---|---|"]
    for split in ("valid", "test"):
        lines.append(f"| {split} | {change(split, 'float_uniform_start')} | {change(split, 'lava_timing')} | "
                     f"{change(split, 'rounded_inputs', 'lava_timing')} | {change(split, 'deployed', 'rounded_inputs')} | "
                     f"{change(split, 'deployed')} | {change(split, 'per_neuron_scale')} | {change(split, 'clip99.9')} | "
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
