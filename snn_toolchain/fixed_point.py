"""The rules that turn trained float values into Loihi 2 integers (docs/fixed_point.md).

Per connection layer an integer scale ``S`` is chosen so that the largest weight uses the 8-bit
(+ sign) range fully: ``S = floor(254 / max|W|)``; a layer of AdLIF neurons gets one per neuron
instead (:func:`neuron_scales`: each neuron's own largest weight on the range, its threshold
``S_j``). Then, in the layer's (or the neuron's) synaptic units:

- weights  ``W_q = round(W * S * 2^k)`` in [-256, 254], k the input shift (0 unless S would
  exceed ``SCALE_BEFORE_SHIFT_MAX``: the synapse's sum is then shifted right by k, see
  :func:`scale_and_shift`);
- bias     ``bias_q = round(bias * S)`` (int16, as Lava's LIF stores it);
- delays   ``D_q = round(D)`` (the deployed integer delays, in steps);
- threshold ``vThMant = S`` (1.0 in weight units), i.e. ``S << 6`` in membrane units.

The threshold carries the scale, so it need not be a power of two: that doubles the resolution of
a layer whose largest weight is just above a power of two, compared with a power-of-two scale.
The per-layer weight exponent of the Loihi 2 synapse is then chosen by Lava's weight packing
(NetX's ``optimize_weight_bits``), which represents these integers exactly.

The neurons fed by the layer get their parameters as fixed-point integers: ``alpha, beta, a`` as
12-bit fractions (``round(x * 4096)``) and ``b`` in membrane units (``round(b * threshold)``).

What Loihi 2 can hold is decided by :meth:`snn_toolchain.quantized_network.QuantizedLayer.validate`, which
every function here ends with; a refusal is a :class:`~snn_toolchain.quantized_network.NetworkError` naming
the layer and the value. Core module: numpy only (callers pass numpy arrays).
"""

from __future__ import annotations

import math

import numpy as np

from snn_toolchain import constants as C
from snn_toolchain.quantized_network import NetworkError, QuantizedLayer, check_range
from snn_toolchain.neurons.dynamics import FixedNeuronParams


def finite(name: str, what: str, values) -> np.ndarray:
    """``values`` as float64, refused (NetworkError naming the index) if any is NaN or infinite."""
    array = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(array)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        shown = f"{what}{list(index)}" if index else what      # a scalar has no index
        raise NetworkError(f"layer {name}: {shown} is {array[index]}; "
                           "the trained model holds NaN or infinite values, retrain or load an earlier checkpoint")
    return array


def scale_and_shift(weight: np.ndarray, bias: np.ndarray) -> tuple[int, int]:
    """(S, k): the threshold mantissa S and the input shift k of a layer, with ``S * 2^k`` mapping
    max|W| onto the 8-bit range. k is 0 unless S would exceed ``SCALE_BEFORE_SHIFT_MAX`` (weights
    tiny against the threshold, as on GSC's graded inputs) or the bias would overflow int16 at S;
    then the smallest k that avoids both. S is 0 when the weights are too large to fit at all."""
    largest = float(np.abs(weight).max())
    if largest == 0:
        return 1, 0
    mantissa_scale = math.floor(C.WEIGHT_MAX / largest)
    largest_bias = float(np.abs(bias).max()) if np.size(bias) else 0.0
    shift, scale = 0, mantissa_scale
    while (scale > C.SCALE_BEFORE_SHIFT_MAX or round(largest_bias * scale) > C.BIAS_MANT_MAX) \
            and scale > 1 and shift < C.MAX_INPUT_SHIFT:
        shift += 1
        scale = mantissa_scale >> shift
    # beyond the largest shift: the 17-bit threshold caps S (the weights then use less than 8 bits)
    return min(scale, C.THRESHOLD_MANT_MAX), shift


