"""The readers a NIR graph of ours is written for (``--nir-target``; docs/nir.md, "Conventions"):
each one's time step, the LIF node it runs as our LIF, what it cannot run, and what it computes
differently from the float model. ``nir_export.py`` writes the graph and imports this module
(never the other way round).

- ``spec`` (the default): forward Euler at ``dt`` (default one time bin, 10 ms), a LIF with
  ``r = tau / dt`` and the input scale ``1 - alpha`` folded into its Affine.
- ``snntorch`` (snnTorch 1.0): the spec at snnTorch's fixed ``dt = SNNTORCH_DT`` (1e-4 s, the only
  step it reads). A silent neuron (alpha = 1) gets the finite tau ``2^30 dt``: snnTorch divides
  its one threshold by ``r dt / tau``, which an infinite tau makes NaN.
- ``norse`` (Norse 1.1): ``r = 1`` and the Affine unscaled (Norse's from_nir ignores a LIF's
  ``r``), Euler at ``dt`` (default ``NORSE_DT``, from_nir's 1e-3 s); each LIF layer is a
  ``CubaLIF`` whose current passes the input through (``tau_syn = dt``, ``w_in = 1``), exact in the
  spec too: Norse's from_nir takes a ``reset_method`` for CubaLIF nodes only, and with
  ``reset_subtract`` runs the float LIF's reset.
- ``sinabs`` (Sinabs 3.1): tau in steps, ``-1 / ln(alpha)`` (Sinabs decays by ``exp(-1/tau)``),
  the input scale ``1 - alpha`` in the Affine (its from_nir reads ``norm_input=False``), no ``dt``
  (its time constants are steps: ``target_dt`` gives 1), and no zero ``v_reset`` in the file (nir
  <= 1.0.4, which Sinabs pins, refuses it; ``nir_export.write_nir`` drops it).

None of the three frameworks has a node that delays a spike or an adaptive neuron: delays and
AdLIF layers are refused for them, naming ``--nir-target spec``.
"""

from __future__ import annotations

import numpy as np

from snn_toolchain.constants import TIME_BIN_S
from snn_toolchain.errors import ToolchainError
from snn_toolchain.export.nir_conventions import (
    NAMES,
    NORSE_DT,
    SINABS_NORM_INPUT_KEY,
    SNNTORCH_DT,
    TARGET_KEY,
    TARGETS,
)

# a silent neuron's time constant for snnTorch, in steps (its reader needs a finite tau; module docstring)
SILENT_STEPS = 2.0 ** 30
# how each reader loads a graph written for it (metadata 'load'; DT: the graph's step)
LOADERS = {"spec": "nir.read(FILE)", "snntorch": "snntorch.import_nir.import_from_nir(nir.read(FILE))",
           "norse": "norse.torch.from_nir(nir.read(FILE), dt=DT, reset_method=norse.torch.functional.reset."
                    "reset_subtract)",
           "sinabs": "sinabs.from_nir(nir.read(FILE), batch_size=BATCH), input (BATCH * steps, features)"}


class NirExportError(ToolchainError):
    """The network cannot be written as a NIR graph as asked."""


def check_decay(layer: str, name: str, values: np.ndarray, allow_one: bool) -> None:
    """A decay per step must lie in [0, 1]; 1 only where NIR can say it (alpha: a silent neuron)."""
    bad = (values > 1.0) | (values < 0.0) | ((values >= 1.0) if not allow_one else False)
    if np.any(bad):
        neuron = int(np.argmax(bad))
        value = float(values[neuron])
        if value == 1.0:
            raise NirExportError(f"layer {layer}: neuron {neuron} has {name} = 1 (no decay: the adaptation w would "
                                 "need an infinite time constant and input scale, which an AdLIF subgraph cannot "
                                 f"express in NIR); export with --format net, or retrain with bounds below 1 "
                                 f"(--bounds {name}=LOW:HIGH with HIGH < 1)")
        raise NirExportError(f"layer {layer}: neuron {neuron} has {name} = {value:g}, outside the trainer's bounds "
                             "[0, 1] (a decay per step); retrain or export an earlier checkpoint (--checkpoint)")


