"""The one definition of the AdLIF neuron family (LIF, AdLIF, AdLIF+).

Everything that simulates these neurons -- the training model (torch, float), the batched
fixed-point emulator (torch) and the Lava ``fixed_pt`` ProcessModel (numpy) -- calls the step
functions of this module, so the arithmetic exists exactly once.

Units and conventions
---------------------
- One call of a step function advances the neuron by one time step (one input bin; 10 ms in
  our data pipelines, 1 ms in the paper's notation). Nothing in here knows about seconds.
- ``alpha`` and ``beta`` are per-step decay factors: the fraction of the membrane potential
  (``alpha``) or of the adaptation current (``beta``) that survives one time step, in [0, 1].
  A time constant ``tau`` in steps corresponds to ``exp(-1 / tau)``.
- ``a`` couples the membrane into the adaptation current (sub-threshold adaptation, unitless);
  ``b`` is the jump of the adaptation current after a spike (spike-triggered adaptation, in
  units of the threshold).
- The membrane ``u`` and the input current are in units of the threshold (``THRESHOLD = 1``).
- Spikes are 0/1 values of the same dtype as the membrane.

This module imports numpy only. Torch is imported lazily, by :func:`boxcar_spike` and on first
access to :class:`BoxcarSpike`, so that Lava process models can use the numpy parts on machines
without torch.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional, Tuple

import numpy as np

# Firing threshold of the membrane, in the units of the membrane itself.
THRESHOLD = 1.0
# The boxcar surrogate passes gradient where |u - THRESHOLD| < SURROGATE_HALF_WIDTH.
SURROGATE_HALF_WIDTH = 0.5


class NeuronParams(NamedTuple):
    """Per-neuron parameters; each is a tensor or array of shape (N,) (anything broadcastable
    against the (batch, N) state works).

    alpha: membrane decay per time step, fraction in [0, 1].
    beta:  adaptation-current decay per time step, fraction in [0, 1].
    a:     sub-threshold coupling of the membrane into the adaptation current.
    b:     spike-triggered increment of the adaptation current.
    """

    alpha: Any
    beta: Any
    a: Any
    b: Any


class NeuronState(NamedTuple):
    """State of a layer of neurons after one time step; each field has shape (batch, N).

    u: membrane potential (threshold units).
    w: adaptation current (same units as the input current).
    s: spike emitted at this step, 0 or 1.
    """

    u: Any
    w: Any
    s: Any


VARIANTS = ("lif", "adlif", "adlif+")
PARAM_NAMES = NeuronParams._fields

Bounds = Dict[str, Tuple[float, float]]

# Bounds are configuration, not physics: the paper's text lost its typeset equations, so the
# AdLIF+ bounds are read from its prose (docs/model.md, "Bounds"). Callers select them with
# resolve_bounds(), which also applies per-parameter overrides.
#
# - "adlif":  SparCH's adLIF bounds (Bittar & Garner 2022).
# - "adlif+": the paper's AdLIF+: alpha may go all the way to 0 (forget within one step) and
#             a >= 0, because a negative a lets a neuron run away into self-sustained firing.
#             beta keeps AdLIF's range: section 4.3 of the paper names alpha and a as the only
#             changes. Appendix A.5 can be read as beta in [0, 1] too; both readings are presets
#             (BOUNDS_PRESETS). The default follows the measurement in docs/results.md: with beta in
#             [0, 1] AdLIF+ fell below AdLIF on held-out spoken digits, with AdLIF's range above.
# - "lif":    a = b = 0 makes the adaptation current ignore u and s; beta is pinned to 0 as well
#             so that w is exactly 0 from the first step on, whatever the initial w (the uniform
#             initial state would otherwise leave a decaying w in a "LIF"). The alpha bounds are
#             SparCH's LIF bounds, [exp(-1/5), exp(-1/25)] (time constants of 5 to 25 steps), not
#             AdLIF+'s [0, 1]: the paper's LIF baseline is SparCH's LIF. Override "alpha" to change.
NEURON_BOUNDS: Dict[str, Bounds] = {
    "lif": {
        "alpha": (math.exp(-1 / 5), math.exp(-1 / 25)),
        "beta": (0.0, 0.0),
        "a": (0.0, 0.0),
        "b": (0.0, 0.0),
    },
    "adlif": {
        "alpha": (math.exp(-1 / 5), math.exp(-1 / 25)),
        "beta": (math.exp(-1 / 30), math.exp(-1 / 120)),
        "a": (-1.0, 1.0),
        "b": (0.0, 2.0),
    },
    "adlif+": {
        "alpha": (0.0, 1.0),
        "beta": (math.exp(-1 / 30), math.exp(-1 / 120)),
        "a": (0.0, 1.0),
        "b": (0.0, 2.0),
    },
}


# Named sets of overrides for ``--bounds``: the two readings of the paper's AdLIF+ beta bound.
BOUNDS_PRESETS: Dict[str, Bounds] = {
    # section 4.3: AdLIF+ changes alpha and a only, so beta stays in AdLIF's range (the default)
    "beta-section4.3": {"beta": (math.exp(-1 / 30), math.exp(-1 / 120))},
    # appendix A.5 read as "every neuron parameter in [0, 1]": an adaptation current may decay in 1-2 steps
    "beta-appendix": {"beta": (0.0, 1.0)},
}


def resolve_bounds(variant: str, overrides: Optional[Mapping[str, Tuple[float, float]]] = None) -> Bounds:
    """The (low, high) bounds of alpha, beta, a, b for ``variant``, with ``overrides`` applied.

    Returns a fresh dict (changing it does not change ``NEURON_BOUNDS``). ``overrides`` maps a
    parameter name to its (low, high) pair. Raises ValueError for an unknown variant or parameter,
    or a pair with low > high, or a decay bound outside [0, 1].
    """
    if variant not in NEURON_BOUNDS:
        raise ValueError(f"unknown neuron variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    bounds = dict(NEURON_BOUNDS[variant])
    for name, pair in (overrides or {}).items():
        if name not in PARAM_NAMES:
            raise ValueError(f"unknown neuron parameter {name!r} in bounds override; choose from {', '.join(PARAM_NAMES)}")
        low, high = (float(v) for v in pair)
        if not (math.isfinite(low) and math.isfinite(high)) or low > high:
            raise ValueError(f"bounds for {name!r} must be finite with low <= high, got ({low}, {high})")
        if name in ("alpha", "beta") and (low < 0.0 or high > 1.0):
            raise ValueError(f"{name!r} is a decay per time step and must stay within [0, 1], got ({low}, {high})")
        bounds[name] = (low, high)
    return bounds


# --------------------------------------------------------------------------------------------
# Spike functions
# --------------------------------------------------------------------------------------------

def numpy_heaviside(x):
    """Strict Heaviside step on numpy arrays: 1 where x > 0, else 0, in x's dtype."""
    return (x > 0).astype(x.dtype)


