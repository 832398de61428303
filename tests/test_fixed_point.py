"""Fixed-point arithmetic (neuron_dynamics), quantization, the .net round trip, the refusals and the
emulator's timing."""

import h5py
import numpy as np
import pytest
import torch

from snn_toolchain import constants as C
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.evaluation import compare_runs
from snn_toolchain.train.model.float_backend import FloatModelBackend
from snn_toolchain.train.model.deployed import deployed_synaptic_input
from snn_toolchain.export.netfile import CHECKSUM_ATTR, NetFileError, content_checksum, read_net, write_net
from snn_toolchain.quantized_network import NetworkError
from snn_toolchain.fixed_point import quantize_connection
from snn_toolchain.train.model.quantize import quantize_model
from snn_toolchain.neurons.dynamics import (
    CubaFixedParams,
    FixedNeuronParams,
    NeuronState,
    adlif_fixed_step,
    adlif_float_step,
    cuba_fixed_step,
    multiply_fraction,
    numpy_heaviside,
    saturate,
)
from snn_toolchain.train.model.delay_snn import DelaySNN


def _params(n=1, alpha=4096, beta=0, a=0, b=0, bias=0, threshold=4096):
    return FixedNeuronParams(*(np.full(n, v, dtype=np.int64) for v in (alpha, beta, a, b, bias, threshold)))


def _zero_state(n=1):
    zeros = np.zeros((1, n), dtype=np.int64)
    return NeuronState(zeros, zeros.copy(), zeros.copy())


def test_negative_products_truncate_toward_zero():
    x = np.array([-7, 7, -4096, 4095, -1], dtype=np.int64)
    # -7 * 2048 / 4096 = -3.5 -> -3 (toward zero), not -4 (floor)
    np.testing.assert_array_equal(multiply_fraction(x, 2048), [-3, 3, -2048, 2047, 0])
    torch.testing.assert_close(multiply_fraction(torch.as_tensor(x), 2048), torch.tensor([-3, 3, -2048, 2047, 0]))


def test_saturation_at_24_bits():
    x = np.array([C.STATE_MAX + 5, -C.STATE_MAX - 5, 12, C.STATE_MAX], dtype=np.int64)
    np.testing.assert_array_equal(saturate(x), [C.STATE_MAX, -C.STATE_MAX, 12, C.STATE_MAX])
    # a huge input drives the membrane to the rail, not past it
    state = adlif_fixed_step(_params(alpha=0), _zero_state(), np.array([[10 ** 7]]))
    assert state.u[0, 0] == C.STATE_MAX and state.s[0, 0] == 1


def test_threshold_is_strict():
    # alpha = 0: u = I exactly; input 64 << 6 = 4096 equals the threshold and must not fire
    at = adlif_fixed_step(_params(alpha=0), _zero_state(), np.array([[64]]))
    assert at.u[0, 0] == 4096 and at.s[0, 0] == 0
    above = adlif_fixed_step(_params(alpha=0, bias=1), _zero_state(), np.array([[64]]))
    assert above.u[0, 0] == 4160 and above.s[0, 0] == 1


def test_soft_reset_and_spike_triggered_adaptation_by_hand():
    params = _params(alpha=2048, beta=2048, a=1024, b=8192)   # alpha = beta = 0.5, a = 0.25, b = 2
    state = NeuronState(np.array([[5000]]), np.array([[100]]), np.array([[1]]))
    nxt = adlif_fixed_step(params, state, np.array([[10]]))
    w = 100 * 2048 // 4096 + 5000 * 1024 // 4096 + 8192          # 50 + 1250 + 8192 = 9492
    u = (5000 - 4096) * 2048 // 4096 + (-((9492 - 640) * 2048 // 4096))  # 452 - 4426
    assert nxt.w[0, 0] == w and nxt.u[0, 0] == u and nxt.s[0, 0] == 0


def test_cuba_wraps_current_and_hard_resets():
    params = CubaFixedParams(*(np.array([v], dtype=np.int64) for v in (4096, 0, 0, 4096)))
    state = cuba_fixed_step(params, _zero_state(), np.array([[2 ** 17 + 1]]))   # (2^17 + 1) << 6 > 2^23
    assert state.u[0, 0] == (2 ** 17 + 1) * 64 - 2 ** 24      # wrapped once
    fire = cuba_fixed_step(params, _zero_state(), np.array([[65]]))
    assert fire.s[0, 0] == 1 and fire.w[0, 0] == 0             # voltage reset to 0 on the spike


