"""Every registered neuron kind, through every layer of the toolchain: one test per kind of
``snn_toolchain.neurons.registry.NEURON_KINDS``, read at collection time, so a kind registered
there gets this test without an edit here.

Per kind, on a small network (3 inputs -> 6 neurons of the kind -> 2-class summing readout, a few
steps, graded inputs, delays 0..2, the kind's checked parameters at both ends of their
``FIELD_LIMITS`` ranges on two neurons and random elsewhere):

1. **.net round trip**: ``write_net`` then ``read_net`` gives back the same layers (weights, delays,
   biases, scales, every parameter field, the variant) and the same kind; the file names the kind's
   ``net_type``.
2. **Emulator = the kind's step**: the emulator's spikes of the layer at every step equal the kind's
   own ``fixed_step`` run by hand on synaptic input summed by hand (a spike sent at step r through
   delay d arrives at step r + 1 + d), and its readout input is the readout weights times those
   spikes, delayed the same way.
3. **Lava = emulator**: in a worker process, (a) the kind's Lava process from
   ``lava_models/neuron_processes.py`` fed that synaptic input directly, one ``run`` of one step at a
   time: after each step its state Vars (the kind's ``state_names``) equal the ``fixed_step`` state
   and its spike equals the emulator's; (b) the whole network built by the Lava builder
   (``build_lava_network``) gives the emulator's spikes and readout input, sample by sample.

A kind whose parameter NamedTuple has a field that is neither checked (``field_checks``) nor
``bias`` / ``threshold`` cannot be filled in generically: the test then fails naming the field
(add a rule to :func:`kind_params`).
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from lava_support import run_isolated
from snn_toolchain import constants as C
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.export.netfile import read_net, write_net
from snn_toolchain.neurons.dynamics import NeuronState
from snn_toolchain.neurons.registry import NEURON_KINDS
from snn_toolchain.quantized_network import FIELD_LIMITS, QuantizedLayer, QuantizedNetwork

N_INPUTS, N_NEURONS, N_CLASSES = 3, 6, 2
TIME_STEPS = 8
SCALE = 40                        # vThMant, not a power of two
WORKER_TIMEOUT_S = 300


def kind_params(kind, bias: np.ndarray, rng):
    """The kind's parameters for N_NEURONS neurons: each checked field at its range's low end on
    neuron 0 and its high end on neuron 1, random elsewhere (within the range, and no farther from 0
    than twice the threshold, so that the neurons stay active); ``bias`` the layer's; ``threshold``
    ``vThMant << 6``."""
    threshold = SCALE << C.ACTIVATION_SHIFT
    checked = {check.attribute: FIELD_LIMITS[check.limit] for check in kind.field_checks}
    values = {}
    for name in kind.params_type._fields:
        if name in checked:
            low, high = int(checked[name].low), int(checked[name].high)
            near_low, near_high = max(low, -2 * threshold), min(high, 2 * threshold)
            column = rng.integers(near_low, near_high + 1, size=N_NEURONS)
            column[0], column[1] = low, high
            values[name] = column.astype(np.int64)
        elif name == "bias":
            values[name] = bias
        elif name == "threshold":
            values[name] = np.full(N_NEURONS, threshold, dtype=np.int64)
        else:
            pytest.fail(f"neuron kind {kind.name!r}: no rule for its parameter field {name!r} (not in field_checks, "
                        "not bias or threshold): add one to kind_params in tests/test_every_neuron_kind.py")
    return kind.params_type(**values)


def kind_network(kind, seed: int = 0) -> QuantizedNetwork:
    rng = np.random.default_rng(seed)
    weight = rng.integers(-60, 255, size=(N_NEURONS, N_INPUTS)).astype(np.int64)
    weight[0, 0], weight[-1, -1] = C.WEIGHT_MAX, C.WEIGHT_MIN
    delay = rng.integers(0, 3, size=(N_NEURONS, N_INPUTS)).astype(np.int64)
    bias = rng.integers(-SCALE // 2, SCALE // 2, size=N_NEURONS).astype(np.int64)
    hidden = QuantizedLayer("0", weight, delay, bias, SCALE, kind_params(kind, bias, rng), kind.name)
    readout = QuantizedLayer("1", rng.integers(-100, 101, size=(N_CLASSES, N_NEURONS)).astype(np.int64),
                             rng.integers(0, 2, size=(N_CLASSES, N_NEURONS)).astype(np.int64),
                             np.array([3, -2], dtype=np.int64), 64)
    return QuantizedNetwork([hidden, readout], TIME_STEPS, kind.name).validate()


def kind_samples(seed: int = 1) -> np.ndarray:
    """(3, TIME_STEPS, N_INPUTS) graded spike counts; sample 2 repeats sample 0 (state must not leak)."""
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, 4, size=(3, TIME_STEPS, N_INPUTS)).astype(np.int64)
    samples[2] = samples[0]
    return samples


def delayed_sum(weight: np.ndarray, delay: np.ndarray, spikes: np.ndarray) -> np.ndarray:
    """(K, steps, out): sum over i of weight[j, i] * spikes[k, t - 1 - delay[j, i], i], written out."""
    samples, steps, n_in = spikes.shape
    out = np.zeros((samples, steps, weight.shape[0]), dtype=np.int64)
    for t in range(steps):
        for j in range(weight.shape[0]):
            for i in range(n_in):
                source = t - 1 - int(delay[j, i])
                if source >= 0:
                    out[:, t, j] += int(weight[j, i]) * spikes[:, source, i]
    return out


def step_by_hand(kind, params, synaptic_input: np.ndarray) -> list:
    """The kind's fixed_step from zero state over (K, steps, N) input: the state after each step."""
    zeros = np.zeros(synaptic_input[:, 0].shape, dtype=np.int64)
    state, states = NeuronState(zeros, zeros, zeros), []
    for t in range(synaptic_input.shape[1]):
        state = NeuronState(*(np.asarray(x, dtype=np.int64) for x in kind.fixed_step(params, state, synaptic_input[:, t])))
        states.append(state)
    return states


