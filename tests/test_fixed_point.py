"""The rules that turn trained float values into Loihi 2 integers (snn_toolchain/fixed_point.py,
docs/fixed_point.md): the 8-bit weight range, per-neuron scales, the input shift that keeps a layer
of small weights (graded inputs) within Loihi 2's ranges, and the refusals, one line naming the
layer and the value (NaN weights, delays and neuron parameters, biases, 16-bit inputs).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cli_support import one_line_error
from model_support import trained_like_model as _trained_like_model
from snn_toolchain import constants as C
from snn_toolchain.cli import main as cli_main
from snn_toolchain.fixed_point import quantize_connection, scale_and_shift
from snn_toolchain.quantized_network import NetworkError
from snn_toolchain.train.model.quantize import quantize_model


def test_weights_use_the_8_bit_range():
    layer = quantize_connection("0", np.array([[0.5, -0.26], [0.01, 0.0]]), np.zeros((2, 2)), np.zeros(2))
    assert layer.weight_scale == 508 and layer.threshold_mant == 508  # floor(254 / 0.5)
    assert layer.weight.tolist() == [[254, -132], [5, 0]]


def test_per_neuron_scales_give_each_neuron_its_own_range():
    """An AdLIF layer's neurons each get the scale of their own largest weight: never coarser than
    the layer's, capped by the membrane's headroom (4096 without a shift) and by the int16 bias."""
    weight = np.array([[0.5, -0.26], [0.01, 0.0], [-0.1, 0.05], [0.2, 0.0]])
    bias = np.array([0.0, 0.0, 0.0, 5.0])
    layer = quantize_connection("0", weight, np.zeros((4, 2)), bias, per_neuron=True)
    assert layer.per_neuron_scale and layer.threshold_mant.tolist() == [508, 4096, 2540, 1270]
    # 254 / 0.2 = 1270 fits the bias too: 5 * 1270 <= 32767; the capped neuron uses 41 of 254
    assert layer.weight.tolist() == [[254, -132], [41, 0], [-254, 127], [254, 0]]
    assert layer.bias.tolist() == [0, 0, 0, 6350]
    big_bias = quantize_connection("0", weight, np.zeros((4, 2)), np.array([0.0, 20.0, 0.0, 0.0]), per_neuron=True)
    assert big_bias.threshold_mant[1] == 32767 // 20          # the bias caps it
    # the readout and a CUBA layer hold one scale: refused per neuron, with the layer named
    qnet = quantize_model(_trained_like_model("adlif+"), time_steps=20)
    qnet.layers[-1].weight_scale = np.full(qnet.layers[-1].weight.shape[0], qnet.layers[-1].weight_scale)
    with pytest.raises(NetworkError, match="layer 2: the summing readout takes one weightScale"):
        qnet.validate()
    cuba = quantize_model(_trained_like_model("lif"), time_steps=20).layers[0]
    cuba.weight_scale = np.full(cuba.weight.shape[0], cuba.weight_scale)
    with pytest.raises(NetworkError, match="layer 0: CUBA neurons hold one threshold per layer"):
        cuba.validate()


# ------------------------------------------------------------------------------------- input shift

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


# ---------------------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("weight, delay, bias, message", [
    ([[1.0, float("nan")]], [[0, 0]], [0], r"layer 7: weight\[0, 1\] is nan"),
    ([[1.0, -1.0]], [[0, 63]], [0], r"layer 7: delay\[0, 1\] = 63 is outside 0..62"),
    ([[-1.0, -0.5]], [[0, 0]], [0], "every weight is <= 0"),
    ([[0.0, 0.0]], [[0, 0]], [0], "every weight is <= 0"),
    ([[1e6, -1.0]], [[0, 0]], [0], "does not fit 8-bit weights"),
    # a bias that overflows int16 at every scale the input shift allows (S = 254 >> 7 = 1)
    ([[1.0, -1.0]], [[0, 0]], [1e5], r"layer 7: bias\[0\] = 100000 is outside -32767..32767"),
])
def test_refusals_name_the_layer_and_value(weight, delay, bias, message):
    with pytest.raises(NetworkError, match=message):
        quantize_connection("7", np.array(weight), np.array(delay, dtype=float), np.array(bias))


def test_nan_neuron_parameter_is_refused():
    model = _trained_like_model()
    with torch.no_grad():
        model.blocks[1].neuron.alpha[3] = float("nan")
    with pytest.raises(NetworkError, match=r"layer 1: neuron alpha\[3\] is nan"):
        quantize_model(model, time_steps=10)


def test_a_nan_delay_is_named_as_nan(trained_run, tiny_folder, tmp_path, capsys):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    best = torch.load(run_dir / "best.pt", weights_only=False)
    delay_key = next(k for k in best["model"] if k.endswith("synapse.delay"))
    best["model"][delay_key][0, 0] = float("nan")
    torch.save(best, run_dir / "best.pt")
    assert cli_main(["export", "--run-dir", str(run_dir), "--data-dir", str(tiny_folder),
                     "--out", str(run_dir / "nan.net")]) == 2
    err = one_line_error(capsys, "delay[0, 0] is nan")
    assert "-9223372036854775808" not in err
    assert not (run_dir / "nan.net").exists()


def test_sixteen_bit_inputs_are_refused_with_the_reason_and_the_fix():
    """16-bit graded payloads (the documented range reaches 16) make the first layer's weights 1/65535
    of their 8-bit size: its threshold then leaves no room for the adaptation jump; the refusal says
    why and what to do, not only which number is out of range."""
    from snn_toolchain.train.model.quantize import quantize_layer
    from snn_toolchain.neurons.dynamics import NeuronParams

    # the first layer of a 16-bit run: trained weights times the input gain 1/65535
    weight = np.random.default_rng(0).standard_normal((4, 3)) * 0.5 / 65535 / 4
    neurons = NeuronParams(*(np.full(4, v) for v in (0.9, 0.98, 0.5, 1.5)))
    with pytest.raises(NetworkError, match=r"neuron b\[0\] = .* is outside .*threshold mantissa is .* train with "
                                           r"fewer --input-bits"):
        quantize_layer("0", weight, np.zeros((4, 3)), np.zeros(4), neurons)
