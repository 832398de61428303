"""Loihi 2 deployment: the ``deploy`` command, from the resource plan to the hardware run.

Usable without a chip:

- the resource plan (:mod:`snn_toolchain.export.loihi2_plan`, no Lava in it): how a ``.net``
  network maps onto neuro-cores and whether it fits one chip; deploy prints it first.
- :func:`deploy`: the ``deploy`` command. It prints the plan, refuses a network that does not fit
  (exit 1), and without Intel's proprietary ``lava-loihi`` says what is missing and how INRC
  members get it (exit 3). With lava-loihi it builds the network with the simulator's own builder
  (:mod:`snn_toolchain.lava_models.build`), runs it under ``Loihi2HwCfg`` and compares its spikes
  with fixed point.

What lava-loihi must provide (detection, the AdLIF neuron program, the host, the profiler) is
:mod:`snn_toolchain.lava_models.lava_loihi`. Nothing here has run on a Loihi 2 chip: lava-loihi is
not installable outside the INRC. What was checked, and what was not, is listed in
docs/deploy_loihi2.md.

This module imports Lava only inside functions, so that planning works anywhere.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from snn_toolchain.atomic import write_json
from snn_toolchain.errors import ToolchainError
from snn_toolchain.evaluation import RunResult, compare_runs
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.export.loihi2_plan import LOIHI2_LIMITS, Loihi2Limits, plan_partition
from snn_toolchain.export.netfile import is_our_net, read_net
from snn_toolchain.lava_models.build import build_lava_network
from snn_toolchain.lava_models.lava_backend import dataset_samples
from snn_toolchain.lava_models.lava_loihi import (
    LAVA_LOIHI_PROFILER_MODULE,
    HardwareUnavailable,
    adlif_hardware_model_map,
    configure_loihi_host,
    hardware_run_config,
    lava_loihi_missing_message,
    missing_hardware_models,
    missing_lava_loihi_modules,
    profiler_callbacks,
    summarize_measurements,
)
from snn_toolchain.samples_file import has_labels

# What a deploy ended with; the CLI maps each to its exit code (snn_toolchain/cli.py, DEPLOY_EXIT_CODES).
DEPLOY_OUTCOMES = ("ran", "does-not-fit", "bad-input", "no-lava-loihi", "hardware-failed", "parity-mismatch")


@dataclass
class DeployResult:
    """The outcome of :func:`deploy` (one of ``DEPLOY_OUTCOMES``), with the plan and the chip run
    summary where they exist. ``reason`` is the one line that explains a refusal or failure."""

    outcome: str
    plan: object = None
    run: dict | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "ran"


TARGETS = ("loihi2",)


def build_hardware_runner(network, samples, *, adlif_model: Optional[str] = None, callback_fxs: Optional[list] = None):
    """The simulator's builder (:func:`snn_toolchain.lava_models.build.build_lava_network`, with
    Lava's stock synapse models) with its run configuration swapped for ``Loihi2HwCfg``.

    Raises :class:`HardwareUnavailable` when a process of the network has no Loihi 2 model.
    """
    overrides = adlif_hardware_model_map(network, adlif_model)
    # 'stock': the ring model is a CPU ProcessModel and must not replace the chip's DelayDense.
    runner = build_lava_network(network, samples=samples, synapse="stock")
    missing = missing_hardware_models(list(runner.synapses) + list(runner.neurons), overrides)
    if missing:
        raise HardwareUnavailable(f"no Loihi 2 (NcProcessModel) implementation found for {', '.join(missing)}; "
                                  "Loihi2HwCfg would run them on the host CPU instead of the chip")
    runner.run_cfg = hardware_run_config(overrides, callback_fxs)
    return runner


def compare_with_fixed_point(network, samples: np.ndarray, chip_results: list) -> dict:
    """Spike parity of the chip against the bit-exact emulator (the same integers as Lava fixed_pt)."""
    import torch

    reference = Emulator(network)(torch.as_tensor(samples)).to_run_result()
    chip = RunResult.from_samples(chip_results)
    comparison = compare_runs(reference, chip, ("fixed_point", "chip"))
    return {"samples": chip.samples, "identical_spikes": comparison.spikes_identical,
            "mismatched_samples": comparison.mismatched_samples, "first_difference": comparison.first_difference,
            "chip_spike_counts": chip.spike_counts(), "fixed_point_spike_counts": reference.spike_counts(),
            "prediction_agreement": comparison.prediction_agreement}


def run_on_loihi2(network, dataset, n_samples: int, *, adlif_model: Optional[str] = None,
                  say: Callable[[str], None] = print) -> dict:
    """Run ``n_samples`` of ``dataset`` on a Loihi 2 chip and compare with fixed point. Needs lava-loihi."""
    samples, labels = dataset_samples(dataset, n_samples, network.time_steps)
    power_logger, time_logger = profiler_callbacks(len(samples) * network.run_steps)
    callbacks = [c for c in (power_logger, time_logger) if c is not None]
    runner = build_hardware_runner(network, samples, adlif_model=adlif_model, callback_fxs=callbacks)
    say(f"[deploy] host: {configure_loihi_host()}")
    say(f"[deploy] running {len(samples)} sample(s) x {network.run_steps} steps on Loihi 2")
    started = time.perf_counter()
    results = runner.run(progress=False)
    wall = time.perf_counter() - started
    predictions = np.array([r.prediction for r in results])
    summary = {"samples": len(results),
               "accuracy": float(np.mean(predictions == labels)) if has_labels(dataset) else None,
               "wall_seconds": wall, "parity": compare_with_fixed_point(network, samples, results),
               "measured": summarize_measurements(power_logger, time_logger, network.run_steps)}
    if not callbacks:
        summary["measured"]["note"] = f"{LAVA_LOIHI_PROFILER_MODULE} not importable: power and time not measured"
    return summary


def deploy(net_path, target: str = "loihi2", samples: int = 16, dataset="shd", out=None,
           limits: Loihi2Limits = LOIHI2_LIMITS, adlif_model: Optional[str] = None,
           say: Optional[Callable[[str], None]] = None, time_steps: Optional[int] = None) -> DeployResult:
    """Pre-flight check and Loihi 2 run of a ``.net`` file; returns a :class:`DeployResult`.

    Args:
        net_path: the ``.net`` file (``train-export export`` writes it).
        target: only ``'loihi2'``.
        samples: how many samples of ``dataset`` to run on the chip.
        dataset: a dataset name ('shd': the embedded test split), a DatasetSplits or a torch Dataset.
        out: folder for ``loihi2_plan.json`` and ``loihi2_run.json`` (nothing written when None).
        limits: the Loihi 2 assumptions (:class:`Loihi2Limits`).
        adlif_model: 'package.module:ClassName' of the AdLIF NcProcessModel (else the environment
            variable SNN_TOOLCHAIN_ADLIF_NC_MODEL).
        say: receives the plan and progress, line by line, as they happen (default: nothing).

    Outcomes: 'ran' (on the chip, spikes equal to fixed point), 'does-not-fit', 'bad-input',
    'no-lava-loihi', 'hardware-failed', 'parity-mismatch'. Never raises for these cases.
    """
    say = say or (lambda text: None)

    def refused(outcome: str, reason: str, plan=None) -> DeployResult:
        say(reason)
        return DeployResult(outcome, plan, None, reason)

    if target not in TARGETS:
        return refused("bad-input", f"deploy: error: unknown target {target!r}; supported: {', '.join(TARGETS)}")
    if samples is not None and int(samples) < 1:
        return refused("bad-input", f"deploy: error: --samples must be at least 1, got {samples}")
    try:
        network = read_net(net_path, time_steps)
    except ToolchainError as err:
        return refused("bad-input", f"deploy: error: {err}")
    say(f"[deploy] {net_path}: {network.variant}, "
        f"{' -> '.join([str(network.n_inputs)] + [str(l.weight.shape[0]) for l in network.layers])}, "
        f"{network.run_steps} steps per sample")
    # only a file of ours is told to export it again; the plan's table names its compiler profile
    # and whether that profile was fitted to this network's own public compile
    plan = plan_partition(network, limits, ours=is_our_net(net_path))
    say(plan.table())
    out = Path(out) if out is not None else None
    if out is not None:
        write_json(out / "loihi2_plan.json", plan.to_dict())
    if not plan.fits:
        say("deploy: refused: the network does not fit the Loihi 2 resources above.")
        for reason in plan.reasons:
            say(f"  why: {reason}")
        for hint in plan.hints:
            say(f"  try: {hint}")
        return DeployResult("does-not-fit", plan, None, plan.reasons[0] if plan.reasons else "")
    missing = missing_lava_loihi_modules()
    if missing:
        return refused("no-lava-loihi", lava_loihi_missing_message(missing), plan)
    say("[deploy] lava-loihi found")
    try:
        summary = run_on_loihi2(network, dataset, samples, adlif_model=adlif_model, say=say)
    except ToolchainError as err:
        return refused("hardware-failed", f"deploy: cannot run on Loihi 2: {err}", plan)
    except Exception as err:   # a failed chip run ends the command with one line, not a traceback
        return refused("hardware-failed", f"deploy: the Loihi 2 run failed: {type(err).__name__}: {err}", plan)
    if out is not None:
        write_json(out / "loihi2_run.json", summary)
    parity = summary["parity"]
    accuracy = "no labels, no accuracy" if summary["accuracy"] is None else f"accuracy {100 * summary['accuracy']:.2f}%"
    say(f"[deploy] {accuracy} on {summary['samples']} samples; spikes "
        f"{'identical to' if parity['identical_spikes'] else 'DIFFERENT from'} fixed point; predictions agree on "
        f"{100 * parity['prediction_agreement']:.1f}%")
    for key, value in summary["measured"].items():
        say(f"[deploy] measured {key}: {value}")
    outcome = "ran" if parity["identical_spikes"] else "parity-mismatch"
    return DeployResult(outcome, plan, summary, "" if outcome == "ran" else "the chip's spikes differ from fixed point")
