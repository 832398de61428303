"""lava-dl's own small ``.net`` files (issue #24, item 1; tests/data/lava-dl-netx, BSD-3, see its
README): the dense feed-forward MNIST tutorial network reads exactly, every spike of its three
layers equals stock NetX on Lava, and ``parity --samples-file`` on it says PARITY OK; lava-dl's conv
test network is refused in one line naming the conv layer. Variants of the MNIST file, edited key
by key in lava-dl's layout, cover what other lava-dl dense files hold: an input layer and a
``flatten`` before the first dense layer, delays stored one per neuron (lava-dl's axonal delay), a
weight stored 1-D, graded spikes and SDNN neurons (refused).

All Lava work runs in one worker subprocess under a timeout (tests/lava_support.py).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from lava_support import run_isolated, run_stock_netx
from snn_toolchain import constants as C
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.export.netfile import NetFileError, read_net

DATA = Path(__file__).resolve().parent / "data" / "lava-dl-netx"
MNIST = DATA / "trained_mnist_network.net"
TINY = DATA / "tiny.net"
MNIST_STEPS = 20            # the tutorial network was trained on 20 steps per image
WORKER_TIMEOUT_S = 300


def rate_encoded_images(count: int, seed: int = 0) -> np.ndarray:
    """(count, MNIST_STEPS, 784) binary spikes: images of three bright strokes each (a stand-in for
    handwritten digits), rate-encoded as the tutorial's ``InpImgToSpk``: per pixel x in 0..1,
    ``v += x`` each step, a spike and ``v = 0`` where ``v > 1``."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28))
    for image in images:
        for _ in range(3):
            row, col = rng.integers(6, 22, 2)
            step_row, step_col = rng.integers(-1, 2, 2)
            for s in range(10):
                r, c = np.clip([row + step_row * s, col + step_col * s], 0, 27)
                image[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2] = rng.uniform(0.6, 1.0)
    pixels = images.reshape(count, 784)
    voltage = np.zeros_like(pixels)
    spikes = np.zeros((count, MNIST_STEPS, 784), dtype=np.int64)
    for t in range(MNIST_STEPS):
        voltage += pixels
        spikes[:, t] = voltage > 1
        voltage[voltage > 1] = 0
    return spikes


# ------------------------------------------------------------------- lava-dl's layout, key by key

def _set_type(group, name: str) -> None:
    """lava-dl writes 'type' as a (1,) S10 array (slayer/block/base.py)."""
    if "type" in group:
        del group["type"]
    group.create_dataset("type", (1,), "S10", [name.encode("ascii")])


def _replace(group, key: str, value) -> None:
    if key in group:
        del group[key]
    group.create_dataset(key, data=value)


def mnist_variant(tmp_path: Path, name: str, edit) -> Path:
    """A copy of the MNIST tutorial file with ``edit(h5py.File)`` applied."""
    target = tmp_path / f"{name}.net"
    shutil.copy(MNIST, target)
    with h5py.File(target, "r+") as f:
        edit(f)
    return target


def prepend_input_and_flatten(f, input_neurons: dict | None = None) -> None:
    """Layers 0..2 become 2..4 after a NetX ``input`` layer 0 (MNIST's (1, 28, 28) shape, as lava-dl
    writes it, neurons only where given) and a ``flatten`` layer 1."""
    for index in (2, 1, 0):
        f.move(f"layer/{index}", f"layer/{index + 2}")
    layer0 = f["layer"].create_group("0")
    _set_type(layer0, "input")
    layer0.create_dataset("shape", data=np.array([1, 28, 28]))
    for key, value in (input_neurons or {}).items():
        layer0.create_dataset(f"neuron/{key}", data=value)
    flatten = f["layer"].create_group("1")
    _set_type(flatten, "flatten")
    flatten.create_dataset("shape", data=np.array([784, 1, 1]))


def axonal_delays(f) -> None:
    """Input + flatten in front, and one delay per output neuron of the first dense layer (1-D, as
    lava-dl's axonal delay is stored), 0..6 steps."""
    prepend_input_and_flatten(f)
    f["layer/2"].create_dataset("delay", data=np.arange(128, dtype=np.float32) % 7)


def _refusal(path: Path) -> str:
    with pytest.raises(NetFileError) as info:
        read_net(path, time_steps=MNIST_STEPS)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: ") and "train-export" not in message, message
    return message


# ------------------------------------------------------------------------------- the shipped files

def test_the_shipped_files_are_lava_dls_bytes():
    listed = dict((name, digest) for digest, name in
                  re.findall(r"^\s+([0-9a-f]{64})\s+(\S+)$", (DATA / "README.md").read_text(), re.M))
    assert sorted(listed) == sorted(p.name for p in DATA.glob("*.net"))
    for name, digest in listed.items():
        assert hashlib.sha256((DATA / name).read_bytes()).hexdigest() == digest, name


