"""What the Loihi 2 resource plan (``loihi2_plan.py``) assumes about the chip: :data:`LOIHI2_LIMITS`,
each limit with its source. The ones that are assumptions (per-core synaptic memory, the cost of
per-synapse delays) say so and can be changed (docs/deploy_loihi2.md).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Optional

from snn_toolchain import constants as C
from snn_toolchain.quantized_network import FIELD_LIMITS

_DERIVED_ENTRIES_SOURCE = ("derived: synapses per chip / cores per chip (120M / 128); not a per-core figure "
                           "from Intel. Per-core synaptic memory is not confirmed from a "
                           "primary source. Set synapse_entries_per_core to a measured or documented value.")


@dataclass(frozen=True)
class Loihi2Limits:
    """What the planner assumes about Loihi 2; every field has an entry in :attr:`SOURCES`.

    Counts are per chip or per neuro-core as named; delays are in time steps; memory is in
    "synapse entries" (the storage of one synapse with its weight).
    """

    chips: int = 1
    cores_per_chip: int = 128
    neurons_per_core: int = 8192
    synapses_per_chip: int = 120_000_000
    weight_bits: int = C.WEIGHT_BITS            # shown in the plan; checked by the network description
    max_delay: int = FIELD_LIMITS["delay"].high  # shown in the plan; checked by the network description
    chip_delay_bits: int = 6
    synapse_entries_per_core: Optional[float] = None
    delayed_synapse_entry_cost: float = 1.0
    accumulator_entry_cost: float = 1.0
    max_fan_in: Optional[int] = None
    synapse_storage: str = "dense"

    SOURCES = {
        "chips": "configuration: chips the network may use (Oheo Gulch boards carry 1 chip, Kapoho Point 8)",
        "cores_per_chip": "Intel, 'Taking Neuromorphic Computing to the Next Level with Loihi 2' (technology brief, 2021): 128 neuro-cores per chip",
        "neurons_per_core": "Intel's Loihi 2 brief (2021): up to 1M neurons per chip, i.e. 8192 per core",
        "synapses_per_chip": "Intel's Loihi 2 brief (2021): up to 120M synapses per chip",
        "weight_bits": "Intel's Loihi 2 brief (2021): synaptic weights up to 8 bits plus a per-layer exponent (constants.WEIGHT_BITS)",
        "max_delay": "lava-dl 0.6 NetX (lava/lib/dl/netx/hdf5.py) builds every DelayDense with max_delay=62 (constants.LOIHI_MAX_DELAY)",
        "chip_delay_bits": "lava-nc 0.10 DelayDense accepts delays 0..63 for Loihi (6 bits); Intel's Loihi 2 brief: programmable synaptic delays",
        "synapse_entries_per_core": _DERIVED_ENTRIES_SOURCE,
        "delayed_synapse_entry_cost": ("ASSUMPTION: a synapse's delay sits in its own synapse word (6-bit field), "
                                       "so a delayed synapse costs one entry like any other; raise it if a "
                                       "delayed synapse turns out to need more storage"),
        "accumulator_entry_cost": ("ASSUMPTION: a neuron that receives delays up to D needs D + 1 dendritic "
                                   "accumulator rows (one per pending arrival step), each costing this many "
                                   "synapse entries of the core's memory"),
        "max_fan_in": "not checked by default: no per-neuron fan-in limit was found in a primary source",
        "synapse_storage": ("ASSUMPTION: 'dense' stores every weight of a Dense/DelayDense matrix, zeros "
                            "included (Lava passes full matrices); 'nonzero' counts only non-zero weights"),
    }

    def __post_init__(self):
        for name in ("chips", "cores_per_chip", "neurons_per_core", "synapses_per_chip"):
            if getattr(self, name) < 1:
                raise ValueError(f"Loihi2Limits.{name} must be at least 1, got {getattr(self, name)}")
        if self.synapse_entries_per_core is not None and self.synapse_entries_per_core <= 0:
            raise ValueError("Loihi2Limits.synapse_entries_per_core must be positive")
        if self.delayed_synapse_entry_cost < 0 or self.accumulator_entry_cost < 0:
            raise ValueError("Loihi2Limits entry costs must be >= 0")
        if self.synapse_storage not in ("dense", "nonzero"):
            raise ValueError(f"Loihi2Limits.synapse_storage must be 'dense' or 'nonzero', got {self.synapse_storage!r}")

    @property
    def entries_per_core(self) -> float:
        """Synapse entries one core holds: the setting, or the derived default (chip total / cores)."""
        if self.synapse_entries_per_core is not None:
            return float(self.synapse_entries_per_core)
        return self.synapses_per_chip / self.cores_per_chip

    @property
    def total_cores(self) -> int:
        return self.chips * self.cores_per_chip

    def source(self, name: str) -> str:
        if name == "synapse_entries_per_core" and self.synapse_entries_per_core is not None:
            return "user setting (replaces the derived chip total / cores)"
        return self.SOURCES[name]

    def to_dict(self) -> dict:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["synapse_entries_per_core"] = self.entries_per_core
        return {name: {"value": value, "source": self.source(name)} for name, value in values.items()}

    @classmethod
    def from_overrides(cls, overrides: Optional[dict] = None) -> "Loihi2Limits":
        """Defaults with ``overrides`` (field name -> value) applied; unknown names are refused."""
        overrides = dict(overrides or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        fixed = sorted(set(overrides) & {"max_delay", "weight_bits"})
        if fixed:
            raise ValueError(f"Loihi 2 limit(s) {', '.join(fixed)} are field ranges of the network description "
                             "(snn_toolchain.quantized_network.FIELD_LIMITS), not planner settings")
        if unknown:
            raise ValueError(f"unknown Loihi 2 limit(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return replace(cls(), **overrides)


LOIHI2_LIMITS = Loihi2Limits()
