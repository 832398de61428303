"""Faults of the NIR path (issue #22; export/nir_export.py, nir_import.py, nir_simulate.py, docs/nir.md).

- A checkpoint holding NaN or infinite values is refused before anything is written, naming the
  layer and the parameter (a good model.nir already there stays as it was).
- A neuron whose alpha reached the trainer's bound 1.0 never leaves the zero state and never spikes:
  it is written as a silent neuron (tau = inf), simulated and imported back as alpha = 1; what NIR
  cannot express (beta = 1 in an AdLIF subgraph) is refused naming the layer, the neuron and the fix.
- import-nir does not replace an existing .net file unless forced.
- Hostile graphs (a readout with 0 outputs, an empty path, complex weights, NaN / inf / huge
  delays) are one-line errors that say the real value, never tracebacks or nonsense integers.
"""

from __future__ import annotations

import re

import nir
import numpy as np
import pytest
import torch

from snn_toolchain.cli import main
from snn_toolchain.export.netfile import read_net, write_net
from snn_toolchain.export.nir_export import NirExportError, export_nir, model_to_nir, write_nir
from snn_toolchain.export.nir_import import NirImportError, import_nir, nir_to_network
from snn_toolchain.export.nir_simulate import simulate_nir
from snn_toolchain.train.model.quantize import quantize_model
from test_nir import HIDDEN, STEPS, _layers_of, spike_inputs, step_equal_share, trained_like


def one_line(err) -> str:
    message = str(err.value if hasattr(err, "value") else err)
    assert "\n" not in message and message, message
    return message


def save_checkpoint(model, path):
    torch.save({"model_config": model.config, "model": model.state_dict()}, path)
    return path


# ------------------------------------------------------------- 1. NaN in the checkpoint

def _poison(model, what: str, value: float):
    with torch.no_grad():
        if what == "weight":
            model.blocks[1].synapse.weight[2, 3] = value
        elif what == "bias":
            model.readout.synapse.bias[1] = value
        elif what == "delay":
            model.blocks[0].synapse.delay[2, 3] = value
        else:
            getattr(model.blocks[0].neuron, what)[2] = value
    return model


@pytest.mark.parametrize("what, layer, shown", [
    ("weight", "fc1", "weight[2, 3] is nan"),
    ("bias", "readout", "bias[1] is nan"),
    ("delay", "fc0", "delay[2, 3] is nan"),
    ("alpha", "hidden0", "alpha[2] is nan"),
    ("b", "hidden0", "b[2] is nan"),
])
def test_a_nan_in_the_checkpoint_is_refused_naming_layer_and_parameter(what, layer, shown):
    model = _poison(trained_like("adlif+", True), what, float("nan"))
    with pytest.raises(NirExportError) as info:
        model_to_nir(model)
    message = one_line(info)
    assert f"layer {layer}" in message and shown in message and "retrain" in message, message


def test_an_infinite_alpha_of_a_lif_model_is_refused():
    model = _poison(trained_like("lif", False), "alpha", float("inf"))
    with pytest.raises(NirExportError, match=r"layer hidden0: neuron alpha\[2\] is inf"):
        model_to_nir(model)


def test_export_of_a_nan_checkpoint_keeps_the_existing_graph_and_the_cli_says_one_line(tmp_path, capsys):
    good = tmp_path / "model.nir"
    write_nir(model_to_nir(trained_like("adlif+", True)), good)
    before = good.read_bytes()
    checkpoint = save_checkpoint(_poison(trained_like("adlif+", True), "alpha", float("nan")), tmp_path / "best.pt")
    with pytest.raises(NirExportError) as info:
        export_nir(checkpoint, good)
    message = one_line(info)
    assert str(checkpoint) in message and "layer hidden0" in message and "alpha[2] is nan" in message
    assert good.read_bytes() == before and not list(tmp_path.glob(".model.nir.*"))

    capsys.readouterr()
    fresh = tmp_path / "fresh.nir"
    assert main(["export", "--run-dir", str(tmp_path), "--format", "nir", "--out", str(fresh)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("train-export: error: ") and "\n" not in err and "alpha[2] is nan" in err
    assert not fresh.exists() and not list(tmp_path.glob(".fresh.nir.*"))


# ------------------------------------------------- 2. alpha = 1: silent neurons, exactly

SILENT = [0, 5, 11]


def _with_silent_neurons(variant: str, delays: bool):
    model = trained_like(variant, delays)
    with torch.no_grad():
        for block in model.blocks:          # the trainer's bound: clamp_ leaves exactly 1.0
            block.neuron.alpha[SILENT] = 1.0
    return model


@pytest.mark.parametrize("variant, delays", [("adlif+", True), ("adlif+", False), ("lif", True)])
def test_alpha_one_is_exported_as_a_silent_neuron_and_simulates_as_the_model(variant, delays):
    model = _with_silent_neurons(variant, delays)
    graph = model_to_nir(model)
    for index in range(2):
        node = graph.nodes[f"hidden{index}"]
        tau = node.nodes["u"].tau if variant != "lif" else node.tau
        assert np.all(np.isinf(tau[SILENT])) and np.all(np.isfinite(np.delete(tau, SILENT)))
        if variant != "lif":
            assert np.all(node.nodes["reset"].scale[SILENT] == 0)
        for sub in (node.nodes.values() if variant != "lif" else [node]):
            for key, value in vars(sub).items():
                if isinstance(value, np.ndarray) and value.dtype.kind == "f" and key != "tau":
                    assert np.all(np.isfinite(value)), key      # inf only as the silent tau
    x = spike_inputs()
    with torch.no_grad():
        _, spikes = model.double()(x.double(), return_spikes=True)
    _, graph_spikes = simulate_nir(graph, x.numpy())
    assert sum(float(s.sum()) for s in graph_spikes) > 50
    for ours, graphs in zip(spikes, graph_spikes):
        ours = ours.numpy()
        assert ours[..., SILENT].sum() == 0 and graphs[..., SILENT].sum() == 0
        if variant == "lif":    # the reset convention (tests/test_nir.py)
            assert graphs.sum() <= ours.sum() and step_equal_share(ours, graphs) > 0.95
        else:
            assert step_equal_share(ours, graphs) > 0.98
            assert abs(graphs.sum() - ours.sum()) <= 0.01 * ours.sum() + 2


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


def test_beta_one_in_an_adlif_subgraph_is_refused_naming_layer_neuron_and_fix():
    model = trained_like("adlif+", False)
    with torch.no_grad():
        model.blocks[1].neuron.beta[7] = 1.0       # only reachable with --bounds beta=...:1
    with pytest.raises(NirExportError) as info:
        model_to_nir(model)
    message = one_line(info)
    assert "layer hidden1" in message and "neuron 7" in message and "beta = 1" in message
    assert "--format net" in message and "below 1" in message


def test_alpha_above_one_is_refused_naming_the_neuron():
    model = trained_like("adlif+", False)
    with torch.no_grad():
        model.blocks[0].neuron.alpha[4] = 1.5
    with pytest.raises(NirExportError, match=r"layer hidden0: neuron 4 has alpha = 1\.5"):
        model_to_nir(model)


# --------------------------------------------------------- 3. an existing .net file

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


# ------------------------------------------------------------------- 4. hostile input

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


# ------------------------------------------------------------- 5. NaN / inf / huge delays

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