def test_the_mnist_tutorial_network_reads_exactly():
    network = read_net(MNIST, time_steps=MNIST_STEPS)
    assert network.readout == "spikes" and network.n_inputs == 784 and network.n_classes == 10
    with h5py.File(MNIST, "r") as f:
        for index, layer in enumerate(network.layers):
            stored = f[f"layer/{index}"]
            np.testing.assert_array_equal(layer.weight, stored["weight"][()].astype(np.int64))
            assert layer.neuron_variant == "cuba" and layer.weight_scale == int(stored["neuron/vThMant"][()]) == 64
            assert not layer.delay.any() and not layer.bias.any()
            np.testing.assert_array_equal(layer.neuron.current_decay, 410)
            np.testing.assert_array_equal(layer.neuron.voltage_decay, 410)
            np.testing.assert_array_equal(layer.neuron.threshold, 64 << C.ACTIVATION_SHIFT)
    assert [layer.weight.shape for layer in network.layers] == [(128, 784), (64, 128), (10, 64)]


def test_lava_dls_conv_test_network_is_refused_naming_the_conv_layer():
    message = _refusal(TINY)
    assert "layer 1 has type 'conv' (a NetX convolution layer)" in message
    assert "its layers: input, conv x2 (neurons: LOIHI)" in message and "stock lava-dl NetX" in message


# ----------------------------------------------------------------- what other lava-dl files hold

def test_an_input_layer_and_a_flatten_before_the_first_dense_layer_are_skipped(tmp_path):
    network = read_net(mnist_variant(tmp_path, "flatten", prepend_input_and_flatten), time_steps=MNIST_STEPS)
    original = read_net(MNIST, time_steps=MNIST_STEPS)
    assert [layer.name for layer in network.layers] == ["2", "3", "4"] and network.n_inputs == 784
    for ours, theirs in zip(network.layers, original.layers):
        np.testing.assert_array_equal(ours.weight, theirs.weight)
    notes = " | ".join(network.notes)
    assert "input layer without neurons" in notes and "layer 1 is a 'flatten' right before" in notes


def test_a_flatten_between_dense_layers_is_refused(tmp_path):
    def flatten_in_the_middle(f):
        f.move("layer/2", "layer/3")
        _set_type(f["layer"].create_group("2"), "flatten")

    message = _refusal(mnist_variant(tmp_path, "middle", flatten_in_the_middle))
    assert "layer 2 has type 'flatten' (a NetX flatten layer, read only right before the first dense)" in message
    assert "its layers: dense x2, flatten, dense (neurons: CUBA)" in message


def test_delays_stored_one_per_neuron_are_spread_as_netx_spreads_them(tmp_path):
    network = read_net(mnist_variant(tmp_path, "axonal", axonal_delays), time_steps=MNIST_STEPS)
    expected = np.repeat((np.arange(128) % 7).reshape(-1, 1), 784, axis=1)
    np.testing.assert_array_equal(network.layers[0].delay, expected)
    assert any("one delay per output neuron" in note for note in network.notes)

    def per_input(f):
        f["layer/1"].create_dataset("delay", data=np.arange(128) % 5)           # 64 outputs, 128 inputs
        f["layer/2"].create_dataset("delay", data=70.0)                         # one for the layer, > 62

    network = read_net(mnist_variant(tmp_path, "per_input", per_input), time_steps=MNIST_STEPS)
    np.testing.assert_array_equal(network.layers[1].delay, np.repeat((np.arange(128) % 5)[None], 64, axis=0))
    np.testing.assert_array_equal(network.layers[2].delay, np.full((10, 64), C.LOIHI_MAX_DELAY))
    notes = " | ".join(network.notes)
    assert "one delay per input neuron" in notes and "delays up to 70 steps are clamped to 62" in notes

    message = _refusal(mnist_variant(tmp_path, "bad", lambda f: f["layer/2"].create_dataset("delay", data=np.ones(3))))
    assert "layer 2: a 1-D delay of 3 values fits neither its 10 outputs nor its 64 inputs" in message


def test_a_weight_stored_1d_is_read_as_netx_reshapes_it(tmp_path):
    def one_output(f):
        _replace(f["layer/2"], "weight", f["layer/2/weight"][0])                # lava-dl squeezes (1, 64)
        _replace(f["layer/2"], "shape", np.array([1]))

    network = read_net(mnist_variant(tmp_path, "squeezed", one_output), time_steps=MNIST_STEPS)
    with h5py.File(MNIST, "r") as f:
        np.testing.assert_array_equal(network.layers[2].weight, f["layer/2/weight"][:1].astype(np.int64))
    assert any("stored 1-D" in note for note in network.notes)


