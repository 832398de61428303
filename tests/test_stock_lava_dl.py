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

from lava_support import run_isolated
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
