"""The Loihi 2 partition planner (hand-computed cases), the AdLIF neuron program against
``adlif_fixed_step``, lava-loihi detection, and the deploy command's messages and exit codes.

lava-loihi is never installed here. Its presence and absence are faked at the import only (module
entries in ``sys.modules``), never by replacing ``lava_loihi_available``'s result, so the code
under test runs its real detection.
"""

import json
import sys
import types

import numpy as np
import pytest
import torch

from snn_toolchain.export.netfile import write_net
from snn_toolchain.quantized_network import QuantizedLayer, QuantizedNetwork
from snn_toolchain.train.model.quantize import quantize_model
from snn_toolchain.lava_models import lava_loihi
from snn_toolchain.cli import DEPLOY_EXIT_CODES
from snn_toolchain.lava_models.lava_loihi import LAVA_LOIHI_MODULES, lava_loihi_available, missing_lava_loihi_modules
from snn_toolchain.lava_models.loihi2 import deploy
from snn_toolchain.lava_models.microcode import adlif_microcode_program, adlif_microcode_pseudocode, run_microcode
from snn_toolchain.export.loihi2_plan import LOIHI2_LIMITS, LayerSpec, Loihi2Limits, plan_partition
from snn_toolchain.neurons.dynamics import FixedNeuronParams, NeuronState, adlif_fixed_step
from snn_toolchain.train.model.delay_snn import DelaySNN
from snn_toolchain.train.data.loading import TensorFeatureDataset


# ------------------------------------------------------------------------------------------ helpers

def hand_layer(name, n_out, n_in, max_delay=0, readout=False, weight=64):
    weight_matrix = np.full((n_out, n_in), weight, dtype=np.int64)
    delay = np.zeros((n_out, n_in), dtype=np.int64)
    delay[0, 0] = max_delay
    layer = QuantizedLayer(name, weight_matrix, delay, np.zeros(n_out, dtype=np.int64), 64)
    if not readout:
        zeros = np.zeros(n_out, dtype=np.int64)
        layer.neuron = FixedNeuronParams(zeros + 2048, zeros, zeros, zeros, zeros, zeros + (64 << 6))
        layer.neuron_variant = "adlif+"
    return layer


def hand_network(sizes=(5, 4, 3, 2), delays=(3, 2, 1)):
    layers = [hand_layer(str(i), sizes[i + 1], sizes[i], delays[i], readout=i == len(sizes) - 2)
              for i in range(len(sizes) - 1)]
    return QuantizedNetwork(layers, time_steps=10, variant="adlif+")


SMALL = dict(neurons_per_core=4, synapse_entries_per_core=100, cores_per_chip=8)


def small_specs():
    return [LayerSpec("A", "hidden", neurons=10, fan_in=20, max_delay=4),
            LayerSpec("B", "hidden", neurons=6, fan_in=30, max_delay=9),
            LayerSpec("R", "readout", neurons=2, fan_in=6, max_delay=0)]


# ------------------------------------------------------------------------------------------ limits

def test_every_limit_has_a_source_and_the_unconfirmed_ones_say_so():
    table = LOIHI2_LIMITS.to_dict()
    assert set(table) == {f for f in Loihi2Limits.__dataclass_fields__}
    assert all(entry["source"] for entry in table.values())
    assert table["cores_per_chip"]["value"] == 128
    assert table["neurons_per_core"]["value"] == 8192
    assert table["synapses_per_chip"]["value"] == 120_000_000
    assert table["max_delay"]["value"] == 62
    # per-core synaptic memory is not an Intel figure: derived, and labelled as such
    assert table["synapse_entries_per_core"]["value"] == pytest.approx(120e6 / 128) == 937_500
    assert "derived" in table["synapse_entries_per_core"]["source"]
    assert "not a per-core figure" in table["synapse_entries_per_core"]["source"]
    for assumption in ("delayed_synapse_entry_cost", "accumulator_entry_cost", "synapse_storage"):
        assert "ASSUMPTION" in table[assumption]["source"]
    custom = Loihi2Limits.from_overrides({"synapse_entries_per_core": 5000})
    assert custom.entries_per_core == 5000 and "user setting" in custom.to_dict()["synapse_entries_per_core"]["source"]
    with pytest.raises(ValueError, match="unknown Loihi 2 limit"):
        Loihi2Limits.from_overrides({"cores": 3})


