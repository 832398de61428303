"""Quantize a trained DelaySNN to Loihi 2 fixed point (docs/fixed_point.md).

Per connection layer an integer scale ``S`` is chosen so that the largest weight uses the 8-bit
(+ sign) range fully: ``S = floor(254 / max|W|)``. Then, in the layer's synaptic units:

- weights  ``W_q = round(W * S)`` in [-256, 254];
- bias     ``bias_q = round(bias * S)`` (int16, as Lava's LIF stores it);
- delays   ``D_q = round(D)`` (the deployed integer delays, 0..62);
- threshold ``vThMant = S`` (1.0 in weight units), i.e. ``S << 6`` in membrane units.

The threshold carries the scale, so it need not be a power of two: that doubles the resolution of
a layer whose largest weight is just above a power of two, compared with a power-of-two scale.
The per-layer weight exponent of the Loihi 2 synapse is then chosen by Lava's weight packing
(NetX's ``optimize_weight_bits``), which represents these integers exactly.

The neurons fed by the layer get their parameters as fixed-point integers:
``alpha, beta, a`` as 12-bit fractions (``round(x * 4096)``) and ``b`` in membrane units
(``round(b * threshold)``).

Anything Loihi 2 cannot hold is refused with :class:`QuantizationError`, naming the layer and the
value: NaN or infinite parameters, a delay above 62, a weight that does not fit after scaling, a
bias beyond int16, and an all-zero or all-negative weight matrix (Lava's weight packing cannot
represent those exactly, and such a layer never fires).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from snn_toolchain import constants as C
from snn_toolchain.errors import ToolchainError
from snn_toolchain.neuron_dynamics import CubaFixedParams, FixedNeuronParams
from snn_toolchain.train.synapse import fake_quantize  # noqa: F401  (QAT's rounding, re-exported)


class QuantizationError(ToolchainError, ValueError):
    """The network cannot be represented on Loihi 2; the message names the layer and value."""


@dataclass
class QuantizedLayer:
    """One connection layer and the neurons it feeds (none for the readout).

    weight, delay: int64 (out, in); bias: int64 (out,); weight_scale: S (integer weights = W * S,
    and the firing threshold is S in the same units).
    """

    name: str
    weight: np.ndarray
    delay: np.ndarray
    bias: np.ndarray
    weight_scale: int
    neuron: FixedNeuronParams | CubaFixedParams | None = None   # int64 arrays (out,); None for the readout
    neuron_variant: str | None = None   # lif / adlif / adlif+ (AdLIF arithmetic) or cuba (Lava's LIF)

    @property
    def threshold_mant(self) -> int:
        return self.weight_scale

    @property
    def shape(self) -> tuple[int, int]:
        return self.weight.shape


@dataclass
class QuantizedNetwork:
    """The deployable network: what the .net file holds and what the emulator and Lava run."""

    layers: list[QuantizedLayer]
    time_steps: int                      # input steps per sample, padding included
    variant: str
    settings: dict = field(default_factory=dict)

    @property
    def n_inputs(self) -> int:
        return self.layers[0].weight.shape[1]

    @property
    def n_classes(self) -> int:
        return self.layers[-1].weight.shape[0]

    @property
    def run_steps(self) -> int:
        """Lava steps per sample: every connection adds one step of latency (docs/fixed_point.md)."""
        return self.time_steps + len(self.layers)


def _finite(name: str, what: str, values) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(array)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise QuantizationError(f"layer {name}: {what}{list(index)} is {array[index]}; "
                                "the trained model holds NaN or infinite values, retrain or load an earlier checkpoint")
    return array


def weight_scale(weight: np.ndarray) -> int:
    """The integer scale that maps max|W| onto the 8-bit range, capped so that the threshold
    mantissa stays within 17 bits; 0 when the weights are too large to fit at all."""
    largest = float(np.abs(weight).max())
    if largest == 0:
        return 1
    return min(math.floor(C.WEIGHT_MAX / largest), C.THRESHOLD_MANT_MAX)


def quantize_connection(name: str, weight, delay, bias, scale: int | None = None) -> QuantizedLayer:
    weight = _finite(name, "weight", weight)
    delay = _finite(name, "delay", delay)
    bias = _finite(name, "bias", bias)
    scale = weight_scale(weight) if scale is None else scale
    if scale < 1:
        raise QuantizationError(f"layer {name}: largest weight {np.abs(weight).max():.4g} (threshold units) does not fit "
                                f"{C.WEIGHT_BITS}-bit weights with a threshold mantissa >= 1; retrain with smaller weights")
    weight_q = np.round(weight * scale).astype(np.int64)
    if weight_q.max() > C.WEIGHT_MAX or weight_q.min() < C.WEIGHT_MIN:
        raise QuantizationError(f"layer {name}: weight {weight_q.max() if weight_q.max() > C.WEIGHT_MAX else weight_q.min()} "
                                f"out of range [{C.WEIGHT_MIN}, {C.WEIGHT_MAX}] after scaling by {scale}")
    if not (weight_q > 0).any():
        raise QuantizationError(f"layer {name}: every weight is <= 0 after quantization (largest {weight.max():.4g}); "
                                "Loihi 2 weight packing cannot hold such a matrix exactly and the layer cannot fire")
    delay_q = np.round(delay).astype(np.int64)
    if delay_q.min() < 0 or delay_q.max() > C.LOIHI_MAX_DELAY:
        bad = delay_q.max() if delay_q.max() > C.LOIHI_MAX_DELAY else delay_q.min()
        raise QuantizationError(f"layer {name}: delay {bad} steps is outside 0..{C.LOIHI_MAX_DELAY}, "
                                "the range Loihi 2 synapses hold; retrain with --max-delay 62 or less")
    bias_q = np.round(bias * scale).astype(np.int64)
    if np.abs(bias_q).max(initial=0) > C.BIAS_MANT_MAX:
        raise QuantizationError(f"layer {name}: bias {bias_q[np.abs(bias_q).argmax()]} exceeds the int16 bias mantissa")
    return QuantizedLayer(name, weight_q, delay_q, bias_q, scale)


def quantize_neurons(name: str, neuron, threshold: int) -> FixedNeuronParams:
    """12-bit fractions for alpha, beta, a; b in membrane units (``threshold`` = 1.0)."""
    values = {p: _finite(name, f"neuron {p}", getattr(neuron, p).detach().cpu().numpy()) for p in ("alpha", "beta", "a", "b")}
    alpha = np.round(values["alpha"] * C.DECAY_UNITY).astype(np.int64)
    beta = np.round(values["beta"] * C.DECAY_UNITY).astype(np.int64)
    a = np.round(values["a"] * C.DECAY_UNITY).astype(np.int64)
    b = np.round(values["b"] * threshold).astype(np.int64)
    if np.abs(b).max(initial=0) > C.STATE_MAX:
        raise QuantizationError(f"layer {name}: neuron b {int(np.abs(b).max())} (membrane units) exceeds the 24-bit state; "
                                "the layer's weights are too small for its threshold scale")
    n = alpha.shape[0]
    zeros = np.zeros(n, dtype=np.int64)
    return FixedNeuronParams(alpha, beta, a, b, zeros, np.full(n, threshold, dtype=np.int64))


def quantize_block(block, name: str, lif_as_cuba: bool = True) -> QuantizedLayer:
    """Quantize one block: an ``AdLIFDelayBlock`` (synapse and the neurons it feeds) or the
    ``SumReadout`` (synapse only). Delays are rounded as in evaluation.

    A LIF block is written as lava-dl's CUBA neurons (``lif_as_cuba``), so the stock NetX reader
    runs it: ``iDecay = 4096`` (a memoryless current), ``vDecay = 4096 - alpha``, and the input
    scale ``1 - alpha`` of our LIF folded into each neuron's weights and bias. CUBA resets to 0 on a
    spike where our LIF subtracts the threshold; the accuracy cost is measured, not assumed
    (docs/fixed_point.md).
    """
    synapse = block.synapse
    neuron = getattr(block, "neuron", None)
    if hasattr(block, "folded_connection"):   # a hidden block: its BatchNorm (if any) folded in
        weight, bias = (None if t is None else t.cpu().numpy() for t in block.folded_connection())
    else:
        weight = synapse.weight.detach().cpu().numpy().astype(np.float64)
        bias = synapse.bias.detach().cpu().numpy().astype(np.float64) if synapse.bias is not None else None
    bias = np.zeros(synapse.out_features) if bias is None else bias
    as_cuba = neuron is not None and neuron.variant == "lif" and lif_as_cuba
    if as_cuba:
        input_scale = 1.0 - _finite(name, "neuron alpha", neuron.alpha.detach().cpu().numpy())
        weight, bias = weight * input_scale[:, None], bias * input_scale
    layer = quantize_connection(name, weight, synapse.integer_delays().cpu().numpy(), bias)
    if neuron is None:
        return layer
    threshold = layer.threshold_mant << C.ACTIVATION_SHIFT
    params = quantize_neurons(name, neuron, threshold)
    if as_cuba:
        n = len(layer.bias)
        layer.neuron = CubaFixedParams(np.full(n, C.DECAY_UNITY, dtype=np.int64), C.DECAY_UNITY - params.alpha,
                                       layer.bias, params.threshold)
        layer.neuron_variant = "cuba"
    else:
        layer.neuron = params._replace(bias=layer.bias)
        layer.neuron_variant = neuron.variant
    return layer


def quantize_model(model, time_steps: int, settings: dict | None = None, lif_as_cuba: bool = True) -> QuantizedNetwork:
    """The QuantizedNetwork of a trained ``DelaySNN``: each block quantizes itself (SLAYER's way)."""
    blocks = list(model.blocks) + [model.readout]
    layers = [block.quantize(str(index), lif_as_cuba=lif_as_cuba) for index, block in enumerate(blocks)]
    return QuantizedNetwork(layers, time_steps, model.config["variant"], dict(settings or {}))
