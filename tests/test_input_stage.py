"""NetX's input neuron stage (issue #24, item 1; snn_toolchain/input_stage.py): an ``input`` layer 0
with CUBA neurons that take the data through their bias, as in lava-dl's bootstrap MNIST network
(tutorials/lava/lib/dl/bootstrap/mnist/Trained/network.net: input 784 with CUBA neurons, dense
784->512->512 CUBA, dense 10 without neurons).

A small network in exactly that layout (20 inputs -> 16 -> 8 -> 4, written key by key as lava-dl
writes it) is run by stock NetX on Lava fixed_pt, fed as lava-dl feeds it (the input neurons'
``bias_mant`` set to ``int(weight * x + bias)`` for the sample's steps, then 0), and every spike of
every layer, and the readout's input, equal the input stage + our emulator and the input stage + our
Lava builder. The real bootstrap file (2.7 MB, not shipped) is compared the same way where lava-dl's
mirror is on this machine (@long).

All Lava work runs in one worker subprocess under a timeout (tests/lava_support.py).
"""

from __future__ import annotations

import contextlib
import io
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from lava_support import reset_netx_layers, run_isolated
from netx_layout import write_netx_type
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.export.netfile import NetFileError, read_net
from snn_toolchain.input_stage import InputStageError

N_IN, N_HIDDEN1, N_HIDDEN2, N_OUT, STEPS, SAMPLES = 20, 16, 8, 4, 20, 2
WORKER_TIMEOUT_S = 300
LAVA_DL_MIRROR = Path("/work/.mirror/lava-nc+lava-dl/repo")
BOOTSTRAP_IN_REPO = "tutorials/lava/lib/dl/bootstrap/mnist/Trained/network.net"
BOOTSTRAP_STEPS = 16            # the bootstrap file's simulation/tSample


# ------------------------------------------------------- the bootstrap layout, key by key

def _cuba_neuron(group) -> None:
    """The bootstrap file's neuron group: 'type' a variable-length string, scalars of int64 and bool."""
    group.create_dataset("type", data="CUBA", dtype=h5py.string_dtype())
    for key, value in (("iDecay", 4096), ("vDecay", 123), ("vThMant", 80), ("refDelay", 1)):
        group.create_dataset(key, data=np.int64(value))
    group.create_dataset("gradedSpike", data=False)


def _dense(group, weight, neurons: bool) -> None:
    write_netx_type(group, "dense")
    group.create_dataset("shape", data=np.array([weight.shape[0]]))
    group.create_dataset("inFeatures", data=np.int64(weight.shape[1]))
    group.create_dataset("outFeatures", data=np.int64(weight.shape[0]))
    group.create_dataset("weight", data=weight.astype(np.float32))
    if neurons:
        _cuba_neuron(group.create_group("neuron"))


def write_bootstrap_layout(path: Path, weight: float = 76.0, bias: float = 64.0,
                           input_shape: tuple[int, ...] = (N_IN,)) -> Path:
    """input (CUBA neurons, transform weight/bias stored (1,) float32) -> dense CUBA -> dense CUBA ->
    dense without neurons (NetX's integrator), as the bootstrap network's export writes them. An
    ``input_shape`` of 3 dimensions (slayer's C, H, W, as lava-dl stores it) gets a ``flatten``
    layer before the first dense one, as a convolutional export has."""
    rng = np.random.default_rng(11)
    n_in = int(np.prod(input_shape))
    with h5py.File(path, "w") as f:
        f.create_dataset("simulation/Ts", data=np.int64(1))
        f.create_dataset("simulation/tSample", data=np.int64(STEPS))
        layer0 = f.create_group("layer/0")
        write_netx_type(layer0, "input")
        layer0.create_dataset("shape", data=np.array(input_shape))
        layer0.create_dataset("weight", data=np.array([weight], dtype=np.float32))
        layer0.create_dataset("bias", data=np.array([bias], dtype=np.float32))
        _cuba_neuron(layer0.create_group("neuron"))
        first = 1
        if len(input_shape) > 1:
            write_netx_type(f.create_group("layer/1"), "flatten")
            first = 2
        _dense(f.create_group(f"layer/{first}"), rng.integers(-20, 40, (N_HIDDEN1, n_in)), True)
        _dense(f.create_group(f"layer/{first + 1}"), rng.integers(-20, 50, (N_HIDDEN2, N_HIDDEN1)), True)
        _dense(f.create_group(f"layer/{first + 2}"), rng.integers(-38, 42, (N_OUT, N_HIDDEN2)), False)
    return path


