"""Whose NIR: the conventions of the frameworks that write and read NIR graphs, named, not guessed.

NIR says what a node's ODE is, not how a framework discretises it, and the frameworks differ
(docs/nir.md, "Conventions"). Measured with snnTorch 1.0.0, Norse 1.1.0 and Sinabs 3.1.3:

- **spec**: forward Euler at ``dt`` seconds, ``k = dt / tau``: ``LIF`` ``v += k (v_leak - v + r x)``,
  ``CubaLIF`` ``I += k_syn (w_in x - I)`` then ``v += k_mem (v_leak - v + r I)``, ``IF``
  ``v += dt r x``; a spike when ``v > v_threshold``, reset to ``v_reset``. This toolchain's graphs
  follow it (and say their ``dt``).
- **snntorch**: the spec at snnTorch's fixed ``dt = 1e-4`` s, which its graphs do not state; its
  ``export_to_nir`` writes ``r = tau / 1e-4`` in every LIF (and ``w_in = tau_syn / 1e-4`` in every
  CubaLIF): that pattern recognises its graphs. Leaky's ``reset_mechanism`` is not in the graph;
  snnTorch's own ``import_from_nir`` resets to zero, and so does this reading.
- **norse**: ``to_nir`` writes ``dt / tau_inv = tau x dt`` for every time constant (norse issue
  #411; 1e-5 s for the default 10 ms at dt = 1 ms): a time constant is read as written / dt. Its
  ``LIFCell`` is written as ``CubaLIF``, but it runs ``I = (1 - k_syn) I + x`` (the input jumps the
  current unscaled, not by ``k_syn w_in``), then the voltage from that current in the same step;
  its ``IAFCell`` as ``IF`` adds the input unscaled (no ``dt``). ``v_reset`` is not written (Norse's
  default 0).
- **sinabs**: time constants in steps, the decay exact, ``alpha = exp(-1 / tau)``; ``LIF`` runs
  ``v = alpha v + (1 - alpha) x`` (``sinabs.layers.LIF``'s default ``norm_input=True``; Sinabs' own
  ``from_nir`` reads ``norm_input=False``: graphs this toolchain writes for Sinabs say which), a
  spike count ``trunc(v / v_threshold)`` per step (``MultiSpike``) and the threshold subtracted per
  spike (``MembraneSubtract``); ``IF`` (``IAF``) adds the input as it is. The spike function and
  the reset are not in the graph: Sinabs' defaults are assumed, and said.

A graph says whose it is only through this toolchain's metadata or a framework's parameter
pattern; where it cannot (Norse and Sinabs write ``r = 1`` and no metadata, as a spec graph may
too), the import refuses and names ``--nir-source``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from snn_toolchain.constants import NORSE_DT, SNNTORCH_DT  # noqa: F401 (re-exported: the frameworks' steps)
from snn_toolchain.export.nir_graph import NirImportError, flat_values

SOURCES = ("spec", "snntorch", "norse", "sinabs")
TARGETS = SOURCES
# A time constant read as Norse 1.1's (written / dt) above this many steps means an almost frozen
# neuron (decay below 0.001 per step): the graph is likely not Norse 1.1's to_nir (seconds, not tau x dt)
NORSE_SUSPECT_STEPS = 1000
PRODUCER = "snn-toolchain"
# graph metadata: which reader a graph of ours was written for (absent: the spec)
TARGET_KEY = "nir_target"
# graph metadata of a graph written for Sinabs: how its LIF scales the input (Sinabs' from_nir: False)
SINABS_NORM_INPUT_KEY = "sinabs_norm_input"
SPIKING_KINDS = ("LIF", "CubaLIF", "IF")
NAMES = {"spec": "the NIR spec", "snntorch": "snnTorch", "norse": "Norse", "sinabs": "Sinabs"}


@dataclass(frozen=True)
class Convention:
    """How a graph's neurons are discretised: ``source`` (one of SOURCES), ``dt`` in seconds per
    step (Sinabs: 1, its time constants are in steps), and ``line``, what is assumed, one line."""

    source: str
    dt: float
    line: str
    sinabs_norm_input: bool = True


@dataclass
class NeuronSteps:
    """One step of a spiking node as a convention reads it, in the node's own units (volts):

    - current (CubaLIF only): ``I = (1 - current_decay) I + current_input x``;
    - voltage: ``v = (1 - voltage_decay) v + voltage_input * drive + leak``, ``drive`` = I, or the
      node's input x when it has no current;
    - spikes: ``v > v_threshold`` (one per step), or ``trunc(v / v_threshold)`` where ``v > 0``
      (``multi_spike``, Sinabs);
    - reset: ``v = v_reset`` where it spiked, or ``v -= spikes * v_threshold`` (``subtract_reset``).

    Decays are fractions lost per step, in [0, 1]; a neuron with ``voltage_decay = 0`` and
    ``voltage_input = 0`` (tau = inf) never moves."""

    voltage_decay: np.ndarray
    voltage_input: np.ndarray
    leak: np.ndarray
    v_threshold: np.ndarray
    v_reset: np.ndarray
    current_decay: np.ndarray | None = None
    current_input: np.ndarray | None = None
    subtract_reset: bool = False
    multi_spike: bool = False


def _metadata(graph) -> dict:
    return graph.metadata if isinstance(getattr(graph, "metadata", None), dict) else {}


def _spiking_nodes(graph) -> list:
    return [(name, node) for name, node in graph.nodes.items() if type(node).__name__ in SPIKING_KINDS]


def _values(node, attribute: str) -> np.ndarray | None:
    """A parameter as float64 (None when absent or not numeric): for recognising, not reading
    (``flat_values`` refuses what is wrong with it, complex numbers included, when it is read)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")        # a complex value's cast: refused later, by name
            return np.asarray(getattr(node, attribute), dtype=np.float64).reshape(-1)
    except (AttributeError, TypeError, ValueError, OverflowError):
        return None