_boxcar_class = None


def _make_boxcar_class():
    global _boxcar_class
    if _boxcar_class is None:
        import torch

        class BoxcarSpike(torch.autograd.Function):
            """Spike with a boxcar surrogate gradient.

            forward:  (x > 0) in x's dtype (x = u - THRESHOLD; strict, so u == THRESHOLD does not fire).
            backward: grad * (|x| < SURROGATE_HALF_WIDTH); 0 on the edges |x| == 0.5.
            """

            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return (x > 0).to(x.dtype)

            @staticmethod
            def backward(ctx, grad_output):
                (x,) = ctx.saved_tensors
                return grad_output * (x.abs() < SURROGATE_HALF_WIDTH).to(grad_output.dtype)

        _boxcar_class = BoxcarSpike
    return _boxcar_class


def __getattr__(name):
    # PEP 562: BoxcarSpike is built on first access so that importing this module needs no torch.
    if name == "BoxcarSpike":
        return _make_boxcar_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def boxcar_spike(x):
    """Spike function for training (torch): forward (x > 0), backward boxcar of half-width 0.5."""
    return _make_boxcar_class().apply(x)


# --------------------------------------------------------------------------------------------
# Float step (training)
# --------------------------------------------------------------------------------------------

def adlif_float_step(params: NeuronParams, state: NeuronState, current, spike_fn: Callable) -> NeuronState:
    """Advance a layer of AdLIF neurons by one time step (SparCH's adLIF update).

        w[t] = beta * w[t-1] + a * u[t-1] + b * s[t-1]
        u[t] = alpha * (u[t-1] - s[t-1]) + (1 - alpha) * (I[t] - w[t])
        s[t] = spike_fn(u[t] - THRESHOLD)

    ``state`` holds u[t-1], w[t-1], s[t-1] (each (batch, N)); ``current`` is I[t] (batch, N);
    ``params`` broadcast against the state (shape (N,)). The reset is soft (subtract the
    threshold, scaled by the decay) and acts one step after the spike. ``spike_fn`` must be
    strict (fire only when u > THRESHOLD): ``numpy_heaviside`` for numpy arrays, ``boxcar_spike``
    for torch tensors in training. LIF is this step with a = b = 0 (and beta = 0, see
    NEURON_BOUNDS).

    Only + - * and ``spike_fn`` are used, in this exact order of operations, so numpy and torch
    give bit-identical results; the fast recurrence in ``snn_toolchain.train.model.recurrence`` calls
    this function for its forward pass.
    """
    alpha, beta, a, b = params
    u_prev, w_prev, s_prev = state
    w = beta * w_prev + a * u_prev + b * s_prev
    u = alpha * (u_prev - s_prev) + (1 - alpha) * (current - w)
    s = spike_fn(u - THRESHOLD)
    return NeuronState(u, w, s)


