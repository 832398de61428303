"""The AdLIF Lava process against the one neuron definition, and whole networks against the emulator.

- **Neuron level:** a RingBuffer feeds arbitrary synaptic inputs (up to +-2^17, so the 24-bit state
  saturates) straight into an ``AdLIF`` process whose neurons sit at the corners of the parameter
  ranges (alpha 0, 1, 4095, 4096; beta 0 and 4096; a 0 and 4096; b 0 and 2 x threshold). The
  fixed_pt model must give exactly ``adlif_fixed_step``'s spikes at every step and its final u, w;
  the floating_pt model exactly ``adlif_float_step``'s.
- **Network level:** generated QuantizedNetworks with weights at both ends of [-256, 254], delays
  0 and 62 (and an all-zero-delay layer, which becomes a Dense synapse), graded input counts and
  non-power-of-two thresholds run through ``build_lava_network`` with both synapse models; every
  spike of every layer at every step and the readout input must equal the emulator's. Sample 2
  repeats sample 0, so leaking state between samples would show.

All Lava work runs in one worker subprocess under a timeout (tests/lava_support.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lava_support import extreme_network, extreme_neuron_params, graded_samples, run_isolated
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.neurons.dynamics import (
    FixedNeuronParams,
    NeuronParams,
    NeuronState,
    adlif_fixed_step,
    adlif_float_step,
    numpy_heaviside,
)

WORKER_TIMEOUT_S = 300
NEURON_STEPS = 60


def neuron_case(seed: int = 3):
    rng = np.random.default_rng(seed)
    n, threshold = 12, 100 << 6
    bias = rng.integers(-20, 40, size=n)
    params = extreme_neuron_params(rng, n, threshold, bias)
    inputs = rng.normal(0, 150, size=(n, NEURON_STEPS)).round().astype(np.int64)
    huge = rng.random((n, NEURON_STEPS)) < 0.05
    inputs = np.where(huge, rng.choice([-(2 ** 17), 2 ** 17 - 1], size=(n, NEURON_STEPS)), inputs)
    return params, inputs


def network_case():
    network = extreme_network(seed=1)
    samples = graded_samples(seed=2, n_samples=3, time_steps=network.time_steps, n_inputs=network.n_inputs)
    samples[2] = samples[0]
    return network, samples


# ------------------------------------------------------------------------------ worker (Lava side)

def _run_neuron(params: FixedNeuronParams, inputs: np.ndarray, tag: str):
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    from snn_toolchain.lava_models.processes.adlif import AdLIF

    n, steps = inputs.shape
    source = Source(data=inputs.astype(np.int32 if tag == "fixed_pt" else np.float64))
    neuron = AdLIF.from_fixed_params(params)
    sink = Sink(shape=(n,), buffer=steps)
    source.s_out.connect(neuron.a_in)
    neuron.s_out.connect(sink.a_in)
    try:
        neuron.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag=tag))
        return {"spikes": sink.data.get(), "u": neuron.u.get(), "w": neuron.w.get(), "s": neuron.s.get()}
    finally:
        neuron.stop()


def lava_worker():
    from snn_toolchain.lava_models.build import build_lava_network

    params, inputs = neuron_case()
    out = {"neuron_fixed": _run_neuron(params, inputs, "fixed_pt"),
           "neuron_float": _run_neuron(params, inputs, "floating_pt")}
    network, samples = network_case()
    for synapse in ("stock", "ring"):
        runner = build_lava_network(network, samples=samples, synapse=synapse)
        out[f"network_{synapse}"] = runner.run(progress=False)
        out[f"timings_{synapse}"] = runner.timings.to_dict()
    return out


@pytest.fixture(scope="module")
def lava_results(tmp_path_factory):
    return run_isolated("test_lava_adlif:lava_worker", (), tmp_path_factory.mktemp("lava_adlif"), WORKER_TIMEOUT_S)


# ------------------------------------------------------------------------------ references

def fixed_reference(params, inputs):
    n, steps = inputs.shape
    state = NeuronState(*(np.zeros(n, dtype=np.int64) for _ in range(3)))
    spikes = np.zeros((n, steps), dtype=np.int64)
    for t in range(steps):
        state = adlif_fixed_step(params, state, inputs[:, t])
        spikes[:, t] = state.s
    return spikes, state


def float_reference(params, inputs):
    n, steps = inputs.shape
    p = FixedNeuronParams(*(np.asarray(x, dtype=np.float64) for x in params))
    float_params = NeuronParams(p.alpha / 4096, p.beta / 4096, p.a / 4096, p.b / p.threshold)
    state = NeuronState(*(np.zeros(n) for _ in range(3)))
    spikes = np.zeros((n, steps))
    for t in range(steps):
        current = (inputs[:, t].astype(np.float64) + p.bias) * 64.0 / p.threshold
        state = adlif_float_step(float_params, state, current, numpy_heaviside)
        spikes[:, t] = state.s
    return spikes, state


# ------------------------------------------------------------------------------ tests

def test_case_covers_the_extremes():
    params, inputs = neuron_case()
    assert {0, 1, 4095, 4096} <= set(params.alpha.tolist())
    assert {0, 4096} <= set(params.beta.tolist()) and {0, 4096} <= set(params.a.tolist())
    assert {0, 2 * int(params.threshold[0])} <= set(params.b.tolist())
    spikes, _ = fixed_reference(params, inputs)
    assert spikes.sum() > 20 and (spikes.sum(axis=1) > 0).sum() >= 6
    network, samples = network_case()
    assert samples.max() > 1                                     # graded input
    delays = np.concatenate([layer.delay.ravel() for layer in network.layers])
    assert {0, 62} <= set(delays.tolist()) and not network.layers[1].delay.any()


def test_fixed_model_is_adlif_fixed_step(lava_results):
    params, inputs = neuron_case()
    spikes, state = fixed_reference(params, inputs)
    got = lava_results["neuron_fixed"]
    np.testing.assert_array_equal(got["spikes"].astype(np.int64), spikes)
    np.testing.assert_array_equal(got["u"].astype(np.int64), state.u)
    np.testing.assert_array_equal(got["w"].astype(np.int64), state.w)
    np.testing.assert_array_equal(got["s"].astype(np.int64), state.s)


def test_fixed_reference_saturates_somewhere():
    params, inputs = neuron_case()
    n, steps = inputs.shape
    state = NeuronState(*(np.zeros(n, dtype=np.int64) for _ in range(3)))
    extremes = 0
    for t in range(steps):
        state = adlif_fixed_step(params, state, inputs[:, t])
        extremes += int((np.abs(state.u) == 2 ** 23 - 1).sum())
    assert extremes > 0


def test_float_model_is_adlif_float_step(lava_results):
    params, inputs = neuron_case()
    spikes, state = float_reference(params, inputs)
    got = lava_results["neuron_float"]
    np.testing.assert_array_equal(got["spikes"], spikes)
    np.testing.assert_array_equal(got["u"], state.u)
    np.testing.assert_array_equal(got["w"], state.w)
    assert spikes.sum() > 0


@pytest.mark.parametrize("synapse", ["stock", "ring"])
def test_network_equals_emulator_bit_for_bit(lava_results, synapse):
    network, samples = network_case()
    emulated = Emulator(network)(torch.as_tensor(samples))
    results = lava_results[f"network_{synapse}"]
    assert len(results) == len(samples)
    total_spikes = 0
    for k, result in enumerate(results):
        for layer, spikes in enumerate(result.spikes):
            assert spikes.shape == (network.run_steps, network.layers[layer].weight.shape[0])
            np.testing.assert_array_equal(spikes, emulated.spikes[layer][k].numpy(),
                                          err_msg=f"sample {k}, layer {layer}")
            total_spikes += int(spikes.sum())
        np.testing.assert_array_equal(result.readout_input, emulated.readout_input[k].numpy(), err_msg=f"sample {k}")
        np.testing.assert_array_equal(result.scores, emulated.scores[k].numpy())
    assert total_spikes > 50 and all(r.spikes[-1].sum() > 0 for r in results)
    # sample 2 repeats sample 0: nothing leaked through the resets
    for a, b in zip(results[0].spikes + [results[0].readout_input], results[2].spikes + [results[2].readout_input]):
        np.testing.assert_array_equal(a, b)


def test_ring_and_stock_give_the_same_integers(lava_results):
    for a, b in zip(lava_results["network_stock"], lava_results["network_ring"]):
        np.testing.assert_array_equal(a.readout_input, b.readout_input)
        for x, y in zip(a.spikes, b.spikes):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("n", [1, 47, 48, 49, 128])
def test_packed_spike_sink_round_trip(n):
    from snn_toolchain.lava_models.build import import_lava_runtime

    # in-process Lava imports, after anything (a CPU forward: Numba asks for the start method) has
    # fixed multiprocessing's start method: what the toolchain's own Lava entry points do first
    import_lava_runtime()
    from snn_toolchain.lava_models.processes.packed_sink import pack_spikes, packed_words, unpack_spikes

    spikes = (np.random.default_rng(n).random((n, 7)) < 0.5).astype(np.uint8)
    spikes[:, 0] = 1                                              # all 48 bits set: the largest word
    packed = np.stack([pack_spikes(spikes[:, t]) for t in range(7)], axis=1)
    assert packed.shape == (packed_words(n), 7) and packed.max() < 2 ** 53   # exact through float64 Var.get
    np.testing.assert_array_equal(unpack_spikes(packed.astype(np.float64), n), spikes)


def test_process_refuses_parameters_out_of_range():
    from snn_toolchain.lava_models.build import import_lava_runtime

    import_lava_runtime()
    from snn_toolchain.lava_models.processes.adlif import AdLIF

    with pytest.raises(ValueError, match="alpha"):
        AdLIF(shape=(3,), alpha=[0, 4097, 1])
    with pytest.raises(ValueError, match="threshold"):
        AdLIF(shape=(3,), alpha=1, threshold=0)
    with pytest.raises(ValueError, match="1-D"):
        AdLIF(shape=(2, 2), alpha=1)
    neuron = AdLIF(shape=(2,), alpha=[1, 4096], b=7)
    np.testing.assert_array_equal(neuron.b.init, [7, 7])
