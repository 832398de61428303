"""One layer of a network imported from a NIR graph: its connection (an ``Affine``/``Linear`` node, or
this toolchain's per-synapse delay expansion) and the neurons it feeds (``LIF``, ``CubaLIF``, ``IF``
as Lava's CUBA, a Sinabs LIF as this toolchain's soft-reset LIF, or this toolchain's AdLIF
subgraph), read as the graph's convention says (``nir_conventions.py``: spec, snnTorch, Norse,
Sinabs) and quantized. The discretisation is stated in ``nir_import.py``'s docstring and
docs/nir.md; every change it makes is appended to ``changes``, one line each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from snn_toolchain.export.nir_conventions import NAMES, Convention, neuron_steps
from snn_toolchain.export.nir_export import ADLIF_SUBGRAPH, DELAY_EXPANSION, NIR_METADATA_KEY
from snn_toolchain.export.nir_graph import (
    NirImportError,
    adlif_subgraph_params,
    delay_steps,
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


def _spiking_layer(node, kind: str, name: str, connection: Connection, convention: Convention, layer: str,
                   changes: list):
    """The layer of a LIF, CubaLIF or IF node, as ``convention`` reads it (``neuron_steps``): Lava's
    CUBA (reset to 0), or, for a subtracting reset on a leaky membrane whose input is scaled by its
    decay (Sinabs' LIF), this toolchain's LIF arithmetic, which subtracts the threshold as Sinabs does."""
    n = connection.weight.shape[0]
    steps = neuron_steps(node, kind, n, convention, name)
    v_threshold, k_mem = steps.v_threshold, steps.voltage_decay
    who = "" if convention.source in ("spec", "snntorch") else f", {NAMES[convention.source]}"
    spikes = ", one spike per step (Sinabs' MultiSpike may emit several)" if steps.multi_spike else ""
    moving = k_mem > 0
    if steps.subtract_reset and steps.current_decay is None and np.all(steps.voltage_input[~moving] == 0):
        # u = alpha (u - s) + (1 - alpha) I, I in threshold units: Sinabs' v = alpha v + c x with
        # v -= s v_threshold carried into the next step, for I = c x / (1 - alpha) (c = 1 - alpha
        # with norm_input); a neuron that never moves (tau = inf) gets no input
        ratio = np.divide(steps.voltage_input, k_mem, out=np.zeros(n), where=moving)
        leak = np.divide(steps.leak, k_mem, out=np.zeros(n), where=moving)
        zeros = np.zeros(n)
        changes.append(f"node '{name}' ({kind}{who}): voltage decay {_range(k_mem)} per step, soft reset (the "
                       f"threshold subtracted, this toolchain's LIF arithmetic){spikes}, 12-bit decays")
        return quantize_layer(layer, connection.weight * (ratio / v_threshold)[:, None], connection.delay,
                              (connection.bias * ratio + leak) / v_threshold,
                              NeuronParams(1.0 - k_mem, zeros, zeros, zeros), "lif")
    if not steps.subtract_reset and np.any(steps.v_reset != 0):
        raise NirImportError(f"node '{name}': v_reset is not 0; Loihi 2's LIF (Lava's CUBA) resets to 0")
    scale, bias_scale = steps.voltage_input, None
    if steps.current_decay is not None:
        # the Affine's bias is filtered by the current like the input, but Lava adds a bias to
        # the voltage directly: give it the current's steady state, current_input / current_decay
        bias_scale = scale * steps.current_input / steps.current_decay
        scale = scale * steps.current_input
        if np.any(connection.bias != 0) and np.any(steps.current_decay < 1):
            changes.append(f"node '{name}' (CubaLIF): its bias enters the voltage at the current's steady "
                           f"state from the first step (NIR filters it in over tau_syn)")
    weight = connection.weight * (scale / v_threshold)[:, None]
    bias = (connection.bias * (scale if bias_scale is None else bias_scale) + steps.leak) / v_threshold
    alpha = 1.0 - k_mem
    zeros = np.zeros(n)
    reset = ", the subtracting reset deployed as reset to 0 (Lava's CUBA)" if steps.subtract_reset else ", reset to 0"
    euler = "in steps" if convention.source == "sinabs" else f"Euler at dt = {convention.dt:g} s"
    changes.append(f"node '{name}' ({kind}{who}): {euler} -> Lava CUBA, voltage decay "
                   f"{_range(k_mem)} per step"
                   + ("" if steps.current_decay is None else f", current decay {_range(steps.current_decay)} per step")
                   + f"{reset}{spikes}, 12-bit decays")
    return quantize_layer(layer, weight, connection.delay, bias, NeuronParams(alpha, zeros, zeros, zeros), "lif",
                          as_cuba=True, current_decay=steps.current_decay)


def _range(values) -> str:
    values = np.asarray(values)
    return f"{values.min():.4g}" if np.allclose(values, values.min()) else f"{values.min():.4g}..{values.max():.4g}"


def _adlif_layer(subgraph, name: str, connection: Connection, dt: float, layer: str, changes: list):
    params = adlif_subgraph_params(subgraph, connection.weight.shape[0], dt, name)
    changes.append(f"node '{name}' (AdLIF subgraph): Euler at dt = {dt:g} s, 12-bit decays and coupling")
    return quantize_layer(layer, connection.weight, connection.delay, connection.bias, params,
                          subgraph.metadata.get("variant", "adlif+"))


def neuron_layer(node, name: str, connection: Connection, convention: Convention, layer: str, changes: list):
    """The quantized layer of ``connection`` and the neurons of ``node`` (named ``name`` in the graph,
    ``layer`` in the network), read as ``convention`` says (``nir_conventions.py``)."""
    import nir

    kind = type(node).__name__
    if kind in SPIKING_NODES:
        return _spiking_layer(node, kind, name, connection, convention, layer, changes)
    if isinstance(node, nir.NIRGraph) and node.metadata.get(NIR_METADATA_KEY) == ADLIF_SUBGRAPH:
        return _adlif_layer(node, name, connection, convention.dt, layer, changes)
    raise NirImportError(f"node '{name}' ({kind}): not supported; this toolchain deploys Affine/Linear, LIF, "
                         "CubaLIF, IF and per-channel Delay nodes in a feed-forward chain"
                         + (" (LI: a non-spiking readout; end the graph with Affine -> Output, whose summed "
                            "output is the class scores)" if kind == "LI" else ""))
