"""The Loihi 2 resource plan: how a network maps onto neuro-cores, and whether it fits.

:data:`LOIHI2_LIMITS` (``loihi2_limits.py``) holds what the planner assumes about the chip, each limit
with its source; the ones that are assumptions (per-core synaptic memory, the cost of per-synapse
delays) say so and can be changed. :func:`plan_partition` plans a
:class:`~snn_toolchain.quantized_network.QuantizedNetwork` core by core and explains a network that
does not fit (docs/deploy_loihi2.md).

No Lava in here: the energy report (``export/report.py``) and the deploy command
(``lava_models/loihi2.py``) both use it, on any machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Optional

import numpy as np

from snn_toolchain.export.loihi2_limits import LOIHI2_LIMITS, Loihi2Limits
from snn_toolchain.quantized_network import NetworkError, check_range


@dataclass(frozen=True)
class LayerSpec:
    """What the planner needs of one connection layer and the neurons it feeds.

    fan_in: inputs per neuron (the weight matrix's columns); max_nonzero_fan_in: the largest count
    of non-zero weights of one neuron; delays in steps; weights in synaptic units.
    """

    name: str
    role: str                    # "hidden", "readout" (summing) or "output" (a spiking last layer)
    neurons: int
    fan_in: int
    max_delay: int
    max_nonzero_fan_in: Optional[int] = None
    nonzero_synapses: Optional[int] = None
    min_delay: int = 0
    weight_range: Optional[tuple] = None

    @classmethod
    def from_layer(cls, layer, role: str) -> "LayerSpec":
        weight = np.asarray(layer.weight)
        delay = np.asarray(layer.delay)
        nonzero_per_neuron = (weight != 0).sum(axis=1)
        return cls(name=str(layer.name), role=role, neurons=int(weight.shape[0]), fan_in=int(weight.shape[1]),
                   max_delay=int(delay.max(initial=0)), min_delay=int(delay.min(initial=0)),
                   max_nonzero_fan_in=int(nonzero_per_neuron.max(initial=0)),
                   nonzero_synapses=int(nonzero_per_neuron.sum()),
                   weight_range=(int(weight.min(initial=0)), int(weight.max(initial=0))))


def layer_specs(network) -> list:
    """The :class:`LayerSpec` of every layer of a QuantizedNetwork (the last one is the readout)."""
    last = len(network.layers) - 1
    last_role = "readout" if network.readout == "sum" else "output"
    return [LayerSpec.from_layer(layer, last_role if i == last else "hidden") for i, layer in enumerate(network.layers)]


@dataclass
class CoreAssignment:
    core: int            # global core index, counted over the whole network
    first_neuron: int    # within the layer
    neurons: int
    entries_used: float  # synapse entries of this core's memory used (synapses + accumulator rows)


@dataclass
class LayerPlan:
    """One layer's share of the chip.

    memory_per_neuron = stored fan-in x synapse cost + (max_delay + 1) x accumulator cost, in
    synapse entries; neurons_per_core = min(neuron limit, floor(entries per core / memory_per_neuron)).
    """

    spec: LayerSpec
    stored_fan_in: int
    synapse_entries_per_neuron: float
    accumulator_rows_per_neuron: int
    memory_per_neuron: float
    neurons_per_core_by_memory: int
    neurons_per_core: int
    limited_by: str               # "neuron count" or "synaptic memory"
    cores: int                    # 0 when one neuron does not fit a core
    stored_synapses: int
    assignments: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"name": self.spec.name, "role": self.spec.role, "neurons": self.spec.neurons,
                "fan_in": self.spec.fan_in, "stored_fan_in": self.stored_fan_in,
                "max_delay_steps": self.spec.max_delay, "nonzero_synapses": self.spec.nonzero_synapses,
                "stored_synapses": self.stored_synapses,
                "synapse_entries_per_neuron": self.synapse_entries_per_neuron,
                "accumulator_rows_per_neuron": self.accumulator_rows_per_neuron,
                "memory_per_neuron_entries": self.memory_per_neuron,
                "neurons_per_core_by_memory": self.neurons_per_core_by_memory,
                "neurons_per_core": self.neurons_per_core, "limited_by": self.limited_by, "cores": self.cores,
                "core_assignments": [a.__dict__ for a in self.assignments]}


PLAN_NOTES = (
    "Input spikes are injected from the host (graded spikes); no neuro-core is counted for them.",
    "Each layer gets cores of its own (Lava maps each process to its own cores); its neurons are "
    "spread as evenly as possible over the fewest cores that hold them.",
    "The readout is counted as neurons that integrate the readout synapse's output on the chip.",
    "Per-core synaptic memory and the cost of delays are assumptions (see each limit's source).",
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
    notes: tuple = PLAN_NOTES

    def to_dict(self) -> dict:
        return {"fits": self.fits, "total_cores": self.total_cores, "total_neurons": self.total_neurons,
                "total_stored_synapses": self.total_stored_synapses, "chips_needed": self.chips_needed,
                "reasons": list(self.reasons), "hints": list(self.hints), "notes": list(self.notes),
                "layers": [layer.to_dict() for layer in self.layers], "limits": self.limits.to_dict()}

    def table(self) -> str:
        """The plan as a text table a person can read in a terminal."""
        lim = self.limits
        entries_label = "derived" if lim.synapse_entries_per_core is None else "set"
        lines = [f"Loihi 2 resource plan: {lim.chips} chip(s) x {lim.cores_per_chip} neuro-cores, up to "
                 f"{lim.neurons_per_core} neurons and {lim.entries_per_core:,.0f} synapse entries per core "
                 f"({entries_label}), {lim.synapses_per_chip / 1e6:g}M synapses per chip"]
        header = ("layer", "role", "neurons", "fan-in", "max delay", "entries/neuron", "neurons/core", "limited by",
                  "cores", "synapses")
        rows = []
        for plan in self.layers:
            s = plan.spec
            per_neuron = (f"{plan.memory_per_neuron:g} = {plan.synapse_entries_per_neuron:g} + "
                          f"{plan.accumulator_rows_per_neuron * lim.accumulator_entry_cost:g}")
            rows.append((s.name, s.role, str(s.neurons), str(plan.stored_fan_in), str(s.max_delay), per_neuron,
                         str(plan.neurons_per_core), plan.limited_by, str(plan.cores) if plan.cores else "-",
                         f"{plan.stored_synapses:,}"))
        rows.append(("total", "", str(self.total_neurons), "", "", "", "", "", str(self.total_cores),
                     f"{self.total_stored_synapses:,}"))
        widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        lines.append("  ".join("-" * w for w in widths))
        lines.extend("  ".join(c.rjust(w) if c[:1].isdigit() else c.ljust(w) for c, w in zip(r, widths)) for r in rows)
        lines.append("(entries/neuron = stored synapses + (max delay + 1) accumulator rows, in synapse entries)")
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
        lines.append("assumptions: " + " ".join(self.notes))
        return "\n".join(lines)


def _describe_assignments(plan: LayerPlan) -> str:
    if not plan.assignments:
        return "not placed (one neuron does not fit a core)"
    if len(plan.assignments) <= 8:
        return "; ".join(f"core {a.core}: neurons {a.first_neuron}-{a.first_neuron + a.neurons - 1} "
                         f"({a.entries_used:,.0f} entries)" for a in plan.assignments)
    sizes = sorted({a.neurons for a in plan.assignments})
    return (f"cores {plan.assignments[0].core}-{plan.assignments[-1].core}, "
            f"{' or '.join(map(str, sizes))} neurons each")


def _plan_layer(spec: LayerSpec, limits: Loihi2Limits, first_core: int) -> LayerPlan:
    if limits.synapse_storage == "nonzero" and spec.max_nonzero_fan_in is not None:
        stored_fan_in = spec.max_nonzero_fan_in
        stored_synapses = spec.nonzero_synapses if spec.nonzero_synapses is not None else spec.neurons * stored_fan_in
    else:
        stored_fan_in = spec.fan_in
        stored_synapses = spec.neurons * spec.fan_in
    synapse_cost = limits.delayed_synapse_entry_cost if spec.max_delay > 0 else 1.0
    synapse_entries = stored_fan_in * synapse_cost
    accumulator_rows = spec.max_delay + 1
    memory_per_neuron = synapse_entries + accumulator_rows * limits.accumulator_entry_cost
    by_memory = int(limits.entries_per_core // memory_per_neuron) if memory_per_neuron > 0 else limits.neurons_per_core
    neurons_per_core = min(limits.neurons_per_core, by_memory)
    limited_by = "neuron count" if limits.neurons_per_core <= by_memory else "synaptic memory"
    plan = LayerPlan(spec, stored_fan_in, synapse_entries, accumulator_rows, memory_per_neuron, by_memory,
                     neurons_per_core, limited_by, 0, int(stored_synapses))
    if neurons_per_core >= 1 and spec.neurons > 0:
        plan.cores = math.ceil(spec.neurons / neurons_per_core)
        base, extra = divmod(spec.neurons, plan.cores)
        first = 0
        for k in range(plan.cores):
            count = base + (1 if k < extra else 0)
            plan.assignments.append(CoreAssignment(first_core + k, first, count, count * memory_per_neuron))
            first += count
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
    if placed and total_cores > limits.total_cores:
        reasons.append(f"the network needs {total_cores} neuro-cores; {limits.chips} chip(s) have {limits.total_cores}")
        widest = max(layers, key=lambda p: p.cores)
        hints.append(f"fewer neurons: layer {widest.spec.name} alone takes {widest.cores} cores for "
                     f"{widest.spec.neurons} neurons ({widest.neurons_per_core} per core, limited by {widest.limited_by})")
        memory_bound = [p for p in layers if p.limited_by == "synaptic memory" and p.cores > 1]
        for p in memory_bound:
            accumulator = p.accumulator_rows_per_neuron * limits.accumulator_entry_cost
            if accumulator > 0:
                hints.append(f"smaller delays: layer {p.spec.name}'s {p.accumulator_rows_per_neuron} accumulator rows "
                             f"(max delay {p.spec.max_delay}) take {accumulator:g} of its {p.memory_per_neuron:g} "
                             "entries per neuron")
            hints.append(f"fewer inputs: layer {p.spec.name} stores {p.stored_fan_in} synapses per neuron; its "
                         "cores are limited by synaptic memory, so fewer inputs mean more neurons per core")
        hints.append(f"or more chips: chips={chips_needed} would hold {chips_needed * limits.cores_per_chip} cores")
    if total_synapses > limits.chips * limits.synapses_per_chip:
        reasons.append(f"the network stores {total_synapses:,} synapses; {limits.chips} chip(s) hold "
                       f"{limits.chips * limits.synapses_per_chip:,}")
        hints.append("fewer neurons or fewer inputs: synapses grow with neurons x fan-in")
    if invalid and not reasons:   # a field the per-layer checks above do not look at (bias, decays, ...)
        reasons.append(invalid)
        hints.append("export the trained run again with `train-export export`")
    return PartitionPlan(layers, limits, total_cores, total_neurons, total_synapses, chips_needed,
                         not reasons, unique_in_order(reasons), unique_in_order(hints))


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
    if limits.max_fan_in is not None and plan.stored_fan_in > limits.max_fan_in:
        reasons.append(f"layer {spec.name}: {plan.stored_fan_in} inputs per neuron exceed the fan-in limit "
                       f"{limits.max_fan_in}")
        hints.append(f"fewer inputs: layer {spec.name} may have at most {limits.max_fan_in} inputs per neuron")
    if plan.neurons_per_core < 1:
        entries = limits.entries_per_core
        reasons.append(f"layer {spec.name}: one neuron needs {plan.memory_per_neuron:g} synapse entries "
                       f"({plan.stored_fan_in} synapses + {plan.accumulator_rows_per_neuron} accumulator rows) but a "
                       f"core holds {entries:,.0f}")
        accumulator = plan.accumulator_rows_per_neuron * limits.accumulator_entry_cost
        synapse_cost = plan.synapse_entries_per_neuron / max(plan.stored_fan_in, 1)
        if synapse_cost > 0:
            max_inputs = int((entries - accumulator) // synapse_cost)
            if max_inputs >= 1:
                hints.append(f"fewer inputs: at most {max_inputs} inputs per neuron fit a core with "
                             f"max delay {spec.max_delay}")
        if limits.accumulator_entry_cost > 0 and spec.max_delay > 0:
            max_delay = int((entries - plan.synapse_entries_per_neuron) // limits.accumulator_entry_cost) - 1
            if max_delay >= 0:
                hints.append(f"smaller delays: with {plan.stored_fan_in} inputs, a max delay of at most {max_delay} "
                             "steps fits a core")


def unique_in_order(items: Iterable[str]) -> list:
    seen, out = set(), []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out
