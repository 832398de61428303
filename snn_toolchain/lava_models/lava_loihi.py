"""Intel's lava-loihi extension, as the Loihi 2 deploy path (:mod:`snn_toolchain.lava_models.loihi2`)
uses it: whether it is installed (and how INRC members get it), the Loihi 2 ProcessModels a network
needs from it, the run configuration, the host and the profiler.

- Detection: :func:`missing_lava_loihi_modules` tries the imports only lava-loihi provides.
- The hardware hook of the ``AdLIF`` neuron: :func:`adlif_hardware_model` finds the Loihi 2
  (microcoded, ``NcProcessModel``) implementation of our ``AdLIF`` process when lava-loihi is
  present; :func:`snn_toolchain.lava_models.microcode.adlif_microcode_pseudocode` writes out the
  neuron program such a model must run, lowered from
  :func:`snn_toolchain.neurons.dynamics.adlif_fixed_step` and checked against it bit for bit
  (:func:`snn_toolchain.lava_models.microcode.run_microcode`, tests/test_loihi2_plan.py).
- :func:`missing_hardware_models` refuses a network part of which Loihi2HwCfg would run on the host.

Nothing here has run on a Loihi 2 chip: lava-loihi is not installable outside the INRC. What was
checked, and what was not, is listed in docs/deploy_loihi2.md. Lava is imported only inside
functions, so that this module imports anywhere.
"""

from __future__ import annotations

import importlib
import inspect
import os
from typing import Optional, Sequence

import numpy as np

from snn_toolchain.errors import ToolchainError
from snn_toolchain.export.loihi2_plan import unique_in_order
from snn_toolchain.neurons.dynamics import FixedNeuronParams

# ============================================================================================
# lava-loihi detection
# ============================================================================================

# Modules only lava-loihi installs (open-source Lava guards its own imports of them with
# try/except ImportError): the Loihi 2 neuro-core compiler and the NcProcessModel base class.
LAVA_LOIHI_MODULES = (
    "lava.magma.compiler.subcompilers.nc.ncproc_compiler",
    "lava.magma.core.model.nc.model",
)
# lava-loihi's profiler (power and execution time probes); optional for running, needed to measure.
LAVA_LOIHI_PROFILER_MODULE = "lava.utils.loihi2_profiler"


def missing_lava_loihi_modules(modules: Sequence[str] = LAVA_LOIHI_MODULES) -> dict:
    """Module name -> why it cannot be imported, for each of ``modules`` that fails (empty: all import)."""
    missing = {}
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as err:
            missing[name] = f"{type(err).__name__}: {err}"
        except Exception as err:   # lava-loihi present but broken: say how, never raise
            missing[name] = f"import failed with {type(err).__name__}: {err}"
    return missing


def lava_loihi_available() -> bool:
    """True when Intel's lava-loihi extension imports (its compiler and NcProcessModel base class)."""
    return not missing_lava_loihi_modules()


def lava_loihi_missing_message(missing: dict) -> str:
    """What is missing and how to get it: INRC membership gives access to lava-loihi."""
    lines = ["Loihi 2 hardware run: lava-loihi is not installed in this Python environment.",
             "  missing modules (lava-loihi provides them):"]
    lines.extend(f"    {name}  ({why})" for name, why in missing.items())
    lines += [
        "  Open-source lava-nc 0.10 has Loihi2HwCfg (lava.magma.core.run_configs), but not the Loihi 2",
        "  compiler, runtime, NcProcessModels or profiler: those are in lava-loihi, Intel's proprietary",
        "  extension, which Intel gives only to members of the Intel Neuromorphic Research Community (INRC).",
        "  How to get there:",
        "    1. Join the INRC: apply through Intel's INRC page",
        "       (https://www.intel.com/content/www/us/en/research/neuromorphic-community.html). Members get",
        "       access to lava-loihi and an account on Intel's Loihi 2 cloud systems (or a loaned board).",
        "    2. On the INRC system: Python 3.10, this toolchain in a venv (scripts/setup_env.sh), then",
        "       lava-loihi for lava-nc 0.10 installed into the same venv as the INRC wiki describes (the",
        "       package and its install steps are behind the INRC login; they could not be checked here).",
        "    3. Check: python -c \"from lava.utils.loihi import is_installed; print(is_installed())\" prints True.",
        "    4. An AdLIF network also needs the AdLIF neuron program for the chip (docs/deploy_loihi2.md,",
        f"       'The AdLIF neuron on the chip'); point {ADLIF_NC_MODEL_ENV} at it. LIF networks do not.",
        "    5. Run deploy again there (on the cloud through SLURM: set PARTITION or BOARD as the wiki says).",
        "  Until then, the bit-exact simulation of the same network runs here on Lava's Loihi2SimCfg.",
    ]
    return "\n".join(lines)