def data_values(count: int, n: int, seed: int = 5) -> np.ndarray:
    """(count, n) values in -1..1, the bootstrap network's input range (2 * pixel - 1)."""
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (count, n))


# ------------------------------------------------------------------------------- stock NetX on Lava

def run_netx_with_input_stage(path: str, values: np.ndarray, time_steps: int, run_steps: int) -> dict:
    """Stock NetX fed as lava-dl feeds an input neuron stage: per sample, the input neurons'
    ``bias_mant`` = ``int32(weight * x + bias)`` (NetX's ``in_layer.transform``) for ``time_steps``
    steps, then 0 for the rest of the ``run_steps`` (the sample's input is over); every layer's
    state and the synapses' buffers reset between samples. Returns the spikes (K, run_steps, n) of
    every neuron layer, the input layer first, and the readout synapse's output (K, run_steps, classes)."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink

    with contextlib.redirect_stdout(io.StringIO()):
        from lava.lib.dl import netx

    count = len(values)
    net = netx.hdf5.Network(net_config=path)
    transform = net.in_layer.transform
    neuron = net.in_layer.neuron
    # NetX's input layer has the stored shape reversed (C, H, W -> W, H, C); the flat values are in
    # the stored shape's C order, so each sample's image is reshaped to it and transposed, as
    # lava-dl's data loaders feed it (a no-op for a 1-D input)
    images = values.reshape(count, *neuron.bias_mant.shape[::-1])
    mantissas = (transform["weight"] * images + transform["bias"]).astype(np.int32).transpose(
        0, *range(images.ndim - 1, 0, -1))
    sinks = []    # a sink's data is (*lava shape, steps): .T gives (steps, *stored shape), C order below
    for layer in net.layers[:-1]:
        sink = Sink(shape=layer.neuron.s_out.shape, buffer=count * run_steps)
        layer.neuron.s_out.connect(sink.a_in)
        sinks.append(sink)
    readout = Sink(shape=net.layers[-1].synapse.a_out.shape, buffer=count * run_steps)
    net.layers[-1].synapse.a_out.connect(readout.a_in)
    config = Loihi2SimCfg(select_tag="fixed_pt")
    neuron.bias_mant.init = mantissas[0]
    try:
        for k in range(count):
            if k:
                reset_netx_layers(net)
                neuron.bias_mant.set(mantissas[k])
            net.run(condition=RunSteps(num_steps=time_steps), run_cfg=config)
            neuron.bias_mant.set(np.zeros(neuron.bias_mant.shape, dtype=np.int32))
            net.run(condition=RunSteps(num_steps=run_steps - time_steps), run_cfg=config)
        spikes = [s.data.get().T.reshape(count, run_steps, -1).astype(np.uint8) for s in sinks]
        readout_input = readout.data.get().T.reshape(count, run_steps, -1).astype(np.int64)
    finally:
        net.stop()
    return {"spikes": spikes, "readout_input": readout_input, "transform": dict(transform),
            "blocks": [type(layer).__name__ for layer in net.layers]}


def input_stage_worker(path: str, values: np.ndarray, time_steps: int) -> dict:
    from snn_toolchain.lava_models.lava_backend import LavaBackend

    network = read_net(path, time_steps=time_steps)
    stock = run_netx_with_input_stage(path, values, time_steps, network.run_steps)
    run = LavaBackend(network, "ring", progress=False)(network.input_stage.spikes(values, time_steps))
    return {"stock": stock, "ours": {"spikes": [np.asarray(s) for s in run.spikes], "scores": np.asarray(run.scores),
                                     "readout_input": run.readout_input}}


def assert_equal_to_stock_netx(path: Path, values: np.ndarray, time_steps: int, results: dict) -> None:
    """Every layer of stock NetX equals the input stage + the emulator and the input stage + our Lava
    build: the input neurons' spikes, each hidden layer's, the readout's input and the scores."""
    network = read_net(path, time_steps=time_steps)
    stock, ours = results["stock"], results["ours"]
    assert stock["blocks"] == ["Input", "Dense", "Dense", "Dense"]
    stage = network.input_stage.spikes(values, time_steps)
    # the input neurons fire only while the sample's bias is on: its first time_steps steps
    assert not stock["spikes"][0][:, time_steps:].any()
    np.testing.assert_array_equal(stock["spikes"][0][:, :time_steps], stage, err_msg="input stage")
    emulated = Emulator(network)(torch.as_tensor(stage.astype(np.int64)))
    assert len(stock["spikes"]) - 1 == len(emulated.spikes) == len(ours["spikes"]) == 2
    for layer, spikes in enumerate(stock["spikes"]):
        assert spikes.sum() > 0, f"layer {layer} never fires: the comparison would prove little"
        assert not spikes.all(), f"layer {layer} fires at every step: the comparison would prove little"
        if layer:
            np.testing.assert_array_equal(emulated.spikes[layer - 1].numpy(), spikes, err_msg=f"emulator layer {layer}")
            np.testing.assert_array_equal(ours["spikes"][layer - 1], spikes, err_msg=f"our Lava layer {layer}")
    assert np.abs(stock["readout_input"]).sum() > 0
    np.testing.assert_array_equal(emulated.readout_input.numpy(), stock["readout_input"], err_msg="readout input")
    if ours["readout_input"] is not None:
        np.testing.assert_array_equal(ours["readout_input"], stock["readout_input"], err_msg="our Lava readout input")
    np.testing.assert_array_equal(ours["scores"], emulated.scores.numpy())
    np.testing.assert_array_equal(emulated.scores.numpy(), stock["readout_input"].sum(axis=1))


