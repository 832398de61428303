"""NIR graphs as .net files (export/nir_import.py, export/nir_layers.py, export/nir_graph.py; docs/nir.md):

- our networks through NIR give the same .net integers, silent neurons (alpha = 1, tau = inf)
  included;
- a network built in snnTorch, exported by snnTorch's own export_to_nir, recognised as snnTorch's
  and imported here: PARITY OK between the emulator and Lava, and its fixed-point spikes close to
  snnTorch's float spikes (other frameworks' graphs and conventions: tests/test_nir_frameworks.py);
- what the import changes is reported (whole-step delays, a CubaLIF bias at the current's steady
  state); import-nir does not replace an existing .net file unless forced;
- refusals, in one line and with no partial file: unsupported nodes, a graph without dt, branching
  or damaged graphs, hostile graphs (a readout with 0 outputs, an empty path, complex weights,
  NaN / inf / huge delays, huge arrays, links, a read that never ends, bad neuron counts).

Writing graphs: tests/test_nir_export.py.
"""

from __future__ import annotations

import re

import h5py
import nir
import numpy as np
import pytest
import torch

from lava_support import run_isolated
from nir_support import (
    CLASSES,
    HIDDEN,
    N_IN,
    SILENT,
    SNNTORCH_DT,
    STEPS,
    one_line,
    spike_inputs,
    trained_like,
    with_silent_neurons as _with_silent_neurons,
)
from snn_toolchain.cli import main
from snn_toolchain.errors import ToolchainError
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.export.netfile import read_net, write_net
from snn_toolchain.export.nir_export import model_to_nir, write_nir
from snn_toolchain.export.nir_import import NirImportError, import_nir, nir_to_network
from snn_toolchain.export.nir_simulate import simulate_nir
from snn_toolchain.train.model.quantize import quantize_model


def _layers_of(path) -> dict:
    with h5py.File(path) as f:
        found = {}
        f["layer"].visititems(lambda name, item: found.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset)
                              else None)
        return found


@pytest.mark.parametrize("variant, delays", [("adlif+", True), ("lif", True), ("lif", False)])
def test_our_network_through_nir_gives_the_same_net_file(tmp_path, variant, delays):
    model = trained_like(variant, delays)
    direct = write_net(quantize_model(model, STEPS), tmp_path / "direct.net")
    graph_file = write_nir(model_to_nir(model), tmp_path / "model.nir")
    report = import_nir(graph_file, tmp_path / "via_nir.net", STEPS)
    assert report.dt == 0.01 and report.network.readout == "sum"
    ours, theirs = _layers_of(direct), _layers_of(tmp_path / "via_nir.net")
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert np.array_equal(ours[key], theirs[key]), key
    assert read_net(tmp_path / "via_nir.net").variant == variant


@pytest.mark.parametrize("variant, delays", [("adlif+", True), ("lif", False)])
def test_alpha_one_round_trips_through_nir_to_the_same_net_file(tmp_path, variant, delays):
    model = _with_silent_neurons(variant, delays)
    direct = write_net(quantize_model(model, STEPS), tmp_path / "direct.net")
    graph_file = write_nir(model_to_nir(model), tmp_path / "model.nir")
    read_back = nir.read(graph_file)
    _, spikes = simulate_nir(read_back, spike_inputs().numpy())       # the file, not the object
    assert all(s[..., SILENT].sum() == 0 for s in spikes)
    import_nir(graph_file, tmp_path / "via_nir.net", STEPS)
    ours, theirs = _layers_of(direct), _layers_of(tmp_path / "via_nir.net")
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert np.array_equal(ours[key], theirs[key]), key
    assert read_net(tmp_path / "via_nir.net").variant == variant