# ------------------------------------------------------------------------------------------ planner

def test_plan_that_fits_by_hand():
    plan = plan_partition(small_specs(), Loihi2Limits.from_overrides(SMALL))
    a, b, r = plan.layers
    # A: 20 synapses + (4 + 1) accumulator rows = 25 entries; 100 // 25 = 4 = the neuron limit
    assert (a.memory_per_neuron, a.neurons_per_core_by_memory, a.neurons_per_core) == (25, 4, 4)
    assert a.limited_by == "neuron count" and a.cores == 3
    assert [(c.core, c.first_neuron, c.neurons) for c in a.assignments] == [(0, 0, 4), (1, 4, 3), (2, 7, 3)]
    # B: 30 + 10 = 40 entries; 100 // 40 = 2 neurons per core, limited by memory; 6 neurons -> 3 cores
    assert (b.memory_per_neuron, b.neurons_per_core, b.limited_by, b.cores) == (40, 2, "synaptic memory", 3)
    assert [c.core for c in b.assignments] == [3, 4, 5]
    assert [c.entries_used for c in b.assignments] == [80, 80, 80]
    # R: 6 + 1 = 7 entries; 14 by memory, 4 by count -> 1 core
    assert (r.memory_per_neuron, r.neurons_per_core, r.cores) == (7, 4, 1)
    assert plan.total_cores == 7 and plan.total_neurons == 18
    assert plan.total_stored_synapses == 10 * 20 + 6 * 30 + 2 * 6
    assert plan.fits and plan.reasons == [] and plan.chips_needed == 1
    text = plan.table()
    assert "FITS" in text and "core 3: neurons 0-1" in text and "synaptic memory" in text
    json.dumps(plan.to_dict())


def test_plan_with_too_many_cores_says_why_and_what_to_change():
    plan = plan_partition(small_specs(), Loihi2Limits.from_overrides({**SMALL, "cores_per_chip": 6}))
    assert not plan.fits and plan.total_cores == 7 and plan.chips_needed == 2
    assert any("needs 7 neuro-cores" in r and "have 6" in r for r in plan.reasons)
    hints = " | ".join(plan.hints)
    assert "fewer neurons: layer A alone takes 3 cores" in hints
    # B is limited by memory: its 10 accumulator rows (max delay 9) are 10 of its 40 entries
    assert "smaller delays: layer B's 10 accumulator rows (max delay 9) take 10 of its 40 entries" in hints
    assert "fewer inputs: layer B stores 30 synapses per neuron" in hints
    assert "chips=2" in hints
    assert "DOES NOT FIT" in plan.table()


def test_a_neuron_larger_than_a_core_gets_exact_hints():
    spec = LayerSpec("X", "hidden", neurons=3, fan_in=95, max_delay=9)
    plan = plan_partition([spec], Loihi2Limits.from_overrides(SMALL))
    layer = plan.layers[0]
    assert layer.memory_per_neuron == 105 and layer.neurons_per_core == 0 and layer.cores == 0
    assert not plan.fits
    assert "one neuron needs 105 synapse entries (95 synapses + 10 accumulator rows) but a core holds 100" in plan.reasons[0]
    # 100 - 10 rows = 90 inputs fit; 100 - 95 = 5 rows = max delay 4 fits
    assert "fewer inputs: at most 90 inputs per neuron fit a core with max delay 9" in plan.hints
    assert "smaller delays: with 95 inputs, a max delay of at most 4 steps fits a core" in plan.hints


def test_delay_costs_are_configurable_assumptions():
    specs = small_specs()
    free_rows = plan_partition(specs, Loihi2Limits.from_overrides({**SMALL, "accumulator_entry_cost": 0}))
    assert [p.memory_per_neuron for p in free_rows.layers] == [20, 30, 6]
    costly = plan_partition(specs, Loihi2Limits.from_overrides({**SMALL, "delayed_synapse_entry_cost": 2}))
    # delayed layers pay double per synapse; the readout has no delays and pays 1
    assert [p.memory_per_neuron for p in costly.layers] == [2 * 20 + 5, 2 * 30 + 10, 6 + 1]
    assert costly.layers[1].neurons_per_core == 1 and costly.layers[1].cores == 6


