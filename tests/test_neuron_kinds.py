"""The neuron-kind registry: a kind registered at test time flows through every dispatch below Lava
(the legality check, the .net writer and reader, the emulator) and the Lava builder names it."""

from typing import Any, NamedTuple

import h5py
import numpy as np
import pytest
import torch

from snn_toolchain import constants as C
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.export.netfile import NetFileError, read_net, write_net
from snn_toolchain.lava_models.neuron_processes import LAVA_NEURON_PROCESSES, LavaBuildError, build_neuron_process
from snn_toolchain.quantized_network import NetworkError, QuantizedLayer, QuantizedNetwork
from snn_toolchain.neurons.dynamics import NeuronState, multiply_fraction
from snn_toolchain.neurons.interface import FieldCheck, NeuronKind
from snn_toolchain.neurons.registry import (
    NEURON_KINDS,
    neuron_kind_for_net_type,
    register_neuron_kind,
    unregister_neuron_kind,
)


class LeakyParams(NamedTuple):
    """A toy kind: a leaky integrator that resets to 0 on a spike. decay: 12-bit fraction kept per
    step; bias: synaptic units; threshold: membrane units."""

    decay: Any
    bias: Any
    threshold: Any


def leaky_step(params, state, synaptic_input):
    u = multiply_fraction(state.u, params.decay) + ((synaptic_input + params.bias) << C.ACTIVATION_SHIFT)
    s = (u > params.threshold).to(u.dtype) if isinstance(u, torch.Tensor) else (u > params.threshold).astype(u.dtype)
    return NeuronState(u * (1 - s), state.w, s)


def write_leaky(group, layer):
    group.create_dataset("keep", data=np.asarray(layer.neuron.decay, dtype=np.int32))
    group.create_dataset("vThMant", data=layer.threshold_mant)


def read_leaky(context):
    threshold = np.full(context.out_features, context.threshold_mant << C.ACTIVATION_SHIFT, dtype=np.int64)
    return LeakyParams(context.array("keep", ndim=1), context.bias, threshold), "leaky"


LEAKY = NeuronKind(name="leaky", net_type="LEAKY", params_type=LeakyParams, fixed_step=leaky_step,
                   write=write_leaky, read=read_leaky, state_names=("u",),
                   field_checks=(FieldCheck("decay", "keep", "decay"),))


@pytest.fixture
def leaky_kind():
    register_neuron_kind(LEAKY)
    try:
        yield LEAKY
    finally:
        unregister_neuron_kind(LEAKY.name)


def leaky_network(decay=3000):
    hidden = QuantizedLayer("0", np.array([[70, 0], [30, 40], [1, 90]]), np.array([[0, 1], [2, 0], [0, 3]]),
                            np.array([0, 1, 0]), 64)
    hidden.neuron = LeakyParams(np.array([decay, 2048, 0]), hidden.bias, np.full(3, 64 << C.ACTIVATION_SHIFT))
    hidden.neuron_variant = "leaky"
    readout = QuantizedLayer("1", np.array([[5, 0, 2], [0, 3, 1]]), np.zeros((2, 3), dtype=np.int64),
                             np.zeros(2, dtype=np.int64), 64)
    return QuantizedNetwork([hidden, readout], time_steps=12, variant="leaky")


def test_a_registered_kind_is_written_read_back_checked_and_emulated(leaky_kind, tmp_path):
    network = leaky_network()
    path = write_net(network, tmp_path / "leaky.net")
    with h5py.File(path, "r") as f:
        assert f["layer/0/neuron/type"][0] == b"LEAKY" and f["layer/0/neuron/keep"][()].tolist() == [3000, 2048, 0]
    back = read_net(path)
    assert isinstance(back.layers[0].neuron, LeakyParams) and back.layers[0].neuron_variant == "leaky"
    for field in LeakyParams._fields:
        assert np.array_equal(getattr(back.layers[0].neuron, field), getattr(network.layers[0].neuron, field))
    assert back.layers[0].neuron_kind is leaky_kind

    # the emulator steps the layer with the kind's own step: compare with the step run by hand
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 3, (4, 12, 2)))
    result = Emulator(back)(x)
    layer = back.layers[0]
    params = LeakyParams(*(torch.as_tensor(np.asarray(p)) for p in layer.neuron))
    padded = torch.nn.functional.pad(x, (0, 0, 0, back.run_steps - 12))
    weight, delay = torch.as_tensor(layer.weight), torch.as_tensor(layer.delay)
    zeros = torch.zeros(4, 3, dtype=torch.int64)
    state, expected = NeuronState(zeros, zeros, zeros), []
    for t in range(back.run_steps):   # a spike at step r through delay d arrives at r + 1 + d
        arriving = torch.zeros(4, 3, dtype=torch.int64)
        for j in range(3):
            for i in range(2):
                source = t - 1 - int(delay[j, i])
                if source >= 0:
                    arriving[:, j] += weight[j, i] * padded[:, source, i]
        state = leaky_step(params, state, arriving)
        expected.append(state.s)
    assert torch.equal(result.spikes[0].to(torch.int64), torch.stack(expected, dim=1))
    assert int(result.spikes[0].sum()) > 0


def test_a_registered_kind_s_ranges_are_the_legality_check(leaky_kind):
    with pytest.raises(NetworkError, match=r"layer 0: neuron keep\[0\] = 5000 is outside 0..4096"):
        leaky_network(decay=5000).validate()


def test_without_the_registration_the_file_and_the_network_are_refused_naming_the_kinds(tmp_path):
    register_neuron_kind(LEAKY)
    try:
        path = write_net(leaky_network(), tmp_path / "leaky.net")
    finally:
        unregister_neuron_kind(LEAKY.name)
    assert "leaky" not in NEURON_KINDS and neuron_kind_for_net_type("LEAKY") is None
    with pytest.raises(NetFileError) as info:
        read_net(path)
    message = str(info.value)
    assert str(path) in message and "unknown neuron type 'LEAKY'" in message and "ADLIF, CUBA" in message
    assert "\n" not in message
    with pytest.raises(NetworkError, match="unknown neuron parameters LeakyParams .registered kinds: adlif, cuba"):
        leaky_network().validate()


def test_registering_twice_or_a_taken_net_type_is_refused(leaky_kind):
    with pytest.raises(ValueError, match="name and net type and parameter type is taken by 'leaky'"):
        register_neuron_kind(LEAKY)
    with pytest.raises(ValueError, match="net type is taken by 'adlif'"):
        register_neuron_kind(NeuronKind(name="other", net_type="ADLIF", params_type=tuple, fixed_step=leaky_step,
                                        write=write_leaky, read=read_leaky, state_names=()))


def test_the_lava_builder_names_a_kind_without_a_lava_process(leaky_kind):
    assert set(LAVA_NEURON_PROCESSES) == {"adlif", "cuba"}
    with pytest.raises(LavaBuildError, match="no Lava process is registered for neuron kind 'leaky' "
                                             r"\(registered: adlif, cuba\)"):
        build_neuron_process(leaky_network().layers[0], 0)