def test_a_lif_node_with_infinite_tau_is_imported_as_a_silent_neuron():
    n = 3
    nodes = {"input": nir.Input(input_type={"input": np.array([2])}),
             "fc": nir.Affine(weight=np.full((n, 2), 2.0), bias=np.zeros(n)),
             "lif": nir.LIF(tau=np.array([0.02, np.inf, 0.05]), r=np.ones(n), v_leak=np.zeros(n),
                            v_threshold=np.ones(n), v_reset=np.zeros(n)),
             "out": nir.Affine(weight=np.eye(n), bias=np.zeros(n)),
             "output": nir.Output(output_type={"output": np.array([n])})}
    graph = nir.NIRGraph(nodes, [("input", "fc"), ("fc", "lif"), ("lif", "out"), ("out", "output")],
                         metadata={"dt": 0.01})
    _, spikes = simulate_nir(graph, np.ones((1, STEPS, 2)))
    assert spikes[0][0, :, 1].sum() == 0 and spikes[0][0, :, 0].sum() > 0
    layer = nir_to_network(graph, STEPS).network.layers[0]
    assert layer.weight[1].tolist() == [0, 0] and layer.neuron.voltage_decay[1] == 0


def snntorch_lava_worker(net_path: str, samples: np.ndarray):
    from snn_toolchain.export.emulator import Emulator
    from snn_toolchain.lava_models.lava_backend import LavaBackend
    from snn_toolchain.evaluation import compare_runs

    network = read_net(net_path)
    lava = LavaBackend(network, "ring", progress=False)(samples)
    return compare_runs(Emulator(network).run(torch.as_tensor(samples)), lava, ("emulator", "lava")), lava.spike_counts()


def snntorch_network(seed: int = 0):
    """A 30-16-5 snnTorch network of Leaky neurons (zero reset, per-neuron beta), as snnTorch users
    build them; random weights scaled so that both layers fire."""
    import snntorch as snn

    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(N_IN, HIDDEN),
        snn.Leaky(beta=torch.rand(HIDDEN) * 0.3 + 0.65, threshold=torch.ones(HIDDEN), init_hidden=True,
                  reset_mechanism="zero"),
        torch.nn.Linear(HIDDEN, CLASSES),
        snn.Leaky(beta=torch.full((CLASSES,), 0.85), threshold=torch.ones(CLASSES), init_hidden=True, output=True,
                  reset_mechanism="zero"))
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[2].weight.mul_(2.0)
        net[0].bias.fill_(0.05)
    return net


def test_an_snntorch_network_imports_and_runs_on_lava_with_parity(tmp_path):
    from snntorch.export_nir import export_to_nir

    net = snntorch_network()
    graph_path = tmp_path / "snntorch.nir"
    nir.write(graph_path, export_to_nir(net, torch.zeros(1, N_IN), ignore_dims=[0]))
    x = spike_inputs(n=16)

    # snnTorch's graphs do not say their dt; its r = tau / 1e-4 says whose they are (nir_conventions)
    report = import_nir(graph_path, tmp_path / "snntorch.net", STEPS)
    assert report.source == "snntorch" and report.dt == SNNTORCH_DT and "snnTorch" in report.convention
    network = report.network
    assert network.readout == "spikes" and [layer.neuron_variant for layer in network.layers] == ["cuba", "cuba"]
    assert any("Euler at dt = 0.0001 s" in change for change in report.changes)

    comparison, lava_counts = run_isolated("test_nir_import:snntorch_lava_worker", (str(tmp_path / "snntorch.net"),
                                                                            x.numpy().astype(np.int64)),
                                           tmp_path / "worker", timeout_s=300)
    assert comparison.spikes_identical and comparison.readout_identical and comparison.scores_identical
    assert min(lava_counts) > 0

    # fixed point against snnTorch's float: 8-bit weights and 12-bit decays, and Lava's one step of
    # latency per layer (counts, not steps, are compared): within 10% per layer, scores close
    import snntorch.utils

    snntorch.utils.reset(net)
    float_spikes = [[], []]
    with torch.no_grad():
        for t in range(x.shape[1]):
            current = x[:, t]
            hidden = net[1](net[0](current))
            out, _ = net[3](net[2](hidden))
            float_spikes[0].append(hidden)
            float_spikes[1].append(out)
    float_counts = [float(torch.stack(s).sum()) for s in float_spikes]
    fixed = Emulator(network)(x)
    fixed_counts = [float(s.sum()) for s in fixed.spikes]
    for f, q in zip(float_counts, fixed_counts):
        assert f > 0 and abs(f - q) <= 0.1 * f + 3, (float_counts, fixed_counts)