def _close(a, b) -> bool:
    try:
        return a is not None and b is not None and bool(np.allclose(a, b, rtol=1e-5, atol=0))
    except ValueError:              # shapes that do not broadcast
        return False


def _snntorch_pattern(node) -> bool:
    """snnTorch's export_to_nir writes r = tau / 1e-4 (and w_in = tau_syn / 1e-4)."""
    kind = type(node).__name__
    if kind == "LIF":
        tau = _values(node, "tau")
        return tau is not None and bool(np.all(np.isfinite(tau))) and _close(_values(node, "r"), tau / SNNTORCH_DT)
    if kind == "CubaLIF":
        tau_mem, tau_syn = _values(node, "tau_mem"), _values(node, "tau_syn")
        return (tau_mem is not None and tau_syn is not None and bool(np.all(np.isfinite(tau_mem)))
                and _close(_values(node, "r"), tau_mem / SNNTORCH_DT)
                and _close(_values(node, "w_in"), tau_syn / SNNTORCH_DT))
    return False


def _unit_pattern(node) -> bool:
    """Norse and Sinabs write r = 1 (and w_in = 1); a spec graph may too."""
    return _close(_values(node, "r"), 1.0) and (type(node).__name__ != "CubaLIF" or _close(_values(node, "w_in"), 1.0))


def _looks_like(neurons: list) -> str:
    """A hint for the refusal: whose time constants these look like (never used to decide)."""
    taus = [t for _, node in neurons for key in ("tau", "tau_mem", "tau_syn")
            if (t := _values(node, key)) is not None and t.size]
    if not taus:
        return ""
    taus = np.concatenate(taus)
    span = f"{taus.min():.3g}..{taus.max():.3g}" if taus.min() != taus.max() else f"{taus.min():.3g}"
    if np.all(taus < SNNTORCH_DT):
        return f"; its time constants, {span} s, look like Norse 1.1's tau x dt"
    kinds = {type(node).__name__ for _, node in neurons}
    if np.all(taus >= 1) and kinds <= {"LIF", "IF"}:
        return f"; its time constants, {span}, look like Sinabs' steps"
    return ""


