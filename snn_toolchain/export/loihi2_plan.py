"""The Loihi 2 resource plan: how a network maps onto neuro-cores, and whether it fits.

The plan counts what lava-loihi's compiler counts, in its units, with the figures and the split
rule fitted to the compile output that lava-dl committed from Loihi 2 boards
(:mod:`snn_toolchain.export.loihi2_limits`, docs/deploy_loihi2.md "Grounded in real compiles"):
per core, a dense layer stores for every input axon one synapse list over the core's neurons,
``ceil((neurons x bits per synapse + header bits) / 64)`` SynMem words, zero weights included.
With the profile of the compiler that made them, it reproduces the public compiles' core counts:
Oxford 3 + 2 (2022-09), PilotNet's dense layers 12 + 1 + 1 + 1 (2022-10), MNIST 3 + 1 + 1 (2024-04).
:func:`plan_partition` plans a :class:`~snn_toolchain.quantized_network.QuantizedNetwork` (ours or
a stock NetX file read by ``read_net``) core by core and explains a network that does not fit.
Memory is checked per core, in SynMem words; the chips a network needs follow from its cores alone.
The plan written out (its table, its JSON, the line that says whether the profile was fitted to
this network's own compile) is in ``loihi2_plan_report.py``.

No Lava in here: the energy report (``export/report.py``) and the deploy command
(``lava_models/loihi2.py``) both use it, on any machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Iterable, Optional

import numpy as np

from snn_toolchain.export.loihi2_limits import (LOIHI2_LIMITS, WORD_BITS, Loihi2Limits, PublicCompile,
                                                public_compile_of)
from snn_toolchain.export.loihi2_plan_report import layer_plan_dict, plan_dict, plan_table, profile_fit_line
from snn_toolchain.export.netfile_values import FOREIGN_FIX, STOCK_VARIANT
from snn_toolchain.export.netx_compat import netx_weight_bits
from snn_toolchain.quantized_network import NetworkError, check_range

ADAPTIVE_NEURONS = ("adlif", "adlif+")   # neuron_variant values that run our AdLIF microcode
INPUT_STAGE_ROLE = "input"              # LayerSpec.role of NetX's input neuron stage
# the fix for a network of ours; a file another tool wrote gets netfile_values.FOREIGN_FIX instead
EXPORT_AGAIN = "export the trained run again with `train-export export`"


@dataclass(frozen=True)
class LayerSpec:
    """What the planner needs of one connection layer and the neurons it feeds (or of an input
    neuron stage: its neurons, fan-in 0).

    fan_in: inputs per neuron (the weight matrix's columns; every one is an input axon of each of
    the layer's cores); weight_bits: NetX's num_weight_bits for the layer; delays in steps;
    neuron_kind: "cuba" (Lava's LIF/CUBA, also the readout) or "adlif" (our microcode neuron).
    """

    name: str
    # "hidden", "readout" (summing), "output" (a spiking last layer) or "input" (NetX's input neuron
    # stage: neurons without synapses, the data through their bias; snn_toolchain/input_stage.py)
    role: str
    neurons: int
    fan_in: int
    max_delay: int
    weight_bits: int = 8
    neuron_kind: str = "cuba"
    min_delay: int = 0
    weight_range: Optional[tuple] = None

    @property
    def is_input_stage(self) -> bool:
        """NetX's input neuron stage: neurons without synapses (no weights, delays or inputs)."""
        return self.role == INPUT_STAGE_ROLE

    @property
    def delayed(self) -> bool:
        """Per-synapse delays (NetX builds a DelayDense): a delay field per synapse, accumulator rows."""
        return self.max_delay > 0

    @classmethod
    def from_layer(cls, layer, role: str) -> "LayerSpec":
        weight = np.asarray(layer.weight)
        delay = np.asarray(layer.delay)
        kind = "adlif" if getattr(layer, "neuron_variant", None) in ADAPTIVE_NEURONS else "cuba"
        return cls(name=str(layer.name), role=role, neurons=int(weight.shape[0]), fan_in=int(weight.shape[1]),
                   max_delay=int(delay.max(initial=0)), min_delay=int(delay.min(initial=0)),
                   weight_bits=netx_weight_bits(weight), neuron_kind=kind,
                   weight_range=(int(weight.min(initial=0)), int(weight.max(initial=0))))


def input_stage_spec(stage) -> LayerSpec:
    """The input neuron stage as a layer without synapses: its CUBA neurons take neuron-core room
    (NetX builds them as Lava's LIF), and nothing feeds them but their bias."""
    return LayerSpec(name="input", role=INPUT_STAGE_ROLE, neurons=stage.n_inputs, fan_in=0, max_delay=0)


def layer_specs(network) -> list:
    """The :class:`LayerSpec` of every layer of a QuantizedNetwork (the last one is the readout),
    after its input stage's, if it has one."""
    last = len(network.layers) - 1
    last_role = "readout" if network.readout == "sum" else "output"
    stage = network.input_stage
    return ([input_stage_spec(stage)] if stage is not None else []) + [
        LayerSpec.from_layer(layer, last_role if i == last else "hidden") for i, layer in enumerate(network.layers)]


# ------------------------------------------------------------------------------ one core's cost

def bits_per_synapse(spec: LayerSpec, limits: Loihi2Limits) -> int:
    """Bits one dense synapse of the layer takes: stored weight width + overhead (+ delay field)."""
    return (limits.stored_weight_bits(spec.weight_bits) + limits.synapse_overhead_bits
            + (limits.delay_field_bits if spec.delayed else 0))


def synmem_words(spec: LayerSpec, limits: Loihi2Limits, neurons: int) -> int:
    """SynMem words of one core holding ``neurons`` of the layer: one list per input axon."""
    per_axon = math.ceil((neurons * bits_per_synapse(spec, limits) + limits.synapse_list_header_bits) / WORD_BITS)
    return spec.fan_in * per_axon


def neuron_units(spec: LayerSpec, limits: Loihi2Limits, neurons: int) -> float:
    """Units of the core's neuron budget: 1 per CUBA neuron, adlif_neuron_units per AdLIF neuron."""
    return neurons * (limits.adlif_neuron_units if spec.neuron_kind == "adlif" else 1.0)


def core_memory_units(spec: LayerSpec, limits: Loihi2Limits, neurons: int) -> float:
    """The core's memory as lava-loihi's Total counts it (AxonIn + 1 neuron group + neurons +
    SynMem + AxonMap, one entry per neuron of a dense layer), plus the delay accumulator rows."""
    accumulators = neurons * (spec.max_delay + 1) * limits.accumulator_words_per_row if spec.delayed else 0.0
    return (spec.fan_in + 1 + neuron_units(spec, limits, neurons) + synmem_words(spec, limits, neurons) + neurons
            + accumulators)


def core_violation(spec: LayerSpec, limits: Loihi2Limits, neurons: int) -> Optional[str]:
    """Which limit a core of ``neurons`` of the layer breaks (None: it fits): "input axons",
    "neuron count", "synaptic memory" or "core memory", checked in that order."""
    if spec.fan_in > limits.input_axons_per_core:
        return "input axons"
    if neuron_units(spec, limits, neurons) > limits.neurons_per_core:
        return "neuron count"
    if synmem_words(spec, limits, neurons) > limits.synmem_budget_words:
        return "synaptic memory"
    if limits.core_memory_units is not None and core_memory_units(spec, limits, neurons) > limits.core_memory_units:
        return "core memory"
    return None


# ------------------------------------------------------------------------------ the plan

@dataclass
class CoreAssignment:
    core: int             # global core index, counted over the whole network
    first_neuron: int     # within the layer
    neurons: int
    synmem_words: int     # SynMem words of this core
    memory_units: float   # the core's memory as lava-loihi's Total counts it (+ accumulator rows)


@dataclass
class LayerPlan:
    """One layer's share of the chip: neurons_per_core is the compiler's chunk (the cores hold
    chunks of that many neurons, the last one the rest); cores is 0 when one neuron does not fit."""

    spec: LayerSpec
    stored_weight_bits: int
    bits_per_synapse: int
    neurons_per_core: int
    limited_by: str               # why not more neurons per core ("one core holds them all" if none)
    cores: int
    stored_synapses: int
    split_steps: list = field(default_factory=list)   # ratio rule: (neurons per core, SynMem words) tried
    assignments: list = field(default_factory=list)

    @property
    def synmem_words_per_core(self) -> int:
        """SynMem words of the layer's fullest core."""
        return max((a.synmem_words for a in self.assignments), default=0)

    def to_dict(self) -> dict:
        return layer_plan_dict(self)


PLAN_NOTES = (
    "Input spikes are injected from the host; no neuro-core is counted for them (lava-dl's Loihi 2 compiles "
    "list only the network's layers). An input neuron stage (NetX's input layer with neurons, the data through "
    "their bias) is counted as a layer of CUBA neurons without synapses; no public compile shows its cost.",
    "Each layer gets cores of its own, holding chunks of its neurons; every core of a layer receives all of "
    "its input axons and stores a synapse list per axon, zero weights included (dense).",
    "The readout is counted as CUBA neurons that integrate the readout synapse's output on the chip.",
    "The SynMem cost and the split rule are fitted to public lava-loihi compiles; a per-synapse delay field "
    "and the delay accumulator rows are assumptions (see each limit's source).",
)


@dataclass
class PartitionPlan:
    """The core-by-core plan of a network on Loihi 2, and the verdict."""

    layers: list
    limits: Loihi2Limits
    total_cores: int
    total_neurons: int
    total_stored_synapses: int    # a count (weights stored, zeros included), not a limit: memory is in SynMem words
    chips_needed: int             # from the cores alone: a chip holds what its cores hold
    fits: bool
    reasons: list
    hints: list
    warnings: list = field(default_factory=list)   # what the plan counts but no public compile confirms
    notes: tuple = PLAN_NOTES

    @property
    def cores_per_layer(self) -> list:
        """Cores of every row of the plan, an input stage's first."""
        return [p.cores for p in self.layers]

    @property
    def connection_layers(self) -> list:
        """The plans of the connection layers, without an input stage's: what a public compile
        lists, and what spikes fan out from."""
        return [p for p in self.layers if not p.spec.is_input_stage]

    @property
    def connection_cores(self) -> list:
        """Cores of the connection layers alone: what a public compile lists (and is matched on)."""
        return [p.cores for p in self.connection_layers]

    @property
    def public_compile(self) -> Optional[PublicCompile]:
        """The public compile of a network of these connection layers' shapes
        (loihi2_limits.PUBLIC_COMPILES), None if none: a compile lists no input stage."""
        return public_compile_of((p.spec.neurons, p.spec.fan_in) for p in self.connection_layers)

    @property
    def input_stage_cores(self) -> int:
        """Cores of the input neuron stage (0 without one)."""
        return sum(p.cores for p in self.layers if p.spec.is_input_stage)

    @property
    def fitted_to_this_network(self) -> bool:
        """Whether the plan's profile, as shipped, was fitted to this network's own public compile:
        then its core counts reproduce that compile, and predict nothing."""
        return (self.public_compile is not None and self.public_compile.compiler == self.limits.compiler
                and not self.limits.overridden)

    @property
    def profile_fit(self) -> str:
        """One line: the profile, and whether it was fitted to this network's compile."""
        return profile_fit_line(self)

    @property
    def total_synmem_words(self) -> int:
        """SynMem words of all the network's cores."""
        return sum(a.synmem_words for p in self.layers for a in p.assignments)

    def to_dict(self) -> dict:
        return plan_dict(self)

    def table(self) -> str:
        """The plan as a text table a person can read in a terminal."""
        return plan_table(self)


def _chunk_by_fill(spec: LayerSpec, limits: Loihi2Limits) -> tuple:
    """The most neurons one core takes without breaking a limit (0 if not even one), and why not more."""
    if core_violation(spec, limits, 1) is not None:
        return 0, core_violation(spec, limits, 1)
    if core_violation(spec, limits, spec.neurons) is None:
        return spec.neurons, "one core holds them all"
    low, high = 1, spec.neurons            # low fits, high does not (every cost grows with the neurons)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if core_violation(spec, limits, middle) is None else (low, middle)
    return low, core_violation(spec, limits, low + 1)


def _chunk_by_ratio(spec: LayerSpec, limits: Loihi2Limits) -> tuple:
    """lava-loihi 2022-10's split: divide the chunk by ceil(SynMem words / register) until it fits."""
    chunk = min(spec.neurons, int(limits.neurons_per_core // neuron_units(spec, limits, 1)))
    limited_by = "neuron count" if chunk < spec.neurons else "one core holds them all"
    steps = []
    while chunk >= 1:
        words = synmem_words(spec, limits, chunk)
        steps.append((chunk, words))
        violation = core_violation(spec, limits, chunk)
        if violation is None:
            return chunk, limited_by, steps
        if violation != "synaptic memory" or chunk == 1:
            return 0, violation, steps
        chunk, limited_by = math.ceil(chunk / math.ceil(words / limits.synmem_budget_words)), "synaptic memory"
    return 0, limited_by, steps


def _plan_layer(spec: LayerSpec, limits: Loihi2Limits, first_core: int) -> LayerPlan:
    steps = []
    if limits.split_rule == "ratio":
        chunk, limited_by, steps = _chunk_by_ratio(spec, limits)
    else:
        chunk, limited_by = _chunk_by_fill(spec, limits)
    plan = LayerPlan(spec, limits.stored_weight_bits(spec.weight_bits), bits_per_synapse(spec, limits), chunk,
                     limited_by, 0, spec.neurons * spec.fan_in, steps)
    if chunk >= 1 and spec.neurons > 0:
        plan.cores = math.ceil(spec.neurons / chunk)
        for k in range(plan.cores):
            count = min(chunk, spec.neurons - k * chunk)
            plan.assignments.append(CoreAssignment(first_core + k, k * chunk, count, synmem_words(spec, limits, count),
                                                   core_memory_units(spec, limits, count)))
    return plan


def plan_partition(network, limits: Loihi2Limits = LOIHI2_LIMITS, ours: Optional[bool] = None) -> PartitionPlan:
    """Partition ``network`` onto Loihi 2 neuro-cores, layer by layer, and check that it fits.

    ``network`` is a QuantizedNetwork or a list of :class:`LayerSpec` (to plan a network that has
    not been trained, e.g. a what-if of a wider model). ``ours``: whether the network's file was
    written by this toolchain (root ``format``; ``netfile.is_our_net``); None: a network read from
    a file without one (variant ``netfile_values.STOCK_VARIANT``) is not, any other is. Only ours
    are advised to be exported again. Returns a :class:`PartitionPlan`; its ``reasons`` say why it
    does not fit and its ``hints`` what to change.
    """
    layers, reasons, hints = [], [], []
    invalid = None
    if isinstance(network, (list, tuple)):
        specs = list(network)
        ours = True if ours is None else ours
    else:
        ours = getattr(network, "variant", None) != STOCK_VARIANT if ours is None else ours
        specs = layer_specs(network)
        try:
            network.validate()
        except NetworkError as err:
            invalid = str(err)
    next_core = 0
    for spec in specs:
        plan = _plan_layer(spec, limits, next_core)
        next_core += plan.cores
        layers.append(plan)
        _check_layer(plan, limits, reasons, hints, ours)

    total_cores = sum(p.cores for p in layers)
    total_neurons = sum(p.spec.neurons for p in layers)
    total_synapses = sum(p.stored_synapses for p in layers)
    # memory is per core (SynMem words, checked above): a chip holds what its cores hold
    chips_needed = max(math.ceil(total_cores / limits.cores_per_chip), 1)
    placed = all(p.cores > 0 for p in layers)
    if total_cores > limits.total_cores:
        reasons.append(f"the network needs {'' if placed else 'at least '}{total_cores} neuro-cores; {limits.chips} "
                       f"chip(s) have {limits.total_cores}")
        widest = max(layers, key=lambda p: p.cores)
        what = ("a smaller input: the input neuron stage" if widest.spec.is_input_stage
                else f"fewer neurons: layer {widest.spec.name}")
        hints.append(f"{what} alone takes {widest.cores} cores for {widest.spec.neurons} neurons "
                     f"({widest.neurons_per_core} per core, limited by {widest.limited_by})")
        for p in layers:
            # an input stage has no synapses: neither delays nor fewer inputs would shrink it
            if p.cores > 1 and p.limited_by in ("synaptic memory", "core memory") and not p.spec.is_input_stage:
                _hint_memory_bound(p, limits, hints)
        hints.append(f"or more chips: chips={chips_needed} would hold {chips_needed * limits.cores_per_chip} cores")
    if invalid and not reasons:   # a field the per-layer checks above do not look at (bias, decays, ...)
        reasons.append(invalid)
        hints.append(EXPORT_AGAIN if ours else FOREIGN_FIX)
    widest = max(limits.weight_widths)
    warnings = [f"layer {p.spec.name}: NetX gives its weights {p.spec.weight_bits} bits (odd weights beyond "
                f"+-127), wider than the {widest}-bit weights of every public synapse format; the plan counts "
                f"{p.stored_weight_bits} bits, but whether Loihi 2 stores them exactly is not confirmed"
                for p in layers if p.stored_weight_bits > widest]
    return PartitionPlan(layers, limits, total_cores, total_neurons, total_synapses, chips_needed,
                         not reasons, unique_in_order(reasons), unique_in_order(hints), warnings)


def _hint_memory_bound(plan: LayerPlan, limits: Loihi2Limits, hints: list) -> None:
    """What a memory-bound layer would take without its delays, and with fewer inputs."""
    spec = plan.spec
    if spec.delayed:
        undelayed = _plan_layer(replace(spec, max_delay=0, min_delay=0), limits, 0)
        hints.append(f"smaller delays: layer {spec.name}'s per-synapse delays (max {spec.max_delay}) add "
                     f"{limits.delay_field_bits} bits per synapse and {spec.max_delay + 1} accumulator rows per "
                     f"neuron; without them it would take {undelayed.cores} cores instead of {plan.cores}")
    hints.append(f"fewer inputs: layer {spec.name} stores a synapse list for each of its {spec.fan_in} inputs on each "
                 f"of its cores; its cores are limited by {plan.limited_by}, so fewer inputs mean more neurons per core")


def _check_layer(plan: LayerPlan, limits: Loihi2Limits, reasons: list, hints: list, ours: bool) -> None:
    spec = plan.spec
    # the field ranges are the network description's (snn_toolchain.quantized_network.FIELD_LIMITS), not the planner's;
    # a file another tool wrote gets no advice to retrain or export it with this toolchain
    for what, values, limit, hint in (
            ("delay", (spec.min_delay, spec.max_delay), "delay",
             f"smaller delays: retrain with --max-delay {limits.max_delay} or less" if ours else FOREIGN_FIX),
            ("weight", spec.weight_range or (), "weight",
             f"requantize: {EXPORT_AGAIN}" if ours else FOREIGN_FIX)):
        try:
            check_range(spec.name, what, values, limit, name_index=False)
        except NetworkError as err:
            reasons.append(str(err))
            hints.append(hint)
    if plan.cores > 0:
        return
    if spec.fan_in > limits.input_axons_per_core:
        reasons.append(f"layer {spec.name}: {spec.fan_in} inputs per neuron exceed the {limits.input_axons_per_core:,} "
                       "input axons of a core")
    else:
        reasons.append(f"layer {spec.name}: one neuron does not fit a core ({plan.limited_by}: "
                       f"{synmem_words(spec, limits, 1):,} SynMem words of {limits.synmem_budget_words:,.0f}, "
                       f"{core_memory_units(spec, limits, 1):,.0f} memory units)")
    words_per_input = math.ceil((bits_per_synapse(spec, limits) + limits.synapse_list_header_bits) / WORD_BITS)
    max_inputs = min(limits.input_axons_per_core, int(limits.synmem_budget_words // words_per_input))
    hints.append(f"fewer inputs: at most {max_inputs:,} inputs per neuron fit a core (each input takes "
                 f"{words_per_input} SynMem word(s) per core)")


def unique_in_order(items: Iterable[str]) -> list:
    seen, out = set(), []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out
