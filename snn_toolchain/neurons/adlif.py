"""The AdLIF neuron kind (LIF, AdLIF and AdLIF+ share its arithmetic): its ``.net`` codec and checks.

The equations are :func:`snn_toolchain.neurons.dynamics.adlif_fixed_step` (and the float twin); this
module tells the rest of the toolchain how such a layer is stored and checked. ``.net`` keys of
``layer/<i>/neuron`` (docs/file_format.md): ``type`` b"ADLIF", ``alpha``, ``beta``, ``a`` (12-bit
fractions of 4096, per neuron), ``b`` (membrane units, per neuron), ``vThMant``, attr ``variant``.
Core module: numpy only.
"""

from __future__ import annotations

import numpy as np

from snn_toolchain import constants as C
from snn_toolchain.neurons.dynamics import FixedNeuronParams, adlif_fixed_step, adlif_float_step
from snn_toolchain.neurons.interface import FieldCheck, NeuronKind

ADLIF_NET_KEYS = ("alpha", "beta", "a", "b")


def write_adlif(group, layer) -> None:
    group.attrs["variant"] = layer.neuron_variant
    for name in ADLIF_NET_KEYS:
        group.create_dataset(name, data=np.asarray(getattr(layer.neuron, name)).astype(np.int32))
    group.create_dataset("vThMant", data=layer.threshold_mant)


def read_adlif(context) -> tuple:
    threshold = np.broadcast_to(np.asarray(context.threshold_mant, dtype=np.int64) << C.ACTIVATION_SHIFT,
                                (context.out_features,)).copy()
    alpha, beta, a, b = (context.array(name, ndim=1) for name in ADLIF_NET_KEYS)
    return FixedNeuronParams(alpha, beta, a, b, context.bias, threshold), str(context.group.attrs.get("variant", "adlif+"))


def adlif_fractions(params) -> dict:
    """alpha, beta, a as fractions per step; b in threshold units."""
    threshold = np.asarray(params.threshold, dtype=np.float64)
    return {"alpha": np.asarray(params.alpha) / C.DECAY_UNITY, "beta": np.asarray(params.beta) / C.DECAY_UNITY,
            "a": np.asarray(params.a) / C.DECAY_UNITY, "b": np.asarray(params.b) / threshold}


ADLIF_KIND = NeuronKind(
    name="adlif", net_type="ADLIF", params_type=FixedNeuronParams, fixed_step=adlif_fixed_step,
    write=write_adlif, read=read_adlif, state_names=("u", "w", "s"),
    field_checks=(FieldCheck("alpha", "alpha", "decay"), FieldCheck("beta", "beta", "decay"),
                  FieldCheck("a", "a", "coupling"), FieldCheck("b", "b", "adaptation_jump")),
    check_shapes=True, float_step=adlif_float_step, fractions=adlif_fractions, per_neuron_threshold=True)
