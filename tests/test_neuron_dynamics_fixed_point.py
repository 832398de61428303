"""The fixed-point half of the one neuron definition (snn_toolchain/neurons/dynamics.py): the AdLIF and
CUBA integer steps Lava runs, their truncation, saturation and strict threshold, worked by hand, and
the integer step tracking the float step. The float step is tests/test_neuron_dynamics.py (both
files have a ``test_threshold_is_strict``, one per arithmetic).
"""

import numpy as np
import torch

from snn_toolchain import constants as C
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


def test_negative_products_truncate_toward_zero():
    x = np.array([-7, 7, -4096, 4095, -1], dtype=np.int64)
    # -7 * 2048 / 4096 = -3.5 -> -3 (toward zero), not -4 (floor)
    np.testing.assert_array_equal(multiply_fraction(x, 2048), [-3, 3, -2048, 2047, 0])
    torch.testing.assert_close(multiply_fraction(torch.as_tensor(x), 2048), torch.tensor([-3, 3, -2048, 2047, 0]))


def _params(n=1, alpha=4096, beta=0, a=0, b=0, bias=0, threshold=4096):
    return FixedNeuronParams(*(np.full(n, v, dtype=np.int64) for v in (alpha, beta, a, b, bias, threshold)))


def _zero_state(n=1):
    zeros = np.zeros((1, n), dtype=np.int64)
    return NeuronState(zeros, zeros.copy(), zeros.copy())


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