# ============================================================================================
# Fixed-point step (Loihi 2 arithmetic)
#
# The same update as adlif_float_step, on integers, written with + - *, shifts and where only, so
# that the batched torch emulator (int64 tensors) and the Lava fixed_pt ProcessModel (int64 numpy
# arrays) run this very function. docs/fixed_point.md gives the scales and why.
# ============================================================================================

from snn_toolchain.constants import (  # noqa: E402  (kept next to the code that uses them)
    ACTIVATION_SHIFT,
    DECAY_BITS,
    DECAY_UNITY,
    STATE_MAX,
)


class FixedNeuronParams(NamedTuple):
    """Integer parameters of a layer; each an int64 array/tensor of shape (N,).

    alpha, beta: decays per step as 12-bit fractions, ``round(x * 4096)`` in 0..4096.
    a:           membrane-to-adaptation coupling as a 12-bit fraction, ``round(a * 4096)``.
    b:           spike-triggered adaptation jump in membrane units, ``round(b * threshold)``.
    bias:        constant input in synaptic units (the units of the layer's weights).
    threshold:   the firing threshold in membrane units, ``vThMant << 6``.
    """

    alpha: Any
    beta: Any
    a: Any
    b: Any
    bias: Any
    threshold: Any


def _where(condition, x, y):
    if isinstance(condition, np.ndarray):
        return np.where(condition, x, y)
    import torch

    return torch.where(condition, x, y)


def _is_floating(x) -> bool:
    dtype = getattr(x, "dtype", None)
    return getattr(dtype, "is_floating_point", False) or (isinstance(dtype, np.dtype) and dtype.kind == "f")


def _trunc(x):
    """Truncation toward zero; on a torch tensor that needs a gradient the value is truncated and
    the gradient passes straight through. ``x + (trunc(x) - x)`` is exactly ``trunc(x)`` in IEEE
    arithmetic (the difference is exact by Sterbenz's lemma, and the sum is representable)."""
    if isinstance(x, np.ndarray):
        return np.trunc(x)
    import torch

    return x + (torch.trunc(x) - x).detach() if x.requires_grad else torch.trunc(x)


def shift_left(x, bits: int):
    """``x << bits``; on float tensors holding whole numbers ``x * 2^bits`` (exact)."""
    return x * float(1 << bits) if _is_floating(x) else x << bits


def multiply_fraction(x, fraction):
    """``x * fraction / 4096`` truncated toward zero, as Loihi's decays do (``fraction`` 12-bit).

    On integer arrays and tensors a sign-and-magnitude shift; on float arrays and tensors holding
    whole numbers (the training model in the deployed arithmetic, ``train/model/blocks.py``) the same
    value as ``trunc(product / 4096)``, exact while ``|product| < 2^53``."""
    product = x * fraction
    if _is_floating(product):
        return _trunc(product / float(DECAY_UNITY))
    return _where(product >= 0, product >> DECAY_BITS, -((-product) >> DECAY_BITS))


def strict_spike(membrane, threshold):
    """1 where ``membrane > threshold`` (strict, as Lava's LIF), else 0, in the membrane's dtype.
    The default ``spike_fn`` of the fixed-point steps; training passes one with a surrogate
    gradient (``train/model/blocks.py``)."""
    return _where(membrane > threshold, membrane * 0 + 1, membrane * 0)


def saturate(x):
    """Clip to the 24-bit signed state range, symmetric: [-(2^23 - 1), 2^23 - 1]."""
    return _where(x > STATE_MAX, x * 0 + STATE_MAX, _where(x < -STATE_MAX, x * 0 - STATE_MAX, x))