# ============================================================================================
# The AdLIF neuron on the chip
# ============================================================================================

ADLIF_LOIHI2_TAG = "loihi2"
ADLIF_NC_MODEL_ENV = "SNN_TOOLCHAIN_ADLIF_NC_MODEL"


class HardwareUnavailable(ToolchainError):
    """lava-loihi is present but something the chip run needs is not (a model, a board)."""


def _nc_process_model_base():
    try:
        module = importlib.import_module("lava.magma.core.model.nc.model")
    except ImportError as err:
        raise HardwareUnavailable(f"lava-loihi's lava.magma.core.model.nc.model does not import ({err})") from None
    base = getattr(module, "AbstractNcProcessModel", None)
    if not inspect.isclass(base):
        raise HardwareUnavailable("lava.magma.core.model.nc.model has no AbstractNcProcessModel class: this "
                                  "lava-loihi version is not one this toolchain knows (it expects lava-loihi for "
                                  "lava-nc 0.10)")
    return base


def _load_class(spec: str):
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise HardwareUnavailable(f"{ADLIF_NC_MODEL_ENV}={spec!r}: write it as 'package.module:ClassName'")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise HardwareUnavailable(f"cannot load the AdLIF hardware model {spec!r}: {err}") from None


def _lava_model_search(process) -> list:
    """Lava's own ProcessModel search for ``process`` (its folder and namespace siblings)."""
    from lava.magma.compiler.compiler_graphs import ProcGroupDiGraphs

    return list(ProcGroupDiGraphs._find_proc_models(process))


def adlif_hardware_model(spec: Optional[str] = None):
    """The Loihi 2 ProcessModel of our ``AdLIF`` process: an ``AbstractNcProcessModel`` subclass
    (a microcoded neuron program) decorated ``@implements(proc=AdLIF)``, ``@requires(Loihi2NeuroCore)``,
    ``@tag('loihi2')``.

    Looked up, in order: ``spec`` ('package.module:ClassName'), the environment variable
    ``SNN_TOOLCHAIN_ADLIF_NC_MODEL``, then Lava's own model search next to the AdLIF process.
    Needs lava-loihi. Raises :class:`HardwareUnavailable` explaining what to write when none is
    found: no such model exists yet (it cannot be written or tested without lava-loihi), and
    :func:`adlif_microcode_pseudocode` gives the arithmetic it must implement.
    """
    base = _nc_process_model_base()
    from snn_toolchain.lava_models.processes.adlif import AdLIF  # imports Lava

    spec = spec or os.environ.get(ADLIF_NC_MODEL_ENV)
    if spec:
        model = _load_class(spec)
        _validate_hardware_model(model, base, AdLIF, spec)
        return model
    probe = AdLIF(shape=(1,), alpha=0)
    try:
        found = [m for m in _lava_model_search(probe) if inspect.isclass(m) and issubclass(m, base)]
    except Exception as err:
        raise HardwareUnavailable(f"Lava's model search for AdLIF failed ({type(err).__name__}: {err})") from None
    tagged = [m for m in found if ADLIF_LOIHI2_TAG in getattr(m, "tags", [])] or found
    if tagged:
        return tagged[0]
    raise HardwareUnavailable(
        "lava-loihi is installed, but no Loihi 2 neuron program (NcProcessModel) for the AdLIF process is "
        "registered. Lava's Loihi2HwCfg would silently fall back to the Python model on the host CPU, which is "
        "not a chip run, so deploy stops here. Write the NcProcessModel from the fixed-point program in "
        "docs/deploy_loihi2.md (print it with `python -c \"from snn_toolchain.lava_models.microcode import "
        "adlif_microcode_pseudocode as p; print(p())\"`), decorate it @implements(proc=AdLIF), "
        f"@requires(Loihi2NeuroCore), @tag('{ADLIF_LOIHI2_TAG}'), and set {ADLIF_NC_MODEL_ENV}=package.module:ClassName. "
        "A LIF network (lava-dl's CUBA neurons) needs no custom program.")


def _validate_hardware_model(model, base, process_class, spec: str) -> None:
    if not (inspect.isclass(model) and issubclass(model, base)):
        raise HardwareUnavailable(f"{spec}: not an AbstractNcProcessModel subclass, so it would not run on a neuro-core")
    if getattr(model, "implements_process", None) is not process_class:
        raise HardwareUnavailable(f"{spec}: not decorated @implements(proc=AdLIF) for "
                                  f"{process_class.__module__}.{process_class.__name__}")


def adlif_hardware_model_map(network, spec: Optional[str] = None) -> dict:
    """``exception_proc_model_map`` entries for ``Loihi2HwCfg``: {AdLIF: its hardware model} when
    ``network`` has AdLIF layers, else {} (CUBA layers use lava-loihi's own LIF model)."""
    if not any(isinstance(layer.neuron, FixedNeuronParams) for layer in network.layers):
        return {}
    from snn_toolchain.lava_models.processes.adlif import AdLIF  # imports Lava

    return {AdLIF: adlif_hardware_model(spec)}


