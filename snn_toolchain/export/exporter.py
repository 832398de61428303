"""From a training run to a deployable .net file, with the accuracy cost of quantization measured.

    export_run(run_dir) -> writes run_dir/model.net and run_dir/export.json
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np

from snn_toolchain.atomic import check_replaceable, write_json
from snn_toolchain.errors import ToolchainError
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.export.netfile import is_our_net, stored_checksum, write_net
from snn_toolchain.evaluation import evaluate_backend
from snn_toolchain.train.data.loading import make_loader
from snn_toolchain.train.model.float_backend import FloatModelBackend
from snn_toolchain.train.model.quantize import quantize_model
from snn_toolchain.train.model.checkpoint import latency_note, load_model


def export_run(run_dir: Path | str, splits, out: Path | str | None = None, checkpoint: Path | str | None = None,
               device: str = "cpu", log=print, per_neuron_scales: bool = True, force: bool = False) -> dict:
    """Quantize the run's best model, write the .net file, and measure float vs fixed accuracy on
    the validation and test splits (the emulator computes exactly what Lava computes).
    ``per_neuron_scales=False``: one scale per AdLIF layer (``--scales layer``), a file that readers
    of format versions 1 and 2 read. ``force``: replace an earlier export (``--force``).

    The export is a set: ``export.json`` is removed first and written last, with the content
    checksum of the ``.net`` it describes, so a killed export never leaves a new ``.net`` beside an
    old report (readers check, ``netfile.read_net``). A run that did not finish (no
    ``result.json``) is refused unless its ``checkpoint`` is named."""
    run_dir = Path(run_dir)
    if checkpoint is None and (run_dir / "best.pt").is_file() and not (run_dir / "result.json").is_file():
        raise ToolchainError(f"{run_dir}: the training run did not finish (no result.json); continue it with "
                             f"--resume, or export its best model so far with --checkpoint {run_dir / 'best.pt'}")
    checkpoint = Path(checkpoint) if checkpoint else run_dir / "best.pt"
    out = Path(out) if out else run_dir / "model.net"
    check_replaceable(out, "export", "--out", force)
    if out.exists() and not is_our_net(out):
        raise ToolchainError(f"--out {out}: exists and is not a .net file of train-export's; it is never replaced: "
                             "choose another file")
    model = load_model(checkpoint)
    network = quantize_model(model, splits.time_steps, settings={"source_checkpoint": str(checkpoint.resolve()),
                                                                 "dataset": splits.name},
                             per_neuron_scales=per_neuron_scales)
    if network.input_encoding != splits.input_encoding:
        raise ToolchainError(f"{checkpoint}: the run was trained on inputs encoded otherwise than these splits "
                             "(graded input encoding differs); load the data with the run's own encoding "
                             "(train-export export does)")
    report_path = run_dir / "export.json"
    with contextlib.suppress(FileNotFoundError):
        report_path.unlink()          # the set is unfinished until export.json is written last
    path = write_net(network, out)
    if latency_note(model):
        log(f"[export] note: {checkpoint} was {latency_note(model)}")
    emulator = Emulator(network, device)
    report = {"net_file": str(path), "net_sha256": stored_checksum(path), "checkpoint": str(checkpoint),
              "variant": network.variant,
              "latency": model.latency, "format_version": network.format_version,
              "per_neuron_scales": [layer.per_neuron_scale for layer in network.layers],
              "weight_scale": [np.asarray(layer.weight_scale).tolist() for layer in network.layers],
              "input_shift": [layer.input_shift for layer in network.layers],
              "input_encoding": None if network.input_encoding is None else network.input_encoding.to_dict()}
    deployed = splits.deployed()      # what the network receives: integer payloads for graded inputs
    float_model = FloatModelBackend(model)
    for split_name in ("valid", "test"):
        start = time.perf_counter()
        fixed = emulator.evaluate(getattr(deployed, split_name))
        seconds = time.perf_counter() - start
        float_acc = evaluate_backend(float_model, make_loader(getattr(splits, split_name), 256), keep_run=False).accuracy
        entry = {"float_accuracy": float_acc, "fixed_accuracy": fixed["accuracy"],
                 "quantization_loss_points": 100 * (float_acc - fixed["accuracy"]),
                 "samples": fixed["samples"], "emulator_seconds": seconds,
                 "spikes_per_neuron_per_sample": fixed["spikes_per_neuron_per_sample"]}
        if splits.input_encoding is not None:
            # the float model on the rounded payloads: what rounding the inputs alone costs
            rounded_acc = evaluate_backend(float_model, make_loader(getattr(deployed, split_name), 256),
                                           keep_run=False).accuracy
            entry.update(float_rounded_inputs_accuracy=rounded_acc,
                         input_quantization_loss_points=100 * (float_acc - rounded_acc))
            log(f"[export] {split_name}: input quantization to {splits.input_encoding.bits}-bit graded spikes: "
                f"float {100 * float_acc:.2f}% -> {100 * rounded_acc:.2f}% "
                f"({entry['input_quantization_loss_points']:+.2f} points lost)")
        report[split_name] = entry
        log(f"[export] {split_name}: float {100 * float_acc:.2f}%, fixed point {100 * fixed['accuracy']:.2f}% "
            f"({entry['quantization_loss_points']:+.2f} points lost{' in all' if splits.input_encoding else ''}), emulator "
            f"{fixed['samples'] / seconds:.0f} samples/s")
    write_json(report_path, report)
    log(f"[export] wrote {path}")
    return report