def recognise(graph, path: str, source: str | None = None, dt: float | None = None,
              changes: list | None = None) -> Convention:
    """The convention ``graph`` follows: ``source`` when given (``--nir-source``), else this
    toolchain's metadata, a graph's own ``dt`` (the spec), or snnTorch's parameter pattern; a
    graph that says none of these is refused in one line naming ``--nir-source``. ``dt``: the
    time step given (``--dt``), seconds."""
    changes = [] if changes is None else changes
    given = source is not None
    metadata = _metadata(graph)
    neurons = _spiking_nodes(graph)
    how = f"--nir-source {source}"
    if source is None:
        if metadata.get("producer") == PRODUCER:
            target = metadata.get(TARGET_KEY, "spec")
            if target not in TARGETS:
                raise NirImportError(f"{path}: its metadata names the reader {target!r}, not one of "
                                     f"{', '.join(TARGETS)}; export the graph again")
            # what we write for snnTorch and Norse is the spec, exactly (docs/nir.md); for Sinabs, Sinabs'
            source = "sinabs" if target == "sinabs" else "spec"
            how = "this toolchain's graph" + (f", written for {NAMES[target]}" if target != "spec" else "")
        elif metadata.get("dt") is not None:
            source, how = "spec", "the graph states its dt"
        elif neurons and all(_snntorch_pattern(node) for _, node in neurons):
            source, how = "snntorch", "every neuron has r = tau / 1e-4 s, as snnTorch's export_to_nir writes"
        elif any(_unit_pattern(node) for _, node in neurons):
            raise NirImportError(f"{path}: the graph does not say whose convention it follows (no dt in its metadata, "
                                 f"neurons with r = 1 as Norse and Sinabs write them{_looks_like(neurons)}); pass "
                                 "--nir-source norse, sinabs or snntorch, or spec with --dt (docs/nir.md, Conventions)")
        elif dt is not None:
            source, how = "spec", "--dt given"
        else:
            raise NirImportError(f"{path}: the graph does not say its time step (NIR is continuous-time); pass --dt "
                                 "SECONDS (snnTorch writes its graphs for dt = 1e-4), or --nir-source (docs/nir.md)")
    if source not in SOURCES:
        raise NirImportError(f"--nir-source {source}: not one of {', '.join(SOURCES)}")
    if given:
        _check_given_source(metadata, neurons, source, path, changes)
    dt = _source_dt(graph, source, dt, path, changes)
    if source == "norse":
        _note_frozen_norse(neurons, dt, changes)
    norm_input = True
    if source == "sinabs" and metadata.get("producer") == PRODUCER:
        norm_input = bool(metadata.get(SINABS_NORM_INPUT_KEY, True))
    kinds = {type(node).__name__ for _, node in neurons}
    return Convention(source, dt, f"{NAMES[source]} ({how}): " + _assumed(source, dt, norm_input, kinds), norm_input)


def _check_given_source(metadata: dict, neurons: list, source: str, path: str, changes: list) -> None:
    """An explicit ``--nir-source`` against what the graph shows: refused in one line where the
    graph says unambiguously whose it is (our metadata, snnTorch's ``r = tau / 1e-4``), a note in
    ``changes`` where it only looks unlike that source's graphs (Norse or Sinabs with ``r != 1``)."""
    how = f"--nir-source {source}"
    if metadata.get("producer") == PRODUCER:
        target = metadata.get(TARGET_KEY, "spec")
        # ours for snnTorch and Norse are the spec exactly (snnTorch's reading is the spec); Sinabs' its own
        fits = ("sinabs",) if target == "sinabs" else ("spec", "snntorch")
        if target in TARGETS and source not in fits:
            raise NirImportError(f"{path}: {how}, but the graph is this toolchain's, written for {NAMES[target]} (its "
                                 "metadata); drop --nir-source")
        return
    if source not in ("norse", "sinabs") or not neurons:
        return
    if all(_snntorch_pattern(node) for _, node in neurons) and not all(_unit_pattern(node) for _, node in neurons):
        raise NirImportError(f"{path}: {how}, but every neuron has r = tau / 1e-4 s, as snnTorch's export_to_nir "
                             f"writes ({NAMES[source]} writes r = 1); drop --nir-source (read as snnTorch's), or pass "
                             "--nir-source spec with --dt if it is not snnTorch's")
    odd = [name for name, node in neurons if not _unit_pattern(node)]
    if odd:
        kept = ("read as for Norse's own graphs: r scales a LIF's and a CubaLIF's voltage input; w_in and an IF's r "
                "are not used" if source == "norse" else "r is not used, as Sinabs' from_nir ignores it")
        nodes = f"node '{odd[0]}' has" if len(odd) == 1 else f"nodes '{odd[0]}' and {len(odd) - 1} more have"
        changes.append(f"{how}: {nodes} r or w_in other than 1, which {NAMES[source]} does not write; {kept}; if "
                       f"the graph is not {NAMES[source]}'s, pass its source (--nir-source spec with --dt)")


