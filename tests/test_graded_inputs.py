"""Graded inputs (issue #10): GSC's real-valued features as integer payloads, the input shift that
keeps such a first layer within Loihi 2's ranges, and bit-exact parity of the emulator and Lava on
them (snn_toolchain/input_encoding.py, docs/fixed_point.md "Graded inputs")."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from lava_support import run_isolated
from official_layout import write_gsc_folder
from snn_toolchain import constants as C
from snn_toolchain.errors import ToolchainError
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.train.model.deployed import deployed_synaptic_input
from snn_toolchain.export.netfile import read_net, write_net
from snn_toolchain.input_encoding import GradedInputEncoding, fit_encoding
from snn_toolchain.quantized_network import NetworkError
from snn_toolchain.fixed_point import quantize_connection, scale_and_shift
from snn_toolchain.train.data import gsc
from snn_toolchain.train.model.delay_snn import DelaySNN
from snn_toolchain.train.data.loading import build_datasets
from snn_toolchain.train.model.quantize import quantize_model

N_INPUTS, CLASSES, HIDDEN, MAX_DELAY, STEPS = 12, 5, 16, 6, 40


# ------------------------------------------------------------------------------------ encoding

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


# ------------------------------------------------------------------------- scale and input shift

def test_small_weights_get_an_input_shift_and_keep_the_8_bit_range():
    weight = np.array([[0.002, -0.0013], [0.0005, 0.0]])          # threshold units per payload step
    scale, shift = scale_and_shift(weight, np.zeros(2))
    assert scale <= C.SCALE_BEFORE_SHIFT_MAX and shift > 0
    layer = quantize_connection("0", weight, np.zeros((2, 2)), np.zeros(2))
    assert (layer.weight_scale, layer.input_shift) == (scale, shift)
    assert np.abs(layer.weight).max() >= 128                       # the 8-bit range is used
    # the weights in threshold units are what was trained: W_q / (S * 2^k) ~ W
    np.testing.assert_allclose(layer.weight / (scale << shift), weight, atol=0.5 / (scale << shift))


def test_ordinary_weights_keep_the_unshifted_scale():
    weight = np.random.default_rng(1).normal(0, 0.3, size=(8, 6))
    assert scale_and_shift(weight, np.full(8, 0.5)) == (int(254 // np.abs(weight).max()), 0)


def test_beyond_the_largest_shift_the_17_bit_threshold_caps_the_scale():
    scale, shift = scale_and_shift(np.array([[5e-6, -1e-6]]), np.zeros(1))
    assert shift == C.MAX_INPUT_SHIFT and scale == C.THRESHOLD_MANT_MAX
    assert quantize_connection("0", np.array([[5e-6, -1e-6]]), np.zeros((1, 2)), np.zeros(1)).weight_scale == scale


def test_a_large_bias_is_held_by_shifting_instead_of_refusing():
    layer = quantize_connection("3", np.array([[1.0, -1.0]]), np.zeros((1, 2)), np.array([500.0]))
    assert layer.input_shift == 2 and layer.weight_scale == 63 and layer.bias.tolist() == [31500]


def test_shifted_synaptic_input_floors_each_delay_group_as_lava_does():
    rng = np.random.default_rng(2)
    weight = rng.integers(-256, 255, size=(4, 5))
    delay = rng.integers(0, 3, size=(4, 5))
    x = rng.integers(0, 256, size=(3, 9, 5))
    shift = 5
    got = deployed_synaptic_input(torch.as_tensor(x), torch.as_tensor(weight), torch.as_tensor(delay),
                                  float(1 << shift)).to(torch.int64)
    expected = np.zeros((3, 9, 4), dtype=np.int64)
    for b in range(3):
        for r in range(9):
            for j in range(4):
                for d in np.unique(delay[j]):
                    source = r - 1 - d
                    if source < 0:
                        continue
                    group = int(sum(weight[j, i] * x[b, source, i] for i in range(5) if delay[j, i] == d))
                    expected[b, r, j] += group >> shift        # Python's >> floors, as numpy's right_shift
    assert np.array_equal(got.numpy(), expected)
    unshifted = deployed_synaptic_input(torch.as_tensor(x), torch.as_tensor(weight), torch.as_tensor(delay)).to(torch.int64)
    assert not np.array_equal(got.numpy() << shift, unshifted.numpy())   # flooring per group is visible


# ------------------------------------------------------------------ a network on graded payloads

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
    comparison, lava_counts = run_isolated("test_graded_inputs:graded_parity_worker", (str(path), synapse), tmp_path,
                                           timeout_s=300)
    assert sum(lava_counts) > 0
    assert comparison.spikes_identical and comparison.readout_identical and comparison.scores_identical, \
        comparison.first_difference


# ---------------------------------------------------------------------------------- GSC splits

def test_gsc_splits_are_encoded_payloads_and_deployed_rounds_them(tmp_path):
    root = tmp_path / "gsc"
    write_gsc_folder(root, gsc.GSC_WORDS, clips_per_word=3)
    splits = build_datasets("gsc", root, pad_steps=7, cache_dir=tmp_path / "cache", input_bits=6)
    assert splits.input_encoding.bits == 6 and splits.input_gain == 1 / 63
    x, _ = splits.train[0]
    assert x.min() >= 0 and x.max() <= 63 and not torch.equal(x, torch.round(x))
    assert (x[100:] == 0).all()                           # the delay padding is silence
    deployed = splits.deployed()
    rounded, _ = deployed.train[0]
    assert torch.equal(rounded, torch.round(x))
    assert (deployed.test[1][0] == torch.round(splits.test[1][0])).all()
    # the training split's statistics, not the test split's, whatever split is read
    again = build_datasets("gsc", root, pad_steps=7, cache_dir=tmp_path / "cache", input_encoding=splits.input_encoding)
    assert again.input_encoding == splits.input_encoding and torch.equal(again.test[0][0], splits.test[0][0])
    other = GradedInputEncoding(6, splits.input_encoding.low - 1.0, splits.input_encoding.high)
    shifted = build_datasets("gsc", root, pad_steps=7, cache_dir=tmp_path / "cache", input_encoding=other)
    assert not torch.equal(shifted.test[0][0], splits.test[0][0])