# ------------------------------------------------------------------------- what the import changes

def test_per_channel_delays_become_whole_steps_and_the_change_is_reported():
    nodes = {"input": nir.Input(input_type={"input": np.array([4])}),
             "axon": nir.Delay(delay=np.array([0.0, 0.01, 0.021, 0.03])),
             "fc": nir.Affine(weight=np.full((3, 4), 0.6), bias=np.zeros(3)),
             "if": nir.IF(r=np.full(3, 100.0), v_threshold=np.ones(3)),
             "out": nir.Affine(weight=np.eye(2, 3), bias=np.zeros(2)),
             "output": nir.Output(output_type={"output": np.array([2])})}
    graph = nir.NIRGraph(nodes, [("input", "axon"), ("axon", "fc"), ("fc", "if"), ("if", "out"), ("out", "output")],
                         metadata={"dt": 0.01})
    report = nir_to_network(graph, STEPS)
    assert report.network.layers[0].delay.tolist() == [[0, 1, 2, 3]] * 3
    assert any("delays rounded to whole steps" in change for change in report.changes)
    assert report.network.readout == "sum" and report.network.layers[0].neuron.voltage_decay.tolist() == [0, 0, 0]


def _graph_with(node, name: str):
    nodes = {"input": nir.Input(input_type={"input": np.array([4])}),
             "fc": nir.Affine(weight=np.eye(3, 4), bias=np.zeros(3)), name: node,
             "output": nir.Output(output_type={"output": np.array([3])})}
    return nir.NIRGraph(nodes, [("input", "fc"), ("fc", name), (name, "output")], metadata={"dt": 0.01})


def test_consecutive_delays_add_up_and_malformed_nodes_are_one_line_errors():
    nodes = {"input": nir.Input(input_type={"input": np.array([2])}),
             "d1": nir.Delay(delay=np.array([0.01, 0.0])), "d2": nir.Delay(delay=np.array([0.02, 0.01])),
             "fc": nir.Affine(weight=np.ones((1, 2)), bias=np.zeros(1)),
             "output": nir.Output(output_type={"output": np.array([1])})}
    graph = nir.NIRGraph(nodes, [("input", "d1"), ("d1", "d2"), ("d2", "fc"), ("fc", "output")], metadata={"dt": 0.01},
                         type_check=False)
    with pytest.raises(ToolchainError, match="at least one hidden layer"):
        nir_to_network(graph, STEPS)          # a readout alone is no network
    hidden = _graph_with(nir.IF(r=np.ones(3), v_threshold=np.ones(3)), "if")
    hidden.nodes["axon1"], hidden.nodes["axon2"] = nir.Delay(delay=np.full(4, 0.01)), nir.Delay(delay=np.full(4, 0.02))
    hidden.edges[:] = [("input", "axon1"), ("axon1", "axon2"), ("axon2", "fc"), ("fc", "if"), ("if", "output")]
    assert nir_to_network(hidden, STEPS).network.layers[0].delay.tolist() == [[3] * 4] * 3
    bad_dt = _graph_with(nir.IF(r=np.ones(3), v_threshold=np.ones(3)), "if")
    bad_dt.metadata["dt"] = "ten ms"
    with pytest.raises(NirImportError, match="not a number of seconds"):
        nir_to_network(bad_dt, STEPS)


