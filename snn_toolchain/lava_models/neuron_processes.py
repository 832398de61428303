"""The Lava process of each neuron kind: kind name (``snn_toolchain.neurons.registry``) -> builder.

The core registers a kind's parameters, step and ``.net`` codec but may not import Lava, so the Lava
side of a kind is registered here, under the kind's name: a builder ``(layer, index) -> process``
that turns a ``QuantizedLayer``'s neurons into a Lava process with ports ``a_in`` and ``s_out`` and
the Vars the kind's ``state_names`` name (the runner zeroes them between samples). Builders import
Lava when called, so this module imports without Lava's runtime.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from snn_toolchain.quantized_network import NetworkError
from snn_toolchain.neurons.dynamics import FixedNeuronParams

# kind name -> builder(layer: QuantizedLayer, index: int) -> Lava process
LAVA_NEURON_PROCESSES: dict[str, Callable] = {}


class LavaBuildError(NetworkError):
    """The network or the samples cannot be run on Lava exactly; the message says why."""


def register_lava_neuron_process(kind_name: str, builder: Callable) -> Callable:
    """Build the Lava process of kind ``kind_name`` with ``builder``; refused when one is registered."""
    if kind_name in LAVA_NEURON_PROCESSES:
        raise ValueError(f"a Lava process is already registered for neuron kind {kind_name!r}")
    LAVA_NEURON_PROCESSES[kind_name] = builder
    return builder


def build_neuron_process(layer, index: int):
    """The Lava process of ``layer``'s neurons (a hidden layer of a validated QuantizedNetwork)."""
    kind = layer.neuron_kind
    builder = LAVA_NEURON_PROCESSES.get(kind.name)
    if builder is None:
        raise LavaBuildError(f"layer {layer.name}: no Lava process is registered for neuron kind {kind.name!r} "
                              f"(registered: {', '.join(LAVA_NEURON_PROCESSES)})")
    return builder(layer, index)


def build_adlif_process(layer, index: int):
    """Our AdLIF process, holding the quantizer's integers."""
    from snn_toolchain.lava_models.processes.adlif import AdLIF  # imports Lava

    params = FixedNeuronParams(*(np.asarray(p, dtype=np.int64) for p in layer.neuron))
    return AdLIF.from_fixed_params(params, name=f"adlif{index}")


def _scalar_if_uniform(values):
    values = np.asarray(values, dtype=np.int64)
    return int(values[0]) if np.all(values == values[0]) else values


def build_lif_process(layer, index: int):
    """Lava's stock LIF with NetX's mapping of lava-dl's CUBA keys (lava/lib/dl/netx/hdf5.py,
    get_neuron_params): ``du = iDecay - 1``, ``dv = vDecay``, ``vth = vThMant``, ``bias_exp = 6``.
    The layer's one vThMant is its weight scale: ``QuantizedLayer.validate`` holds a CUBA layer to
    one scale, and every neuron's threshold to ``vThMant << 6``."""
    from lava.proc.lif.process import LIF  # Lava is imported when a network is built, after import_lava_runtime

    params = layer.neuron
    bias = np.asarray(params.bias, dtype=np.int64)
    return LIF(shape=(layer.weight.shape[0],), du=_scalar_if_uniform(np.asarray(params.current_decay) - 1),
               dv=_scalar_if_uniform(params.voltage_decay), vth=int(layer.threshold_mant),
               bias_mant=bias.astype(np.int32), bias_exp=6, name=f"lif{index}")


register_lava_neuron_process("adlif", build_adlif_process)
register_lava_neuron_process("cuba", build_lif_process)