# ------------------------------------------------------------------------------------------- tests

def test_the_bootstrap_layout_reads_with_its_input_stage(tmp_path):
    network = read_net(write_bootstrap_layout(tmp_path / "boot.net"), time_steps=STEPS)
    assert [layer.name for layer in network.layers] == ["1", "2", "3"] and network.readout == "sum"
    stage = network.input_stage
    assert stage is not None and stage.n_inputs == N_IN and (stage.weight, stage.bias) == (76, 64)
    np.testing.assert_array_equal(stage.neuron.threshold, np.full(N_IN, 80 << 6))
    np.testing.assert_array_equal(stage.neuron.current_decay, np.full(N_IN, 4096))
    np.testing.assert_array_equal(stage.neuron.voltage_decay, np.full(N_IN, 123))
    assert any("input neuron stage" in note and "trunc(76 * x + 64)" in note for note in network.notes)


def test_the_stage_bias_is_netxs_int32_cast_of_the_transform(tmp_path):
    stage = read_net(write_bootstrap_layout(tmp_path / "boot.net"), time_steps=STEPS).input_stage
    values = np.zeros((2, N_IN))
    values[0, :4] = [1.0, -1.0, 0.5, -0.9]          # 140, -12, 102, -4.4 -> -4 (toward zero, as astype(int32))
    values[1, :2] = [-0.85, 0.001]                  # -0.6 -> 0, 64.076 -> 64
    np.testing.assert_array_equal(stage.bias_mantissas(values)[:, :4], [[140, -12, 102, -4], [0, 64, 64, 64]])


def test_the_stage_spikes_follow_lavas_cuba_step_by_hand(tmp_path):
    """iDecay 4096: no current; v[t] = trunc(v[t-1] * 3973 / 4096) + (bias << 6), a spike and v = 0
    where v > 80 << 6. Bias 64 (x = 0): v = 4096, 8069 > 5120: a spike every second step."""
    stage = read_net(write_bootstrap_layout(tmp_path / "boot.net"), time_steps=STEPS).input_stage
    values = np.zeros((1, N_IN))
    values[0, 1] = 1.0                              # bias 140: 8960 > 5120 at every step
    values[0, 2] = -1.0                             # bias -12: never
    spikes = stage.spikes(values, 6)
    assert spikes.shape == (1, 6, N_IN) and spikes.dtype == np.uint8
    np.testing.assert_array_equal(spikes[0, :, 0], [0, 1, 0, 1, 0, 1])
    np.testing.assert_array_equal(spikes[0, :, 1], [1] * 6)
    np.testing.assert_array_equal(spikes[0, :, 2], [0] * 6)


