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

No Lava in here: the energy report (``export/report.py``) and the deploy command
(``lava_models/loihi2.py``) both use it, on any machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Iterable, Optional

import numpy as np

from snn_toolchain.export.loihi2_limits import COMPILER_PROFILES, LOIHI2_LIMITS, WORD_BITS, Loihi2Limits
from snn_toolchain.quantized_network import NetworkError, check_range

ADAPTIVE_NEURONS = ("adlif", "adlif+")   # neuron_variant values that run our AdLIF microcode


def netx_weight_bits(weight) -> int:
    """The weight width NetX gives a layer's synapses (``num_weight_bits``), from its integer weights.

    The same arithmetic as lava-dl's ``lava.lib.dl.netx.utils.optimize_weight_bits`` (lava-dl
    d825ac5; tests/test_loihi2_plan.py compares the two): the weights are scaled up as far as the
    8-bit signed (or unsigned, one-signed) mantissa allows, then trailing zero bits are dropped.
    All-zero weights (which NetX cannot build) count as 1 bit.
    """
    weight = np.asarray(weight, dtype=np.float64)
    if weight.size == 0 or not np.any(weight):
        return 1
    high, low = float(weight.max()), float(weight.min())
    if (high > 254 and low < 0) or (low < -256 and high > 0):   # NetX clips such weights first
        weight = np.clip(weight, -256, 254)
        high, low = float(weight.max()), float(weight.min())
    if high < 0:                                     # inhibitory only
        scale, signed = -256 / low, False
    elif low >= 0:                                   # excitatory only
        scale, signed = 255 / high, False
    else:                                            # mixed signs (also max 0 with negative weights)
        scale, signed = min(127 / high if high > 0 else math.inf, -128 / low), True
    scale_bits = math.floor(math.log2(scale)) + int(signed)
    shift = 8                                        # the most trailing zero bits all weights share
    while shift > 0 and np.any(weight / 2 ** shift != np.round(weight / 2 ** shift)):
        shift -= 1
    return int(8 - scale_bits - (shift - int(signed)))


@dataclass(frozen=True)
class LayerSpec:
    """What the planner needs of one connection layer and the neurons it feeds.

    fan_in: inputs per neuron (the weight matrix's columns; every one is an input axon of each of
    the layer's cores); weight_bits: NetX's num_weight_bits for the layer; delays in steps;
    neuron_kind: "cuba" (Lava's LIF/CUBA, also the readout) or "adlif" (our microcode neuron).
    """

    name: str
    role: str                    # "hidden", "readout" (summing) or "output" (a spiking last layer)
    neurons: int
    fan_in: int
    max_delay: int
    weight_bits: int = 8
    neuron_kind: str = "cuba"
    min_delay: int = 0
    weight_range: Optional[tuple] = None

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


def layer_specs(network) -> list:
    """The :class:`LayerSpec` of every layer of a QuantizedNetwork (the last one is the readout)."""
    last = len(network.layers) - 1
    last_role = "readout" if network.readout == "sum" else "output"
    return [LayerSpec.from_layer(layer, last_role if i == last else "hidden") for i, layer in enumerate(network.layers)]


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
        s = self.spec
        return {"name": s.name, "role": s.role, "neurons": s.neurons, "fan_in": s.fan_in, "max_delay_steps": s.max_delay,
                "neuron_kind": s.neuron_kind, "weight_bits": s.weight_bits, "stored_weight_bits": self.stored_weight_bits,
                "bits_per_synapse": self.bits_per_synapse, "neurons_per_core": self.neurons_per_core,
                "synmem_words_per_core": self.synmem_words_per_core, "limited_by": self.limited_by,
                "cores": self.cores, "stored_synapses": self.stored_synapses,
                "split_steps": [list(step) for step in self.split_steps],
                "core_assignments": [a.__dict__ for a in self.assignments]}


