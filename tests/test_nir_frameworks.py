"""Other frameworks' NIR, named, not guessed (export/nir_conventions.py; docs/nir.md, Conventions):

- reading: graphs written by snnTorch 1.0.0, Norse 1.1.0 and Sinabs 3.1.3 themselves
  (tests/data/nir-frameworks, README.md there) mean, under their convention, exactly the spikes the
  framework computed; snnTorch's are recognised, Norse's and Sinabs' (r = 1, no metadata) are refused
  in one line naming --nir-source until it is given; the deployed network stays close;
- writing: our LIF export for each reader (--nir-target) is what that reader runs: snnTorch and
  Norse live (both in the dev extras), Sinabs from the spikes it computed on our graph (Sinabs 3.1.3
  pins nir <= 1.0.4, which clashes with our nir 1.0.8: it runs in a separate venv, make_fixtures.py);
  delays and AdLIF layers are refused for these readers, naming --nir-target spec.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import nir
import numpy as np
import pytest
import torch

from nir_support import (
    SILENT,
    SNNTORCH_DT,
    active_lif,
    one_line,
    run_norse,
    run_snntorch,
    spike_inputs,
    trained_like,
    with_silent_neurons,
)
from snn_toolchain.cli import main
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.export.nir_export import NirExportError, model_to_nir, write_nir
from snn_toolchain.export.nir_import import NirImportError, _read_graph, import_nir, nir_to_network
from snn_toolchain.export.nir_simulate import simulate_nir

FIXTURES = Path(__file__).parent / "data" / "nir-frameworks"
STEPS = 40


def fixture(name: str):
    """(the graph as import-nir reads the file, the framework's own run: x, spikes0/1, scores)."""
    graph, _ = _read_graph(FIXTURES / f"{name}.nir")
    return graph, np.load(FIXTURES / f"{name}.npz")


def framework_spikes(run) -> list:
    return [run["spikes0"], run["spikes1"]]


def deployed_counts_close(network, run, share: float) -> None:
    """The fixed-point network's spike counts per layer within ``share`` (+3) of the framework's."""
    fixed = Emulator(network)(torch.as_tensor(run["x"]))
    for theirs, ours in zip(framework_spikes(run), fixed.spikes):
        assert theirs.sum() > 50 and abs(float(ours.sum()) - theirs.sum()) <= share * theirs.sum() + 3, \
            (theirs.sum(), float(ours.sum()))


# ------------------------------------------------------------------- reading the frameworks' graphs

def test_an_snntorch_graph_is_recognised_and_means_what_snntorch_ran():
    graph, run = fixture("snntorch_leaky")
    report = nir_to_network(graph, STEPS)                   # no --dt, no --nir-source
    assert report.source == "snntorch" and report.dt == SNNTORCH_DT
    assert "r = tau / 1e-4" in report.convention and "reset to v_reset" in report.convention
    _, spikes = simulate_nir(graph, run["x"])
    for ours, theirs in zip(spikes, framework_spikes(run)):
        np.testing.assert_array_equal(ours, theirs)
    deployed_counts_close(report.network, run, 0.1)


@pytest.mark.parametrize("name, kind", [("norse_lifcell", "CubaLIF"), ("norse_lifbox", "LIF")])
def test_a_norse_graph_is_refused_until_named_then_read_as_norse_runs_it(name, kind):
    graph, run = fixture(name)
    assert {type(n).__name__ for n in graph.nodes.values()} >= {kind}
    with pytest.raises(NirImportError) as info:
        nir_to_network(graph, STEPS)
    message = one_line(info)
    assert "--nir-source" in message and "look like Norse 1.1's tau x dt" in message
    # read as the spec at Norse's dt, the tau x dt bug is a time constant below dt: refused
    with pytest.raises(NirImportError, match="below dt = 0.001 s"):
        nir_to_network(graph, STEPS, dt=1e-3, source="spec")
    report = nir_to_network(graph, STEPS, source="norse")
    assert report.dt == 1e-3 and "tau x dt" in report.convention
    assert ("LIFCell" in report.convention) == (kind == "CubaLIF")
    _, spikes = simulate_nir(graph, run["x"], source="norse")
    for ours, theirs in zip(spikes, framework_spikes(run)):
        np.testing.assert_array_equal(ours, theirs)
    deployed_counts_close(report.network, run, 0.1)


def test_a_sinabs_graph_is_refused_until_named_then_read_with_multispike_and_subtract_reset():
    graph, run = fixture("sinabs_lif")
    with pytest.raises(NirImportError) as info:
        nir_to_network(graph, STEPS)
    assert "--nir-source" in one_line(info) and "look like Sinabs' steps" in one_line(info)
    report = nir_to_network(graph, STEPS, source="sinabs")
    assert "MultiSpike" in report.convention and "MembraneSubtract" in report.convention
    _, spikes = simulate_nir(graph, run["x"], source="sinabs")
    for ours, theirs in zip(spikes, framework_spikes(run)):
        np.testing.assert_array_equal(ours, theirs)        # counts, several in a step included
    assert max(s.max() for s in framework_spikes(run)) > 1
    # deployed: the subtracting reset kept (this toolchain's LIF arithmetic), one spike per step
    assert [layer.neuron_variant for layer in report.network.layers] == ["lif", "lif"]
    assert sum("one spike per step" in change for change in report.changes) == 2
    deployed_counts_close(report.network, run, 0.1)


def test_a_graph_with_unit_r_and_no_metadata_needs_its_source_even_with_dt():
    """r = 1 is what Norse and Sinabs write, and a spec graph may: --dt alone does not say which."""
    n = 3
    nodes = {"input": nir.Input(input_type={"input": np.array([2])}),
             "fc": nir.Affine(weight=np.full((n, 2), 2.0), bias=np.zeros(n)),
             "lif": nir.LIF(tau=np.full(n, 0.02), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n),
                            v_reset=np.zeros(n)),
             "output": nir.Output(output_type={"output": np.array([n])})}
    graph = nir.NIRGraph(nodes, [("input", "fc"), ("fc", "lif"), ("lif", "output")])
    with pytest.raises(NirImportError) as info:
        nir_to_network(graph, STEPS, dt=0.01)
    assert "--nir-source" in one_line(info) and "look like" not in one_line(info)   # no framework's pattern
    report = nir_to_network(graph, STEPS, dt=0.01, source="spec")
    assert report.convention.startswith("the NIR spec (--nir-source spec): forward Euler at dt = 0.01 s")
    graph.nodes["lif"].r = np.full(n, 2.0)                # not a framework's pattern: --dt is enough
    assert nir_to_network(graph, STEPS, dt=0.01).source == "spec"