# ============================================================================================
# The hardware run: configuration, refusing a host fallback, the host, the profiler
# ============================================================================================

def hardware_run_config(exception_proc_model_map: Optional[dict] = None, callback_fxs: Optional[list] = None):
    """``Loihi2HwCfg`` (lava-nc 0.10 defines it in ``lava.magma.core.run_configs``; lava-loihi
    supplies the compiler and runtime behind it) with our model overrides and profiler callbacks."""
    from lava.magma.core.run_configs import Loihi2HwCfg

    return Loihi2HwCfg(exception_proc_model_map=dict(exception_proc_model_map or {}),
                       callback_fxs=list(callback_fxs or []))


def missing_hardware_models(processes, exception_proc_model_map: Optional[dict] = None) -> list:
    """Names of the processes (synapses, neurons) for which no Loihi 2 NcProcessModel exists.

    Loihi2HwCfg falls back to a Python model on the host when it finds no NcProcessModel, so a
    network can "run on Loihi2HwCfg" without touching the chip; this check prevents that.
    """
    base = _nc_process_model_base()
    overrides = dict(exception_proc_model_map or {})
    missing = []
    for process in processes:
        model = overrides.get(type(process))
        if model is not None and inspect.isclass(model) and issubclass(model, base):
            continue
        try:
            models = _lava_model_search(process)
        except Exception as err:
            missing.append(f"{type(process).__name__} (model search failed: {type(err).__name__}: {err})")
            continue
        if not any(inspect.isclass(m) and issubclass(m, base) for m in models):
            missing.append(type(process).__name__)
    return unique_in_order(missing)


def configure_loihi_host() -> str:
    """Select the Loihi 2 system through lava-loihi's helpers: SLURM when it is available (the
    INRC cloud; PARTITION / BOARD from the environment), else whatever NXSDKHOST already names."""
    from lava.utils import loihi, slurm

    try:
        slurm_found = slurm.is_available()
    except OSError:   # lava's check runs `sinfo` and lets a missing binary raise
        slurm_found = False
    if slurm_found:
        try:
            loihi.use_slurm_host(partition=os.environ.get("PARTITION"), board=os.environ.get("BOARD"))
        except Exception as err:   # the run itself reports whether a board is reachable
            return f"SLURM found, but lava.utils.loihi.use_slurm_host failed ({type(err).__name__}: {err})"
        return f"SLURM (partition {os.environ.get('PARTITION', 'any')}, board {os.environ.get('BOARD', 'any')})"
    if os.environ.get("NXSDKHOST"):
        return f"ethernet host {os.environ['NXSDKHOST']}"
    return "no SLURM and no NXSDKHOST: lava-loihi's default host"


def profiler_callbacks(num_steps: int) -> tuple:
    """(power logger, time logger) of lava-loihi's profiler, or (None, None) without it.

    As lava-dl's Loihi 2 benchmark tutorials use them (not verified here): ``Loihi2Power(num_steps)``
    gives ``total_power`` / ``static_total_power`` in W, ``Loihi2ExecutionTime()`` gives
    ``avg_time_per_step`` in microseconds; both are passed as ``Loihi2HwCfg(callback_fxs=...)``.
    """
    try:
        profiler = importlib.import_module(LAVA_LOIHI_PROFILER_MODULE)
        return profiler.Loihi2Power(num_steps=num_steps), profiler.Loihi2ExecutionTime()
    except Exception:
        return None, None


def summarize_measurements(power_logger, time_logger, steps_per_inference: int) -> dict:
    """Time (ms) and energy (uJ) per inference from lava-loihi's loggers; keys absent when unknown."""
    out = {}
    if time_logger is not None and getattr(time_logger, "avg_time_per_step", None) is not None:
        step_us = float(np.mean(time_logger.avg_time_per_step))
        out["time_per_step_us"] = step_us
        out["time_per_inference_ms"] = step_us * steps_per_inference / 1e3
    if power_logger is not None and getattr(power_logger, "total_power", None) is not None:
        total_w = float(np.mean(power_logger.total_power))
        out["total_power_w"] = total_w
        static = getattr(power_logger, "static_total_power", None)
        if static is not None:
            out["static_power_w"] = float(np.mean(static))
            out["dynamic_power_w"] = total_w - out["static_power_w"]
        if "time_per_inference_ms" in out:
            seconds = out["time_per_inference_ms"] / 1e3
            out["total_energy_per_inference_uj"] = total_w * seconds * 1e6
            if "dynamic_power_w" in out:
                out["dynamic_energy_per_inference_uj"] = out["dynamic_power_w"] * seconds * 1e6
    return out