# The update of adlif_fixed_step, one line per equation, as data: its docstring shows them and the
# Loihi 2 neuron program (lava_models/microcode.py) is lowered from them, block by block.
ADLIF_FIXED_EQUATIONS = (
    ("I", "I    = (synaptic_input + bias) << 6                      membrane units"),
    ("w[t]", "w[t] = sat(beta*w[t-1] + a*u[t-1] + b*s[t-1])             (beta, a: 12-bit fractions)"),
    ("u[t]", "u[t] = sat(alpha*(u[t-1] - threshold*s[t-1]) + (4096-alpha)*(I - w[t]))"),
    ("s[t]", "s[t] = u[t] > threshold                                    strict, as Lava's LIF"),
)


def adlif_fixed_step(params: FixedNeuronParams, state: NeuronState, synaptic_input,
                     spike_fn: Callable = strict_spike) -> NeuronState:
    """Advance a layer by one step in Loihi 2 fixed point; the integer twin of adlif_float_step.

        I    = (synaptic_input + bias) << 6                      membrane units
        w[t] = sat(beta*w[t-1] + a*u[t-1] + b*s[t-1])             (beta, a: 12-bit fractions)
        u[t] = sat(alpha*(u[t-1] - threshold*s[t-1]) + (4096-alpha)*(I - w[t]))
        s[t] = u[t] > threshold                                    strict, as Lava's LIF

    where x*f means multiply_fraction (truncation toward zero) and sat() clips to 24 bits.
    ``state`` holds int64 (batch, N) arrays/tensors u, w (membrane units) and s (0/1);
    ``synaptic_input`` is the int (batch, N) sum of weights times input spikes at this step.
    The same code runs on float arrays and tensors that hold whole numbers (the training model in
    the deployed arithmetic), with the same results; ``spike_fn(u, threshold)`` decides the spike
    (default :func:`strict_spike`; training passes one with a surrogate gradient).
    """
    u_prev, w_prev, s_prev = state
    current = shift_left(synaptic_input + params.bias, ACTIVATION_SHIFT)
    w = saturate(multiply_fraction(w_prev, params.beta) + multiply_fraction(u_prev, params.a) + params.b * s_prev)
    leak = multiply_fraction(u_prev - params.threshold * s_prev, params.alpha)
    drive = multiply_fraction(current - w, DECAY_UNITY - params.alpha)
    u = saturate(leak + drive)
    s = spike_fn(u, params.threshold)
    return NeuronState(u, w, s)


class CubaFixedParams(NamedTuple):
    """Lava's CUBA LIF (``PyLifModelBitAcc``) as NetX builds it from a .net layer; int64 (N,) arrays.

    current_decay: ``iDecay`` (12-bit; Lava uses du = iDecay - 1 and decays by 4096 - iDecay).
    voltage_decay: ``vDecay`` (12-bit; decays by 4096 - vDecay).
    bias: ``bias`` mantissa (NetX fixes bias_exp = 6). threshold: ``vThMant << 6``.
    """

    current_decay: Any
    voltage_decay: Any
    bias: Any
    threshold: Any


def cuba_fixed_step(params: CubaFixedParams, state: NeuronState, synaptic_input,
                    spike_fn: Callable = strict_spike) -> NeuronState:
    """One step of Lava's bit-accurate CUBA LIF, for LIF networks exported in lava-dl's stock
    layout (u: current, w: voltage, s: spike). Not our neuron: it is the arithmetic the stock NetX
    reader runs, kept here so the emulator and the tests share one copy of it.

        u[t] = wrap24(trunc(u[t-1] * (4096 - iDecay) / 4096) + (input << 6))
        v[t] = sat24(trunc(v[t-1] * (4096 - vDecay) / 4096) + u[t] + (bias << 6))
        s[t] = v[t] > threshold;   v[t] = 0 where s[t]     (hard reset, no refractory period)
    """
    u_prev, v_prev, _ = state
    u = multiply_fraction(u_prev, DECAY_UNITY - params.current_decay) + shift_left(synaptic_input, ACTIVATION_SHIFT)
    # Lava wraps the current once into (-2^23, 2^23]
    u = _where(u > STATE_MAX + 1, u - 2 * (STATE_MAX + 1), _where(u <= -(STATE_MAX + 1), u + 2 * (STATE_MAX + 1), u))
    v = saturate(multiply_fraction(v_prev, DECAY_UNITY - params.voltage_decay) + u +
                 shift_left(params.bias, ACTIVATION_SHIFT))
    s = spike_fn(v, params.threshold)
    v = _where(s > 0, v * 0, v)
    return NeuronState(u, v, s)