def test_fixed_step_tracks_the_float_step():
    """With fine parameters and no saturation, the integer step stays within rounding of the float one."""
    rng = np.random.default_rng(0)
    n, threshold = 50, 4096 << 4
    alpha, beta, a, b = rng.uniform(0.2, 0.95, n), rng.uniform(0, 0.99, n), rng.uniform(0, 1, n), rng.uniform(0, 2, n)
    fixed = FixedNeuronParams(*(np.round(v * 4096).astype(np.int64) for v in (alpha, beta, a)),
                              np.round(b * threshold).astype(np.int64), np.zeros(n, np.int64), np.full(n, threshold))
    state_f = NeuronState(*(np.zeros((1, n)) for _ in range(3)))
    state_q = NeuronState(*(np.zeros((1, n), dtype=np.int64) for _ in range(3)))
    from snn_toolchain.neurons.dynamics import NeuronParams
    float_params = NeuronParams(fixed.alpha / 4096, fixed.beta / 4096, fixed.a / 4096, fixed.b / threshold)
    agree = 0
    for t in range(30):
        current = rng.uniform(0, 2.5, (1, n))
        state_f = adlif_float_step(float_params, state_f, current, numpy_heaviside)
        synaptic = np.round(current * threshold / 64).astype(np.int64)
        state_q = adlif_fixed_step(fixed, state_q, synaptic)
        agree += np.mean(state_f.s == state_q.s)
    assert agree / 30 > 0.97


# ------------------------------------------------------------------ quantization, file, refusals

def _trained_like_model(variant="adlif+", seed=0, max_delay=8):
    torch.manual_seed(seed)
    model = DelaySNN(14, 5, 12, variant=variant, max_delay=max_delay, dropout=0.0)
    with torch.no_grad():
        for synapse in [b.synapse for b in model.blocks] + [model.readout.synapse]:
            synapse.delay.uniform_(0, max_delay)
            synapse.weight.mul_(3)
            synapse.bias.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.mark.parametrize("variant", ["adlif+", "adlif", "lif"])
