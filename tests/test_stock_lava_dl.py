"""Stock lava-dl ``.net`` files (issue #11, item 5): lava-dl's own Oxford tutorial network
(tests/data/lava-dl-oxford, BSD-3, see its README) read, emulated and built for Lava by this
toolchain, equal to the hidden spikes stock NetX records for its tutorial input; and the refusals
a stock file can meet."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from lava_support import run_isolated, run_stock_netx
from netx_layout import write_netx_dense, write_netx_type
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.export.netfile import NetFileError, read_net

OXFORD = Path(__file__).resolve().parent / "data" / "lava-dl-oxford"
STEPS = 2000
CLI = [sys.executable, "-m", "snn_toolchain.cli"]


@pytest.fixture(scope="module")
def recorded():
    data = np.load(OXFORD / "gts.npz")
    return data["input"].T.astype(np.int64), data["hidden_out"].astype(np.uint8)   # (2000, 200), (256, 2000)


def test_a_stock_file_needs_its_step_count_and_says_how_to_give_it():
    with pytest.raises(NetFileError) as info:
        read_net(OXFORD / "network.net")
    message = str(info.value)
    assert "stores no time_steps" in message and "--time-steps" in message and "export it again" not in message


def test_the_oxford_network_reads_with_a_spiking_output_layer():
    network = read_net(OXFORD / "network.net", time_steps=STEPS)
    assert network.readout == "spikes" and network.n_classes == 200
    assert [layer.neuron_variant for layer in network.layers] == ["cuba", "cuba"]
    assert [layer.weight_scale for layer in network.layers] == [6, 6]
    assert any("no time_steps stored" in note for note in network.notes)


def test_the_emulator_equals_the_recorded_hidden_spikes(recorded):
    inputs, hidden_out = recorded
    network = read_net(OXFORD / "network.net", time_steps=STEPS)
    run = Emulator(network)(torch.as_tensor(inputs[None]))
    assert len(run.spikes) == 2                                 # the output layer spikes too
    hidden = run.spikes[0][0].numpy().T[:, :STEPS]               # (256, run_steps) -> the recorded steps
    assert hidden.sum() == hidden_out.sum() == 1826
    np.testing.assert_array_equal(hidden, hidden_out)
    output = run.spikes[1][0].numpy()
    # scores: the output layer's spikes over the last 2000 of its 2002 steps (2 steps of latency)
    assert torch.equal(run.scores[0], torch.as_tensor(output[-STEPS:].sum(axis=0), dtype=torch.int64))


def oxford_lava_worker(inputs):
    from snn_toolchain.lava_models.lava_backend import LavaBackend

    network = read_net(OXFORD / "network.net", time_steps=STEPS)
    run = LavaBackend(network, "ring", progress=False)(inputs[None])
    return [np.asarray(s) for s in run.spikes], np.asarray(run.scores)


def test_our_lava_builder_equals_the_recorded_hidden_spikes_and_the_emulator(recorded, tmp_path):
    inputs, hidden_out = recorded
    spikes, scores = run_isolated("test_stock_lava_dl:oxford_lava_worker", (inputs,), tmp_path, timeout_s=300)
    np.testing.assert_array_equal(spikes[0][0].T[:, :STEPS], hidden_out)
    emulated = Emulator(read_net(OXFORD / "network.net", time_steps=STEPS))(torch.as_tensor(inputs[None]))
    np.testing.assert_array_equal(spikes[1][0], emulated.spikes[1][0].numpy())     # the spiking output layer
    np.testing.assert_array_equal(scores[0], emulated.scores[0].numpy())


def test_an_unsupported_neuron_type_is_refused_by_name(tmp_path):
    target = tmp_path / "sdnn.net"
    shutil.copy(OXFORD / "network.net", target)
    with h5py.File(target, "r+") as f:
        del f["layer/1/neuron/type"]
        f["layer/1/neuron"].create_dataset("type", data=np.array(b"SDNN", dtype=object))
    with pytest.raises(NetFileError, match="layer 1: unknown neuron type 'SDNN'"):
        read_net(target, time_steps=STEPS)


def test_the_emulator_backend_refuses_a_network_that_does_not_fit_the_data_in_one_line(tmp_path):
    """Oxford takes 200 inputs and has 200 outputs; the embedded SHD set has 140 channels and 20
    classes (this ended in a traceback before: inputs must be (batch, time, 200))."""
    done = subprocess.run(CLI + ["run", "--net", str(OXFORD / "network.net"), "--time-steps", "125",
                                 "--backend", "emulator", "--samples", "2"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("train-export: error: ") and str(OXFORD / "network.net") in lines[-1], lines
    assert "the network has 200" in lines[-1] and "--dataset" in lines[-1], lines


def test_a_stock_readout_that_never_fires_is_read_as_the_summing_readout(tmp_path):
    """lava-dl's own "infinite" threshold (vThMant 2^18 - 1, beyond 17 bits): the layer cannot fire,
    so it is read as the summing readout, with a note (a spiking layer could not hold it)."""
    target = tmp_path / "infinite.net"
    shutil.copy(OXFORD / "network.net", target)
    with h5py.File(target, "r+") as f:
        del f["layer/1/neuron/vThMant"]
        f["layer/1/neuron"].create_dataset("vThMant", data=(1 << 18) - 1)
    network = read_net(target, time_steps=STEPS)
    assert network.readout == "sum" and network.layers[1].neuron is None
    assert any("never fires" in note and "summing readout" in note for note in network.notes)


# ------------------------------------------------------- NetX's own layouts (issue #24, item 1)
# Small files written key by key as lava-dl writes them (slayer/block/base.py export_hdf5: 'type' a
# (1,) S10 array, 'shape', 'inFeatures', 'outFeatures', 'weight', 'delay', 'neuron/<device param>';
# the input block: 'type' b"input", 'shape', and 'neuron/...' only where it has neurons; an Affine
# block, dynamics off: no 'neuron' group, which NetX builds as a non-leaky integrator).

N_IN, N_HIDDEN, N_OUT, NETX_STEPS = 16, 12, 5, 30


def _loihi_neuron(threshold: int = 80) -> dict:
    return {"type": "LOIHI", "iDecay": 1024, "vDecay": 128, "vThMant": threshold, "refDelay": 1, "gradedSpike": False}


def write_netx(path: Path, input_layer: str | None = "plain", hidden_type: str = "LOIHI",
               extra: str | None = None) -> Path:
    """input (no neurons) -> dense LOIHI hidden (with delays) -> dense without neurons (integrator)."""
    rng = np.random.default_rng(7)
    w1 = 2 * rng.integers(-20, 40, (N_HIDDEN, N_IN))
    w2 = 2 * rng.integers(-30, 30, (N_OUT, N_HIDDEN))
    with h5py.File(path, "w") as f:
        layers = f.create_group("layer")
        index = 0
        if input_layer is not None:
            group = layers.create_group("0")
            write_netx_type(group, "input")
            group.create_dataset("shape", data=np.array([N_IN]))
            if input_layer == "neurons":
                group.create_dataset("weight", data=1.0)
                group.create_dataset("bias", data=0.0)
                for key, value in _loihi_neuron().items():
                    group.create_dataset(f"neuron/{key}", data=value)
            index = 1
        if extra is not None:
            group = layers.create_group(str(index))
            write_netx_type(group, extra)
            group.create_dataset("shape", data=np.array([N_IN]))
            index += 1
        neuron = _loihi_neuron()
        neuron["type"] = hidden_type
        write_netx_dense(layers.create_group(str(index)), w1, rng.integers(0, 4, (N_HIDDEN, N_IN)), neuron)
        write_netx_dense(layers.create_group(str(index + 1)), w2)
    return path


def netx_inputs(count: int = 2) -> np.ndarray:
    rng = np.random.default_rng(3)
    x = (rng.random((count, NETX_STEPS, N_IN)) < 0.5).astype(np.int64)
    x[:, -3:] = 0
    return x


def test_a_netx_input_layer_loihi_neurons_and_an_integrator_readout_read(tmp_path):
    network = read_net(write_netx(tmp_path / "netx.net"), time_steps=NETX_STEPS)
    assert [layer.name for layer in network.layers] == ["1", "2"]
    assert network.readout == "sum" and network.layers[1].neuron is None and network.n_inputs == N_IN
    assert network.layers[0].neuron_variant == "cuba" and network.layers[0].weight_scale == 80
    notes = " | ".join(network.notes)
    assert "input layer without neurons" in notes and "'LOIHI' is read as 'CUBA'" in notes
    assert "non-leaky integrator" in notes and "summing readout" in notes


def test_the_emulator_of_a_netx_file_sums_the_readout_input_by_hand(tmp_path):
    network = read_net(write_netx(tmp_path / "netx.net"), time_steps=NETX_STEPS)
    run = Emulator(network)(torch.as_tensor(netx_inputs()))
    assert run.spikes[0].sum() > 0, "the hidden layer never fires: the test would prove little"
    # the readout's input at step t is W2 @ (hidden spikes at t - 1) (Lava's one step of latency)
    hidden = run.spikes[0].numpy().astype(np.int64)
    expected = np.zeros_like(run.readout_input.numpy())
    expected[:, 1:] = hidden[:, :-1] @ network.layers[1].weight.T
    np.testing.assert_array_equal(run.readout_input.numpy(), expected)
    np.testing.assert_array_equal(run.scores.numpy(), expected.sum(axis=1))


def netx_worker(path, inputs, run_steps):

    return run_stock_netx(path, inputs, run_steps, input_message_bits=8)


def test_stock_netx_runs_a_netx_file_as_the_emulator_says(tmp_path):
    path = write_netx(tmp_path / "netx.net")
    network = read_net(path, time_steps=NETX_STEPS)
    inputs = netx_inputs()
    stock = run_isolated("test_stock_lava_dl:netx_worker", (str(path), inputs, network.run_steps), tmp_path,
                         timeout_s=300)
    assert stock["neurons"] == ["LIF", "LIF"]              # the input layer builds nothing; LOIHI is LIF
    emulated = Emulator(network)(torch.as_tensor(inputs))
    np.testing.assert_array_equal(stock["spikes"][0], emulated.spikes[0].numpy())
    np.testing.assert_array_equal(stock["readout_input"], emulated.readout_input.numpy())


def _refusal(path: Path) -> str:
    with pytest.raises(NetFileError) as info:
        read_net(path, time_steps=NETX_STEPS)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: ") and "train-export" not in message, message
    return message


@pytest.mark.parametrize("layer_type", ["conv", "pool", "dense_rec", "average", "wavelet"])
def test_other_netx_layer_types_are_refused_in_one_line(tmp_path, layer_type):
    message = _refusal(write_netx(tmp_path / f"{layer_type}.net", extra=layer_type))
    assert f"layer 1 has type '{layer_type}'" in message and "stock lava-dl NetX" in message


def test_an_sdnn_layer_is_refused_in_one_line(tmp_path):
    message = _refusal(write_netx(tmp_path / "sdnn.net", hidden_type="SDNN"))
    assert "layer 1: unknown neuron type 'SDNN'" in message and "stock lava-dl NetX" in message


def test_a_netx_input_neuron_stage_reads_as_the_input_stage(tmp_path):
    """An input layer 0 with LOIHI neurons is NetX's input neuron stage (tests/test_input_stage.py
    runs it against stock NetX): read, its neurons CUBA, its transform the stored weight and bias."""
    network = read_net(write_netx(tmp_path / "input_neurons.net", input_layer="neurons"), time_steps=NETX_STEPS)
    assert [layer.name for layer in network.layers] == ["1", "2"]
    assert network.input_stage is not None and network.input_stage.n_inputs == N_IN
    assert (network.input_stage.weight, network.input_stage.bias) == (1, 0)


def test_an_integrator_that_is_not_last_or_has_a_bias_is_refused(tmp_path):
    path = write_netx(tmp_path / "biased.net")
    with h5py.File(path, "r+") as f:
        f["layer/2"].create_dataset("bias", data=np.ones(N_OUT))
    assert "adds the bias once" in _refusal(path)
    path = write_netx(tmp_path / "middle.net")
    with h5py.File(path, "r+") as f:       # a second integrator after the first
        write_netx_dense(f["layer"].create_group("3"), 2 * np.ones((N_OUT, N_OUT), dtype=np.int64))
    assert "layer 2 is a dense layer without a neuron group" in _refusal(path)


def test_an_input_shape_that_does_not_match_layer_1_is_refused(tmp_path):
    path = write_netx(tmp_path / "shape.net")
    with h5py.File(path, "r+") as f:
        f["layer/0/shape"][...] = [N_IN + 1]
    assert "the input layer 0 has shape [17] (17 inputs) but layer 1 takes 16" in _refusal(path)


def test_a_foreign_file_is_never_told_to_export_again(tmp_path):
    path = write_netx(tmp_path / "broken.net")
    with h5py.File(path, "r+") as f:
        del f["layer/1/neuron/vDecay"]
    message = _refusal(path)
    assert "vDecay" in message and "not written by snn-toolchain" in message
