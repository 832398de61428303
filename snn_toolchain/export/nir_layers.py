"""One layer of a network imported from a NIR graph: its connection (an ``Affine``/``Linear`` node, or
this toolchain's per-synapse delay expansion) and the neurons it feeds (``LIF``, ``CubaLIF``, ``IF``
as Lava's CUBA, or this toolchain's AdLIF subgraph), discretised at ``dt`` seconds and quantized.
The discretisation is stated in ``nir_import.py``'s docstring and docs/nir.md; every change it
makes is appended to ``changes``, one line each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from snn_toolchain.export.nir_export import ADLIF_SUBGRAPH, DELAY_EXPANSION, NIR_METADATA_KEY
from snn_toolchain.export.nir_graph import (
    NirImportError,
    adlif_subgraph_params,
    delay_steps,
    flat_values,
    real_values,
)
from snn_toolchain.neurons.dynamics import NeuronParams
from snn_toolchain.train.model.quantize import quantize_layer

SPIKING_NODES = ("LIF", "CubaLIF", "IF")


@dataclass
class Connection:
    """A connection before its neurons are known: float weight (out, in) and bias (out,) as the
    graph gives them, delays in whole steps."""

    weight: np.ndarray
    bias: np.ndarray
    delay: np.ndarray          # whole steps (out, in)


def _count(value, what: str, node: str) -> int:
    """A neuron count from a node's metadata: a whole number of at least 1 (anything else, a NaN,
    an infinity, a string, an array, is refused naming the node)."""
    try:
        number = float(np.asarray(value).item())
    except (TypeError, ValueError):
        number = float("nan")
    if not (math.isfinite(number) and number >= 1 and number == int(number)):
        raise NirImportError(f"node '{node}': metadata '{what}' = {' '.join(repr(value).split())[:60]} is not a neuron count "
                             "(a whole number, at least 1); export the graph again")
    return int(number)


def connection_at(nodes, names: list, index: int, marker, axonal_delay, dt: float,
                  changes: list) -> tuple[Connection, int]:
    """The connection that starts at ``names[index]`` (``marker``: its node's NIR_METADATA_KEY), with
    ``axonal_delay`` (whole steps per input, from Delay nodes before it; None: none) added to its
    delays; and the index of the node after it."""
    name = names[index]
    if marker == DELAY_EXPANSION:
        connection, after = delay_expansion(nodes, names, index, dt, changes)
    else:
        connection, after = plain_connection(nodes[name], name), index + 1
    if axonal_delay is not None:
        if axonal_delay.shape[0] != connection.weight.shape[1]:
            raise NirImportError(f"node '{name}': the Delay before it has {axonal_delay.shape[0]} channels, "
                                 f"it takes {connection.weight.shape[1]}")
        connection.delay = connection.delay + axonal_delay[None, :]
    return connection, after


def delay_expansion(nodes, names: list, index: int, dt: float, changes: list) -> tuple[Connection, int]:
    """Our per-synapse delay expansion at ``names[index]`` (fan-out Linear, Delay, Affine)."""
    import nir

    fan, delay_node, gather = (nodes[names[index + k]] for k in range(3))
    name = names[index + 2]
    if not (isinstance(fan, nir.Linear) and isinstance(delay_node, nir.Delay)
            and isinstance(gather, (nir.Affine, nir.Linear))):
        raise NirImportError(f"node '{names[index]}': marked as a per-synapse delay expansion but not followed by "
                             "Delay and Affine/Linear")
    n_in, n_out = (_count(fan.metadata.get(key), key, names[index]) for key in ("in", "out"))
    units = n_in * n_out
    if np.asarray(fan.weight).shape != (units, n_in):   # before anything of that size is made
        raise NirImportError(f"node '{names[index]}': its weight has shape {np.asarray(fan.weight).shape}, "
                             f"not ({units}, {n_in}) as its metadata in = {n_in}, out = {n_out} say")
    expected = np.zeros((units, n_in))
    expected[np.arange(units), np.tile(np.arange(n_in), n_out)] = 1.0
    gather_weight = real_values(gather.weight, "weight", name)
    block = np.zeros((n_out, units), dtype=bool)
    block[np.repeat(np.arange(n_out), n_in), np.arange(units)] = True
    if np.asarray(fan.weight).shape != expected.shape or not np.array_equal(np.asarray(fan.weight), expected) \
            or gather_weight.shape != (n_out, units) or np.any(gather_weight[~block] != 0):
        raise NirImportError(f"node '{name}': not in the per-synapse delay expansion's layout "
                             f"(one-hot fan-out {units} x {n_in}, block gather {n_out} x {units})")
    weight = gather_weight[block].reshape(n_out, n_in)
    _not_empty(weight, name)
    bias = real_values(gather.bias, "bias", name) if isinstance(gather, nir.Affine) else np.zeros(n_out)
    delay = delay_steps(delay_node.delay, dt, names[index + 1], changes).reshape(n_out, n_in)
    return Connection(weight, bias, delay), index + 3


def plain_connection(node, name: str) -> Connection:
    """The connection of an ``Affine`` or ``Linear`` node (a ``Linear`` has no bias), without delays."""
    import nir

    weight = real_values(node.weight, "weight", name)
    if weight.ndim != 2:
        raise NirImportError(f"node '{name}': weight of shape {weight.shape}; only dense (out, in) layers are supported")
    _not_empty(weight, name)
    bias = real_values(node.bias, "bias", name) if isinstance(node, nir.Affine) else np.zeros(weight.shape[0])
    return Connection(weight, bias.reshape(-1), np.zeros(weight.shape, dtype=np.int64))


def _not_empty(weight: np.ndarray, name: str) -> None:
    n_out, n_in = weight.shape
    if n_out == 0 or n_in == 0:
        raise NirImportError(f"node '{name}': a connection with {n_out} outputs and {n_in} inputs (weight shape "
                             f"{weight.shape}); every layer needs at least one input and one output: fix the graph")


def _spiking_layer(node, kind: str, name: str, connection: Connection, dt: float, layer: str, changes: list):
    n = connection.weight.shape[0]
    v_threshold = flat_values(node.v_threshold, n, "v_threshold", name)
    if np.any(v_threshold <= 0):
        raise NirImportError(f"node '{name}': v_threshold must be positive")
    v_reset = getattr(node, "v_reset", None)
    if v_reset is not None and np.any(flat_values(v_reset, n, "v_reset", name) != 0):
        raise NirImportError(f"node '{name}': v_reset is not 0; Loihi 2's LIF (Lava's CUBA) resets to 0")
    r = flat_values(node.r, n, "r", name)
    current_decay = None
    bias_scale = None
    if kind == "IF":
        k_mem, scale, leak = np.zeros(n), dt * r, np.zeros(n)
    else:
        # tau = inf: no decay and no input (dt / tau = 0); from the zero state, a silent neuron
        tau = flat_values(node.tau if kind == "LIF" else node.tau_mem, n, "tau" if kind == "LIF" else "tau_mem", name,
                          allow_inf=True)
        if np.any(tau < dt):
            raise NirImportError(f"node '{name}': a time constant below dt = {dt:g} s (Euler would overshoot); "
                                 "give the graph's own dt")
        k_mem = dt / tau
        scale, leak = k_mem * r, k_mem * flat_values(node.v_leak, n, "v_leak", name)
        if kind == "CubaLIF":
            tau_syn = flat_values(node.tau_syn, n, "tau_syn", name)
            if np.any(tau_syn < dt):
                raise NirImportError(f"node '{name}': tau_syn below dt = {dt:g} s")
            current_decay = dt / tau_syn
            w_in = flat_values(node.w_in, n, "w_in", name)
            # the Affine's bias is filtered by the current like the input, but Lava adds a bias to
            # the voltage directly: give it the current's steady state, w_in * bias
            bias_scale = scale * w_in
            scale = scale * current_decay * w_in
            if np.any(connection.bias != 0) and np.any(current_decay < 1):
                changes.append(f"node '{name}' (CubaLIF): its bias enters the voltage at the current's steady "
                               f"state from the first step (NIR filters it in over tau_syn)")
    weight = connection.weight * (scale / v_threshold)[:, None]
    bias = (connection.bias * (scale if bias_scale is None else bias_scale) + leak) / v_threshold
    alpha = 1.0 - k_mem
    zeros = np.zeros(n)
    changes.append(f"node '{name}' ({kind}): Euler at dt = {dt:g} s -> Lava CUBA, voltage decay "
                   f"{_range(k_mem)} per step"
                   + ("" if current_decay is None else f", current decay {_range(current_decay)} per step")
                   + ", reset to 0, 12-bit decays")
    return quantize_layer(layer, weight, connection.delay, bias, NeuronParams(alpha, zeros, zeros, zeros), "lif",
                          as_cuba=True, current_decay=current_decay)


def _range(values) -> str:
    values = np.asarray(values)
    return f"{values.min():.4g}" if np.allclose(values, values.min()) else f"{values.min():.4g}..{values.max():.4g}"


def _adlif_layer(subgraph, name: str, connection: Connection, dt: float, layer: str, changes: list):
    params = adlif_subgraph_params(subgraph, connection.weight.shape[0], dt, name)
    changes.append(f"node '{name}' (AdLIF subgraph): Euler at dt = {dt:g} s, 12-bit decays and coupling")
    return quantize_layer(layer, connection.weight, connection.delay, connection.bias, params,
                          subgraph.metadata.get("variant", "adlif+"))


def neuron_layer(node, name: str, connection: Connection, dt: float, layer: str, changes: list):
    """The quantized layer of ``connection`` and the neurons of ``node`` (named ``name`` in the graph,
    ``layer`` in the network)."""
    import nir

    kind = type(node).__name__
    if kind in SPIKING_NODES:
        return _spiking_layer(node, kind, name, connection, dt, layer, changes)
    if isinstance(node, nir.NIRGraph) and node.metadata.get(NIR_METADATA_KEY) == ADLIF_SUBGRAPH:
        return _adlif_layer(node, name, connection, dt, layer, changes)
    raise NirImportError(f"node '{name}' ({kind}): not supported; this toolchain deploys Affine/Linear, LIF, "
                         "CubaLIF, IF and per-channel Delay nodes in a feed-forward chain"
                         + (" (LI: a non-spiking readout; end the graph with Affine -> Output, whose summed "
                            "output is the class scores)" if kind == "LI" else ""))
