"""Lava's CUBA LIF as a neuron kind: how lava-dl's stock networks (and our LIF exported for them) are
stored and checked. The arithmetic is :func:`snn_toolchain.neurons.dynamics.cuba_fixed_step`.

``.net`` keys of ``layer/<i>/neuron``, lava-dl's own: ``type`` b"CUBA", ``iDecay``, ``vDecay``
(12-bit; scalars, or per-neuron arrays where they differ), ``vThMant``, ``refDelay`` (0),
``gradedSpike`` (0). The summing readout is written with these keys too (``netcodec.write_cuba``).
Core module: numpy only.
"""

from __future__ import annotations

import numpy as np

from snn_toolchain import constants as C
from snn_toolchain.neurons.dynamics import CubaFixedParams, cuba_fixed_step
from snn_toolchain.neurons.interface import FieldCheck, NeuronKind


def write_cuba_keys(group, current_decay, voltage_decay, threshold_mant: int) -> None:
    """lava-dl's CUBA keys but ``type``. NetX reads scalar decays; per-neuron values are written as
    arrays only when they differ (the stock reader broadcasts either)."""
    for key, values in (("iDecay", current_decay), ("vDecay", voltage_decay)):
        values = np.asarray(values, dtype=np.int32)
        group.create_dataset(key, data=values[0] if np.all(values == values[0]) else values)
    group.create_dataset("vThMant", data=threshold_mant)
    group.create_dataset("refDelay", data=0)
    group.create_dataset("gradedSpike", data=0)


def write_cuba_layer(group, layer) -> None:
    write_cuba_keys(group, layer.neuron.current_decay, layer.neuron.voltage_decay, layer.threshold_mant)


def read_cuba(context) -> tuple:
    n = context.out_features
    if np.ndim(context.threshold_mant):
        raise context.fail("a CUBA layer (Lava's LIF) holds one vThMant, not one per neuron")
    threshold = np.full(n, context.threshold_mant << C.ACTIVATION_SHIFT, dtype=np.int64)
    stored = [context.array(name) for name in ("iDecay", "vDecay")]   # its own errors name the key
    try:
        decays = [np.broadcast_to(values, (n,)).astype(np.int64) for values in stored]
    except ValueError:
        raise context.fail(f"neuron iDecay/vDecay do not match its {n} neurons") from None
    return CubaFixedParams(decays[0], decays[1], context.bias, threshold), "cuba"


def cuba_fractions(params) -> dict:
    """The voltage decay as the float LIF's alpha (fraction of the membrane kept per step)."""
    return {"alpha": 1.0 - np.asarray(params.voltage_decay) / C.DECAY_UNITY}


CUBA_KIND = NeuronKind(
    name="cuba", net_type="CUBA", params_type=CubaFixedParams, fixed_step=cuba_fixed_step,
    write=write_cuba_layer, read=read_cuba, state_names=("u", "v"),
    field_checks=(FieldCheck("current_decay", "iDecay", "decay"), FieldCheck("voltage_decay", "vDecay", "decay")),
    check_shapes=False, fractions=cuba_fractions)