# ------------------------------------------------------------------------------ worker (Lava side)

def lava_kind_worker(kind_name: str, network, samples: np.ndarray, synaptic_input: np.ndarray) -> dict:
    """(a) the kind's Lava process alone, stepped one step at a time on ``synaptic_input`` (steps, N):
    its state Vars and spikes after each step; (b) the network on ``samples`` through the Lava builder."""
    from snn_toolchain.lava_models.build import build_lava_network, import_lava_runtime

    import_lava_runtime()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    from snn_toolchain.lava_models.neuron_processes import build_neuron_process

    kind = NEURON_KINDS[kind_name]
    steps, n = synaptic_input.shape
    source = Source(data=synaptic_input.T.astype(np.int32))
    neuron = build_neuron_process(network.layers[0], 0)
    sink = Sink(shape=(n,), buffer=steps)
    source.s_out.connect(neuron.a_in)
    neuron.s_out.connect(sink.a_in)
    states = []
    try:
        for _ in range(steps):
            neuron.run(condition=RunSteps(num_steps=1), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            states.append({name: np.asarray(getattr(neuron, name).get()).astype(np.int64) for name in kind.state_names})
        spikes = np.asarray(sink.data.get()).T.astype(np.int64)
    finally:
        neuron.stop()
    runner = build_lava_network(network, samples=samples, synapse="ring")
    return {"states": states, "spikes": spikes, "network": runner.run(progress=False)}


# ------------------------------------------------------------------------------ the test

@pytest.mark.parametrize("kind_name", list(NEURON_KINDS))
def test_every_neuron_kind_round_trips_emulates_and_runs_on_lava(kind_name, tmp_path):
    kind = NEURON_KINDS[kind_name]
    network = kind_network(kind)

    # 1. .net round trip
    path = write_net(network, tmp_path / f"{kind_name}.net")
    with h5py.File(path, "r") as f:
        assert f["layer/0/neuron/type"][0] == kind.net_type.encode("ascii")
    back = read_net(path)
    assert back.time_steps == network.time_steps and len(back.layers) == len(network.layers)
    for mine, theirs in zip(network.layers, back.layers):
        for field in ("weight", "delay", "bias", "weight_scale", "input_shift"):
            assert np.array_equal(np.asarray(getattr(theirs, field)), np.asarray(getattr(mine, field))), field
    layer, original = back.layers[0], network.layers[0]
    assert layer.neuron_kind is kind and type(layer.neuron) is kind.params_type
    assert layer.neuron_variant == original.neuron_variant
    for field in kind.params_type._fields:
        assert np.array_equal(np.broadcast_to(getattr(layer.neuron, field), (N_NEURONS,)),
                              np.asarray(getattr(original.neuron, field))), field
    assert back.layers[1].neuron is None

    # 2. the emulator is the kind's own step on the synaptic input summed by hand
    samples = kind_samples()
    padded = np.pad(samples, ((0, 0), (0, back.run_steps - TIME_STEPS), (0, 0)))
    synaptic_input = delayed_sum(original.weight, original.delay, padded)
    params = kind.params_type(*(np.asarray(p, dtype=np.int64) for p in original.neuron))
    states = step_by_hand(kind, params, synaptic_input)
    spikes = np.stack([state.s for state in states], axis=1)
    emulated = Emulator(back)(samples, keep_synaptic_input=True)
    np.testing.assert_array_equal(emulated.synaptic_input[0].numpy(), synaptic_input)
    np.testing.assert_array_equal(emulated.spikes[0].numpy().astype(np.int64), spikes)
    readout = back.layers[1]
    np.testing.assert_array_equal(emulated.readout_input.numpy(), delayed_sum(readout.weight, readout.delay, spikes))
    assert 0 < spikes[0].sum() < spikes[0].size, "silent or saturated neurons would make the comparison trivial"
    np.testing.assert_array_equal(spikes[2], spikes[0])

    # 3. Lava: the kind's process step by step, and the network through the Lava builder
    lava = run_isolated("test_every_neuron_kind:lava_kind_worker", (kind_name, back, samples, synaptic_input[0]),
                        tmp_path / "worker", WORKER_TIMEOUT_S)
    for t, state in enumerate(lava["states"]):
        for name, value in zip(kind.state_names, states[t]):
            np.testing.assert_array_equal(state[name], value[0], err_msg=f"{name} after step {t}")
    np.testing.assert_array_equal(lava["spikes"], spikes[0])
    assert len(lava["network"]) == len(samples)
    for k, result in enumerate(lava["network"]):
        np.testing.assert_array_equal(result.spikes[0].astype(np.int64), emulated.spikes[0][k].numpy(),
                                      err_msg=f"sample {k}")
        np.testing.assert_array_equal(result.readout_input, emulated.readout_input[k].numpy(), err_msg=f"sample {k}")
        np.testing.assert_array_equal(result.scores, emulated.scores[k].numpy(), err_msg=f"sample {k}")