def test_a_cubalif_bias_enters_at_the_currents_steady_state():
    """NIR filters an Affine's bias through the current; Lava adds a bias to the voltage: the import
    gives it the steady state, so a bias-driven CubaLIF fires at the reference's rate."""
    n = 3
    nodes = {"input": nir.Input(input_type={"input": np.array([2])}),
             "fc": nir.Affine(weight=np.full((n, 2), 0.01), bias=np.array([3.0, 6.0, 12.0])),   # the input stays 0
             "lif": nir.CubaLIF(tau_syn=np.full(n, 0.05), tau_mem=np.full(n, 0.1), r=np.ones(n), v_leak=np.zeros(n),
                                v_threshold=np.ones(n), v_reset=np.zeros(n), w_in=np.ones(n)),
             "out": nir.Affine(weight=np.eye(n), bias=np.zeros(n)),
             "output": nir.Output(output_type={"output": np.array([n])})}
    graph = nir.NIRGraph(nodes, [("input", "fc"), ("fc", "lif"), ("lif", "out"), ("out", "output")],
                         metadata={"dt": 0.01})
    x = np.zeros((1, STEPS, 2))
    _, reference = simulate_nir(graph, x)
    report = nir_to_network(graph, STEPS)
    assert any("steady state" in change for change in report.changes)
    fixed = Emulator(report.network)(torch.as_tensor(x)).spikes[0][0].numpy()
    reference_counts, fixed_counts = reference[0][0].sum(0), fixed.sum(0)
    assert reference_counts.min() > 3
    assert np.all(np.abs(fixed_counts - reference_counts) <= 0.15 * reference_counts + 2), (fixed_counts, reference_counts)


def _small_graph(weight=None, delay=None, readout_out: int = 2):
    nodes = {"input": nir.Input(input_type={"input": np.array([4])})}
    edges, previous = [], "input"
    if delay is not None:
        nodes["axon"] = nir.Delay(delay=np.asarray(delay, dtype=np.float64))
        edges.append((previous, "axon"))
        previous = "axon"
    nodes.update({"fc": nir.Affine(weight=np.full((3, 4), 0.6) if weight is None else weight, bias=np.zeros(3)),
                  "if": nir.IF(r=np.full(3, 100.0), v_threshold=np.ones(3)),
                  "out": nir.Affine(weight=np.ones((readout_out, 3)), bias=np.zeros(readout_out)),
                  "output": nir.Output(output_type={"output": np.array([readout_out])})})
    edges += [(previous, "fc"), ("fc", "if"), ("if", "out"), ("out", "output")]
    return nir.NIRGraph(nodes, edges, metadata={"dt": 0.01}, type_check=False)


def test_import_nir_does_not_replace_an_existing_net_file_unless_forced(tmp_path, capsys):
    graph_file = write_nir(_small_graph(), tmp_path / "g.nir")
    out = tmp_path / "g.net"
    out.write_bytes(b"precious")
    with pytest.raises(NirImportError) as info:
        import_nir(graph_file, out, STEPS)
    message = one_line(info)
    assert str(out) in message and "exists" in message and "--force" in message
    assert out.read_bytes() == b"precious"
    capsys.readouterr()
    assert main(["import-nir", str(graph_file), "--time-steps", str(STEPS)]) == 2
    assert "exists" in capsys.readouterr().err and out.read_bytes() == b"precious"
    import_nir(graph_file, out, STEPS, force=True)
    assert read_net(out).layers[0].weight.shape == (3, 4)


# ---------------------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("node, name, reason", [
    (nir.LI(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3)), "readout_li", "LI"),
    (nir.Threshold(threshold=np.ones(3)), "thr", "Threshold"),
    (nir.LIF(tau=np.full(3, 0.02), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3),
             v_reset=np.full(3, 0.5)), "lif", "v_reset is not 0"),
])
def test_an_unsupported_node_is_refused_in_one_line_and_nothing_is_written(tmp_path, node, name, reason):
    graph_path = tmp_path / "bad.nir"
    nir.write(graph_path, _graph_with(node, name))
    with pytest.raises(NirImportError) as info:
        import_nir(graph_path, tmp_path / "bad.net", STEPS)
    message = str(info.value)
    assert f"node '{name}'" in message and reason in message and "\n" not in message
    assert not (tmp_path / "bad.net").exists() and not list(tmp_path.glob(".bad.net.*"))


