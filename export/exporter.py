"""From a training run to a deployable .net file, with the accuracy cost of quantization measured.

    export_run(run_dir) -> writes run_dir/model.net and run_dir/export.json
"""

from __future__ import annotations

import time
from pathlib import Path

from snn_toolchain.atomic import write_json
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.export.netfile import write_net
from snn_toolchain.runs import evaluate_backend
from snn_toolchain.train.data import make_loader
from snn_toolchain.train.float_backend import FloatModelBackend
from snn_toolchain.train.quantize import quantize_model
from snn_toolchain.train.trainer import load_model


def export_run(run_dir: Path | str, splits, out: Path | str | None = None, checkpoint: Path | str | None = None,
               device: str = "cpu", log=print) -> dict:
    """Quantize the run's best model, write the .net file, and measure float vs fixed accuracy on
    the validation and test splits (the emulator computes exactly what Lava computes)."""
    run_dir = Path(run_dir)
    checkpoint = Path(checkpoint) if checkpoint else run_dir / "best.pt"
    out = Path(out) if out else run_dir / "model.net"
    model = load_model(checkpoint)
    network = quantize_model(model, splits.time_steps, settings={"source_checkpoint": str(checkpoint.resolve()),
                                                                 "dataset": splits.name})
    path = write_net(network, out)
    emulator = Emulator(network, device)
    report = {"net_file": str(path), "checkpoint": str(checkpoint), "variant": network.variant,
              "weight_scale": [layer.weight_scale for layer in network.layers]}
    for split_name in ("valid", "test"):
        dataset = getattr(splits, split_name)
        start = time.perf_counter()
        fixed = emulator.evaluate(dataset)
        seconds = time.perf_counter() - start
        float_acc = evaluate_backend(FloatModelBackend(model), make_loader(dataset, 256), keep_run=False).accuracy
        report[split_name] = {"float_accuracy": float_acc, "fixed_accuracy": fixed["accuracy"],
                              "quantization_loss_points": 100 * (float_acc - fixed["accuracy"]),
                              "samples": fixed["samples"], "emulator_seconds": seconds,
                              "spikes_per_neuron_per_sample": fixed["spikes_per_neuron_per_sample"]}
        log(f"[export] {split_name}: float {100 * float_acc:.2f}%, fixed point {100 * fixed['accuracy']:.2f}% "
            f"({report[split_name]['quantization_loss_points']:+.2f} points lost), emulator "
            f"{fixed['samples'] / seconds:.0f} samples/s")
    write_json(run_dir / "export.json", report)
    log(f"[export] wrote {path}")
    return report
