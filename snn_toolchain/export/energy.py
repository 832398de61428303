"""The energy model of the report: per-operation energies (:class:`EnergyTable`, with their sources;
Loihi 1 pre-silicon figures by default, always labelled so), a user's JSON table, the SNN's energy
from the operation counts of :mod:`snn_toolchain.export.activity`, and what dense non-spiking
networks of the same shape would spend (Horowitz 2014, 45 nm). Energies in picojoules.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path


from snn_toolchain.errors import ToolchainError


LOIHI1_LABEL = ("Loihi 1 per-operation energies from pre-silicon simulations (Davies et al. 2018, IEEE Micro); "
                "NOT Loihi 2 figures. No per-operation energy table of Loihi 2 is public: treat the result as an "
                "estimate of the operation counts' cost on Loihi 1-class hardware")


class EnergyFileError(ToolchainError, ValueError):
    """An energy figures file is missing, not JSON, or holds an unknown key or a bad value."""


@dataclass(frozen=True)
class EnergyTable:
    """Energy per operation, in picojoules (pJ), and where each figure comes from.

    Spiking hardware (defaults: Loihi 1, Davies et al. 2018, pre-silicon):
      synaptic_op_pj           one synaptic operation (a spike reaching one synapse), 23.6 pJ
                               (the paper gives it as a minimum)
      neuron_update_active_pj  one neuron update in a step with input or a spike, 81 pJ
      neuron_update_inactive_pj  one neuron update otherwise, 52 pJ
      spike_within_tile_pj     one spike message delivered within a tile, 1.7 pJ
      tile_hop_pj              one hop of a spike message between tiles; the paper gives 3.0-4.0 pJ,
                               3.5 pJ (the middle) is used
      tile_hops_per_message    hops per spike message (an assumption: 1; placement is not known)
    Non-spiking comparison (Horowitz 2014, 45 nm):
      float32_mac_pj 4.6, float32_add_pj 0.9, int8_mac_pj 0.23
    """

    synaptic_op_pj: float = 23.6
    neuron_update_active_pj: float = 81.0
    neuron_update_inactive_pj: float = 52.0
    spike_within_tile_pj: float = 1.7
    tile_hop_pj: float = 3.5
    tile_hops_per_message: float = 1.0
    float32_mac_pj: float = 4.6
    float32_add_pj: float = 0.9
    int8_mac_pj: float = 0.23
    label: str = LOIHI1_LABEL
    sources: dict = field(default_factory=lambda: dict(DEFAULT_SOURCES))
    measured: dict = field(default_factory=dict)

    @property
    def spike_message_pj(self) -> float:
        """Energy of one spike message: delivery plus its tile hops, in pJ."""
        return self.spike_within_tile_pj + self.tile_hops_per_message * self.tile_hop_pj

    def figures(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in NUMERIC_KEYS}

    def to_dict(self) -> dict:
        return {"label": self.label, "figures_pj": self.figures(), "sources": dict(self.sources),
                "measured": dict(self.measured)}


_DAVIES = "Davies et al. 2018, 'Loihi: a neuromorphic manycore processor with on-chip learning', pre-silicon simulations (docs/energy.md)"


_HOROWITZ = "Horowitz 2014, 'Computing's energy problem', ISSCC 2014, 45 nm"


DEFAULT_SOURCES = {
    "synaptic_op_pj": f"Loihi 1: {_DAVIES}; given as a minimum",
    "neuron_update_active_pj": f"Loihi 1: {_DAVIES}",
    "neuron_update_inactive_pj": f"Loihi 1: {_DAVIES}",
    "spike_within_tile_pj": f"Loihi 1: {_DAVIES}",
    "tile_hop_pj": f"Loihi 1: {_DAVIES}; published as 3.0-4.0 pJ, 3.5 pJ used",
    "tile_hops_per_message": "assumption: one tile hop per spike message (placement unknown)",
    "float32_mac_pj": _HOROWITZ,
    "float32_add_pj": _HOROWITZ,
    "int8_mac_pj": _HOROWITZ,
}


NUMERIC_KEYS = tuple(DEFAULT_SOURCES)


# The largest figure per operation a table may give, in pJ (1 mJ): real ones are 0.1 to 100 pJ
MAX_ENERGY_PJ = 1e9


def load_energy_table(path) -> EnergyTable:
    """The default table with the figures of a JSON file applied (docs/energy.md).

    The file is an object with any of the numeric keys of :class:`EnergyTable` (pJ), an optional
    ``label`` (what the figures are, e.g. "Loihi 2, measured on ..."), ``source`` (one source for
    every figure given) or ``sources`` (per key), and an optional ``measured`` object of whole-chip
    measurements to show next to the estimate (``energy_per_inference_uj``,
    ``time_per_inference_ms``, ...). Unknown keys are refused, so that a typo cannot silently
    leave a default in place.
    """
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        raise EnergyFileError(f"{path}: energy figures file not found") from None
    except (OSError, ValueError) as err:
        raise EnergyFileError(f"{path}: not a readable JSON file ({err})") from None
    if not isinstance(payload, dict):
        raise EnergyFileError(f"{path}: expected a JSON object of figures in pJ, e.g. {{\"synaptic_op_pj\": 10}}")
    allowed = set(NUMERIC_KEYS) | {"label", "source", "sources", "measured"}
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise EnergyFileError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}")
    values, sources = {}, dict(DEFAULT_SOURCES)
    given_source = payload.get("source") or f"user figures from {path}"
    per_key_sources = payload.get("sources") or {}
    if not isinstance(per_key_sources, dict):
        raise EnergyFileError(f"{path}: 'sources' must be an object mapping figure names to sources")
    for key in NUMERIC_KEYS:
        if key in payload:
            value = payload[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise EnergyFileError(f"{path}: '{key}' must be a finite number >= 0 (pJ), got {value!r}")
            if value > MAX_ENERGY_PJ:
                # a figure this large overflows the totals to inf: a typo, not an energy
                raise EnergyFileError(f"{path}: '{key}' = {value!r} pJ is no energy per operation (at most "
                                      f"{MAX_ENERGY_PJ:g} pJ, a millijoule); check the units (pJ)")
            values[key] = float(value)
            sources[key] = str(per_key_sources.get(key, given_source))
    measured = payload.get("measured") or {}
    if not isinstance(measured, dict):
        raise EnergyFileError(f"{path}: 'measured' must be an object")
    measured = dict(measured)
    spiking_keys = {"synaptic_op_pj", "neuron_update_active_pj", "neuron_update_inactive_pj", "spike_within_tile_pj",
                    "tile_hop_pj"}
    if "label" in payload and not (spiking_keys & set(values)):
        # the file only brings measurements: its label describes them, not the per-operation figures
        measured.setdefault("label", str(payload["label"]))
        label = LOIHI1_LABEL
    elif "label" in payload:
        label = str(payload["label"])
    elif spiking_keys <= set(values):
        label = f"user figures from {path}"
    elif spiking_keys & set(values):
        label = f"user figures from {path}, other figures: {LOIHI1_LABEL}"
    else:
        label = LOIHI1_LABEL
    return EnergyTable(**values, label=label, sources=sources, measured=dict(measured))


# ------------------------------------------------------------------------------ Loihi 2, measured

# Intel's lava-dl PilotNet-LIF benchmark on a Loihi 2 board (Oheo Gulch, one chip, 74 cores,
# about 158k neurons; github.com/lava-nc/lava-dl, tutorials/lava/lib/dl/netx/pilotnet_snn/
# benchmark.ipynb, three committed hardware runs: 76c8fbb 2022-10-25, baa23ad 2022-10-28, b9e3691
# 2023-01-10). Measured: dynamic energy per inference 0.562 / 1.071 / 1.094 mJ, static power 0.178 /
# 0.309 / 0.232 W, 415.5 / 413.8 / 408.9 inferences/s at 16 steps each (150-153 us per step). Its
# activity profiler plots the synaptic operations per core; summed (read off the plot, about +-5%):
# 3.66e7 per inference. Derived here: dynamic energy / synaptic operations = 15.4 / 29.3 / 29.9 pJ.
# That charges every dynamic joule (neuron updates, spike routing, management) to the synaptic
# operations, so it is an upper bound per operation and a lumped cost per network: the three
# costs cannot be separated from one workload. docs/energy.md gives the derivation.
LOIHI2_SYNOP_PJ_RANGE = (15.4, 29.9)
LOIHI2_STATIC_W_RANGE = (0.178, 0.309)
LOIHI2_PILOTNET_STEP_US = 150.0
LOIHI2_LABEL = ("Loihi 2 estimate, MODELLED from measurements: dynamic energy = synaptic operations x 15.4-29.9 pJ, "
                "the dynamic energy per synaptic operation of Intel's PilotNet-LIF benchmark on a Loihi 2 chip "
                "(lava-dl, tutorials/lava/lib/dl/netx/pilotnet_snn/benchmark.ipynb; an upper bound per operation that "
                "lumps neuron updates and spike routing in), plus static power 0.178-0.309 W per chip over the run")
LOIHI2_SOURCES = ("lava-nc/lava-dl tutorials/lava/lib/dl/netx/pilotnet_snn/benchmark.ipynb, hardware runs of "
                  "commits 76c8fbb, baa23ad, b9e3691 (measured power and throughput; synaptic operations read off its "
                  "activity plot)")


def loihi2_estimate(synaptic_ops_per_sample: float, run_steps: int, chips: int = 1) -> dict:
    """The Loihi 2 range per sample (pJ): dynamic from the synaptic operations, and the static
    energy of ``chips`` chips (the Loihi 2 plan's ``chips_needed``, counted from its cores alone)
    over the sample's ``run_steps`` at PilotNet's measured time per step (the time per step of a given network on the chip is not
    known here; it scales the static part). Static power is per chip, whatever share of its 128
    cores the plan uses: the PilotNet measurement (74 of 128 cores) cannot split it per core."""
    if chips < 1:
        raise ValueError(f"loihi2_estimate: chips must be at least 1, got {chips}")
    dynamic = [synaptic_ops_per_sample * e for e in LOIHI2_SYNOP_PJ_RANGE]
    seconds = run_steps * LOIHI2_PILOTNET_STEP_US * 1e-6
    static = [chips * p * seconds * 1e12 for p in LOIHI2_STATIC_W_RANGE]
    return {"label": LOIHI2_LABEL, "source": LOIHI2_SOURCES, "dynamic_pj": dynamic, "static_pj": static,
            "static_assumes_step_us": LOIHI2_PILOTNET_STEP_US, "chips": int(chips),
            "synop_pj_range": list(LOIHI2_SYNOP_PJ_RANGE), "static_w_range": list(LOIHI2_STATIC_W_RANGE)}


def snn_energy(activity: list, table: EnergyTable) -> dict:
    """Energy per sample (pJ) of the counted operations, per layer and in total.

    Per layer: its spike messages (events x destination cores) x message energy, its synaptic
    operations x synaptic_op_pj (attributed to the sending layer), and its neurons' active and
    inactive updates. The destination cores are the next layer's cores in the Loihi 2 plan
    (``loihi2_plan.plan_partition``, its split fitted to lava-loihi's public compiles): a layer
    split over k cores receives every spike k times.
    """
    layers, totals = [], {"synaptic_pj": 0.0, "neuron_update_pj": 0.0, "spike_routing_pj": 0.0}
    for layer in activity:
        synaptic = layer.per_sample(layer.synaptic_ops) * table.synaptic_op_pj
        active = layer.per_sample(layer.active_updates)
        inactive = layer.per_sample(layer.neuron_updates - layer.active_updates)
        updates = active * table.neuron_update_active_pj + inactive * table.neuron_update_inactive_pj
        routing = layer.per_sample(layer.spike_events * layer.destination_cores) * table.spike_message_pj
        layers.append({"name": layer.name, "synaptic_pj": synaptic, "neuron_update_pj": updates,
                       "spike_routing_pj": routing, "total_pj": synaptic + updates + routing})
        totals["synaptic_pj"] += synaptic
        totals["neuron_update_pj"] += updates
        totals["spike_routing_pj"] += routing
    totals["total_pj"] = totals["synaptic_pj"] + totals["neuron_update_pj"] + totals["spike_routing_pj"]
    return {"layers": layers, "per_sample": totals, "label": table.label}


def dense_equivalents(network, table: EnergyTable, synaptic_ops_per_sample: float) -> dict:
    """Operations and energy per sample of non-spiking networks of the same size, over the
    network's ``time_steps`` input steps.

    - dense: the same layers (inputs -> hidden... -> classes) as ordinary dense layers applied at
      every step: sum of in x out MACs per step (delays ignored: an ANN would need extra taps);
    - GRU: as many GRU layers as hidden layers, each as wide as the first hidden layer,
      3 x (in x h + h x h) MACs per layer per step, plus the dense readout h x classes;
    - the SNN's own synaptic operations as float32 additions at 45 nm, for a same-technology view.
    Energies in pJ: float32 MAC and int8 MAC (Horowitz 2014, 45 nm).
    """
    steps = network.time_steps
    sizes = [network.n_inputs] + [int(layer.weight.shape[0]) for layer in network.layers]
    dense_per_step = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    hidden_layers = len(network.layers) - 1
    width = sizes[1]
    gru_per_step = 0
    inputs = network.n_inputs
    for _ in range(hidden_layers):
        gru_per_step += 3 * (inputs * width + width * width)
        inputs = width
    gru_per_step += width * network.n_classes

    def entry(macs_per_step: int, description: str) -> dict:
        macs = macs_per_step * steps
        return {"description": description, "macs_per_step": macs_per_step, "macs_per_sample": macs,
                "float32_pj": macs * table.float32_mac_pj, "int8_pj": macs * table.int8_mac_pj}

    return {
        "time_steps": steps,
        "dense": entry(dense_per_step, f"feed-forward dense network {'-'.join(map(str, sizes))}, every step"),
        "gru": entry(gru_per_step, f"{hidden_layers}-layer GRU, hidden width {width} (as the SNN's first hidden "
                                   f"layer), input {network.n_inputs}, dense readout to {network.n_classes}"),
        "snn_synaptic_ops_as_float32_adds_pj": synaptic_ops_per_sample * table.float32_add_pj,
    }
