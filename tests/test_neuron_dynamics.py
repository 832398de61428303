"""The one definition of the AdLIF family: the float step, spike functions and bounds."""

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from snn_toolchain.cli import _parse_bounds
from snn_toolchain.neurons.dynamics import (
    BOUNDS_PRESETS,
    NEURON_BOUNDS,
    SURROGATE_HALF_WIDTH,
    THRESHOLD,
    BoxcarSpike,
    NeuronParams,
    NeuronState,
    adlif_float_step,
    boxcar_spike,
    numpy_heaviside,
    resolve_bounds,
)


def random_params(rng, n, variant, dtype=np.float64):
    bounds = resolve_bounds(variant)
    return NeuronParams(*(rng.uniform(*bounds[name], size=n).astype(dtype) for name in NeuronParams._fields))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("variant", ["lif", "adlif", "adlif+"])
def test_numpy_and_torch_steps_are_bit_identical(variant, dtype):
    rng = np.random.default_rng(1)
    batch, n, steps = 4, 16, 40
    params = random_params(rng, n, variant, dtype)
    currents = rng.normal(1.0, 1.5, size=(steps, batch, n)).astype(dtype)
    state_np = NeuronState(*(rng.uniform(0, 1, size=(batch, n)).astype(dtype) for _ in range(2)),
                           np.zeros((batch, n), dtype))
    state_torch = NeuronState(*(torch.from_numpy(x.copy()) for x in state_np))
    params_torch = NeuronParams(*(torch.from_numpy(x) for x in params))
    fired = 0
    for t in range(steps):
        state_np = adlif_float_step(params, state_np, currents[t], numpy_heaviside)
        state_torch = adlif_float_step(params_torch, state_torch, torch.from_numpy(currents[t]), boxcar_spike)
        for from_numpy, from_torch in zip(state_np, state_torch):
            assert from_numpy.dtype == dtype
            np.testing.assert_array_equal(from_numpy, from_torch.numpy())
        fired += state_np.s.sum()
    assert 0 < fired < steps * batch * n  # the comparison covered spikes and silences


def test_step_matches_hand_computation():
    params = NeuronParams(alpha=np.array([0.5]), beta=np.array([0.25]), a=np.array([0.5]), b=np.array([1.0]))
    state = NeuronState(u=np.array([[1.2]]), w=np.array([[0.4]]), s=np.array([[1.0]]))
    new = adlif_float_step(params, state, np.array([[3.0]]), numpy_heaviside)
    w = 0.25 * 0.4 + 0.5 * 1.2 + 1.0 * 1.0          # 1.7
    u = 0.5 * (1.2 - 1.0) + 0.5 * (3.0 - w)           # 0.75
    assert new.w[0, 0] == pytest.approx(w)
    assert new.u[0, 0] == pytest.approx(u)
    assert new.s[0, 0] == 0.0