def _note_frozen_norse(neurons: list, dt: float, changes: list) -> None:
    """A note in ``changes`` when Norse's reading (time constant = written / dt) gives time
    constants above ``NORSE_SUSPECT_STEPS`` steps: written in seconds, not Norse 1.1's tau x dt."""
    taus = [t[np.isfinite(t)] for _, node in neurons for key in ("tau", "tau_mem", "tau_syn")
            if (t := _values(node, key)) is not None]
    taus = np.concatenate(taus) if taus else np.zeros(0)
    if taus.size and taus.max() / dt / dt > NORSE_SUSPECT_STEPS:
        steps = taus.max() / dt / dt
        changes.append(f"read as Norse 1.1's tau x dt, a time constant of {taus.max():g} s as written is {steps:,.0f} "
                       f"steps at dt = {dt:g} s (a nearly frozen neuron); if the graph's time constants are seconds "
                       "(another writer, or Norse before 1.1), pass --nir-source spec --dt SECONDS")


def _source_dt(graph, source: str, dt: float | None, path: str, changes: list) -> float:
    """The step to discretise at, in seconds: ``dt`` if given, else the graph's metadata ``dt``,
    else the source's own (snnTorch 1e-4, Norse 1e-3; Sinabs 1: its time constants are steps)."""
    graph_dt = _metadata(graph).get("dt")
    try:
        graph_dt = None if graph_dt is None else float(graph_dt)
    except (TypeError, ValueError):
        raise NirImportError(f"{path}: the graph's metadata dt = {graph_dt!r} is not a number of seconds") from None
    if source == "sinabs":
        if dt is not None:
            changes.append(f"--dt {dt:g} not used: Sinabs' time constants are in steps")
        return 1.0
    default = {"spec": graph_dt, "snntorch": graph_dt or SNNTORCH_DT, "norse": graph_dt or NORSE_DT}[source]
    if dt is None:
        if default is None:
            raise NirImportError(f"{path}: the graph does not say its time step (NIR is continuous-time); pass --dt "
                                 "SECONDS (snnTorch writes its graphs for dt = 1e-4)")
        dt = default
    elif graph_dt is not None and not np.isclose(graph_dt, dt):
        changes.append(f"the graph says dt = {graph_dt:g} s; discretised at the given {dt:g} s instead")
    elif source == "snntorch" and not np.isclose(dt, SNNTORCH_DT):
        changes.append(f"snnTorch runs its graphs at dt = {SNNTORCH_DT:g} s; discretised at the given {dt:g} s instead")
    if not (np.isfinite(dt) and dt > 0):
        raise NirImportError(f"dt = {dt}: the time step must be a positive number of seconds")
    return float(dt)


def _assumed(source: str, dt: float, norm_input: bool, kinds: set) -> str:
    """What reading the graph as ``source`` assumes, for the node ``kinds`` it holds."""
    if source == "spec":
        return f"forward Euler at dt = {dt:g} s, reset to v_reset"
    if source == "snntorch":
        return (f"forward Euler at dt = {dt:g} s (snnTorch's fixed step, not in its graphs); Leaky's reset_mechanism "
                "is not in the graph: reset to v_reset, as snnTorch's import_from_nir does")
    if source == "norse":
        parts = [f"time constants read as written / dt (Norse 1.1's to_nir writes tau x dt), forward Euler at dt = "
                 f"{dt:g} s (to_nir's default 1e-3 unless --dt)"]
        if "CubaLIF" in kinds:
            parts.append("CubaLIF as Norse's LIFCell runs it (the input jumps the current unscaled)")
        if "IF" in kinds:
            parts.append("IF as its IAFCell (the input unscaled)")
        return "; ".join(parts + ["v_reset is not in Norse's graphs: its default 0"])
    scale = ("LIF input scaled by 1 - exp(-1/tau) (sinabs.layers.LIF's default norm_input; Sinabs' own from_nir "
             "reads it unscaled)" if norm_input
             else "LIF input as it is (norm_input=False, as Sinabs' from_nir reads it)")
    return (f"time constants in steps, decay exp(-1/tau); {scale}; MultiSpike (trunc(v / v_threshold) spikes a step) "
            "and MembraneSubtract, Sinabs' defaults, not in the graph")