@pytest.mark.parametrize("key, value, expected", [
    ("messageBits", 8, "layer 1: neuron messageBits = 8: NetX builds these neurons to send graded spikes"),
    ("gradedSpike", True, "layer 1: neuron gradedSpike is set: lava-dl trained these neurons to send graded"),
], ids=["messageBits", "gradedSpike"])
def test_graded_spikes_are_refused(tmp_path, key, value, expected):
    message = _refusal(mnist_variant(tmp_path, key, lambda f: _replace(f["layer/1/neuron"], key, value)))
    assert expected in message


def test_sdnn_input_neurons_are_refused_as_sdnn_before_the_input_stage(tmp_path):
    """pilotnet_sdnn's input layer 0 has SDNN neurons: the refusal names the neuron kind."""
    def sdnn_input(f):
        prepend_input_and_flatten(f, {"type": "SDNN", "activation": "relu", "vThMant": 6})

    message = _refusal(mnist_variant(tmp_path, "sdnn", sdnn_input))
    assert "layer 0: unknown neuron type 'SDNN' (NetX's sigma-delta (SDNN) neurons" in message


def test_a_file_of_input_and_flatten_only_is_refused(tmp_path):
    def no_dense(f):
        prepend_input_and_flatten(f)
        for index in (2, 3, 4):
            del f[f"layer/{index}"]

    assert "the file holds no dense layer (its layers: input, flatten)" in _refusal(mnist_variant(tmp_path, "empty",
                                                                                                  no_dense))


# ------------------------------------------------------------------------------ stock NetX on Lava

def lava_dl_files_worker(paths: dict, inputs: np.ndarray) -> dict:
    from snn_toolchain.lava_models.lava_backend import LavaBackend

    out = {}
    for name, path in paths.items():
        network = read_net(path, time_steps=MNIST_STEPS)
        out[name] = run_stock_netx(path, inputs, network.run_steps, readout_synapse=False)
    run = LavaBackend(read_net(paths["mnist"], time_steps=MNIST_STEPS), "ring", progress=False)(inputs)
    out["ours"] = {"spikes": [np.asarray(s) for s in run.spikes], "scores": np.asarray(run.scores)}
    return out


@pytest.fixture(scope="module")
def lava_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lava_dl_files")
    paths = {"mnist": str(MNIST), "axonal": str(mnist_variant(folder, "axonal", axonal_delays))}
    return run_isolated("test_lava_dl_files:lava_dl_files_worker", (paths, rate_encoded_images(3)), folder,
                        WORKER_TIMEOUT_S)


@pytest.mark.parametrize("name", ["mnist", "axonal"])
def test_stock_netx_equals_the_emulator_every_spike_of_every_layer(lava_results, tmp_path, name):
    path = MNIST if name == "mnist" else mnist_variant(tmp_path, name, axonal_delays)
    stock = lava_results[name]
    assert stock["synapses"] == (["Dense"] * 3 if name == "mnist" else ["DelayDense", "Dense", "Dense"])
    emulated = Emulator(read_net(path, time_steps=MNIST_STEPS))(torch.as_tensor(rate_encoded_images(3)))
    assert len(stock["spikes"]) == len(emulated.spikes) == 3            # the output layer spikes too
    for layer, spikes in enumerate(stock["spikes"]):
        assert spikes.sum() > 0, f"layer {layer} never fires: the test would prove little"
        np.testing.assert_array_equal(spikes, emulated.spikes[layer].numpy(), err_msg=f"layer {layer}")


def test_our_lava_builder_equals_stock_netx_on_the_mnist_tutorial_network(lava_results):
    stock, ours = lava_results["mnist"], lava_results["ours"]
    for layer, spikes in enumerate(stock["spikes"]):
        np.testing.assert_array_equal(ours["spikes"][layer], spikes, err_msg=f"layer {layer}")
    # the scores: the output layer's spikes over the last MNIST_STEPS steps (one step of latency a layer)
    np.testing.assert_array_equal(ours["scores"], stock["spikes"][2][:, -MNIST_STEPS:].sum(axis=1))


def test_parity_on_the_mnist_tutorial_network_with_a_samples_file_is_ok(tmp_path):
    """``train-export parity --net trained_mnist_network.net --samples-file F``: a stock lava-dl
    file (no time_steps, no checkpoint) on your own 0/1 spikes of 20 steps: emulator == Lava."""
    samples, report_path = tmp_path / "digits.npz", tmp_path / "parity.json"
    np.savez(samples, spikes=rate_encoded_images(2, seed=4).astype(np.uint8))
    done = subprocess.run([sys.executable, "-m", "snn_toolchain.cli", "parity", "--net", str(MNIST), "--samples-file",
                           str(samples), "--report", str(report_path)], capture_output=True, text=True,
                          timeout=WORKER_TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "PARITY OK" in done.stdout, done.stdout
    report = json.loads(report_path.read_text())
    assert report["ok"] and report["samples"] == 2 and report["labels"] is None
    assert report["spike_counts"]["lava"] == report["spike_counts"]["emulator"]
    # every layer fires: the agreement means something
    assert all(count > 0 for count in report["spike_counts"]["lava"]), report["spike_counts"]