@pytest.mark.parametrize("values, expected", [
    (np.zeros((2, N_IN + 1)), "shape (samples, 20)"),
    (np.full((1, N_IN), np.nan), "not a number"),
    (np.full((1, N_IN), 500.0), "beyond the +-32767"),
])
def test_data_the_stage_cannot_take_is_refused_in_one_line(tmp_path, values, expected):
    stage = read_net(write_bootstrap_layout(tmp_path / "boot.net"), time_steps=STEPS).input_stage
    with pytest.raises(InputStageError) as info:
        stage.spikes(values, STEPS)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_an_input_stage_of_other_neurons_or_a_bad_transform_is_refused(tmp_path):
    path = write_bootstrap_layout(tmp_path / "boot.net")
    with h5py.File(path, "r+") as f:
        del f["layer/0/weight"]
        f["layer/0"].create_dataset("weight", data=np.array([1.0, 2.0], dtype=np.float32))
    with pytest.raises(NetFileError, match=r"'layer/0/weight' \(the input layer's transform\) must be one number"):
        read_net(path, time_steps=STEPS)
    with h5py.File(path, "r+") as f:
        del f["layer/0/weight"], f["layer/0/neuron/vThMant"]
        f["layer/0/neuron"].create_dataset("vThMant", data=np.int64(1 << 18))
    with pytest.raises(NetFileError, match="layer 0: input neuron vThMant = 262144 is outside"):
        read_net(path, time_steps=STEPS)


def test_a_missing_transform_is_netxs_64_and_0(tmp_path):
    path = write_bootstrap_layout(tmp_path / "boot.net")
    with h5py.File(path, "r+") as f:
        del f["layer/0/weight"], f["layer/0/bias"]
    network = read_net(path, time_steps=STEPS)
    assert (network.input_stage.weight, network.input_stage.bias) == (64, 0)
    assert any("its transform weight is NetX's 64" in note for note in network.notes)


def test_stock_netx_equals_the_input_stage_the_emulator_and_our_lava_every_layer(tmp_path):
    path = write_bootstrap_layout(tmp_path / "boot.net")
    values = data_values(SAMPLES, N_IN)
    results = run_isolated("test_input_stage:input_stage_worker", (str(path), values, STEPS), tmp_path,
                           WORKER_TIMEOUT_S)
    assert results["stock"]["transform"] == {"weight": 76, "bias": 64}
    assert_equal_to_stock_netx(path, values, STEPS, results)


def test_a_three_dimensional_input_stage_flattens_as_netx_does(tmp_path):
    """An input layer of shape (C, H, W) = (2, 3, 4) and a ``flatten`` before the first dense layer
    (a convolutional export's layout): NetX builds the input neurons as (W, H, C) and connects them
    through ``transpose([2, 1, 0]).flatten()``; the input stage takes the values flat in the stored
    shape's C order, and every layer still equals stock NetX's."""
    path = write_bootstrap_layout(tmp_path / "image.net", input_shape=(2, 3, 4))
    network = read_net(path, time_steps=STEPS)
    assert network.input_stage.n_inputs == network.n_inputs == 2 * 3 * 4
    assert any("'flatten'" in note and "C order" in note for note in network.notes)
    values = data_values(SAMPLES, 2 * 3 * 4)
    results = run_isolated("test_input_stage:input_stage_worker", (str(path), values, STEPS), tmp_path,
                           WORKER_TIMEOUT_S)
    assert_equal_to_stock_netx(path, values, STEPS, results)


@pytest.mark.long
def test_the_real_bootstrap_mnist_network_equals_stock_netx(tmp_path):
    """lava-dl's own bootstrap MNIST file (from the lava-dl mirror, not shipped: 2.7 MB): two
    stand-in images (values in -1..1) for its 16 steps, every layer against stock NetX."""
    if not (LAVA_DL_MIRROR / "HEAD").exists():
        pytest.skip(f"lava-dl's mirror {LAVA_DL_MIRROR} is not on this machine (the bootstrap file is not shipped)")
    path = tmp_path / "bootstrap.net"
    done = subprocess.run(["git", "-C", str(LAVA_DL_MIRROR), "show", f"HEAD:{BOOTSTRAP_IN_REPO}"], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"{BOOTSTRAP_IN_REPO} is not in {LAVA_DL_MIRROR}: {done.stderr.decode()[-200:]}")
    path.write_bytes(done.stdout)
    images = np.zeros((2, 28, 28))
    images[0, 6:22, 12:16] = 1.0                     # a "1"
    images[1, 6:10, 8:20] = images[1, 6:22, 16:20] = 1.0   # a "7"
    values = 2 * images.reshape(2, 784) - 1
    results = run_isolated("test_input_stage:input_stage_worker", (str(path), values, BOOTSTRAP_STEPS), tmp_path,
                           WORKER_TIMEOUT_S)
    assert results["stock"]["transform"] == {"weight": 76, "bias": 64}
    assert_equal_to_stock_netx(path, values, BOOTSTRAP_STEPS, results)


# ------------------------------------------------------------------------------------------ the CLI

