"""A NIR graph as this toolchain reads it: its nodes in order, their parameters as real numbers,
delays as whole steps, and the parameters of this toolchain's AdLIF subgraph. Shared by the import
(``nir_import.py``, ``nir_layers.py``) and the reference simulation (``nir_simulate.py``); anything
else is refused with one line naming the node and why.
"""

from __future__ import annotations

import numpy as np

from snn_toolchain.constants import LOIHI_MAX_DELAY
from snn_toolchain.errors import ToolchainError
from snn_toolchain.neurons.dynamics import NeuronParams


class NirImportError(ToolchainError):
    """A NIR graph this toolchain cannot deploy; the message names the node and the reason."""


def real_values(values, what: str, node: str) -> np.ndarray:
    """``values`` as float64; complex numbers are refused (a float cast would drop their imaginary
    part without a word), as is anything that is no number."""
    array = np.asarray(values)
    if np.iscomplexobj(array):
        raise NirImportError(f"node '{node}': {what} holds complex numbers ({array.dtype}); NIR parameters of a "
                             "deployable network are real: write the graph with real arrays")
    try:
        return array.astype(np.float64)
    except (TypeError, ValueError):
        raise NirImportError(f"node '{node}': {what} is not numeric ({array.dtype}); write the graph with real "
                             "arrays") from None


def flat_values(values, n: int, what: str, node: str, allow_inf: bool = False) -> np.ndarray:
    """``values`` as n float64 numbers (a scalar is broadcast); NaN and infinities are refused,
    ``+inf`` allowed where ``allow_inf`` (a time constant: no decay)."""
    array = real_values(values, what, node)
    try:
        array = np.broadcast_to(array.reshape(-1) if array.size == n else array, (n,)).astype(np.float64)
    except ValueError:
        raise NirImportError(f"node '{node}': {what} has shape {np.shape(values)}, expected ({n},)") from None
    bad = ~np.isfinite(array) & ~(allow_inf & (array == np.inf))
    if np.any(bad):
        index = int(np.argmax(bad))
        raise NirImportError(f"node '{node}': {what}[{index}] = {array[index]}; NaN and infinite values cannot be "
                             "deployed" + (" (only +inf, no decay, is taken here)" if allow_inf else ""))
    return array


def node_chain(graph, path: str) -> list:
    """The node names from the graph's Input to its Output, in order; one line if it is no chain."""
    import nir

    nodes = graph.nodes
    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    outputs = [k for k, n in nodes.items() if isinstance(n, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise NirImportError(f"{path}: the graph has {len(inputs)} Input and {len(outputs)} Output nodes; only "
                             "feed-forward chains with one of each are supported")
    successors: dict = {}
    for source, target in graph.edges:
        successors.setdefault(source, []).append(target)
    order, current = [inputs[0]], inputs[0]
    while current != outputs[0]:
        following = successors.get(current, [])
        if len(following) != 1:
            raise NirImportError(f"node '{current}': it feeds {len(following)} nodes "
                                 f"({', '.join(following) or 'none'}); only feed-forward chains are supported")
        current = following[0]
        if current in order:
            raise NirImportError(f"node '{current}': the graph has a cycle outside a neuron subgraph; "
                                 "recurrent connections are not supported")
        order.append(current)
    return order


def delay_steps(delay_seconds, dt: float, node: str, changes: list) -> np.ndarray:
    """Delays in seconds as whole steps of ``dt``; NaN, infinite, negative and undeployable delays
    are refused with their value as the graph gives it (a cast would turn them into -2^63)."""
    seconds = real_values(delay_seconds, "delay", node)
    with np.errstate(over="ignore", invalid="ignore"):
        steps = seconds / dt
    rounded = np.round(steps)
    bad = ~np.isfinite(steps) | (rounded < 0) | (rounded > LOIHI_MAX_DELAY)
    if np.any(bad):
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        shown = f"delay{list(index)} = {seconds[index]:g} s"
        hint = "fix the graph"
        if not np.isfinite(seconds[index]):
            why = "not a finite number of seconds"
        elif rounded[index] < 0:
            why = "negative"
        else:
            why = f"{steps[index]:g} steps of dt = {dt:g} s, more than Loihi 2's largest delay"
            hint = "fix the graph, or give its own dt (--dt)"
        raise NirImportError(f"node '{node}': {shown} is {why}; a Delay holds 0..{LOIHI_MAX_DELAY * dt:g} s "
                             f"(0..{LOIHI_MAX_DELAY} steps): {hint}")
    off = float(np.abs(steps - rounded).max()) if steps.size else 0.0
    if off > 1e-6:
        changes.append(f"node '{node}': delays rounded to whole steps of {dt:g} s (up to {off:.3f} steps off)")
    return rounded.astype(np.int64)


def adlif_subgraph_params(subgraph, n: int, dt: float, name: str) -> NeuronParams:
    """The float AdLIF parameters (alpha, beta, a, b per step) of this toolchain's AdLIF subgraph
    (``nir_export.adlif_subgraph``), checked to be in its layout: the one reading of the subgraph,
    for the import and for the reference simulation (which then runs ``adlif_float_step``)."""
    nodes = subgraph.nodes
    missing = [k for k in ("u", "w", "coupling", "jump", "adaptation", "reset", "spike") if k not in nodes]
    if missing:
        raise NirImportError(f"node '{name}': an AdLIF subgraph without {', '.join(missing)}")
    tau_u = flat_values(nodes["u"].tau, n, "u.tau", name, allow_inf=True)
    silent = np.isinf(tau_u)          # alpha = 1: written with tau = inf and a reset scale of 0
    alpha = np.where(silent, 1.0, 1.0 - dt / tau_u)
    beta = 1.0 - dt / flat_values(nodes["w"].tau, n, "w.tau", name)
    # the import keeps alpha, beta, a and b: the rest must be what nir_export writes, else the
    # subgraph means another neuron
    reset = np.where(silent, 0.0, -alpha / np.where(silent, 1.0, 1.0 - alpha))
    expected = {"u.r": (nodes["u"].r, 1.0), "w.r": (nodes["w"].r, 1.0 / (1.0 - beta)),
                "adaptation": (nodes["adaptation"].scale, -1.0), "spike": (nodes["spike"].threshold, 1.0),
                "reset": (nodes["reset"].scale, reset)}
    for what, (stored, value) in expected.items():
        if not np.allclose(flat_values(stored, n, what, name), value, rtol=1e-9, atol=1e-12):
            raise NirImportError(f"node '{name}': its {what} is not this toolchain's AdLIF subgraph layout "
                                 "(nir_export.adlif_subgraph); such a recurrent subgraph is not supported")
    return NeuronParams(alpha, beta, flat_values(nodes["coupling"].scale, n, "coupling", name),
                        flat_values(nodes["jump"].scale, n, "jump", name))
