"""The ``layer/<i>`` group of a ``.net`` file: lava-dl's NetX keys plus ours (docs/file_format.md).

Part of the core because a trained block writes its own group (SLAYER's ``export_hdf5``) as well as
``export/netfile.py``, which writes and reads whole files. Works on any h5py group; imports numpy only.
"""

from __future__ import annotations

import numpy as np

from snn_toolchain import constants as C
from snn_toolchain.neurons.cuba import write_cuba_keys


def ascii_bytes(text: str):
    """A short ASCII string as lava-dl stores its ``type`` fields."""
    return np.array([text.encode("ascii")], dtype="S10")


def write_layer(group, layer) -> None:
    """One ``layer/<i>`` group in lava-dl's keys plus ours (also each block's ``export_hdf5``)."""
    out_features, in_features = layer.weight.shape
    group.create_dataset("type", data=ascii_bytes("dense"))
    group.create_dataset("shape", data=np.array([out_features]))
    group.create_dataset("inFeatures", data=in_features)
    group.create_dataset("outFeatures", data=out_features)
    group.create_dataset("weight", data=layer.weight.astype(np.int32))
    group.create_dataset("bias", data=layer.bias.astype(np.int32))
    group.create_dataset("delay", data=layer.delay.astype(np.int32))
    group.create_dataset("weightScale", data=layer.weight_scale)
    if layer.input_shift:
        # only where it is not 0: stock lava-dl readers know no such key, and a layer without it
        # computes exactly what they compute
        group.create_dataset("inputShift", data=int(layer.input_shift))
    neuron = group.create_group("neuron")
    if layer.neuron is None:
        neuron.attrs["role"] = "sum-readout"
        write_cuba(neuron, np.full(out_features, C.DECAY_UNITY), np.zeros(out_features), C.READOUT_THRESHOLD_MANT)
    else:
        kind = layer.neuron_kind
        neuron.create_dataset("type", data=ascii_bytes(kind.net_type))
        kind.write(neuron, layer)


def write_cuba(group, current_decay, voltage_decay, threshold_mant: int) -> None:
    """A CUBA neuron group in lava-dl's keys (the summing readout is written so)."""
    group.create_dataset("type", data=ascii_bytes("CUBA"))
    write_cuba_keys(group, current_decay, voltage_decay, threshold_mant)