def test_a_branching_graph_and_a_damaged_file_are_refused(tmp_path):
    graph = _graph_with(nir.IF(r=np.ones(3), v_threshold=np.ones(3)), "if")
    graph.edges.append(("input", "output"))
    with pytest.raises(NirImportError, match="node 'input': it feeds 2 nodes"):
        nir_to_network(graph, STEPS)
    damaged = tmp_path / "damaged.nir"
    damaged.write_bytes(b"not hdf5")
    with pytest.raises(NirImportError, match="not a readable NIR file"):
        import_nir(damaged, tmp_path / "x.net", STEPS)


def test_a_recurrent_subgraph_that_is_not_ours_is_refused():
    model = trained_like("adlif+", False)
    graph = model_to_nir(model)
    graph.nodes["hidden0"].nodes["reset"] = nir.Scale(scale=np.full(HIDDEN, -0.5))
    with pytest.raises(NirImportError, match="node 'hidden0': its reset is not this toolchain's AdLIF subgraph"):
        nir_to_network(graph, STEPS)


def test_a_readout_with_zero_outputs_is_one_line():
    with pytest.raises(NirImportError) as info:
        nir_to_network(_small_graph(readout_out=0), STEPS)
    message = one_line(info)
    assert "node 'out'" in message and "0 outputs" in message


def test_an_empty_path_is_one_line_naming_it(tmp_path):
    graph_file = write_nir(_small_graph(), tmp_path / "g.nir")
    with pytest.raises(NirImportError) as info:
        import_nir("", tmp_path / "x.net", STEPS)
    assert "empty" in one_line(info) and "give the .nir file" in one_line(info)
    with pytest.raises(NirImportError) as info:
        import_nir(graph_file, "", STEPS)
    assert "empty" in one_line(info) and ".net" in one_line(info)
    with pytest.raises(NirImportError) as info:
        import_nir(tmp_path, tmp_path / "x.net", STEPS)
    assert "is a folder" in one_line(info)
    assert not (tmp_path / "x.net").exists()


def test_complex_weights_are_refused_not_truncated(tmp_path):
    graph = _small_graph(weight=np.full((3, 4), 0.6 + 0.2j))
    with pytest.raises(NirImportError) as info:
        nir_to_network(graph, STEPS)
    message = one_line(info)
    assert "node 'fc'" in message and "complex" in message
    with pytest.raises(NirImportError, match="node 'fc': weight holds complex"):
        simulate_nir(graph, np.ones((1, STEPS, 4)))
    graph_file = write_nir(graph, tmp_path / "c.nir")          # through a file too
    with pytest.raises(NirImportError, match="complex"):
        import_nir(graph_file, tmp_path / "c.net", STEPS)
    assert not (tmp_path / "c.net").exists()


@pytest.mark.parametrize("value, shown", [(float("nan"), "nan"), (float("inf"), "inf"), (1e300, "1e+300"),
                                          (-float("inf"), "-inf")])
def test_a_nan_inf_or_huge_delay_is_reported_as_it_is_and_refused(tmp_path, value, shown):
    graph = _small_graph(delay=[0.0, 0.01, value, 0.0])
    with pytest.raises(NirImportError) as info:
        nir_to_network(graph, STEPS)
    message = one_line(info)
    assert "node 'axon'" in message and f"delay[2] = {shown} s" in message, message
    assert "-9223372036854775808" not in message
    graph_file = write_nir(graph, tmp_path / "d.nir")
    with pytest.raises(NirImportError, match=re.escape(f"delay[2] = {shown} s")):
        import_nir(graph_file, tmp_path / "d.net", STEPS)
    assert not (tmp_path / "d.net").exists()