def test_sparse_storage_counts_only_nonzero_weights():
    network = hand_network(sizes=(5, 4, 3, 2), delays=(0, 0, 0))
    network.layers[0].weight[:, 2:] = 0            # 2 of 5 inputs used by every neuron of layer 0
    dense = plan_partition(network)
    sparse = plan_partition(network, Loihi2Limits.from_overrides({"synapse_storage": "nonzero"}))
    assert dense.layers[0].stored_fan_in == 5 and dense.layers[0].stored_synapses == 20
    assert sparse.layers[0].stored_fan_in == 2 and sparse.layers[0].stored_synapses == 8


def test_delays_beyond_62_and_wide_weights_are_refused():
    network = hand_network()
    network.layers[1].delay[0, 0] = 63
    network.layers[2].weight[0, 0] = 300
    plan = plan_partition(network)
    assert not plan.fits
    assert any("layer 1: delay = 63 is outside 0..62" in r for r in plan.reasons)
    assert any("layer 2: weight = 300 is outside -256..254" in r and "8-bit" in r for r in plan.reasons)
    assert any("--max-delay 62" in h for h in plan.hints)


def test_max_fan_in_is_checked_only_when_set():
    spec = [LayerSpec("A", "hidden", neurons=4, fan_in=700, max_delay=0)]
    assert plan_partition(spec).fits
    plan = plan_partition(spec, Loihi2Limits.from_overrides({"max_fan_in": 512}))
    assert not plan.fits and "fan-in limit 512" in plan.reasons[0]
    assert "fewer inputs: layer A may have at most 512 inputs per neuron" in plan.hints


def test_paper_networks_fit_one_chip_and_a_huge_one_does_not():
    shd = [LayerSpec("0", "hidden", 128, 140, 25), LayerSpec("1", "hidden", 128, 128, 25),
           LayerSpec("2", "readout", 20, 128, 25)]
    plan = plan_partition(shd)
    # 140 + 26 = 166 entries per neuron; 937500 // 166 = 5647 neurons per core -> 1 core per layer
    assert plan.layers[0].memory_per_neuron == 166 and plan.layers[0].neurons_per_core == 5647
    assert plan.total_cores == 3 and plan.fits
    ssc = [LayerSpec("0", "hidden", 512, 140, 25), LayerSpec("1", "hidden", 512, 512, 25),
           LayerSpec("2", "readout", 35, 512, 25)]
    assert plan_partition(ssc).total_cores == 3
    huge = [LayerSpec("0", "hidden", 100_000, 2_000, 62), LayerSpec("1", "readout", 10, 100_000, 0)]
    plan = plan_partition(huge)
    # 2000 + 63 = 2063 entries -> 454 neurons per core -> 221 cores; 2e8 synapses > 120M
    assert plan.layers[0].neurons_per_core == 937_500 // 2063 == 454
    assert plan.layers[0].cores == 221
    assert not plan.fits
    assert any("stores 201,000,000 synapses" in r for r in plan.reasons)
    assert any(h.startswith("fewer neurons") for h in plan.hints)
    # a readout neuron needs 100001 entries: 937500 // 100001 = 9 per core, so 10 neurons take 2 cores
    assert plan.layers[1].neurons_per_core == 9 and plan.layers[1].cores == 2
    assert [a.neurons for a in plan.layers[1].assignments] == [5, 5]
    assert plan.total_cores == 223 and any("needs 223 neuro-cores" in r for r in plan.reasons)


def test_plan_of_a_quantized_network_reads_its_arrays():
    network = hand_network(sizes=(5, 4, 3, 2), delays=(3, 2, 1))
    plan = plan_partition(network)
    assert [p.spec.role for p in plan.layers] == ["hidden", "hidden", "readout"]
    assert [p.spec.max_delay for p in plan.layers] == [3, 2, 1]
    assert [p.memory_per_neuron for p in plan.layers] == [5 + 4, 4 + 3, 3 + 2]
    assert plan.total_cores == 3 and plan.fits


# ------------------------------------------------------------------------------- neuron program

