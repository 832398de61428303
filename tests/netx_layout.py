"""Small ``.net`` files written key by key as lava-dl writes them (slayer/block/base.py
``export_hdf5``): the layer 'type' a (1,) S10 array, 'shape', 'inFeatures', 'outFeatures',
'weight', 'delay' and 'neuron/<device parameter>'; for the tests of our reader on lava-dl's files."""

from __future__ import annotations

import numpy as np


def write_netx_type(group, name: str) -> None:
    """A layer's 'type' as lava-dl writes it: a (1,) S10 array."""
    group.create_dataset("type", (1,), "S10", [name.encode("ascii")])


def write_netx_dense(group, weight, delay=None, neuron=None) -> None:
    """A dense layer: weights (out, in) and optional delays as float32, as lava-dl stores them, and
    the ``neuron`` parameters (a dict; None: no neuron group, NetX's integrator)."""
    write_netx_type(group, "dense")
    group.create_dataset("shape", data=np.array([weight.shape[0]]))
    group.create_dataset("inFeatures", data=weight.shape[1])
    group.create_dataset("outFeatures", data=weight.shape[0])
    group.create_dataset("weight", data=weight.astype(np.float32))
    if delay is not None:
        group.create_dataset("delay", data=delay.astype(np.float32))
    for key, value in (neuron or {}).items():
        group.create_dataset(f"neuron/{key}", data=value)