PLAN_NOTES = (
    "Input spikes are injected from the host; no neuro-core is counted for them (lava-dl's Loihi 2 compiles "
    "list only the network's layers).",
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
    total_stored_synapses: int
    chips_needed: int
    fits: bool
    reasons: list
    hints: list
    warnings: list = field(default_factory=list)   # what the plan counts but no public compile confirms
    notes: tuple = PLAN_NOTES

    @property
    def cores_per_layer(self) -> list:
        return [p.cores for p in self.layers]

    def to_dict(self) -> dict:
        return {"fits": self.fits, "total_cores": self.total_cores, "cores_per_layer": self.cores_per_layer,
                "total_neurons": self.total_neurons, "total_stored_synapses": self.total_stored_synapses,
                "chips_needed": self.chips_needed, "compiler_profile": self.limits.compiler,
                "reasons": list(self.reasons), "hints": list(self.hints), "warnings": list(self.warnings),
                "notes": list(self.notes),
                "layers": [layer.to_dict() for layer in self.layers], "limits": self.limits.to_dict()}

    def table(self) -> str:
        """The plan as a text table a person can read in a terminal."""
        lim = self.limits
        lines = [f"Loihi 2 resource plan, lava-loihi {lim.compiler} profile "
                 f"({COMPILER_PROFILES[lim.compiler]['description']}): {lim.chips} chip(s) x {lim.cores_per_chip} "
                 f"neuro-cores; per core {lim.synmem_words_per_core:,} SynMem words (split rule '{lim.split_rule}', "
                 f"up to {lim.synmem_budget_words:,.0f}), {lim.neurons_per_core} neuron units, "
                 f"{lim.input_axons_per_core:,} input axons"]
        header = ("layer", "role", "neurons", "fan-in", "weight bits", "max delay", "bits/synapse", "neurons/core",
                  "SynMem/core", "limited by", "cores", "synapses")
        rows = []
        for plan in self.layers:
            s = plan.spec
            widths = (f"{s.weight_bits}" if plan.stored_weight_bits == s.weight_bits
                      else f"{s.weight_bits}->{plan.stored_weight_bits}")
            rows.append((s.name, s.role, str(s.neurons), str(s.fan_in), widths, str(s.max_delay),
                         str(plan.bits_per_synapse), str(plan.neurons_per_core) if plan.cores else "-",
                         f"{plan.synmem_words_per_core:,}" if plan.cores else "-", plan.limited_by,
                         str(plan.cores) if plan.cores else "-", f"{plan.stored_synapses:,}"))
        rows.append(("total", "", str(self.total_neurons), "", "", "", "", "", "", "", str(self.total_cores),
                     f"{self.total_stored_synapses:,}"))
        widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        lines.append("  ".join("-" * w for w in widths))
        lines.extend("  ".join(c.rjust(w) if c[:1].isdigit() else c.ljust(w) for c, w in zip(r, widths)) for r in rows)
        lines.append(f"(SynMem/core: 64-bit words of the fullest core = fan-in x ceil((neurons x bits/synapse + "
                     f"{lim.synapse_list_header_bits}) / 64))")
        lines.append("cores:")
        for plan in self.layers:
            lines.append(f"  layer {plan.spec.name}: {_describe_assignments(plan)}")
        if self.fits:
            lines.append(f"verdict: FITS on {self.chips_needed} chip(s): {self.total_cores} of {lim.total_cores} "
                         f"cores, {self.total_stored_synapses:,} of {lim.chips * lim.synapses_per_chip:,} synapses "
                         f"({100 * self.total_stored_synapses / (lim.chips * lim.synapses_per_chip):.3g}%)")
        else:
            lines.append("verdict: DOES NOT FIT")
            lines.extend(f"  reason: {r}" for r in self.reasons)
            lines.extend(f"  hint: {h}" for h in self.hints)
        lines.extend(f"warning: {w}" for w in self.warnings)
        lines.append("assumptions: " + " ".join(self.notes))
        return "\n".join(lines)


def _describe_assignments(plan: LayerPlan) -> str:
    if not plan.assignments:
        return "not placed (one neuron does not fit a core)"
    if len(plan.assignments) <= 8:
        return "; ".join(f"core {a.core}: neurons {a.first_neuron}-{a.first_neuron + a.neurons - 1} "
                         f"({a.synmem_words:,} SynMem words)" for a in plan.assignments)
    sizes = sorted({a.neurons for a in plan.assignments}, reverse=True)
    return (f"cores {plan.assignments[0].core}-{plan.assignments[-1].core}, "
            f"{' or '.join(map(str, sizes))} neurons each")


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


def plan_partition(network, limits: Loihi2Limits = LOIHI2_LIMITS) -> PartitionPlan:
    """Partition ``network`` onto Loihi 2 neuro-cores, layer by layer, and check that it fits.

    ``network`` is a QuantizedNetwork or a list of :class:`LayerSpec` (to plan a network that has
    not been trained, e.g. a what-if of a wider model). Returns a :class:`PartitionPlan`; its
    ``reasons`` say why it does not fit and its ``hints`` what to change.
    """
    layers, reasons, hints = [], [], []
    invalid = None
    if isinstance(network, (list, tuple)):
        specs = list(network)
    else:
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
        _check_layer(plan, limits, reasons, hints)

    total_cores = sum(p.cores for p in layers)
    total_neurons = sum(p.spec.neurons for p in layers)
    total_synapses = sum(p.stored_synapses for p in layers)
    chips_needed = max(math.ceil(total_cores / limits.cores_per_chip),
                       math.ceil(total_synapses / limits.synapses_per_chip), 1)
    placed = all(p.cores > 0 for p in layers)
    if total_cores > limits.total_cores:
        reasons.append(f"the network needs {'' if placed else 'at least '}{total_cores} neuro-cores; {limits.chips} "
                       f"chip(s) have {limits.total_cores}")
        widest = max(layers, key=lambda p: p.cores)
        hints.append(f"fewer neurons: layer {widest.spec.name} alone takes {widest.cores} cores for "
                     f"{widest.spec.neurons} neurons ({widest.neurons_per_core} per core, limited by {widest.limited_by})")
        for p in layers:
            if p.cores > 1 and p.limited_by in ("synaptic memory", "core memory"):
                _hint_memory_bound(p, limits, hints)
        hints.append(f"or more chips: chips={chips_needed} would hold {chips_needed * limits.cores_per_chip} cores")
    if total_synapses > limits.chips * limits.synapses_per_chip:
        reasons.append(f"the network stores {total_synapses:,} synapses; {limits.chips} chip(s) hold "
                       f"{limits.chips * limits.synapses_per_chip:,}")
        hints.append("fewer neurons or fewer inputs: synapses grow with neurons x fan-in")
    if invalid and not reasons:   # a field the per-layer checks above do not look at (bias, decays, ...)
        reasons.append(invalid)
        hints.append("export the trained run again with `train-export export`")
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


def _check_layer(plan: LayerPlan, limits: Loihi2Limits, reasons: list, hints: list) -> None:
    spec = plan.spec
    # the field ranges are the network description's (snn_toolchain.quantized_network.FIELD_LIMITS), not the planner's
    for what, values, limit, hint in (
            ("delay", (spec.min_delay, spec.max_delay), "delay",
             f"smaller delays: retrain with --max-delay {limits.max_delay} or less"),
            ("weight", spec.weight_range or (), "weight",
             "requantize: export the trained run again with `train-export export`")):
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