def test_import_nir_says_the_convention_and_takes_nir_source(tmp_path, capsys):
    graph_file = shutil.copy(FIXTURES / "norse_lifcell.nir", tmp_path / "norse.nir")
    assert main(["import-nir", str(graph_file), "--time-steps", str(STEPS)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("train-export: error: ") and "--nir-source" in err
    assert not (tmp_path / "norse.net").exists()
    assert main(["import-nir", str(graph_file), "--time-steps", str(STEPS), "--nir-source", "norse"]) == 0
    out = capsys.readouterr().out
    assert "[import-nir] convention: Norse (--nir-source norse): time constants read as written / dt" in out
    assert "read without NIR's type check" in out         # Norse's Input type keeps the batch dimension
    assert (tmp_path / "norse.net").exists()


# --------------------------------------------------------------------- writing for each framework

def test_our_lif_export_for_snntorch_is_what_snntorch_runs_silent_neurons_included():
    from snntorch.import_nir import import_from_nir

    model = with_silent_neurons("lif", False)
    model.latency = 0
    for module in model.modules():
        if hasattr(module, "latency"):
            module.latency = 0
    graph = model_to_nir(model, target="snntorch")
    assert graph.metadata["dt"] == SNNTORCH_DT and np.all(np.isfinite(graph.nodes["hidden0"].tau))
    with contextlib.redirect_stdout(io.StringIO()):         # snnTorch prints its own notices
        net = import_from_nir(graph)
    x = spike_inputs(n=16)
    scores, spikes = run_snntorch(net, x, ("hidden0", "hidden1"))
    graph_scores, graph_spikes = simulate_nir(graph, x.numpy())
    assert graph_spikes[0].sum() > 30 and all(s[..., SILENT].sum() == 0 for s in spikes)
    for theirs, reference in zip(spikes, graph_spikes):     # float32 against float64
        assert np.mean(theirs == reference) > 0.999
    np.testing.assert_allclose(scores, graph_scores, rtol=1e-3, atol=1e-2)


def test_our_lif_export_for_norse_runs_our_float_model_with_reset_subtract():
    import norse.torch as norse
    from norse.torch.functional.reset import reset_subtract

    model = active_lif()
    graph = model_to_nir(model, target="norse")
    assert graph.metadata["dt"] == 1e-3 and "reset_subtract" in graph.metadata["load"]
    x = spike_inputs(n=16)
    with torch.no_grad():
        float_scores, float_spikes = model(x, return_spikes=True)
    # loaded as the metadata says: the float LIF, subtracting reset and all
    scores, spikes = run_norse(norse.from_nir(graph, dt=1e-3, reset_method=reset_subtract), x, ("hidden0", "hidden1"))
    for theirs, ours in zip(spikes, float_spikes):
        assert ours.sum() > 100 and np.mean(theirs == ours.numpy()) > 0.999
    np.testing.assert_allclose(scores, float_scores.numpy(), rtol=1e-3, atol=1e-2)
    # loaded plainly: the spec's reset to 0, as simulate_nir reads the graph
    _, plain = run_norse(norse.from_nir(graph, dt=1e-3), x, ("hidden0", "hidden1"))
    _, graph_spikes = simulate_nir(graph, x.numpy())
    for theirs, reference in zip(plain, graph_spikes):
        assert np.mean(theirs == reference) > 0.999


def test_our_lif_export_for_sinabs_is_what_sinabs_ran_on_it():
    """Sinabs' own run of our graph (ours_for_sinabs.npz, made in Sinabs' venv) against our float
    model: its MultiSpike (several spikes in a step, where ours emits one) is the only difference,
    and the second layer inherits the first's."""
    recorded, run = fixture("ours_for_sinabs")
    model = active_lif()
    graph = model_to_nir(model, target="sinabs")
    for name, node in graph.nodes.items():                 # the graph Sinabs ran is what we write today
        for key, value in vars(node).items():
            if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                np.testing.assert_allclose(getattr(recorded.nodes[name], key), value, rtol=1e-12, err_msg=key)
    with torch.no_grad():
        _, float_spikes = model.double()(torch.as_tensor(run["x"]).double(), return_spikes=True)
    for theirs, ours, share in zip(framework_spikes(run), float_spikes, (0.98, 0.95)):
        ours = ours.numpy()
        assert ours.sum() > 200 and (theirs > 1).sum() > 0
        assert np.mean(theirs == ours) > share and abs(theirs.sum() - ours.sum()) <= 0.1 * ours.sum()
    _, graph_spikes = simulate_nir(recorded, run["x"])      # recognised: ours, for Sinabs
    for reference, theirs in zip(graph_spikes, framework_spikes(run)):
        np.testing.assert_array_equal(reference, theirs)


def test_a_graph_for_sinabs_reads_in_old_nir_and_imports_back_with_its_reset(tmp_path):
    import h5py

    path = write_nir(model_to_nir(active_lif(), target="sinabs"), tmp_path / "for_sinabs.nir")
    with h5py.File(path) as handle:                        # nir 1.0.4 (Sinabs' pin) refuses v_reset
        assert "v_reset" not in handle["node/nodes/hidden0"] and "dt" not in handle["node/metadata"]
    report = import_nir(path, tmp_path / "for_sinabs.net", STEPS)
    assert report.source == "sinabs" and "written for Sinabs" in report.convention
    assert [layer.neuron_variant for layer in report.network.layers[:2]] == ["lif", "lif"]


@pytest.mark.parametrize("target", ["snntorch", "norse"])
def test_our_graphs_for_snntorch_and_norse_import_back_to_the_same_net_file(tmp_path, target):
    """Both are the spec exactly (r = tau/dt with the input scale in the Affine, or r = 1 with a
    pass-through current): the round trip gives the direct export's integers, silent neurons too."""
    import h5py

    from snn_toolchain.export.netfile import write_net
    from snn_toolchain.train.model.quantize import quantize_model

    def layers_of(path) -> dict:
        with h5py.File(path) as handle:
            found = {}
            handle["layer"].visititems(lambda key, item: found.__setitem__(key, item[()])
                                       if isinstance(item, h5py.Dataset) else None)
            return found

    model = with_silent_neurons("lif", False)
    direct = layers_of(write_net(quantize_model(model, STEPS), tmp_path / "direct.net"))
    graph_file = write_nir(model_to_nir(model, target=target), tmp_path / f"for_{target}.nir")
    report = import_nir(graph_file, tmp_path / "via_nir.net", STEPS)
    assert report.source == "spec" and f"written for {'snnTorch' if target == 'snntorch' else 'Norse'}" \
        in report.convention
    via_nir = layers_of(tmp_path / "via_nir.net")
    assert direct.keys() == via_nir.keys()
    for key in direct:
        assert np.array_equal(direct[key], via_nir[key]), key


@pytest.mark.parametrize("target", ["snntorch", "norse", "sinabs"])
def test_delays_and_adlif_are_refused_for_other_readers_naming_spec(target):
    with pytest.raises(NirExportError) as info:
        model_to_nir(trained_like("lif", True), target=target)
    message = one_line(info)
    assert "layer fc0" in message and "Delay" in message and "--nir-target spec" in message
    with pytest.raises(NirExportError) as info:
        model_to_nir(trained_like("adlif+", False), target=target)
    assert "layer hidden0" in one_line(info) and "--nir-target spec" in one_line(info)


def test_each_reader_gets_its_own_time_step():
    model = trained_like("lif", False)
    assert model_to_nir(model).metadata["dt"] == 0.01
    assert model_to_nir(model, target="norse", dt=0.005).metadata["dt"] == 0.005
    with pytest.raises(NirExportError, match="snnTorch reads every graph at dt = 0.0001 s"):
        model_to_nir(model, target="snntorch", dt=0.01)
    with pytest.raises(NirExportError, match="Sinabs reads time constants in steps"):
        model_to_nir(model, target="sinabs", dt=0.01)


def test_export_nir_target_on_the_command_line(tmp_path, capsys):
    model = active_lif()
    torch.save({"model_config": model.config, "model": model.state_dict()}, tmp_path / "best.pt")
    out = tmp_path / "for_norse.nir"
    assert main(["export", "--run-dir", str(tmp_path), "--format", "nir", "--nir-target", "norse",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "dt 0.001 s, for norse (norse.torch.from_nir(nir.read(" in printed and "reset_subtract" in printed
    assert nir.read(out).metadata["nir_target"] == "norse"
    assert main(["export", "--run-dir", str(tmp_path), "--format", "nir", "--nir-target", "sinabs", "--nir-dt", "0.01",
                 "--out", str(tmp_path / "x.nir")]) == 2
    assert "drop --nir-dt" in capsys.readouterr().err and not (tmp_path / "x.nir").exists()


# ------------------------------------------------ an explicit --nir-source against what the graph shows

@pytest.mark.parametrize("source", ["norse", "sinabs"])
def test_snntorchs_pattern_given_as_norse_or_sinabs_is_refused(source):
    graph, _ = fixture("snntorch_leaky")
    with pytest.raises(NirImportError) as info:
        nir_to_network(graph, STEPS, source=source)
    message = one_line(info)
    assert f"--nir-source {source}" in message and "r = tau / 1e-4" in message and "drop --nir-source" in message


def one_lif_graph(tau, r) -> nir.NIRGraph:
    n = len(tau)
    nodes = {"input": nir.Input(input_type={"input": np.array([2])}),
             "fc": nir.Affine(weight=np.full((n, 2), 2.0), bias=np.zeros(n)),
             "lif": nir.LIF(tau=np.asarray(tau, dtype=float), r=np.asarray(r, dtype=float), v_leak=np.zeros(n),
                            v_threshold=np.ones(n), v_reset=np.zeros(n)),
             "output": nir.Output(output_type={"output": np.array([n])})}
    return nir.NIRGraph(nodes, [("input", "fc"), ("fc", "lif"), ("lif", "output")])


def test_norse_with_time_constants_in_seconds_gets_a_note_naming_spec_and_dt():
    """The NIR paper's lif_norse.nir writes tau = 2.5 ms in seconds; read as Norse 1.1's tau x dt
    it is 2,500 steps: a nearly frozen neuron, said in one line."""
    report = nir_to_network(one_lif_graph([0.0025, 0.0025], [1.0, 1.0]), STEPS, source="norse")
    notes = [c for c in report.changes if "nearly frozen" in c]
    assert len(notes) == 1 and "2,500 steps" in notes[0] and "--nir-source spec --dt" in notes[0]
    # Norse 1.1's own graphs (tau x dt): no note
    graph, _ = fixture("norse_lifbox")
    assert not any("nearly frozen" in c for c in nir_to_network(graph, STEPS, source="norse").changes)


@pytest.mark.parametrize("source, reading", [("norse", "r scales a LIF's"), ("sinabs", "r is not used")])
def test_r_other_than_one_for_norse_or_sinabs_is_read_with_a_note(source, reading):
    tau = [0.002, 0.002] if source == "norse" else [20.0, 20.0]   # Norse: tau x dt at 1e-3 (2 s); Sinabs: steps
    report = nir_to_network(one_lif_graph(tau, [3.0, 1.0]), STEPS, source=source)
    notes = [c for c in report.changes if "r or w_in other than 1" in c]
    assert len(notes) == 1 and "node 'lif' has" in notes[0] and reading in notes[0]
    assert "--nir-source spec with --dt" in notes[0]


def test_a_source_contradicting_our_metadata_is_refused():
    model = active_lif()
    with pytest.raises(NirImportError) as info:
        nir_to_network(model_to_nir(model), STEPS, source="norse")
    assert "written for the NIR spec" in one_line(info) and "drop --nir-source" in one_line(info)
    with pytest.raises(NirImportError, match="written for Sinabs"):
        nir_to_network(model_to_nir(model, target="sinabs"), STEPS, source="spec")
    # what the metadata says, given explicitly, is accepted
    assert nir_to_network(model_to_nir(model, target="snntorch"), STEPS, source="snntorch").source == "snntorch"
    assert nir_to_network(model_to_nir(model, target="sinabs"), STEPS, source="sinabs").source == "sinabs"


def test_import_nir_prints_the_frozen_norse_note(tmp_path, capsys):
    graph_file = write_nir(one_lif_graph([0.0025], [1.0]), tmp_path / "seconds.nir")
    assert main(["import-nir", str(graph_file), "--time-steps", str(STEPS), "--nir-source", "norse"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "nearly frozen" in line]
    assert len(lines) == 1 and lines[0].startswith("[import-nir] ")