def decay_tau(alpha: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """(tau in seconds, silent): tau = dt / (1 - alpha) for a decay alpha per step, inf where
    alpha = 1 (a silent neuron)."""
    silent = alpha == 1.0
    with np.errstate(divide="ignore"):
        tau = np.where(silent, np.inf, dt / np.where(silent, 0.5, 1.0 - alpha))
    return tau, silent


def target_dt(target: str, dt: float | None) -> float:
    """The time step a graph for ``target`` is written for, in seconds: ``dt`` (the user's
    ``--nir-dt``, None when not given) or the reader's own (spec: one time bin, 10 ms; snnTorch:
    its fixed 1e-4, the only one it reads; Norse: from_nir's default 1e-3; Sinabs: 1, its time
    constants are steps). A ``dt`` the reader cannot take is refused."""
    if target not in TARGETS:
        raise NirExportError(f"--nir-target {target}: not one of {', '.join(TARGETS)}")
    if target == "snntorch":
        if dt is not None and not np.isclose(dt, SNNTORCH_DT, rtol=1e-12, atol=0):
            raise NirExportError(f"--nir-dt {dt:g}: snnTorch reads every graph at dt = {SNNTORCH_DT:g} s (its "
                                 "import_from_nir fixes it); drop --nir-dt for --nir-target snntorch")
        return SNNTORCH_DT
    if target == "sinabs":
        if dt is not None:
            raise NirExportError(f"--nir-dt {dt:g}: Sinabs reads time constants in steps, not seconds; drop --nir-dt "
                                 "for --nir-target sinabs")
        return 1.0
    if dt is None:
        return NORSE_DT if target == "norse" else TIME_BIN_S
    if not (np.isfinite(dt) and dt > 0):
        raise NirExportError(f"dt = {dt}: the time step must be a positive, finite number of seconds")
    return float(dt)


def refuse_for_target(target: str, variant: str, name: str, layer: str, delay: np.ndarray) -> None:
    """What a framework's reader cannot run is refused, naming the option that writes it (spec)."""
    if target == "spec":
        return
    reader = NAMES[target]
    if variant != "lif":
        raise NirExportError(f"layer {layer}: {reader}'s NIR reader has no {variant} neuron (an AdLIF layer is a "
                             "recurrent subgraph only this toolchain reads); export with --nir-target spec, or "
                             "--format net")
    if delay.any():
        raise NirExportError(f"layer {name}: {reader}'s NIR reader has no Delay node, and none of the nodes it reads "
                             "delays a spike (its executor runs every node in the same step), so per-synapse delays "
                             "cannot be written for it; export with --nir-target spec (Delay nodes), or --format net")


def folds_input_scale(target: str) -> bool:
    """Whether a LIF layer's input scale ``1 - alpha`` goes into its Affine (every reader but
    Norse's, which ignores ``r`` and gets the scale from its pass-through current instead)."""
    return target != "norse"


def lif_nodes(prefix: str, alpha: np.ndarray, dt: float, target: str = "spec") -> dict:
    """The LIF node of a layer of decays ``alpha`` (per step) at ``dt`` seconds per step, as
    ``target`` reads it (module docstring)."""
    import nir

    check_decay(prefix, "alpha", alpha, allow_one=True)
    tau, silent = decay_tau(alpha, dt)
    n = alpha.shape[0]
    if target == "norse":
        # Norse ignores r: r = 1 and the Affine unscaled, Euler at dt. A CubaLIF whose current
        # passes the input through (tau_syn = dt, w_in = 1: I = x, in the spec and in Norse), not a
        # LIF: Norse's from_nir applies its reset_method (reset_subtract: the float LIF's reset)
        # only to CubaLIF nodes
        return {prefix: nir.CubaLIF(tau_syn=np.full(n, dt), tau_mem=tau, r=np.ones(n), v_leak=np.zeros(n),
                                    v_threshold=np.ones(n), v_reset=np.zeros(n), w_in=np.ones(n))}
    if target == "sinabs":
        # Sinabs: tau in steps, alpha = exp(-1/tau) exactly; from_nir ignores r
        with np.errstate(divide="ignore"):
            tau = np.where(silent, np.inf, np.where(alpha == 0, 0.0, -1.0 / np.log(np.where(alpha > 0, alpha, 0.5))))
        r = np.ones(n)
    elif target == "snntorch":
        # snnTorch divides its one threshold by r dt / tau, which must be 1 for every neuron: a
        # silent neuron is written with a finite stand-in whose dt / tau (2^-30) rounds its float32
        # beta to exactly 1 (its Affine row is 0: it never moves either way)
        tau = np.where(silent, dt * SILENT_STEPS, tau)
        r = tau / dt
    else:
        # r = tau / dt makes the Euler step add the (pre-scaled) Affine output as it is; a silent
        # neuron's Affine row is 0 and its dt / tau is 0, so any finite r says the same: 1
        r = np.where(silent, 1.0, tau / np.where(silent, 1.0, dt))
    return {prefix: nir.LIF(tau=tau, r=r, v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n))}


def target_metadata(target: str, dt: float) -> dict:
    """The graph metadata that says the reader: ``nir_target``, ``load`` (how to load it) and, for
    Sinabs, its time unit (steps, replacing ``dt``), discretisation and reset."""
    metadata = {TARGET_KEY: target, "load": LOADERS[target].replace("DT", f"{dt:g}")}
    if target == "sinabs":
        # its time constants are steps; the input scale is Sinabs' from_nir's (norm_input=False)
        metadata.update({"time_unit": "step", "discretisation": "exact: decay exp(-1/tau) per step",
                         SINABS_NORM_INPUT_KEY: False,
                         "reset": "subtract the threshold (Sinabs' MembraneSubtract), as the float model; Sinabs' "
                                  "MultiSpike may emit several spikes in a step where the float model emits one"})
    return metadata


def target_notes(target: str, variant: str, latency: int) -> list:
    """What ``target``'s reader computes differently from the float model, one line each."""
    notes = []
    if target != "spec" and latency:
        notes.append(f"{NAMES[target]} does not read latency_steps: it runs the network without the model's {latency} "
                     "step(s) per connection (each layer gets its input earlier relative to its bias)")
    if target == "snntorch" and variant == "lif":
        notes.append("snnTorch resets to 0 after a spike; the float LIF subtracts the threshold")
    if target == "norse":
        notes.append("load it with reset_method=reset_subtract (metadata 'load') for the float LIF's reset; "
                     "Norse's default resets to 0")
    if target == "sinabs":
        notes.append("Sinabs' MultiSpike emits trunc(v) spikes in a step where the float model emits one")
    return notes