def test_round_trip_gives_the_same_integers(tmp_path, variant):
    qnet = quantize_model(_trained_like_model(variant), time_steps=40, settings={"source_checkpoint": "x.pt"})
    path = write_net(qnet, tmp_path / "model.net")
    back = read_net(path)
    assert back.time_steps == 40 and back.run_steps == 43 and back.variant == variant
    assert back.settings["source_checkpoint"] == "x.pt"
    for a, b in zip(qnet.layers, back.layers):
        for field in ("weight", "delay", "bias"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        np.testing.assert_array_equal(a.weight_scale, b.weight_scale)
        assert a.per_neuron_scale == b.per_neuron_scale == (variant != "lif" and a.neuron is not None)
        if a.neuron is not None:
            assert type(a.neuron) is type(b.neuron)
            for x, y in zip(a.neuron, b.neuron):
                np.testing.assert_array_equal(np.broadcast_to(x, y.shape), y)
    assert [layer.neuron_variant for layer in back.layers[:-1]] == (["cuba"] * 2 if variant == "lif" else [variant] * 2)
    x = (torch.rand(3, 40, 14) < 0.3).float() * 2
    torch.testing.assert_close(Emulator(back)(x).scores, Emulator(qnet)(x).scores)


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


def test_damaged_files_are_refused_in_one_line(tmp_path):
    path = write_net(quantize_model(_trained_like_model(), 20), tmp_path / "ok.net")
    cases = {}
    truncated = tmp_path / "truncated.net"
    truncated.write_bytes(path.read_bytes()[:2000])
    cases[truncated] = "not a readable HDF5 file"
    for name, edit, message in [
        ("nokey.net", lambda f: f.__delitem__("layer/1/weight"), "missing '/layer/1/weight'"),
        ("nan.net", lambda f: (f["layer/0"].__delitem__("bias"), f["layer/0"].create_dataset("bias", data=np.full(12, np.nan))),
         "expected integers"),
        ("shape.net", lambda f: (f["layer/1"].__delitem__("delay"), f["layer/1"].create_dataset("delay", data=np.zeros((3, 3)))),
         "delay shape"),
        ("delay.net", lambda f: f["layer/2/delay"].__setitem__((0, 0), 70), "delay[0, 0] = 70 is outside 0..62"),
        ("type.net", lambda f: (f["layer/0/neuron"].__delitem__("type"), f["layer/0/neuron"].create_dataset("type", data=[b"SIGMA"])),
         "unknown neuron type 'SIGMA'"),
    ]:
        target = tmp_path / name
        target.write_bytes(path.read_bytes())
        with h5py.File(target, "a") as f:
            edit(f)
            f.attrs[CHECKSUM_ATTR] = content_checksum(f)   # a consistent wrong file: the key check must refuse it
        cases[target] = message
    cases[tmp_path / "missing.net"] = "file not found"
    for target, message in cases.items():
        with pytest.raises(NetFileError) as info:
            read_net(target)
        assert message in str(info.value) and str(target) in str(info.value) and "\n" not in str(info.value)


def test_a_cuba_layer_without_its_decay_names_the_missing_key(tmp_path):
    path = write_net(quantize_model(_trained_like_model("lif"), 20), tmp_path / "lif.net")
    with h5py.File(path, "a") as f:
        assert f["layer/0/neuron/type"][0] == b"CUBA"
        del f["layer/0/neuron/iDecay"]
        f.attrs[CHECKSUM_ATTR] = content_checksum(f)
    with pytest.raises(NetFileError, match="missing '/layer/0/neuron/iDecay'") as info:
        read_net(path)
    assert "do not match" not in str(info.value)


def test_write_is_atomic(tmp_path, monkeypatch):
    good = write_net(quantize_model(_trained_like_model(), 20), tmp_path / "model.net")
    before = good.read_bytes()
    import snn_toolchain.netcodec as netcodec

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")
    monkeypatch.setattr(netcodec, "write_cuba", broken)
    with pytest.raises(RuntimeError):
        write_net(quantize_model(_trained_like_model(seed=1), 20), good)
    assert good.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["model.net"]


# ------------------------------------------------------------------ emulator timing

def test_synapse_latency_is_one_step_plus_the_delay():
    spikes = torch.zeros(1, 10, 2, dtype=torch.int64)
    spikes[0, 2, 0] = 1
    spikes[0, 4, 1] = 3   # graded
    weight = torch.tensor([[5, -2]])
    delay = torch.tensor([[0, 3]])
    a = deployed_synaptic_input(spikes, weight, delay).to(torch.int64)[0, :, 0]
    expected = torch.zeros(10, dtype=torch.int64)
    expected[3] = 5        # step 2 + 1 + 0
    expected[8] = -6       # step 4 + 1 + 3, weight -2 x 3
    torch.testing.assert_close(a, expected)


def test_emulator_equals_the_model_in_the_deployed_arithmetic():
    """The model computes in the deployed integers (its own blocks, with Lava's latency) exactly what
    the emulator computes from the exported .net; the float model predicts nearly the same."""
    torch.manual_seed(2)
    model = _trained_like_model(max_delay=4)
    x = (torch.rand(64, 30, 14) < 0.3).float()
    qnet = quantize_model(model, time_steps=30)
    emulated = Emulator(qnet).run(x)
    deployed = FloatModelBackend(model, arithmetic="deployed")(x)
    assert compare_runs(emulated, deployed).ok
    floating = FloatModelBackend(model)(x)
    assert [s.shape for s in floating.spikes] == [s.shape for s in emulated.spikes]   # the same run steps
    assert np.mean(floating.predictions() == emulated.predictions()) > 0.8


def test_each_block_exports_its_own_netx_layer(tmp_path):
    model = _trained_like_model()
    with h5py.File(tmp_path / "blocks.h5", "w") as f:
        for index, block in enumerate(list(model.blocks) + [model.readout]):
            block.export_hdf5(f.create_group(f"layer/{index}"))
        f.attrs["time_steps"] = 20
    from_blocks = read_net(tmp_path / "blocks.h5")
    whole = quantize_model(model, 20)
    for a, b in zip(from_blocks.layers, whole.layers):
        np.testing.assert_array_equal(a.weight, b.weight)
        np.testing.assert_array_equal(a.delay, b.delay)
    assert from_blocks.layers[0].neuron_variant == "adlif+" and from_blocks.layers[-1].neuron is None