def test_neuron_program_equals_adlif_fixed_step_bit_for_bit():
    rng = np.random.default_rng(1)
    n = 20_000
    params = FixedNeuronParams(rng.integers(0, 4097, n), rng.integers(0, 4097, n), rng.integers(-4096, 4097, n),
                               rng.integers(0, 1 << 21, n), rng.integers(-(1 << 15), 1 << 15, n),
                               rng.integers(1, 1 << 17, n) << 6)
    for scale in (1 << 8, 1 << 23):   # ordinary values, then states at and beyond the rails
        state = NeuronState(rng.integers(-scale, scale, (2, n)), rng.integers(-scale, scale, (2, n)),
                            rng.integers(0, 2, (2, n)))
        synaptic_input = rng.integers(-(1 << 18), 1 << 18, (2, n))
        expected = adlif_fixed_step(params, state, synaptic_input)
        got = run_microcode(params, state, synaptic_input)
        for name, want, have in zip(("u", "w", "s"), expected, got):
            np.testing.assert_array_equal(have, want, err_msg=name)


def test_pseudocode_quotes_the_reference_equations():
    text = adlif_microcode_pseudocode()
    assert "snn_toolchain.neurons.dynamics.adlif_fixed_step" in text
    for equation, _ in adlif_microcode_program():
        assert equation in text
    assert "w[t] = sat(beta*w[t-1] + a*u[t-1] + b*s[t-1])" in text
    assert "Not run on a chip" in text


# ------------------------------------------------------------------------- lava-loihi detection

@pytest.fixture
def lava_loihi_absent(monkeypatch):
    """Makes the lava-loihi modules unimportable (a None entry in sys.modules makes import fail)."""
    for name in LAVA_LOIHI_MODULES:
        monkeypatch.setitem(sys.modules, name, None)


@pytest.fixture
def lava_loihi_present(monkeypatch):
    """Makes the lava-loihi modules importable as empty stand-ins, with the NcProcessModel base class."""
    # Open-source Lava modules that probe for lava-loihi at import time are imported first, for
    # real, so that they keep their own fallbacks and do not see the stand-ins.
    import lava.magma.compiler.compiler  # noqa: F401
    import lava.magma.compiler.compiler_graphs  # noqa: F401
    import lava.magma.core.run_configs  # noqa: F401

    class AbstractNcProcessModel:
        """Stand-in: no open-source model derives from it, as none runs on a neuro-core."""

    for name in LAVA_LOIHI_MODULES:
        module = types.ModuleType(name)
        if name.endswith("nc.model"):
            module.AbstractNcProcessModel = AbstractNcProcessModel
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delenv(lava_loihi.ADLIF_NC_MODEL_ENV, raising=False)
    return AbstractNcProcessModel


def test_detection_follows_the_imports(lava_loihi_absent):
    assert not lava_loihi_available()
    assert set(missing_lava_loihi_modules()) == set(LAVA_LOIHI_MODULES)


def test_detection_with_lava_loihi_importable(lava_loihi_present):
    assert lava_loihi_available() and missing_lava_loihi_modules() == {}


# ------------------------------------------------------------------------------------- deploy

def model_net(tmp_path, variant="adlif+", n_inputs=6, hidden=5, classes=3, seed=0):
    torch.manual_seed(seed)
    model = DelaySNN(n_inputs, classes, hidden=hidden, variant=variant, max_delay=4, dropout=0.0)
    with torch.no_grad():
        for synapse in [b.synapse for b in model.blocks] + [model.readout.synapse]:
            synapse.delay.copy_(torch.randint(0, 5, synapse.delay.shape).float())
    model.eval()
    return write_net(quantize_model(model, time_steps=12), tmp_path / f"{variant}.net")


def tiny_dataset(n_inputs=6, samples=2, steps=12, seed=0):
    generator = torch.Generator().manual_seed(seed)
    features = torch.poisson(torch.full((samples, steps, n_inputs), 0.4), generator=generator)
    return TensorFeatureDataset(features, torch.zeros(samples, dtype=torch.int64), pad_steps=0)