def neuron_scales(weight: np.ndarray, bias: np.ndarray, scale: int, shift: int) -> np.ndarray:
    """Per-neuron scales S_j (int64, (out,)) of a layer whose per-layer rule gave ``(scale, shift)``:
    each neuron's own largest weight on the 8-bit range, ``S_j = floor(floor(254 / max_i |W_ji|) / 2^k)``,
    never coarser than the layer's ``S``, at most ``max(S, SCALE_BEFORE_SHIFT_MAX)`` (the 24-bit
    membrane keeps the headroom the per-layer rule keeps) and what its bias allows in int16. A
    neuron without weights keeps ``S``. The shift k stays the layer's (Lava's weight exponent is one
    per synapse)."""
    largest = np.abs(weight).max(axis=1)
    with np.errstate(divide="ignore"):
        own = np.where(largest > 0, np.floor(np.floor(C.WEIGHT_MAX / np.where(largest > 0, largest, 1.0)) / 2 ** shift),
                       scale)
        bias_room = np.where(bias != 0, np.floor(C.BIAS_MANT_MAX / np.where(bias != 0, np.abs(bias), 1.0)), np.inf)
    upper = np.minimum(max(scale, C.SCALE_BEFORE_SHIFT_MAX), bias_room)
    return np.maximum(scale, np.minimum(own, upper)).astype(np.int64)


def quantize_connection(name: str, weight, delay, bias, per_neuron: bool = False) -> QuantizedLayer:
    """A connection layer (no neurons yet) from float weights (threshold units), delays (steps)
    and biases; refused with NetworkError where Loihi 2 cannot hold it. ``per_neuron``: a scale
    (threshold) per neuron (:func:`neuron_scales`; the layer's neurons must hold a threshold each,
    as AdLIF layers do), else one per layer."""
    weight = finite(name, "weight", weight)
    delay = finite(name, "delay", delay)
    bias = finite(name, "bias", bias)
    scale, shift = scale_and_shift(weight, bias)
    if scale < 1:
        raise NetworkError(f"layer {name}: largest weight {np.abs(weight).max():.4g} (threshold units) does not fit "
                           f"{C.WEIGHT_BITS}-bit weights with a threshold mantissa >= 1; retrain with smaller weights")
    scales = neuron_scales(weight, bias, scale, shift) if per_neuron else np.full(weight.shape[0], scale)
    # one scale where every neuron's is the layer's: a file that older readers read
    per_neuron = per_neuron and bool(np.any(scales != scale))
    layer = QuantizedLayer(name, np.round(weight * (scales << shift)[:, None]).astype(np.int64),
                           np.round(delay).astype(np.int64), np.round(bias * scales).astype(np.int64),
                           scales if per_neuron else scale, input_shift=shift)
    return layer.validate()


def quantize_neurons(name: str, alpha, beta, a, b, threshold) -> FixedNeuronParams:
    """12-bit fractions for the decays ``alpha``, ``beta`` and the coupling ``a`` (fractions per
    step, floats); ``b`` in membrane units (``threshold``, one per layer or per neuron, = 1.0). The
    bias is left 0 for the caller to set from its connection."""
    values = {p: finite(name, f"neuron {p}", v) for p, v in (("alpha", alpha), ("beta", beta), ("a", a), ("b", b))}
    alpha_q, beta_q, a_q = (np.round(values[p] * C.DECAY_UNITY).astype(np.int64) for p in ("alpha", "beta", "a"))
    n = alpha_q.shape[0]
    threshold = np.broadcast_to(np.asarray(threshold, dtype=np.int64), (n,)).copy()
    b_q = np.round(values["b"] * threshold).astype(np.int64)
    try:
        check_range(name, "neuron b", b_q, "adaptation_jump")
    except NetworkError as err:
        if np.max(threshold) >> C.ACTIVATION_SHIFT <= C.SCALE_BEFORE_SHIFT_MAX:
            raise
        # e.g. 16-bit graded inputs: the input gain 1/65535 makes the first layer's weights so small
        # that even the largest input shift leaves a threshold the 24-bit state cannot hold twice
        raise NetworkError(f"{err}: the layer's threshold mantissa is {int(np.max(threshold)) >> C.ACTIVATION_SHIFT} "
                           f"(> {C.SCALE_BEFORE_SHIFT_MAX}, its weights are tiny against the threshold even after "
                           f"Loihi 2's largest weight exponent, -{C.MAX_INPUT_SHIFT}); for graded inputs train with "
                           "fewer --input-bits (8 deploys; each bit more doubles the threshold), else retrain with "
                           "larger weights") from None
    return FixedNeuronParams(alpha_q, beta_q, a_q, b_q, np.zeros(n, dtype=np.int64), threshold)
