"""NIR in and out (issue #11; export/nir_export.py, nir_import.py, nir_simulate.py, docs/nir.md).

- Our networks to NIR: the graph's float semantics (simulate_nir) equal our float model, delays
  and AdLIF expansions included; read back, they give the same .net integers.
- snnTorch reads our LIF export and reproduces the graph's spikes; against our float model the
  reset convention differs (NIR resets to 0, our LIF subtracts), and the tolerance says so.
- A network built in snnTorch, exported by snnTorch's own export_to_nir, imported here: PARITY OK
  between the emulator and Lava, and its fixed-point spikes close to snnTorch's float spikes.
- Refusals: unsupported nodes, a graph without dt, large expansions; no partial file.
"""

from __future__ import annotations

import contextlib
import io

import h5py
import nir
import numpy as np
import pytest
import torch

from lava_support import run_isolated
from snn_toolchain.errors import ToolchainError
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.export.netfile import read_net, write_net
from snn_toolchain.export.nir_export import MAX_EXPANSION_UNITS, NirExportError, model_to_nir, write_nir
from snn_toolchain.export.nir_import import NirImportError, import_nir, nir_to_network
from snn_toolchain.export.nir_simulate import simulate_nir
from snn_toolchain.train.model.delay_snn import DelaySNN
from snn_toolchain.train.model.quantize import quantize_model

N_IN, HIDDEN, CLASSES, MAX_DELAY, STEPS = 30, 16, 5, 6, 40
SNNTORCH_DT = 1e-4    # snnTorch reads and writes NIR with this fixed time step


def trained_like(variant: str, delays: bool, seed: int = 0, hidden: int = HIDDEN, n_in: int = N_IN,
                 latency: int = 1) -> DelaySNN:
    torch.manual_seed(seed)
    model = DelaySNN(n_in, CLASSES, hidden, variant=variant, delays=delays, max_delay=MAX_DELAY, dropout=0.0,
                     norm="batchnorm", latency=latency).eval()
    with torch.no_grad():
        for block in list(model.blocks) + [model.readout]:
            block.synapse.weight.mul_(4.0)
            if delays:
                block.synapse.delay.uniform_(0, MAX_DELAY)
        for block in model.blocks:      # a trained BatchNorm's statistics, to be folded
            block.norm.running_mean.uniform_(-0.1, 0.1)
            block.norm.running_var.uniform_(0.5, 2.0)
    return model


def spike_inputs(n: int = 12, seed: int = 1, n_in: int = N_IN) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(n, STEPS, n_in, generator=generator) < 0.15).to(torch.float32)


def step_equal_share(a, b) -> float:
    return float(np.mean(np.asarray(a) == np.asarray(b)))


# ------------------------------------------------------------------------- our networks to NIR

@pytest.mark.parametrize("variant, delays, latency", [("adlif+", True, 1), ("lif", True, 1), ("adlif", False, 1),
                                                      ("adlif+", True, 0)])
def test_the_nir_graph_computes_what_our_float_model_computes(variant, delays, latency):
    model = trained_like(variant, delays, latency=latency)
    x = spike_inputs()
    with torch.no_grad():
        scores, spikes = model.double()(x.double(), return_spikes=True)
    graph_scores, graph_spikes = simulate_nir(model_to_nir(model), x.numpy())
    assert len(graph_spikes) == 2 and sum(float(s.sum()) for s in graph_spikes) > 50
    for ours, graphs in zip(spikes, graph_spikes):
        if variant == "lif":
            # NIR's LIF resets to v_reset = 0, our float LIF subtracts the threshold a step later:
            # the graph fires less (its membrane restarts from 0, not from the overshoot)
            assert graphs.sum() <= ours.sum().item() and step_equal_share(ours.numpy(), graphs) > 0.95
        else:
            # exact up to float64 rounding of tau = dt / (1 - alpha): a near-threshold flip may cascade
            assert step_equal_share(ours.numpy(), graphs) > 0.98
            assert abs(graphs.sum() - ours.sum().item()) <= 0.01 * ours.sum().item() + 2
    if variant != "lif":
        agree = np.mean(graph_scores.argmax(1) == scores.numpy().argmax(1))
        assert agree >= 0.9, agree


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


def test_a_large_delay_expansion_is_refused_unless_asked():
    model = trained_like("lif", True, hidden=400, n_in=260)         # 400 x 260 = 104,000 units
    with pytest.raises(NirExportError, match="--allow-large-expansion"):
        model_to_nir(model)
    graph = model_to_nir(model, allow_large=True)
    assert graph.nodes["fc0_delay"].delay.shape == (400 * 260,) and 400 * 260 > MAX_EXPANSION_UNITS


# ------------------------------------------------------------------------------ with snnTorch

def run_snntorch(net, x: torch.Tensor, spiking: tuple) -> tuple:
    """A nirtorch/snnTorch GraphModule step by step; (summed output, spikes of the named modules)."""
    import snntorch

    for module in net.modules():
        if isinstance(module, snntorch.SpikingNeuron):
            module.reset_hidden()
    recorded = {name: [] for name in spiking}
    hooks = [getattr(net, name).register_forward_hook(lambda m, i, o, name=name: recorded[name].append(o.detach()))
             for name in spiking]
    outputs, state = [], None
    with torch.no_grad():
        for t in range(x.shape[1]):
            out, state = net(x[:, t], state)
            outputs.append(out)
    for hook in hooks:
        hook.remove()
    return torch.stack(outputs, 1).sum(1).numpy(), [torch.stack(recorded[n], 1).numpy() for n in spiking]