def test_lif_is_the_step_with_no_adaptation():
    rng = np.random.default_rng(2)
    batch, n = 3, 8
    bounds = resolve_bounds("lif")
    assert bounds["a"] == bounds["b"] == bounds["beta"] == (0.0, 0.0)
    alpha = rng.uniform(*bounds["alpha"], size=n)
    params = NeuronParams(alpha, np.zeros(n), np.zeros(n), np.zeros(n))
    # A uniform initial w must not leak into a LIF neuron: beta = 0 wipes it in the first step.
    state = NeuronState(rng.uniform(size=(batch, n)), rng.uniform(size=(batch, n)), np.zeros((batch, n)))
    u, s = state.u.copy(), state.s.copy()
    for _ in range(20):
        current = rng.normal(1.0, 1.0, size=(batch, n))
        state = adlif_float_step(params, state, current, numpy_heaviside)
        u = alpha * (u - s) + (1 - alpha) * current       # textbook LIF with soft reset
        s = (u > THRESHOLD).astype(float)
        np.testing.assert_array_equal(state.w, 0.0)
        np.testing.assert_allclose(state.u, u, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(state.s, s)


def test_threshold_is_strict():
    # alpha = 0 makes u[t] = I[t] - w[t] exactly, so the input sets the membrane to the bit.
    params = NeuronParams(*(np.zeros(3) for _ in range(4)))
    state = NeuronState(np.zeros((1, 3)), np.zeros((1, 3)), np.zeros((1, 3)))
    current = np.array([[THRESHOLD, np.nextafter(THRESHOLD, 2.0), np.nextafter(THRESHOLD, 0.0)]])
    new = adlif_float_step(params, state, current, numpy_heaviside)
    np.testing.assert_array_equal(new.u, current)
    np.testing.assert_array_equal(new.s, [[0.0, 1.0, 0.0]])
    torch_new = adlif_float_step(NeuronParams(*(torch.from_numpy(p) for p in params)),
                                 NeuronState(*(torch.from_numpy(x) for x in state)),
                                 torch.from_numpy(current), boxcar_spike)
    np.testing.assert_array_equal(torch_new.s.numpy(), [[0.0, 1.0, 0.0]])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_boxcar_forward_and_surrogate_gradient(dtype):
    x = torch.tensor([-0.6, -0.5, -0.49, -1e-3, 0.0, 1e-3, 0.49, 0.5, 0.6], dtype=dtype, requires_grad=True)
    spikes = boxcar_spike(x)
    assert spikes.dtype == dtype
    assert spikes.tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    upstream = torch.arange(1.0, 10.0, dtype=dtype)
    (grad,) = torch.autograd.grad(spikes, x, upstream)
    inside = (x.detach().abs() < SURROGATE_HALF_WIDTH).to(dtype)
    assert inside.tolist() == [0, 0, 1, 1, 1, 1, 1, 0, 0]
    assert torch.equal(grad, upstream * inside)
    assert BoxcarSpike.apply(x).tolist() == spikes.tolist()


def test_numpy_heaviside_keeps_dtype_and_is_strict():
    x = np.array([-1.0, 0.0, 1e-12, 2.0], dtype=np.float32)
    out = numpy_heaviside(x)
    assert out.dtype == np.float32
    assert out.tolist() == [0.0, 0.0, 1.0, 1.0]


def test_bounds_of_each_variant():
    e = math.exp
    assert NEURON_BOUNDS["adlif"] == {"alpha": (e(-1 / 5), e(-1 / 25)), "beta": (e(-1 / 30), e(-1 / 120)),
                                      "a": (-1.0, 1.0), "b": (0.0, 2.0)}
    # beta in AdLIF's range: the paper's section 4.3 reading (docs/model.md)
    assert NEURON_BOUNDS["adlif+"] == {"alpha": (0.0, 1.0), "beta": (e(-1 / 30), e(-1 / 120)), "a": (0.0, 1.0), "b": (0.0, 2.0)}
    assert NEURON_BOUNDS["lif"] == {"alpha": (e(-1 / 5), e(-1 / 25)), "beta": (0.0, 0.0),
                                    "a": (0.0, 0.0), "b": (0.0, 0.0)}
    for variant, bounds in NEURON_BOUNDS.items():
        assert set(bounds) == set(NeuronParams._fields)
        assert resolve_bounds(variant) == bounds
        for low, high in bounds.values():
            assert low <= high


def test_resolve_bounds_applies_overrides_without_touching_the_defaults():
    bounds = resolve_bounds("lif", {"alpha": (0.0, 1.0)})
    assert bounds["alpha"] == (0.0, 1.0)
    assert NEURON_BOUNDS["lif"]["alpha"] == (math.exp(-1 / 5), math.exp(-1 / 25))
    bounds["a"] = (5.0, 6.0)
    assert NEURON_BOUNDS["lif"]["a"] == (0.0, 0.0)


@pytest.mark.parametrize("variant, overrides, message", [
    ("izhikevich", None, "unknown neuron variant"),
    ("adlif+", {"gamma": (0, 1)}, "unknown neuron parameter"),
    ("adlif+", {"b": (2, 1)}, "low <= high"),
    ("adlif+", {"alpha": (0.0, 1.5)}, "within \\[0, 1\\]"),
])
def test_resolve_bounds_rejects_bad_configuration(variant, overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve_bounds(variant, overrides)


def test_numpy_parts_import_without_torch():
    # Lava process models import this module with numpy only; block torch and try.
    script = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None
        import numpy as np
        from snn_toolchain.neurons import dynamics as nd
        params = nd.NeuronParams(*(np.full(2, 0.5) for _ in range(4)))
        state = nd.NeuronState(np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2)))
        new = nd.adlif_float_step(params, state, np.array([[4.0, 0.0]]), nd.numpy_heaviside)
        assert new.s.tolist() == [[1.0, 0.0]], new
        try:
            nd.BoxcarSpike
        except ImportError:
            print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_adlif_plus_beta_follows_section_4_3_and_both_readings_are_presets():
    adlif_beta = NEURON_BOUNDS["adlif"]["beta"]
    assert NEURON_BOUNDS["adlif+"]["beta"] == adlif_beta
    assert NEURON_BOUNDS["adlif+"]["alpha"] == (0.0, 1.0) and NEURON_BOUNDS["adlif+"]["a"] == (0.0, 1.0)
    assert resolve_bounds("adlif+", BOUNDS_PRESETS["beta-appendix"])["beta"] == (0.0, 1.0)
    assert resolve_bounds("adlif+", BOUNDS_PRESETS["beta-section4.3"])["beta"] == adlif_beta
    assert _parse_bounds("beta-appendix") == {"beta": (0.0, 1.0)}
    assert _parse_bounds("beta-appendix,alpha=0.5:1") == {"beta": (0.0, 1.0), "alpha": (0.5, 1.0)}
    assert math.isclose(adlif_beta[0], math.exp(-1 / 30)) and math.isclose(adlif_beta[1], math.exp(-1 / 120))