def test_the_cli_runs_the_input_stage_on_a_values_file(tmp_path, capsys):
    """``run`` and ``parity --samples-file`` on a network with an input stage take 'values'
    (samples, inputs): the emulator's predictions are the stage's spikes through the emulator, and
    Lava agrees on every spike (PARITY OK)."""
    from cli_support import one_line_error
    from snn_toolchain.cli import main as cli_main

    path = write_bootstrap_layout(tmp_path / "boot.net")
    values = data_values(3, N_IN)
    labels = np.array([0, 1, 2])
    np.savez(tmp_path / "v.npz", values=values, labels=labels)
    run = ["run", "--net", str(path), "--samples-file", str(tmp_path / "v.npz"), "--backend", "emulator"]
    assert cli_main([*run, "--time-steps", str(STEPS)]) == 0
    network = read_net(path, STEPS)
    expected = Emulator(network)(torch.as_tensor(network.input_stage.spikes(values, STEPS))).scores.argmax(1)
    out = capsys.readouterr().out
    assert f"predictions: {expected.tolist()}" in out
    assert cli_main(run) == 2                                  # the steps cannot come from a values file
    one_line_error(capsys, "NetX's input neuron stage", "--time-steps N")
    np.savez(tmp_path / "s.npz", spikes=np.zeros((1, STEPS, N_IN), np.uint8))
    assert cli_main(["run", "--net", str(path), "--samples-file", str(tmp_path / "s.npz"), "--backend", "emulator",
                     "--time-steps", str(STEPS)]) == 2
    one_line_error(capsys, "no 'values' array", "input neuron stage")
    assert cli_main(["parity", "--net", str(path), "--samples-file", str(tmp_path / "v.npz"),
                     "--time-steps", str(STEPS), "--report", str(tmp_path / "p.json")]) == 0
    assert "PARITY OK" in capsys.readouterr().out


def test_a_network_with_an_input_stage_is_not_written_as_ours(tmp_path):
    from snn_toolchain.export.netfile import write_net

    network = read_net(write_bootstrap_layout(tmp_path / "boot.net"), STEPS)
    with pytest.raises(NetFileError, match="input neuron stage"):
        write_net(network, tmp_path / "out.net")
    assert not (tmp_path / "out.net").exists()


def test_values_the_stage_cannot_take_name_the_samples_file(tmp_path, capsys):
    """A value whose bias mantissa Lava cannot hold, an empty file, and a dataset instead of values:
    one line each, naming the file and the fix."""
    from cli_support import one_line_error
    from snn_toolchain.cli import main as cli_main

    path = write_bootstrap_layout(tmp_path / "boot.net")
    huge = data_values(2, N_IN)
    huge[1, 2] = 1e6
    np.savez(tmp_path / "huge.npz", values=huge)
    base = ["run", "--net", str(path), "--backend", "emulator", "--time-steps", str(STEPS), "--samples-file"]
    assert cli_main([*base, str(tmp_path / "huge.npz")]) == 2
    one_line_error(capsys, "huge.npz: 'values':", "bias")
    assert cli_main([*base, str(tmp_path / "huge.npz"), "--samples", "1"]) == 0   # the first sample only
    assert "the first 1 of its 2 samples" in capsys.readouterr().out
    np.savez(tmp_path / "empty.npz", values=np.zeros((0, N_IN)))
    assert cli_main([*base, str(tmp_path / "empty.npz")]) == 2
    one_line_error(capsys, "empty.npz", "no samples")
    assert cli_main(["run", "--net", str(path), "--backend", "emulator", "--time-steps", str(STEPS)]) == 2
    one_line_error(capsys, "NetX's input neuron stage", "--samples-file")