def test_snntorch_reads_our_lif_export_and_reproduces_its_spikes():
    from snntorch.import_nir import import_from_nir

    # snnTorch reads the nodes, not our latency_steps: it computes the network without Lava's
    # latency, which a model trained with --latency 0 is
    model = trained_like("lif", False, latency=0)
    x = spike_inputs(n=16)
    graph = model_to_nir(model, dt=SNNTORCH_DT)
    assert graph.metadata["latency_steps"] == 0
    with contextlib.redirect_stdout(io.StringIO()):     # snnTorch prints its own notices
        net = import_from_nir(graph)
    theirs_scores, theirs = run_snntorch(net, x, ("hidden0", "hidden1"))
    graph_scores, graph_spikes = simulate_nir(graph, x.numpy())
    assert graph_spikes[0].sum() > 30
    for a, b in zip(theirs, graph_spikes):   # float32 against float64: equal but for rare threshold ties
        assert step_equal_share(a, b) > 0.999 and abs(a.sum() - b.sum()) <= 0.01 * b.sum() + 1
    np.testing.assert_allclose(theirs_scores, graph_scores, rtol=1e-3, atol=1e-2)
    with torch.no_grad():
        _, ours = model(x, return_spikes=True)
    # against our trained float model: the reset convention (see the test above) is the difference
    assert step_equal_share(ours[0].numpy(), theirs[0]) > 0.95


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


def snntorch_lava_worker(net_path: str, samples: np.ndarray):
    from snn_toolchain.export.emulator import Emulator
    from snn_toolchain.lava_models.lava_backend import LavaBackend
    from snn_toolchain.evaluation import compare_runs

    network = read_net(net_path)
    lava = LavaBackend(network, "ring", progress=False)(samples)
    return compare_runs(Emulator(network).run(torch.as_tensor(samples)), lava, ("emulator", "lava")), lava.spike_counts()


def test_an_snntorch_network_imports_and_runs_on_lava_with_parity(tmp_path):
    from snntorch.export_nir import export_to_nir

    net = snntorch_network()
    graph_path = tmp_path / "snntorch.nir"
    nir.write(graph_path, export_to_nir(net, torch.zeros(1, N_IN), ignore_dims=[0]))
    x = spike_inputs(n=16)

    with pytest.raises(NirImportError, match="--dt"):          # snnTorch's graphs do not say their dt
        import_nir(graph_path, tmp_path / "no_dt.net", STEPS)
    assert not (tmp_path / "no_dt.net").exists()
    report = import_nir(graph_path, tmp_path / "snntorch.net", STEPS, dt=SNNTORCH_DT)
    network = report.network
    assert network.readout == "spikes" and [layer.neuron_variant for layer in network.layers] == ["cuba", "cuba"]
    assert any("Euler at dt = 0.0001 s" in change for change in report.changes)

    comparison, lava_counts = run_isolated("test_nir:snntorch_lava_worker", (str(tmp_path / "snntorch.net"),
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


# ----------------------------------------------------------------------------------- refusals

def _graph_with(node, name: str):
    nodes = {"input": nir.Input(input_type={"input": np.array([4])}),
             "fc": nir.Affine(weight=np.eye(3, 4), bias=np.zeros(3)), name: node,
             "output": nir.Output(output_type={"output": np.array([3])})}
    return nir.NIRGraph(nodes, [("input", "fc"), ("fc", name), (name, "output")], metadata={"dt": 0.01})


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


def test_parity_traces_are_written_as_nir_data_and_read_back(tmp_path):
    from snn_toolchain.lava_models.parity import write_nir_traces
    from snn_toolchain.evaluation import RunResult

    rng = np.random.default_rng(0)
    runs = {name: RunResult(np.zeros((3, 2)), [rng.integers(0, 2, (3, 9, 4)).astype(np.uint8),
                                               rng.integers(0, 2, (3, 9, 2)).astype(np.uint8)])
            for name in ("emulator", "lava")}
    path = write_nir_traces(tmp_path / "traces.h5", runs, dt=0.01)
    data = nir.read_data(path)
    for backend, run in runs.items():
        for index, spikes in enumerate(run.spikes):
            grid = data.nodes[f"{backend}_layer{index}"].observables["spikes"]
            assert grid.dt == 0.01 and grid.data.dtype == bool
            np.testing.assert_array_equal(grid.data, spikes.astype(bool))


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


def test_a_recurrent_subgraph_that_is_not_ours_is_refused():
    model = trained_like("adlif+", False)
    graph = model_to_nir(model)
    graph.nodes["hidden0"].nodes["reset"] = nir.Scale(scale=np.full(HIDDEN, -0.5))
    with pytest.raises(NirImportError, match="node 'hidden0': its reset is not this toolchain's AdLIF subgraph"):
        nir_to_network(graph, STEPS)
