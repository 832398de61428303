"""A LIF network exported as lava-dl CUBA runs in the STOCK NetX reader exactly as our emulator says.

A small ``DelaySNN(variant='lif')`` is quantized (``quantize_model``, LIF -> CUBA) and written
(``write_net``); ``lava.lib.dl.netx.hdf5.Network(net_config=path, input_message_bits=8)`` loads it
unchanged and runs it on ``Loihi2SimCfg(select_tag='fixed_pt')``. Stock NetX does take graded
input on the first layer: ``input_message_bits > 0`` makes its first synapse graded, so the
inputs here are graded spike counts (0..4). Per-neuron ``vDecay`` arrays load too.

Checked, with and without trained delays (NetX always builds DelayDense, max_delay 62): every
spike of both hidden layers at every step, and the readout synapse's input at every step, equal
``Emulator`` on ``read_net(path)`` and the LIF model itself in its deployed arithmetic, for two
samples run back to back with the state and delay buffers reset in between. The same file through our ``build_lava_network`` (stock LIF processes,
our synapses) gives the same integers.

All Lava work runs in one worker subprocess under a timeout (tests/lava_support.py).
"""

from __future__ import annotations


import numpy as np
import pytest
import torch

from lava_support import run_isolated, run_stock_netx
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.export.netfile import read_net, write_net
from snn_toolchain.train.model.quantize import quantize_model
from snn_toolchain.neurons.dynamics import CubaFixedParams
from snn_toolchain.train.model.delay_snn import DelaySNN
from snn_toolchain.train.model.float_backend import FloatModelBackend

WORKER_TIMEOUT_S = 300
TIME_STEPS = 40
N_INPUTS, HIDDEN, CLASSES = 12, 10, 4


def lif_model(delays: bool, seed: int = 0) -> DelaySNN:
    torch.manual_seed(seed)
    model = DelaySNN(N_INPUTS, CLASSES, hidden=HIDDEN, variant="lif", delays=delays, max_delay=20, dropout=0.0)
    with torch.no_grad():
        for block in list(model.blocks) + [model.readout]:
            block.synapse.weight.mul_(6.0)               # Xavier weights barely fire a 10-neuron layer
            if delays:
                block.synapse.delay.uniform_(0, 20)
    return model.eval()


def samples(seed: int = 0, count: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.where(rng.random((count, TIME_STEPS, N_INPUTS)) < 0.4, rng.integers(1, 5, (count, TIME_STEPS, N_INPUTS)), 0)
    x[:, -3:] = 0
    return x.astype(np.int64)


@pytest.fixture(scope="module")
def net_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stock_netx")
    paths = {}
    for delays in (False, True):
        paths[delays] = str(write_net(quantize_model(lif_model(delays), TIME_STEPS), folder / f"lif_delays_{delays}.net"))
    return paths


# ------------------------------------------------------------------------------ worker (Lava side)

def lava_worker(paths: dict, inputs: np.ndarray) -> dict:
    from snn_toolchain.lava_models.build import build_lava_network

    out = {}
    for delays, path in paths.items():
        network = read_net(path)
        out[("netx", delays)] = run_stock_netx(path, inputs, network.run_steps, input_message_bits=8)
        out[("ours", delays)] = build_lava_network(network, samples=inputs, synapse="ring").run(progress=False)
    return out


@pytest.fixture(scope="module")
def lava_results(net_files, tmp_path_factory):
    return run_isolated("test_lava_stock_netx:lava_worker", (net_files, samples()),
                        tmp_path_factory.mktemp("stock_netx_worker"), WORKER_TIMEOUT_S)


# ------------------------------------------------------------------------------ tests

def test_lif_exports_as_cuba(net_files):
    for delays, path in net_files.items():
        network = read_net(path)
        assert all(isinstance(layer.neuron, CubaFixedParams) for layer in network.layers[:-1])
        assert network.layers[-1].neuron is None
        assert bool(np.any(network.layers[0].delay)) == delays


def test_stock_netx_builds_what_we_expect(lava_results):
    result = lava_results[("netx", True)]
    assert result["synapses"] == ["DelayDense"] * 3
    assert result["neurons"] == ["LIF"] * 3
    assert result["first_message_bits"] == 8          # graded input on the first layer


@pytest.mark.parametrize("delays", [False, True], ids=["no-delays", "delays"])
def test_stock_netx_equals_emulator_every_spike(lava_results, net_files, delays):
    network = read_net(net_files[delays])
    emulated = Emulator(network)(torch.as_tensor(samples()))
    stock = lava_results[("netx", delays)]
    for layer, spikes in enumerate(stock["spikes"]):
        np.testing.assert_array_equal(spikes, emulated.spikes[layer].numpy(), err_msg=f"layer {layer}")
        assert spikes.sum() > 0, f"layer {layer} never fires: the test would prove little"
    np.testing.assert_array_equal(stock["readout_input"], emulated.readout_input.numpy())
    # and the trained LIF model itself, in its deployed arithmetic, is what stock NetX runs
    model = FloatModelBackend(lif_model(delays), arithmetic="deployed")(samples())
    for layer, spikes in enumerate(stock["spikes"]):
        np.testing.assert_array_equal(spikes, model.spikes[layer], err_msg=f"model, layer {layer}")
    np.testing.assert_array_equal(stock["readout_input"], model.readout_input)


@pytest.mark.parametrize("delays", [False, True], ids=["no-delays", "delays"])
def test_our_builder_equals_stock_netx(lava_results, delays):
    stock = lava_results[("netx", delays)]
    ours = lava_results[("ours", delays)]
    for k, result in enumerate(ours):
        for layer, spikes in enumerate(result.spikes):
            np.testing.assert_array_equal(spikes, stock["spikes"][layer][k])
        np.testing.assert_array_equal(result.readout_input, stock["readout_input"][k])