def neuron_steps(node, kind: str, n: int, convention: Convention, name: str) -> NeuronSteps:
    """The per-step update of spiking node ``name`` (``kind``: LIF, CubaLIF or IF; ``n`` neurons)
    under ``convention``; NirImportError names the node and the parameter it cannot take."""
    dt, source = convention.dt, convention.source
    v_threshold = flat_values(node.v_threshold, n, "v_threshold", name)
    if np.any(v_threshold <= 0):
        raise NirImportError(f"node '{name}': v_threshold must be positive")
    v_reset = getattr(node, "v_reset", None)
    v_reset = np.zeros(n) if v_reset is None else flat_values(v_reset, n, "v_reset", name)
    r = flat_values(node.r, n, "r", name)
    zeros = np.zeros(n)
    if source == "sinabs":
        if kind == "CubaLIF":
            raise NirImportError(f"node '{name}' (CubaLIF): Sinabs writes no CubaLIF; if the graph is not Sinabs', "
                                 "pass --nir-source spec or norse")
        if kind == "IF":        # IAF: v = v + x
            return NeuronSteps(zeros, np.ones(n), zeros, v_threshold, v_reset, subtract_reset=True, multi_spike=True)
        if np.any(flat_values(node.v_leak, n, "v_leak", name) != 0):
            raise NirImportError(f"node '{name}': v_leak is not 0; Sinabs' LIF has no leak potential (as Sinabs' "
                                 "from_nir, refused); if the graph is not Sinabs', pass --nir-source spec")
        tau = flat_values(node.tau, n, "tau", name, allow_inf=True)
        if np.any(tau < 0):
            raise NirImportError(f"node '{name}': a negative time constant ({tau.min():g} steps)")
        with np.errstate(divide="ignore"):
            alpha = np.where(tau == 0, 0.0, np.exp(-1.0 / np.where(tau == 0, 1.0, tau)))
        decay = 1.0 - alpha
        return NeuronSteps(decay, decay.copy() if convention.sinabs_norm_input else np.ones(n), zeros, v_threshold,
                           v_reset, subtract_reset=True, multi_spike=True)
    if kind == "IF":
        # the spec integrates dt r x; Norse's IAFCell adds x
        return NeuronSteps(zeros, np.ones(n) if source == "norse" else dt * r, zeros, v_threshold, v_reset)
    # time constants: tau = inf is a neuron that never moves (dt / tau = 0)
    tau = _time_constant(node, "tau" if kind == "LIF" else "tau_mem", n, convention, name, allow_inf=True)
    k_mem = dt / tau
    # r is not used where the membrane does not move: 0 * r, never inf * 0
    leak = k_mem * flat_values(node.v_leak, n, "v_leak", name)
    steps = NeuronSteps(k_mem, np.where(k_mem == 0, 0.0, k_mem * r), leak, v_threshold, v_reset)
    if kind == "CubaLIF":
        tau_syn = _time_constant(node, "tau_syn", n, convention, name, allow_inf=False)
        steps.current_decay = dt / tau_syn
        # Norse's LIFCell: the input jumps the current as it is; the spec: k_syn w_in x
        steps.current_input = (np.ones(n) if source == "norse"
                               else steps.current_decay * flat_values(node.w_in, n, "w_in", name))
    return steps


def _time_constant(node, attribute: str, n: int, convention: Convention, name: str, allow_inf: bool) -> np.ndarray:
    """A time constant in seconds (Norse: as written / dt); below dt, Euler would overshoot."""
    tau = flat_values(getattr(node, attribute), n, attribute, name, allow_inf=allow_inf)
    dt = convention.dt
    if convention.source == "norse":
        tau = tau / dt
    if np.any(tau < dt):
        written = " (Norse: as written / dt)" if convention.source == "norse" else ""
        raise NirImportError(f"node '{name}': {attribute} = {tau.min():g} s{written}, below dt = {dt:g} s (Euler would "
                             "overshoot); give the graph's own dt (--dt)"
                             + ("" if convention.source == "norse" else " or its source (--nir-source)"))
    return tau
