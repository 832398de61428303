"""Our networks as NIR graphs (export/nir_export.py, simulated by export/nir_simulate.py; docs/nir.md):

- the graph's float semantics (``simulate_nir``) equal our float model, delays and AdLIF expansions
  included; snnTorch reads our LIF export and reproduces the graph's spikes (against our float
  model the reset convention differs: NIR resets to 0, our LIF subtracts, and the tolerance says so);
- a neuron whose alpha reached the trainer's bound 1.0 never leaves the zero state and never spikes:
  it is written as a silent neuron (tau = inf); what NIR cannot express (beta = 1 in an AdLIF
  subgraph, alpha above 1) is refused naming the layer, the neuron and the fix;
- a checkpoint holding NaN or infinite values is refused before anything is written, naming the
  layer and the parameter (a good model.nir already there stays as it was); large delay expansions
  only when asked.

Reading graphs back: tests/test_nir_import.py.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch

from nir_support import (
    SILENT,
    SNNTORCH_DT,
    one_line,
    run_snntorch,
    spike_inputs,
    trained_like,
    with_silent_neurons as _with_silent_neurons,
)
from snn_toolchain.cli import main
from snn_toolchain.export.nir_export import MAX_EXPANSION_UNITS, NirExportError, export_nir, model_to_nir, write_nir
from snn_toolchain.export.nir_simulate import simulate_nir


def step_equal_share(a, b) -> float:
    return float(np.mean(np.asarray(a) == np.asarray(b)))


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


def test_a_large_delay_expansion_is_refused_unless_asked():
    model = trained_like("lif", True, hidden=400, n_in=260)         # 400 x 260 = 104,000 units
    with pytest.raises(NirExportError, match="--allow-large-expansion"):
        model_to_nir(model)
    graph = model_to_nir(model, allow_large=True)
    assert graph.nodes["fc0_delay"].delay.shape == (400 * 260,) and 400 * 260 > MAX_EXPANSION_UNITS


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


# -------------------------------------------------------------- alpha = 1: silent neurons, exactly

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
        if variant == "lif":    # the reset convention (the first test of this file)
            assert graphs.sum() <= ours.sum() and step_equal_share(ours, graphs) > 0.95
        else:
            assert step_equal_share(ours, graphs) > 0.98
            assert abs(graphs.sum() - ours.sum()) <= 0.01 * ours.sum() + 2


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


# --------------------------------------------------------------------------- NaN in the checkpoint

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


def save_checkpoint(model, path):
    torch.save({"model_config": model.config, "model": model.state_dict()}, path)
    return path


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


# ------------------------------------------------------------------------- writing for Sinabs

def test_export_for_sinabs_succeeds_on_the_command_line_and_reads_back_as_sinabs(tmp_path, capsys):
    """Sinabs' time constants are steps: the export works out dt = 1 itself, and must not refuse
    it as if the user had passed --nir-dt (review finding 1)."""
    from snn_toolchain.export.nir_import import import_nir

    checkpoint = save_checkpoint(trained_like("lif", False, latency=0), tmp_path / "best.pt")
    out = tmp_path / "for_sinabs.nir"
    assert main(["export", "--run-dir", str(tmp_path), "--format", "nir", "--nir-target", "sinabs",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "time constants in steps, for sinabs (sinabs.from_nir(" in printed and "MultiSpike" in printed
    report = import_nir(out, tmp_path / "for_sinabs.net", 40)
    assert report.source == "sinabs" and report.dt == 1.0 and "written for Sinabs" in report.convention
    assert "norm_input=False" in report.convention
    # the Python API: the same graph, dt 1 (steps) in its summary
    summary = export_nir(checkpoint, tmp_path / "api.nir", target="sinabs")
    assert summary["dt"] == 1.0 and summary["target"] == "sinabs" and summary["variant"] == "lif"
    with pytest.raises(NirExportError, match="drop --nir-dt"):
        export_nir(checkpoint, tmp_path / "refused.nir", dt=1.0, target="sinabs")
    assert not (tmp_path / "refused.nir").exists()