def test_deploy_without_lava_loihi_prints_the_plan_and_how_to_get_it(tmp_path, capsys, lava_loihi_absent):
    net = model_net(tmp_path)
    result = deploy(net, samples=2, dataset=tiny_dataset(), out=tmp_path / "out", say=print)
    text = capsys.readouterr().out
    assert result.outcome == "no-lava-loihi" and DEPLOY_EXIT_CODES[result.outcome] == 3
    assert "Loihi 2 resource plan" in text and "verdict: FITS" in text
    assert "lava-loihi is not installed" in text
    for name in LAVA_LOIHI_MODULES:
        assert name in text
    assert "Intel Neuromorphic Research Community (INRC)" in text
    assert "Join the INRC" in text and "is_installed()" in text and lava_loihi.ADLIF_NC_MODEL_ENV in text
    assert "Traceback" not in text
    saved = json.loads((tmp_path / "out" / "loihi2_plan.json").read_text())
    assert saved["fits"] and saved["total_cores"] == 3


def test_deploy_refuses_a_network_that_does_not_fit(tmp_path, capsys, lava_loihi_absent):
    net = model_net(tmp_path)
    result = deploy(net, limits=Loihi2Limits.from_overrides({"cores_per_chip": 2}), say=print)
    text = capsys.readouterr().out
    assert result.outcome == "does-not-fit" and DEPLOY_EXIT_CODES[result.outcome] == 1
    assert not result.plan.fits and result.reason == result.plan.reasons[0]
    assert "deploy: refused: the network does not fit" in text
    assert "why: the network needs 3 neuro-cores; 1 chip(s) have 2" in text
    assert "try: fewer neurons" in text
    assert "lava-loihi" not in text.split("deploy: refused")[1]   # the refusal comes before any hardware step


def test_deploy_bad_inputs_exit_2(tmp_path, capsys):
    result = deploy(tmp_path / "missing.net")
    assert result.outcome == "bad-input" and DEPLOY_EXIT_CODES["bad-input"] == 2 and "file not found" in result.reason
    assert capsys.readouterr().out == ""   # deploy prints nothing itself; the CLI does
    assert "unknown target 'loihi1'" in deploy(model_net(tmp_path), target="loihi1").reason
    assert deploy(model_net(tmp_path), samples=0).outcome == "bad-input"


def test_deploy_with_lava_loihi_needs_the_adlif_neuron_program(tmp_path, capsys, lava_loihi_present):
    net = model_net(tmp_path, variant="adlif+")
    result = deploy(net, samples=2, dataset=tiny_dataset(), say=print)
    text = capsys.readouterr().out
    assert result.outcome == "hardware-failed" and DEPLOY_EXIT_CODES[result.outcome] == 4
    assert "[deploy] lava-loihi found" in text
    assert "no Loihi 2 neuron program (NcProcessModel) for the AdLIF process" in text
    assert "adlif_microcode_pseudocode" in text and lava_loihi.ADLIF_NC_MODEL_ENV in text
    assert "Traceback" not in text


def test_deploy_with_lava_loihi_checks_a_named_adlif_model(tmp_path, capsys, lava_loihi_present, monkeypatch):
    monkeypatch.setenv(lava_loihi.ADLIF_NC_MODEL_ENV, "snn_toolchain.lava_models.processes.adlif:PyAdLIFModelFixed")
    result = deploy(model_net(tmp_path), samples=2, dataset=tiny_dataset())
    assert result.outcome == "hardware-failed"
    assert "PyAdLIFModelFixed: not an AbstractNcProcessModel subclass" in result.reason
    monkeypatch.setenv(lava_loihi.ADLIF_NC_MODEL_ENV, "no_such_module:Model")
    result = deploy(model_net(tmp_path), samples=2, dataset=tiny_dataset())
    assert result.outcome == "hardware-failed"
    assert "cannot load the AdLIF hardware model 'no_such_module:Model'" in result.reason


def test_deploy_with_lava_loihi_refuses_a_silent_cpu_fallback(tmp_path, capsys, lava_loihi_present):
    """A LIF network needs no custom neuron, but open-source Lava has no neuro-core model of Dense,
    DelayDense or LIF: Loihi2HwCfg would run them on the host, so deploy stops with exit 4."""
    net = model_net(tmp_path, variant="lif")
    result = deploy(net, samples=2, dataset=tiny_dataset(), say=print)
    text = capsys.readouterr().out
    assert result.outcome == "hardware-failed"
    assert "no Loihi 2 (NcProcessModel) implementation found for" in text
    assert "LIF" in text and "host CPU" in text
    assert "Traceback" not in text
