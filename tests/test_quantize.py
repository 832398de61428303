"""A trained DelaySNN as a QuantizedNetwork (train/model/quantize.py): BatchNorm is folded at export,
so the .net file holds none of it, and each block exports its own NetX layer, the same as the
whole network's.
"""

from __future__ import annotations

import h5py
import numpy as np

from model_support import batchnorm_model, trained_like_model as _trained_like_model
from snn_toolchain.export.netfile import read_net, write_net
from snn_toolchain.train.model.quantize import quantize_model


def test_export_folds_batchnorm_so_the_net_file_holds_none(tmp_path):
    model = batchnorm_model()
    network = quantize_model(model, 110)
    folded_network = quantize_model(model.folded(), 110)
    for layer, folded_layer in zip(network.layers, folded_network.layers):
        np.testing.assert_array_equal(layer.weight, folded_layer.weight)
        np.testing.assert_array_equal(layer.bias, folded_layer.bias)
    assert np.abs(network.layers[0].bias).max() > 0, "the BN shift must reach the neuron's bias"
    path = write_net(network, tmp_path / "model.net")
    import h5py

    with h5py.File(path, "r") as handle:
        names = []
        handle.visit(names.append)
    assert not [n for n in names if "norm" in n.lower() or "running" in n.lower()]
    back = read_net(path)
    np.testing.assert_array_equal(back.layers[0].bias, network.layers[0].bias)


def test_each_block_exports_its_own_netx_layer(tmp_path):
    model = _trained_like_model()
    with h5py.File(tmp_path / "blocks.h5", "w") as f:
        for index, block in enumerate(list(model.blocks) + [model.readout]):
            block.export_hdf5(f.create_group(f"layer/{index}"))
        f.attrs["time_steps"] = 20
    from_blocks = read_net(tmp_path / "blocks.h5")
    whole = quantize_model(model, 20)
    for a, b in zip(from_blocks.layers, whole.layers):
        np.testing.assert_array_equal(a.weight, b.weight)
        np.testing.assert_array_equal(a.delay, b.delay)
    assert from_blocks.layers[0].neuron_variant == "adlif+" and from_blocks.layers[-1].neuron is None
