"""The deployable network description, and the one place that says what Loihi 2 can hold.

A :class:`QuantizedNetwork` is what the quantizer produces, what a ``.net`` file stores, and what
the emulator, the Lava builder and the Loihi 2 planner consume: per connection layer the integer
weights, delays and biases, the integer scale that maps the trained float weights onto them, and
the fixed-point parameters of the neurons the layer feeds (none for the summing readout).

:meth:`QuantizedNetwork.validate` is the only legality check. Every producer and consumer calls it
(quantize, the .net reader, the Lava builder, the planner), and every violation raises one error
type, :class:`NetworkError`, naming the layer, the field and the value. The ranges it checks are
:data:`FIELD_LIMITS`, built from :mod:`snn_toolchain.constants`; docs/fixed_point.md gives their
sources (``time_steps`` too: 1..``MAX_TIME_STEPS``). :func:`check_fits_dataset` says whether a
network fits a dataset (classes, input channels, steps per sample).

This module is part of the core: it imports numpy and the core's own modules only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from snn_toolchain import constants as C
from snn_toolchain.errors import ToolchainError
from snn_toolchain.input_encoding import GradedInputEncoding
from snn_toolchain.input_stage import InputStage
from snn_toolchain.neurons.dynamics import CubaFixedParams, FixedNeuronParams
from snn_toolchain.neurons.interface import NeuronKind
from snn_toolchain.neurons.registry import NEURON_KINDS, neuron_kind_of


class NetworkError(ToolchainError, ValueError):
    """The network cannot be represented on Loihi 2; the message names the layer, field and value."""


class FieldLimit(NamedTuple):
    """Inclusive integer range of one field, and why."""

    low: int
    high: int
    why: str


FIELD_LIMITS = {
    "weight": FieldLimit(C.WEIGHT_MIN, C.WEIGHT_MAX,
                         "8-bit weight mantissas, mixed sign, as Lava's Dense keeps them exactly"),
    "delay": FieldLimit(0, C.LOIHI_MAX_DELAY, "NetX builds every DelayDense with max_delay 62 (Loihi 2: 6-bit delays)"),
    "bias": FieldLimit(-C.BIAS_MANT_MAX, C.BIAS_MANT_MAX, "Lava's neurons hold bias_mant as int16"),
    "threshold_mant": FieldLimit(1, C.THRESHOLD_MANT_MAX, "vThMant is 17 bits"),
    "input_shift": FieldLimit(0, C.MAX_INPUT_SHIFT, "a right shift of the synapse's sum, Lava's weight exponent "
                                                    "down to -8"),
    "decay": FieldLimit(0, C.DECAY_UNITY, "decays are 12-bit fractions of 4096"),
    "coupling": FieldLimit(-C.DECAY_UNITY, C.DECAY_UNITY, "a is a signed 12-bit fraction of 4096"),
    "adaptation_jump": FieldLimit(-C.STATE_MAX, C.STATE_MAX, "b is added to the 24-bit adaptation state"),
    "time_steps": FieldLimit(1, C.MAX_TIME_STEPS, "input steps per sample; MAX_TIME_STEPS in constants.py bounds "
                                                  "the emulator's and Lava's memory"),
}


def check_range(layer: str, what: str, values, limit: str, name_index: bool = True) -> None:
    """Raise NetworkError naming ``layer``, ``what`` (and the offending index, with
    ``name_index``) if any of ``values`` is outside ``FIELD_LIMITS[limit]`` or not finite."""
    array = np.asarray(values)
    low, high, why = FIELD_LIMITS[limit]
    if array.size == 0:
        return
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise NetworkError(f"layer {layer}: {what}{list(index) if name_index else ''} is {array[index]}, "
                           "not a number Loihi 2 can hold")
    bad = (array < low) | (array > high)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        value = array[index]
        raise NetworkError(f"layer {layer}: {what}{list(index) if name_index else ''} = {value} is outside "
                           f"{low}..{high} ({why})")


@dataclass
class QuantizedLayer:
    """One connection layer and the neurons it feeds (none for the readout).

    weight, delay: int64 (out, in), delays in time steps; bias: int64 (out,), in synaptic units;
    weight_scale: S (integer weights = float weights * S * 2^input_shift, and the firing threshold
    is S in synaptic units, so ``vThMant = S``), an int for the layer or an int64 (out,) array, one
    per neuron (AdLIF layers, whose neurons hold a threshold each); input_shift: k, the synaptic input is
    ``floor(sum W x / 2^k)`` per delay group and step (Lava's weight exponent -k), 0 for most
    layers (docs/fixed_point.md).
    """

    name: str
    weight: np.ndarray
    delay: np.ndarray
    bias: np.ndarray
    weight_scale: int | np.ndarray
    # a registered kind's parameters (snn_toolchain.neurons.registry), int64 arrays (out,); None for the readout
    neuron: FixedNeuronParams | CubaFixedParams | None = None
    neuron_variant: str | None = None   # lif / adlif / adlif+ (AdLIF arithmetic) or cuba (Lava's LIF)
    input_shift: int = 0

    @property
    def threshold_mant(self) -> int | np.ndarray:
        return self.weight_scale

    @property
    def per_neuron_scale(self) -> bool:
        """Whether the layer holds a scale (vThMant) per neuron rather than one."""
        return np.ndim(self.weight_scale) > 0

    @property
    def neuron_kind(self) -> NeuronKind | None:
        """The registered kind of this layer's neurons (None for the readout); NetworkError naming
        the registered kinds when ``neuron`` is of none of them."""
        if self.neuron is None:
            return None
        kind = neuron_kind_of(self.neuron)
        if kind is None:
            raise NetworkError(f"layer {self.name}: unknown neuron parameters {type(self.neuron).__name__} "
                               f"(registered kinds: {', '.join(NEURON_KINDS)})")
        return kind

    @property
    def shape(self) -> tuple[int, int]:
        return self.weight.shape

    def validate(self) -> "QuantizedLayer":
        """Check every field against :data:`FIELD_LIMITS` and the shapes against each other."""
        name = self.name
        if np.asarray(self.weight).ndim != 2:
            raise NetworkError(f"layer {name}: weight has shape {np.shape(self.weight)}, expected (out, in)")
        out_features = self.weight.shape[0]
        if np.shape(self.delay) != self.weight.shape:
            raise NetworkError(f"layer {name}: delay shape {np.shape(self.delay)} differs from weight shape "
                               f"{self.weight.shape}")
        if np.shape(self.bias) != (out_features,):
            raise NetworkError(f"layer {name}: bias shape {np.shape(self.bias)}, expected ({out_features},)")
        check_range(name, "weight", self.weight, "weight")
        check_range(name, "delay", self.delay, "delay")
        check_range(name, "bias", self.bias, "bias")
        check_range(name, "vThMant", np.atleast_1d(self.weight_scale), "threshold_mant", name_index=self.per_neuron_scale)
        if self.per_neuron_scale and np.shape(self.weight_scale) != (out_features,):
            raise NetworkError(f"layer {name}: weightScale has shape {np.shape(self.weight_scale)}, expected one "
                               f"per neuron ({out_features},) or one for the layer")
        check_range(name, "inputShift", [self.input_shift], "input_shift", name_index=False)
        if not (np.asarray(self.weight) > 0).any():
            raise NetworkError(f"layer {name}: every weight is <= 0; Loihi 2 weight packing cannot hold such a "
                               "matrix exactly and the layer cannot fire")
        neuron = self.neuron
        if neuron is None:
            return self
        kind = self.neuron_kind
        if self.per_neuron_scale and not kind.per_neuron_threshold:
            raise NetworkError(f"layer {name}: {kind.net_type} neurons hold one threshold per layer (vThMant), not one "
                               "per neuron; quantize this layer with one scale")
        for check in kind.field_checks:
            values = np.asarray(getattr(neuron, check.attribute))
            if kind.check_shapes and values.shape != (out_features,):
                raise NetworkError(f"layer {name}: neuron {check.shown} has shape {values.shape}, "
                                   f"expected ({out_features},)")
            check_range(name, f"neuron {check.shown}", values, check.limit)
        self._check_threshold()
        return self

    def _check_threshold(self) -> None:
        """A kind whose parameters hold a ``threshold`` (membrane units, ``vThMant << 6``): its
        vThMant must be in range and equal the layer's weight scale (the file stores both)."""
        threshold = getattr(self.neuron, "threshold", None)
        if threshold is None:
            return
        threshold = np.asarray(threshold)
        if threshold.dtype.kind not in "iu":
            check_range(self.name, "neuron threshold", threshold, "threshold_mant")   # NaN / inf named
            raise NetworkError(f"layer {self.name}: neuron threshold has dtype {threshold.dtype}, expected integers")
        threshold = threshold.astype(np.int64)
        check_range(self.name, "neuron vThMant", threshold >> C.ACTIVATION_SHIFT, "threshold_mant")
        expected = np.asarray(self.weight_scale, dtype=np.int64) << C.ACTIVATION_SHIFT
        wrong = threshold != expected
        if wrong.any():
            index = tuple(int(i) for i in np.argwhere(wrong)[0]) if wrong.ndim else ()
            want = np.broadcast_to(expected, wrong.shape)[index]
            raise NetworkError(f"layer {self.name}: neuron threshold{list(index)} = {np.broadcast_to(threshold, wrong.shape)[index]} "
                               f"is not weightScale << {C.ACTIVATION_SHIFT} = {want} (vThMant must equal weightScale)")


@dataclass
class QuantizedNetwork:
    """The deployable network: what the .net file holds and what the emulator and Lava run.

    ``time_steps`` is the number of input steps per sample, padding included.
    """

    layers: list[QuantizedLayer]
    time_steps: int
    variant: str
    settings: dict = field(default_factory=dict)
    # one-line remarks of the reader (export/netfile.py) for the caller to show, e.g. a file that
    # holds no content checksum; empty for a network that did not come from a file
    notes: list[str] = field(default_factory=list)
    # how real-valued features become the integer payloads the first layer receives (GSC); None:
    # the inputs are spike counts
    input_encoding: GradedInputEncoding | None = None
    # NetX's input neuron stage (a stock lava-dl file's 'input' layer 0 with neurons): turns data
    # values into the spikes the first layer receives (input_stage.py); None: the inputs are given
    # as spikes. Not written by this toolchain's writer.
    input_stage: InputStage | None = None

    @property
    def n_inputs(self) -> int:
        return self.layers[0].weight.shape[1]

    @property
    def n_classes(self) -> int:
        return self.layers[-1].weight.shape[0]

    @property
    def run_steps(self) -> int:
        """Lava steps per sample: every connection adds one step of latency (docs/fixed_point.md)."""
        return self.time_steps + C.SYNAPSE_LATENCY_STEPS * len(self.layers)

    @property
    def format_version(self) -> int:
        """The oldest .net format version that holds this network: 3 where a layer holds a scale per
        neuron; 2 where it needs an input shift, a graded input encoding or a spiking readout; else 1
        (older readers still read it)."""
        if any(layer.per_neuron_scale for layer in self.layers):
            return 3
        needs_2 = (any(layer.input_shift for layer in self.layers) or self.input_encoding is not None
                   or self.readout == "spikes")
        return 2 if needs_2 else 1

    @property
    def readout(self) -> str:
        """How class scores are read: "sum" (the last layer has no neurons: scores are its synaptic
        input summed over the run, plus time_steps x its bias; this toolchain's networks) or
        "spikes" (the last layer is a spiking layer: scores are its spike counts; stock lava-dl
        networks and imported NIR graphs)."""
        return "sum" if self.layers[-1].neuron is None else "spikes"

    @property
    def spiking_layers(self) -> list:
        """The layers with neurons, in order: the hidden layers, and the output layer of a
        "spikes" readout. A backend's ``RunResult.spikes`` has one entry per layer here."""
        return [layer for layer in self.layers if layer.neuron is not None]

    def validate(self) -> "QuantizedNetwork":
        """The one legality check: every layer's fields and shapes, the chain of layer sizes, every
        layer but the last with neurons, and the last either a summing readout (no neurons) or a
        spiking output layer. Raises NetworkError; returns self."""
        if not self.layers or (len(self.layers) < 2 and self.readout == "sum"):
            raise NetworkError("the network needs at least one hidden layer and the readout")
        check_time_steps(self.time_steps)
        if self.input_encoding is not None and self.input_encoding.channels != self.n_inputs:
            raise NetworkError(f"the input encoding has {self.input_encoding.channels} channels but layer "
                               f"{self.layers[0].name} takes {self.n_inputs} inputs")
        if self.input_encoding is not None:
            # Lava's synapses accumulate weight x payload in int32
            largest = (-C.WEIGHT_MIN) * self.input_encoding.levels * self.n_inputs
            if largest >= 2 ** 31:
                raise NetworkError(f"{self.n_inputs} inputs of {self.input_encoding.bits}-bit payloads can sum to "
                                   f"{largest:,}, beyond the int32 Lava's synapses accumulate in; use fewer input bits")
        for index, layer in enumerate(self.layers):
            layer.validate()
            if index and self.layers[index - 1].weight.shape[0] != layer.weight.shape[1]:
                raise NetworkError(f"layer {layer.name} takes {layer.weight.shape[1]} inputs but layer "
                                   f"{self.layers[index - 1].name} has {self.layers[index - 1].weight.shape[0]} neurons")
            if index < len(self.layers) - 1 and layer.neuron is None:
                raise NetworkError(f"layer {layer.name} has no neurons but is not the readout")
        if self.readout == "sum" and self.layers[-1].per_neuron_scale:
            raise NetworkError(f"layer {self.layers[-1].name}: the summing readout takes one weightScale, not one per "
                               "class (its class scores are compared in one unit)")
        return self

    def output_spike_counts(self, spikes):
        """Class scores of a spiking output layer: its spikes (samples, run_steps, classes), numpy
        or torch, counted over the last ``time_steps`` steps. The output layer is ``L`` steps of
        latency behind the input (one per connection), so those are the steps its inputs reach it:
        the steps a framework without latency runs (the first ``L`` see only its bias)."""
        counts = spikes[:, -self.time_steps:].sum(1)
        return counts.astype(np.int64) if isinstance(counts, np.ndarray) else counts.long()

    def check_input_steps(self, n_steps: int, source=None) -> None:
        """Samples of ``n_steps`` steps must fit the ``time_steps`` the network was exported for
        (shorter ones are zero-padded). The one rule every backend applies (emulator, Lava)."""
        if int(n_steps) > int(self.time_steps):
            raise NetworkError(f"{_prefix(source)}the samples have {n_steps} steps but the network was exported "
                               f"for time_steps = {self.time_steps}; export with the data's padding or trim the samples")


    def input_message_bits(self, largest_input: int) -> int:
        """Payload bits of the messages that carry the inputs to the first layer: the encoding's bits
        for graded features; for spike counts 0 (binary spikes) when every count is 0 or 1, else at
        least 8 (a count per bin is a graded spike, as NetX's ``input_message_bits``)."""
        if self.input_encoding is not None:
            return int(self.input_encoding.bits)
        if int(largest_input) <= 1:
            return 0
        return max(8, int(largest_input).bit_length())

    def check_input_payloads(self, samples, source=None) -> None:
        """Inputs of a network with a graded input encoding must fit its payload bits (spike counts
        are not bounded here: Lava checks they fit its int32 messages). Works on numpy and torch."""
        if self.input_encoding is None or not len(samples):
            return
        largest = int(samples.max())
        if largest > self.input_encoding.levels:
            raise NetworkError(f"{_prefix(source)}an input payload is {largest} but the network takes "
                               f"{self.input_encoding.bits}-bit graded inputs (0..{self.input_encoding.levels}); "
                               "encode the features with the network's own input encoding")


def _prefix(source) -> str:
    return "" if source is None else f"{source}: "


def check_time_steps(time_steps) -> int:
    """``time_steps`` as an int, refused (NetworkError naming it) unless it is a whole number in
    ``FIELD_LIMITS['time_steps']``."""
    low, high, why = FIELD_LIMITS["time_steps"]
    value = np.asarray(time_steps)
    if value.ndim != 0 or value.dtype.kind not in "iuf" or not np.isfinite(value) or value != np.round(value):
        raise NetworkError(f"time_steps = {time_steps!r} is not a whole number")
    if not low <= int(value) <= high:
        raise NetworkError(f"time_steps = {int(value)} is outside {low}..{high} ({why})")
    return int(value)


def check_fits_dataset(network: QuantizedNetwork, n_inputs: int, n_classes: int, n_steps: int, source=None) -> None:
    """Refuse (NetworkError, one line, prefixed with ``source``, e.g. the .net path) a network that
    does not fit a dataset of ``n_inputs`` channels, ``n_classes`` classes and samples of
    ``n_steps`` steps (padding included): the readout must have one neuron per class, the first
    layer one input per channel, and the samples at most ``time_steps`` steps."""
    try:
        network.validate()
    except NetworkError as err:
        raise NetworkError(f"{_prefix(source)}{err}") from None
    if network.n_classes != int(n_classes):
        raise NetworkError(f"{_prefix(source)}the network has {network.n_classes} output classes but the dataset has "
                           f"{n_classes} classes; use the .net trained on this dataset, or pick its --dataset")
    if network.n_inputs != int(n_inputs):
        raise NetworkError(f"{_prefix(source)}the network takes {network.n_inputs} inputs but the dataset has "
                           f"{n_inputs} input channels; use the .net trained on this dataset, or pick its --dataset")
    network.check_input_steps(n_steps, source)