def test_a_huge_array_in_a_small_graph_is_refused_before_it_is_read(tmp_path):
    """nir.read loads every dataset whole: a few-kB graph whose compressed weight is 60000 x 60000
    (the long fuzz test met one that read for over an hour) is refused from its shapes at once."""
    import time

    import h5py

    path = tmp_path / "huge.nir"
    with h5py.File(path, "w") as f:
        node = f.create_group("node/nodes/fc0")
        node.create_dataset("weight", shape=(60000, 60000), dtype="f8", chunks=(1000, 1000), compression="gzip")
    assert path.stat().st_size < 100_000
    started = time.monotonic()
    with pytest.raises(NirImportError) as info:
        import_nir(path, tmp_path / "huge.net", time_steps=10)
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert "'/node/nodes/fc0/weight' alone 26.8 GiB" in message and str(path) in message and "\n" not in message
    assert not (tmp_path / "huge.net").exists()


def test_a_link_inside_a_graph_is_refused_before_nir_follows_it(tmp_path):
    """nir.read follows soft links, round a cycle until Python's recursion limit. A NIR graph
    holds no links; one is refused at once, naming it."""
    import time

    import h5py

    path = tmp_path / "loop.nir"
    with h5py.File(path, "w") as f:
        node = f.create_group("node/nodes/fc0")
        node.create_dataset("weight", data=np.ones((2, 2)))
        node["up"] = h5py.SoftLink("/node")
        node["up2"] = h5py.SoftLink("/")
    started = time.monotonic()
    with pytest.raises(NirImportError) as info:
        import_nir(path, tmp_path / "loop.net", time_steps=10)
    assert time.monotonic() - started < 10
    assert "'/node/nodes/fc0/up' is a link" in str(info.value) and str(path) in str(info.value)
    assert not (tmp_path / "loop.net").exists()


def test_a_read_that_never_ends_is_refused_after_the_timeout(tmp_path, monkeypatch):
    """A damaged string heap sent the HDF5 library into an endless loop inside nir.read (the long
    fuzz run met one; no exception ends it): the read runs in a forked child, killed at the timeout."""
    import time

    import nir

    from snn_toolchain.export import nir_import

    path = tmp_path / "graph.nir"
    path.write_bytes(b"not read")
    monkeypatch.setattr(nir, "read", lambda *_: time.sleep(3600))
    monkeypatch.setattr(nir_import, "NIR_READ_TIMEOUT_S", 1.0)
    started = time.monotonic()
    with pytest.raises(NirImportError, match="reading it did not finish in 1 s") as info:
        import_nir(path, tmp_path / "graph.net", time_steps=10)
    assert time.monotonic() - started < 20 and str(path) in str(info.value)
    assert not (tmp_path / "graph.net").exists()


@pytest.mark.parametrize("value, fragment", [
    (float("inf"), "'in' = inf is not a neuron count"), (float("nan"), "'in' = nan is not a neuron count"),
    (-3, "'in' = -3 is not a neuron count"), (2.5, "'in' = 2.5 is not a neuron count"),
    (10 ** 9, "not (16000000000, 1000000000) as its metadata in = 1000000000, out = 16")])
def test_a_delay_expansion_with_a_bad_neuron_count_is_refused_naming_it(tmp_path, value, fragment):
    """The long fuzz run met 'in' = inf on a delay expansion's fan-out node (OverflowError); a huge
    count would have allocated its identity matrix before any check. Both are one line now."""
    import h5py

    path = tmp_path / "graph.nir"
    write_nir(model_to_nir(trained_like("adlif+", True)), path)
    with h5py.File(path, "a") as f:
        del f["node/nodes/fc0_fanout/metadata/in"]
        f["node/nodes/fc0_fanout/metadata/in"] = value
    with pytest.raises(NirImportError) as info:
        import_nir(path, tmp_path / "graph.net", time_steps=10)
    message = str(info.value)
    assert "fc0" in message and "\n" not in message and fragment in message, message
    assert not (tmp_path / "graph.net").exists()