def test_report_and_deploy_take_the_values_of_an_input_stage(tmp_path, capsys):
    """The report (emulator activity, energy) and deploy's pre-flight plan on a network with an
    input stage, its data from a values file."""
    import dataclasses
    import json

    from snn_toolchain.export.loihi2_plan import plan_partition

    from snn_toolchain.cli import main as cli_main

    path = write_bootstrap_layout(tmp_path / "boot.net")
    np.savez(tmp_path / "v.npz", values=data_values(3, N_IN), labels=np.array([0, 1, 2]))
    files = ["--net", str(path), "--samples-file", str(tmp_path / "v.npz"), "--time-steps", str(STEPS)]
    assert cli_main(["report", *files, "--out", str(tmp_path / "report")]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["fixed_point_accuracy"] is not None and report["samples"] == 3
    # the stage's neurons take a core of the plan, one more than the connection layers'
    plan_without_stage = plan_partition(dataclasses.replace(read_net(path, time_steps=STEPS), input_stage=None))
    assert report["loihi2_plan"]["cores_per_layer"] == [1] + plan_without_stage.cores_per_layer
    assert report["loihi2_plan"]["total_cores"] == plan_without_stage.total_cores + 1
    from snn_toolchain.lava_models.lava_loihi import lava_loihi_available

    if lava_loihi_available():      # with it, deploy would run the chip: hardware_tests/ cover that
        return
    with pytest.raises(SystemExit) as ended:     # no lava-loihi here: the pre-flight plan, then the exit saying so
        cli_main(["deploy", *files, "--out", str(tmp_path / "deploy")])
    assert ended.value.code == 3 and (tmp_path / "deploy" / "loihi2_plan.json").exists()
    printed = capsys.readouterr().out
    assert "loihi2" in printed.lower() and "  layer input: " in printed
    plan = json.loads((tmp_path / "deploy" / "loihi2_plan.json").read_text())
    stage = plan["layers"][0]
    assert (stage["role"], stage["neurons"], stage["fan_in"], stage["stored_synapses"], stage["cores"]) == \
        ("input", N_IN, 0, 0, 1)
    assert stage["weight_bits"] is None and stage["bits_per_synapse"] is None   # no synapses, no widths
    assert [layer["role"] for layer in plan["layers"][1:]] == ["hidden", "hidden", "readout"]
    assert plan["total_neurons"] == N_IN + N_HIDDEN1 + N_HIDDEN2 + N_OUT


def test_the_plan_counts_the_input_stage_without_changing_the_layers_plans(tmp_path):
    """The stage adds its neurons' cores; the connection layers are planned as without it."""
    import dataclasses

    from snn_toolchain.export.loihi2_plan import plan_partition

    network = read_net(write_bootstrap_layout(tmp_path / "boot.net"), time_steps=STEPS)
    with_stage, without = plan_partition(network), plan_partition(dataclasses.replace(network, input_stage=None))
    assert with_stage.total_cores == without.total_cores + 1 and with_stage.cores_per_layer[1:] == without.cores_per_layer
    assert with_stage.total_stored_synapses == without.total_stored_synapses
    assert with_stage.total_neurons == without.total_neurons + N_IN
    row = next(line for line in with_stage.table().splitlines() if line.startswith("input "))
    assert row.split()[:7] == ["input", "input", str(N_IN), "0", "-", "0", "-"]


def test_a_stage_before_a_compiled_network_keeps_its_public_compile_and_is_named_beside_it():
    """MNIST's 784-128-64-10 behind a 784-neuron stage: still lava-dl's MNIST compile (3 + 1 + 1,
    matched on the connection layers), and the profile line names the stage's core beside them."""
    from snn_toolchain.export.loihi2_plan import LayerSpec, plan_partition

    layers = [LayerSpec("1", "hidden", 128, 784, 0), LayerSpec("2", "hidden", 64, 128, 0),
              LayerSpec("3", "readout", 10, 64, 0)]
    plan = plan_partition([LayerSpec("input", "input", 784, 0, 0)] + layers)
    assert plan.public_compile is not None and plan.public_compile.cores == (3, 1, 1)
    assert plan.cores_per_layer == [1, 3, 1, 1] and plan.connection_cores == [3, 1, 1]
    assert plan.fitted_to_this_network
    assert "the plan's 3 + 1 + 1 = 5 (+ 1 for the input neuron stage) cores reproduce that compile" in plan.profile_fit


def test_a_stage_too_large_for_the_chip_gets_no_synapse_advice():
    """A stage of more neurons than the chip's cores hold: the hint names the input, never fewer
    inputs or delays (it has neither)."""
    from snn_toolchain.export.loihi2_limits import LOIHI2_LIMITS
    from snn_toolchain.export.loihi2_plan import LayerSpec, plan_partition

    neurons = LOIHI2_LIMITS.total_cores * LOIHI2_LIMITS.neurons_per_core + 1
    plan = plan_partition([LayerSpec("input", "input", neurons, 0, 0), LayerSpec("1", "readout", 10, neurons, 0)])
    assert not plan.fits
    assert any(hint.startswith("a smaller input: the input neuron stage alone takes") for hint in plan.hints)
    assert not any("input stores a synapse list" in hint or "layer input's per-synapse delays" in hint
                   for hint in plan.hints)
