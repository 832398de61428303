"""Graded inputs (snn_toolchain/input_encoding.py, docs/fixed_point.md "Graded inputs"): GSC's
real-valued features as integer payloads, and a network on such payloads: its first layer shifted
and its gain folded at export, the backends' refusal of wider payloads, and bit-exact parity of
the emulator and Lava on them. The input shift itself is tests/test_fixed_point.py.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from lava_support import run_isolated
from snn_toolchain.errors import ToolchainError
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.export.netfile import read_net, write_net
from snn_toolchain.input_encoding import GradedInputEncoding, fit_encoding
from snn_toolchain.quantized_network import NetworkError
from snn_toolchain.train.model.delay_snn import DelaySNN
from snn_toolchain.train.model.quantize import quantize_model


def test_fit_maps_silence_to_zero_and_the_loud_end_to_the_top():
    rng = np.random.default_rng(0)
    features = rng.uniform(5.0, 20.0, size=(50, 30, 3))
    features[:, 20:] = -15.9                      # zero-padded audio: the log floor
    encoding = fit_encoding(features, bits=8)
    assert encoding.levels == 255 and encoding.channels == 3
    assert np.all(encoding.low > 5.0) and np.all(encoding.low < 5.5)     # 1st percentile of the sound
    assert np.all(encoding.high > 19.9) and np.all(encoding.high <= 20.0)
    payloads = encoding.to_payloads(features)
    assert payloads.min() == 0 and payloads.max() == 255
    assert np.all(payloads[:, 20:] == 0)          # silence sends nothing
    assert np.array_equal(payloads, np.round(payloads))
    units = encoding.to_payload_units(torch.as_tensor(features, dtype=torch.float64))
    assert torch.allclose(units, torch.as_tensor(encoding.to_payload_units(features)))


def test_encoding_round_trips_and_refuses_bad_values():
    encoding = GradedInputEncoding(6, np.array([0.0, -1.0]), np.array([1.0, 2.0]))
    assert GradedInputEncoding.from_dict(encoding.to_dict()) == encoding
    assert GradedInputEncoding.from_dict(None) is None
    for bits in (0, 17, 2.5):
        with pytest.raises(ToolchainError, match="input-bits"):
            GradedInputEncoding(bits, np.zeros(2), np.ones(2))
    with pytest.raises(ToolchainError, match="high > low"):
        GradedInputEncoding(8, np.zeros(2), np.array([1.0, 0.0]))


# -------------------------------------------------------------------- a network on graded payloads

N_INPUTS, CLASSES, HIDDEN, MAX_DELAY, STEPS = 12, 5, 16, 6, 40


def graded_model(seed: int = 0) -> DelaySNN:
    torch.manual_seed(seed)
    encoding = GradedInputEncoding(8, np.zeros(N_INPUTS), np.ones(N_INPUTS))
    model = DelaySNN(N_INPUTS, CLASSES, HIDDEN, variant="adlif+", max_delay=MAX_DELAY, dropout=0.0,
                     input_encoding=encoding.to_dict())
    with torch.no_grad():
        for block in list(model.blocks) + [model.readout]:
            block.synapse.delay.uniform_(0, MAX_DELAY)
            block.synapse.weight.mul_(3.0)
    return model.eval()


def graded_samples(n: int = 6, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, STEPS, N_INPUTS), generator=generator).to(torch.float32)
    x[:, STEPS - MAX_DELAY:] = 0
    return x


@pytest.fixture(scope="module")
def graded_net(tmp_path_factory):
    folder = tmp_path_factory.mktemp("graded")
    model = graded_model()
    network = quantize_model(model, STEPS)
    return model, network, write_net(network, folder / "graded.net")


def test_the_first_layer_of_a_graded_network_is_shifted_and_its_gain_folded(graded_net):
    model, network, path = graded_net
    assert network.layers[0].input_shift > 0 and [layer.input_shift for layer in network.layers[1:]] == [0, 0]
    assert network.input_encoding.bits == 8 and network.input_message_bits(255) == 8
    again = read_net(path)
    # 3: its AdLIF layers hold a scale per neuron (2 would hold the shift and the encoding)
    assert network.format_version == 3 and h5py.File(path)["/"].attrs["format_version"] == 3
    assert [layer.input_shift for layer in again.layers] == [layer.input_shift for layer in network.layers]
    assert again.input_encoding == network.input_encoding
    # the model sees payloads / 255; the emulator's integers follow the float model closely
    x = graded_samples()
    emulated = Emulator(again)(x)
    float_scores, float_spikes = model(x, return_spikes=True)
    float_counts = float_spikes[0].sum(dim=(1, 2))
    fixed_counts = emulated.spikes[0].sum(dim=(1, 2)).to(torch.float32)
    assert float_counts.sum() > 20
    assert torch.allclose(fixed_counts, float_counts, rtol=0.15, atol=3), (fixed_counts, float_counts)


def test_backends_refuse_payloads_wider_than_the_encoding(graded_net):
    _, network, _ = graded_net
    x = graded_samples()
    x[0, 0, 0] = 256
    with pytest.raises(NetworkError, match="8-bit graded inputs"):
        Emulator(network)(x)
    with pytest.raises(ValueError, match="non-negative whole numbers"):
        Emulator(network)(graded_samples() + 0.5)


def graded_parity_worker(net_path: str, synapse: str):
    from snn_toolchain.export.emulator import Emulator
    from snn_toolchain.lava_models.lava_backend import LavaBackend
    from snn_toolchain.evaluation import compare_runs

    network = read_net(net_path)
    samples = graded_samples().numpy().astype(np.int64)
    lava = LavaBackend(network, synapse, progress=False)(samples)
    emulated = Emulator(network).run(torch.as_tensor(samples))
    return compare_runs(emulated, lava, ("emulator", "lava")), lava.spike_counts()


@pytest.mark.parametrize("synapse", ["ring", "stock"])
def test_lava_equals_the_emulator_on_graded_payloads(graded_net, tmp_path, synapse):
    _, _, path = graded_net
    comparison, lava_counts = run_isolated("test_input_encoding:graded_parity_worker", (str(path), synapse), tmp_path,
                                           timeout_s=300)
    assert sum(lava_counts) > 0
    assert comparison.spikes_identical and comparison.readout_identical and comparison.scores_identical, \
        comparison.first_difference
