"""Activity and energy report of an exported network, from the batched fixed-point emulator.

What is counted, per layer and per sample (averaged over the samples given):

- **spikes per neuron per sample**, as the paper's appendix Table 4 reports them;
- **synaptic operations**: each spike (for the input: each graded spike message, i.e. each
  non-zero (step, channel) bin) times its fan-out, the number of non-zero weights it reaches in
  the next layer;
- **neuron updates**: every neuron is updated every step, ``neurons x run_steps``; an update is
  *active* in a step where the neuron receives non-zero synaptic input, has a bias, or fires,
  *inactive* otherwise (our reading of Davies et al.'s active / inactive update energies);
- **silent neurons**: the share of a layer's neurons that do not fire in a sample (mean over
  samples), and the share that never fires in any sample;
- **spike messages**: each spike travels once to every core that holds the next layer (cores from
  the Loihi 2 partition plan).

The energy model multiplies these counts by per-operation energies (:class:`EnergyTable`). The
default figures are Loihi 1's, from pre-silicon simulations (Davies et al. 2018), and every output
labels them so: no per-operation table of Loihi 2 is public. Pass your own figures (for instance
measured on a Loihi 2 chip) as a JSON file (docs/energy.md). The comparison with non-spiking
networks uses Horowitz's 45 nm energies (2014).

Runs the whole test split in seconds (the emulator is batched); writes ``report.md``,
``report.json`` and PNG figures atomically.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from snn_toolchain import constants as C
from snn_toolchain.atomic import atomic_path, write_json, write_text
from snn_toolchain.errors import ToolchainError
from snn_toolchain.neuron_dynamics import CubaFixedParams, FixedNeuronParams

# The paper's appendix Table 4: spikes per neuron per sample on SHD (Deckers et al.).
PAPER_TABLE4_SPIKES = {"lif": 10.75, "adlif": 10.7, "adlif+": 10.28, "delay-lif": 13.7, "delay-adlif+": 11.48}

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


# ============================================================================================
# Activity
# ============================================================================================

@dataclass
class LayerActivity:
    """Counts of one layer, summed over ``samples`` samples (the *_per_sample properties divide)."""

    name: str
    role: str                     # "input", "hidden" or "readout"
    neurons: int
    samples: int = 0
    spikes: int = 0               # input: the spike counts themselves
    spike_events: int = 0         # spike messages sent (input: non-zero bins; hidden: spikes)
    synaptic_ops: int = 0         # spike events x fan-out into the next layer
    neuron_updates: int = 0
    active_updates: int = 0
    silent_neuron_samples: int = 0    # (sample, neuron) pairs without a spike
    per_neuron_spikes: Optional[np.ndarray] = None   # (neurons,) total over samples
    destination_cores: int = 1

    def per_sample(self, value: float) -> float:
        return value / max(self.samples, 1)

    @property
    def spikes_per_neuron_per_sample(self) -> float:
        return self.spikes / max(self.samples * self.neurons, 1)

    @property
    def silent_share(self) -> float:
        return self.silent_neuron_samples / max(self.samples * self.neurons, 1)

    @property
    def never_active_share(self) -> float:
        if self.per_neuron_spikes is None:
            return 0.0
        return float(np.mean(self.per_neuron_spikes == 0))

    def to_dict(self) -> dict:
        out = {"name": self.name, "role": self.role, "neurons": self.neurons, "samples": self.samples,
               "spikes_total": self.spikes, "spike_events_total": self.spike_events,
               "spikes_per_neuron_per_sample": self.spikes_per_neuron_per_sample,
               "spikes_per_sample": self.per_sample(self.spikes),
               "spike_events_per_sample": self.per_sample(self.spike_events),
               "synaptic_ops_per_sample": self.per_sample(self.synaptic_ops),
               "neuron_updates_per_sample": self.per_sample(self.neuron_updates),
               "active_updates_per_sample": self.per_sample(self.active_updates),
               "inactive_updates_per_sample": self.per_sample(self.neuron_updates - self.active_updates),
               "destination_cores": self.destination_cores,
               "spike_messages_per_sample": self.per_sample(self.spike_events * self.destination_cores)}
        if self.role == "hidden":
            out["silent_share_per_sample"] = self.silent_share
            out["never_active_share"] = self.never_active_share
        return out


def fan_out(weight: np.ndarray, count_zero_weights: bool = False) -> np.ndarray:
    """Synapses each input of a (out, in) weight matrix reaches: its non-zero weights (default) or
    all ``out`` of them. A synapse of weight 0 does nothing; whether the chip skips it depends on
    its storage format, so both counts are available."""
    weight = np.asarray(weight)
    if count_zero_weights:
        return np.full(weight.shape[1], weight.shape[0], dtype=np.int64)
    return (weight != 0).sum(axis=0).astype(np.int64)


def _layer_names(network) -> list:
    hidden = len(network.layers) - 1
    return ["input"] + [f"hidden {i + 1}" for i in range(hidden)] + ["readout"]


def measure_activity(network, batches, *, device: str = "cpu", destination_cores: Optional[list] = None,
                     count_zero_weights: bool = False, keep_sample: int = 0) -> tuple:
    """Run the emulator over ``batches`` (iterable of (x, labels)) and count everything.

    ``destination_cores[l]``: cores that hold connection layer ``l`` (each spike into it is one
    message per core); default 1. Returns (list of LayerActivity: input, hidden..., readout;
    dict with accuracy, samples, and the rasters of sample ``keep_sample`` for the plots).
    """
    from snn_toolchain.export.emulator import Emulator, delayed_synaptic_input

    emulator = Emulator(network, device=device)
    names = _layer_names(network)
    n_layers = len(network.layers)
    cores = list(destination_cores or [1] * n_layers)
    activity = [LayerActivity(names[0], "input", network.n_inputs, destination_cores=cores[0])]
    for index, layer in enumerate(network.layers):
        role = "readout" if index == n_layers - 1 else "hidden"
        next_cores = cores[index + 1] if index + 1 < n_layers else 0
        activity.append(LayerActivity(names[index + 1], role, int(layer.weight.shape[0]), destination_cores=next_cores))
    fan_outs = [torch.as_tensor(fan_out(layer.weight, count_zero_weights), dtype=torch.float64, device=emulator.device)
                for layer in network.layers]
    biased = [torch.as_tensor(np.asarray(layer.bias) != 0, device=emulator.device) for layer in network.layers]
    correct = total = 0
    kept = None
    readout_bias = torch.as_tensor(np.asarray(network.layers[-1].bias), dtype=torch.int64, device=emulator.device)
    readout_peak = 0
    for x, labels in batches:
        counts = _whole_counts(x, network.time_steps).to(emulator.device)
        result = emulator(counts)
        padded = torch.nn.functional.pad(counts, (0, 0, 0, network.run_steps - counts.shape[1]))
        sources = [padded] + [s.to(torch.int64) for s in result.spikes]
        batch = counts.shape[0]
        for index, layer in enumerate(network.layers):
            source = sources[index]
            events = (source > 0).to(torch.float64).sum(dim=1)                 # (batch, n_source)
            sender = activity[index]
            sender.spikes += int(source.sum())
            sender.spike_events += int(events.sum())
            sender.synaptic_ops += int(round(float((events @ fan_outs[index]).sum())))
            # the neurons fed by this connection
            receiver = activity[index + 1]
            if index == n_layers - 1:
                synaptic_input = result.readout_input
                fired = torch.zeros_like(synaptic_input, dtype=torch.bool)
            else:
                weight, delay = emulator.layers[index][0], emulator.layers[index][1]
                synaptic_input = delayed_synaptic_input(source, weight, delay)
                fired = result.spikes[index] > 0
            active = (synaptic_input != 0) | fired | biased[index]
            receiver.neuron_updates += batch * network.run_steps * receiver.neurons
            receiver.active_updates += int(active.sum())
        for index, spikes in enumerate(result.spikes):
            layer_activity = activity[index + 1]
            per_sample_neuron = spikes.sum(dim=1, dtype=torch.int64)            # (batch, n)
            layer_activity.silent_neuron_samples += int((per_sample_neuron == 0).sum())
            totals = per_sample_neuron.sum(dim=0).cpu().numpy()
            layer_activity.per_neuron_spikes = totals if layer_activity.per_neuron_spikes is None \
                else layer_activity.per_neuron_spikes + totals
        for layer_activity in activity:
            layer_activity.samples += batch
        # A readout integrated on the chip (CUBA, memoryless current, no leak) holds this running sum
        # << 6 in its 24-bit voltage: the peak says how close it comes to saturating.
        running = torch.cumsum(result.readout_input + readout_bias, dim=1) << C.ACTIVATION_SHIFT
        readout_peak = max(readout_peak, int(running.abs().max()))
        labels = torch.as_tensor(labels)
        correct += int((result.predictions().cpu() == labels.cpu()).sum())
        total += batch
        if kept is None and keep_sample < total:
            k = keep_sample - (total - batch)
            kept = {"input": padded[k].cpu().numpy(), "hidden": [s[k].cpu().numpy() for s in result.spikes],
                    "readout_input": result.readout_input[k].cpu().numpy(), "label": int(labels[k]),
                    "prediction": int(result.predictions()[k]), "index": keep_sample}
    if total == 0:
        raise ToolchainError("the dataset has no samples to report on")
    return activity, {"accuracy": correct / total, "samples": total, "raster": kept, "readout_peak": readout_peak}


def _whole_counts(x, time_steps: int) -> torch.Tensor:
    x = torch.as_tensor(x)
    counts = torch.round(x.to(torch.float64))
    if not torch.equal(counts, x.to(torch.float64)) or (counts < 0).any():
        raise ToolchainError("the samples are not whole spike counts (GSC's log-mel features cannot drive a spiking "
                             "network); use SHD/SSC or spike-encoded inputs")
    if counts.shape[1] > time_steps:
        if counts[:, time_steps:].any():
            raise ToolchainError(f"the samples have {counts.shape[1]} steps with spikes after step {time_steps}, "
                                 f"the length the network was exported for; export with the data's padding")
        counts = counts[:, :time_steps]
    return counts.to(torch.int64)


# ============================================================================================
# Energy
# ============================================================================================

def snn_energy(activity: list, table: EnergyTable) -> dict:
    """Energy per sample (pJ) of the counted operations, per layer and in total.

    Per layer: its spike messages (events x destination cores) x message energy, its synaptic
    operations x synaptic_op_pj (attributed to the sending layer), and its neurons' active and
    inactive updates.
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


# ============================================================================================
# Figures
# ============================================================================================

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def plot_raster(raster: dict, class_names: Optional[list], path: Path) -> Path:
    """Input counts, hidden spikes and the readout's running class scores of one sample."""
    plt = _pyplot()
    hidden = raster["hidden"]
    ratios = [1.2] + [1.0] * len(hidden) + [0.8]
    fig, axes = plt.subplots(len(ratios), 1, figsize=(10, 2.3 * len(ratios)), sharex=True,
                             gridspec_kw={"height_ratios": ratios}, layout="constrained")
    inputs = raster["input"]
    image = axes[0].imshow(inputs.T, aspect="auto", origin="lower", cmap="Greys", interpolation="nearest")
    fig.colorbar(image, ax=axes[0], label="spikes per bin")
    axes[0].set(ylabel="input channel", title=f"sample {raster['index']}: input ({int(inputs.sum())} spikes)")
    for ax, (index, spikes) in zip(axes[1:], enumerate(hidden)):
        steps, neurons = np.nonzero(spikes)
        ax.scatter(steps, neurons, s=2, marker="|", color="tab:blue")
        ax.set(ylabel="neuron", ylim=(-0.5, spikes.shape[1] - 0.5),
               title=f"hidden {index + 1}: {int(spikes.sum())} spikes, "
                     f"{int((spikes.sum(axis=0) > 0).sum())} of {spikes.shape[1]} neurons fire")
    scores = np.cumsum(raster["readout_input"], axis=0)
    image = axes[-1].imshow(scores.T, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=axes[-1], label="summed input")
    name = (lambda i: class_names[i] if class_names and i < len(class_names) else str(i))
    axes[-1].set(ylabel="class", xlabel="time step",
                 title=f"readout: running sum of its synaptic input (label {name(raster['label'])}, "
                       f"prediction {name(raster['prediction'])})")
    return _save(fig, path)


def plot_rates(activity: list, variant: str, path: Path) -> Path:
    """Spikes per neuron per sample by layer, and each hidden neuron's rate, sorted."""
    plt = _pyplot()
    spiking = [a for a in activity if a.role in ("input", "hidden")]
    fig, (ax_bar, ax_sorted) = plt.subplots(1, 2, figsize=(12, 3.8), layout="constrained")
    values = [a.spikes_per_neuron_per_sample for a in spiking]
    bars = ax_bar.bar([a.name for a in spiking], values, color=["tab:gray"] + ["tab:blue"] * (len(spiking) - 1))
    ax_bar.bar_label(bars, fmt="%.2f")
    paper = PAPER_TABLE4_SPIKES.get(f"delay-{variant}") if variant else None
    if paper is not None:
        ax_bar.axhline(paper, color="tab:red", linestyle="--", label=f"paper Table 4, delay-{variant} on SHD: {paper}")
        ax_bar.legend(loc="upper right", fontsize=8)
    ax_bar.set(ylabel="spikes per neuron per sample", title="activity by layer")
    for a in spiking[1:]:
        rates = np.sort(a.per_neuron_spikes / max(a.samples, 1))[::-1]
        ax_sorted.plot(np.arange(len(rates)), rates, label=f"{a.name} ({100 * a.silent_share:.0f}% silent per sample)")
    ax_sorted.set(xlabel="neuron (sorted)", ylabel="spikes per sample", title="per-neuron rates", yscale="symlog")
    ax_sorted.legend(fontsize=8)
    for ax in (ax_bar, ax_sorted):
        ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_delays(network, path: Path) -> Path:
    """Histogram of the integer delays (steps) stored in the .net file, per connection layer."""
    plt = _pyplot()
    names = _layer_names(network)[1:]
    fig, axes = plt.subplots(1, len(network.layers), figsize=(4 * len(network.layers), 3.2), layout="constrained",
                             squeeze=False)
    for ax, layer, name in zip(axes[0], network.layers, names):
        delays = np.asarray(layer.delay).ravel()
        ax.hist(delays, bins=np.arange(int(delays.max(initial=0)) + 2) - 0.5, color="tab:blue", alpha=0.85)
        ax.set(title=f"into {name}: mean {delays.mean():.2f}, max {int(delays.max(initial=0))}",
               xlabel="delay (steps)", ylabel="synapses")
        ax.grid(alpha=0.3)
    return _save(fig, path)


def neuron_parameter_fractions(layer) -> dict:
    """A hidden layer's neuron parameters as the float model sees them: alpha, beta, a (fractions)
    and b (threshold units); for a CUBA layer alpha = 1 - vDecay / 4096 only."""
    params = layer.neuron
    if isinstance(params, FixedNeuronParams):
        threshold = np.asarray(params.threshold, dtype=np.float64)
        return {"alpha": np.asarray(params.alpha) / C.DECAY_UNITY, "beta": np.asarray(params.beta) / C.DECAY_UNITY,
                "a": np.asarray(params.a) / C.DECAY_UNITY, "b": np.asarray(params.b) / threshold}
    if isinstance(params, CubaFixedParams):
        return {"alpha": 1.0 - np.asarray(params.voltage_decay) / C.DECAY_UNITY}
    return {}


def plot_neuron_parameters(network, path: Path) -> Path:
    plt = _pyplot()
    hidden = [layer for layer in network.layers if layer.neuron is not None]
    names = ("alpha", "beta", "a", "b")
    units = {"alpha": "membrane decay per step", "beta": "adaptation decay per step",
             "a": "membrane -> adaptation coupling", "b": "adaptation jump (threshold units)"}
    fig, axes = plt.subplots(max(len(hidden), 1), len(names), figsize=(13, 2.8 * max(len(hidden), 1)),
                             squeeze=False, layout="constrained")
    for row, layer in enumerate(hidden):
        values = neuron_parameter_fractions(layer)
        for col, name in enumerate(names):
            ax = axes[row, col]
            if name in values:
                ax.hist(values[name], bins=30, color="tab:orange", alpha=0.85)
                ax.set(title=f"hidden {row + 1}: {name}", xlabel=units[name])
            else:
                ax.text(0.5, 0.5, f"{name}: not in a {layer.neuron_variant} layer", ha="center", va="center",
                        transform=ax.transAxes)
                ax.set_axis_off()
            ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_energy(energy: dict, comparison: dict, label: str, path: Path) -> Path:
    plt = _pyplot()
    names = ["SNN estimate", "dense float32", "dense int8", "GRU float32", "GRU int8"]
    values = [energy["per_sample"]["total_pj"], comparison["dense"]["float32_pj"], comparison["dense"]["int8_pj"],
              comparison["gru"]["float32_pj"], comparison["gru"]["int8_pj"]]
    fig, ax = plt.subplots(figsize=(9, 3.8), layout="constrained")
    bars = ax.bar(names, [v / 1e6 for v in values], color=["tab:blue"] + ["tab:gray"] * 4)
    ax.bar_label(bars, fmt="%.3g")
    ax.set(ylabel="energy per sample (uJ)", yscale="log",
           title="energy per sample: SNN (counted operations) vs non-spiking networks (45 nm MACs)")
    import textwrap

    fig.text(0.01, -0.02, textwrap.fill(f"SNN figures: {label}", 150), fontsize=7, va="top")
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


# ============================================================================================
# The report
# ============================================================================================

def resolve_dataset(dataset):
    """(torch Dataset, class names, description) of ``dataset``: a name ('shd': the embedded test
    split), a DatasetSplits (its test split) or a torch Dataset of (x, label)."""
    if isinstance(dataset, str):
        from snn_toolchain.train.data import build_datasets

        # No padding is needed: the emulator appends empty steps up to the network's run length.
        splits = build_datasets(dataset, None, pad_steps=0)
        return splits.test, splits.class_names, f"{splits.name} test split ({splits.source})"
    if hasattr(dataset, "test") and hasattr(dataset, "n_classes"):
        return dataset.test, dataset.class_names, f"{dataset.name} test split ({dataset.source})"
    return dataset, None, type(dataset).__name__


def build_report(net_path, dataset="shd", n_samples: Optional[int] = None, out_dir=None, energy_file=None, *,
                 batch_size: int = 256, device: str = "cpu", raster_sample: int = 0, limits=None,
                 count_zero_weights: bool = False, plots: bool = True) -> dict:
    """Activity and energy report of a ``.net`` file on (the first ``n_samples`` of) ``dataset``.

    Args:
        net_path: the ``.net`` file.
        dataset: 'shd' (the embedded test split), a DatasetSplits (test split) or a torch Dataset.
        n_samples: how many samples (the first ones); None: all.
        out_dir: where report.md, report.json and the PNGs go (default: ``<net folder>/report``).
        energy_file: JSON of per-operation energies (pJ) replacing the Loihi 1 defaults (docs/energy.md).
        limits: Loihi 2 limits for the core plan that sets the spike-message count
            (default ``snn_toolchain.lava_models.loihi2.LOIHI2_LIMITS``).
        count_zero_weights: count synapses of weight 0 in the fan-out (default: no).
        plots: write the PNG figures.

    Returns the report as a dict (the content of report.json), with ``files`` listing what was written.
    """
    import time

    from torch.utils.data import Subset

    from snn_toolchain.export.netfile import read_net
    from snn_toolchain.export.loihi2_plan import LOIHI2_LIMITS, plan_partition
    from snn_toolchain.train.data import make_loader

    started = time.perf_counter()
    net_path = Path(net_path)
    network = read_net(net_path)
    out_dir = Path(out_dir) if out_dir is not None else net_path.parent / "report"
    table = load_energy_table(energy_file) if energy_file is not None else EnergyTable()
    data, class_names, description = resolve_dataset(dataset)
    if n_samples is not None:
        if int(n_samples) < 1:
            raise ToolchainError(f"n_samples must be at least 1, got {n_samples}")
        data = Subset(data, range(min(int(n_samples), len(data))))
    plan = plan_partition(network, limits or LOIHI2_LIMITS)
    destination_cores = [max(p.cores, 1) for p in plan.layers]
    activity, run = measure_activity(network, make_loader(data, batch_size), device=device,
                                     destination_cores=destination_cores, count_zero_weights=count_zero_weights,
                                     keep_sample=raster_sample)
    energy = snn_energy(activity, table)
    synops = sum(a.per_sample(a.synaptic_ops) for a in activity)
    comparison = dense_equivalents(network, table, synops)
    hidden = [a for a in activity if a.role == "hidden"]
    hidden_spikes = sum(a.spikes for a in hidden)
    hidden_neurons = sum(a.neurons for a in hidden)
    report = {
        "net_file": str(net_path), "variant": network.variant, "dataset": description,
        "samples": run["samples"], "fixed_point_accuracy": run["accuracy"],
        "time_steps": network.time_steps, "run_steps": network.run_steps,
        "layers": [a.to_dict() for a in activity],
        "hidden_spikes_per_neuron_per_sample": hidden_spikes / max(run["samples"] * hidden_neurons, 1),
        "paper_table4_spikes_per_neuron_per_sample": PAPER_TABLE4_SPIKES,
        "synaptic_ops_per_sample": synops,
        "energy": {"model": table.to_dict(), **energy},
        "non_spiking_comparison": comparison,
        "readout_integrator": {
            "peak_membrane": run["readout_peak"], "limit": C.STATE_MAX,
            "headroom_bits": math.log2(C.STATE_MAX / run["readout_peak"]) if run["readout_peak"] else None,
            "meaning": "largest |running sum of the readout input + bias| << 6 over the samples: what a CUBA "
                       "readout integrating on the chip would hold in its 24-bit voltage"},
        "loihi2_plan": {"fits": plan.fits, "total_cores": plan.total_cores,
                        "cores_per_layer": [p.cores for p in plan.layers]},
        "counting": {"fan_out": "all synapses" if count_zero_weights else "non-zero weights",
                     "input_events": "one graded spike message per non-zero (step, channel) bin",
                     "active_update": "a step with non-zero synaptic input, a bias, or a spike"},
    }
    files = []
    if plots:
        if run["raster"] is not None:
            files.append(plot_raster(run["raster"], class_names, out_dir / "raster.png"))
        files.append(plot_rates(activity, network.variant, out_dir / "rates.png"))
        files.append(plot_delays(network, out_dir / "delays.png"))
        if any(layer.neuron is not None for layer in network.layers):
            files.append(plot_neuron_parameters(network, out_dir / "neuron_parameters.png"))
        files.append(plot_energy(energy, comparison, table.label, out_dir / "energy.png"))
    report["seconds"] = time.perf_counter() - started
    report["files"] = [str(p) for p in files] + [str(out_dir / "report.md"), str(out_dir / "report.json")]
    write_text(out_dir / "report.md", render_markdown(report, [Path(p).name for p in files]))
    write_json(out_dir / "report.json", report)
    return report


def _pj(value: float) -> str:
    """An energy in pJ, printed in the unit that keeps it readable."""
    for unit, scale in (("mJ", 1e9), ("uJ", 1e6), ("nJ", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g} pJ"


def _readout_line(readout: dict) -> str:
    if not readout["peak_membrane"]:
        return "Readout: its input is zero on every sample."
    return (f"Readout integrated on the chip: its 24-bit voltage would peak at {readout['peak_membrane']:,} of "
            f"{readout['limit']:,} ({readout['headroom_bits']:.1f} bits of headroom"
            f"{'; it would SATURATE' if readout['headroom_bits'] < 0 else ''}).")


def render_markdown(report: dict, figures: list) -> str:
    energy, comparison, model = report["energy"], report["non_spiking_comparison"], report["energy"]["model"]
    lines = [f"# Activity and energy report: `{Path(report['net_file']).name}`", "",
             f"- network: {report['variant']}, {report['time_steps']} input steps ({report['run_steps']} steps on Lava)",
             f"- data: {report['dataset']}, {report['samples']} samples; fixed-point accuracy "
             f"{100 * report['fixed_point_accuracy']:.2f}%",
             f"- hidden neurons fire {report['hidden_spikes_per_neuron_per_sample']:.2f} spikes per neuron per sample "
             f"(paper, Table 4, on SHD: delay-AdLIF+ {PAPER_TABLE4_SPIKES['delay-adlif+']}, "
             f"AdLIF+ {PAPER_TABLE4_SPIKES['adlif+']}, LIF {PAPER_TABLE4_SPIKES['lif']})",
             "", "## Activity per sample (mean over the samples)", "",
             "| layer | neurons | spikes / neuron | spike events | synaptic ops | neuron updates | active updates "
             "| silent neurons | never fire |",
             "|---|---|---|---|---|---|---|---|---|"]
    for layer in report["layers"]:
        silent = f"{100 * layer['silent_share_per_sample']:.1f}%" if "silent_share_per_sample" in layer else ""
        never = f"{100 * layer['never_active_share']:.1f}%" if "never_active_share" in layer else ""
        spikes = f"{layer['spikes_per_neuron_per_sample']:.3g}" if layer["role"] != "readout" else "(no spikes)"
        lines.append(f"| {layer['name']} | {layer['neurons']} | {spikes} | {layer['spike_events_per_sample']:.1f} | "
                     f"{layer['synaptic_ops_per_sample']:.1f} | {layer['neuron_updates_per_sample']:.0f} | "
                     f"{layer['active_updates_per_sample']:.0f} | {silent} | {never} |")
    lines += ["", "Synaptic ops: spike events x fan-out (" + report["counting"]["fan_out"] + ") into the next layer. "
              "Input events: " + report["counting"]["input_events"] + ". Active update: "
              + report["counting"]["active_update"] + ".", "",
              "## Energy estimate per sample", "", f"**Figures: {model['label']}.**", "",
              "| layer | synaptic ops | neuron updates | spike messages | total |", "|---|---|---|---|---|"]
    for layer in energy["layers"]:
        lines.append(f"| {layer['name']} | {_pj(layer['synaptic_pj'])} | {_pj(layer['neuron_update_pj'])} | "
                     f"{_pj(layer['spike_routing_pj'])} | {_pj(layer['total_pj'])} |")
    totals = energy["per_sample"]
    lines.append(f"| **total** | {_pj(totals['synaptic_pj'])} | {_pj(totals['neuron_update_pj'])} | "
                 f"{_pj(totals['spike_routing_pj'])} | **{_pj(totals['total_pj'])}** |")
    lines += ["", "| figure | pJ | source |", "|---|---|---|"]
    lines += [f"| {key} | {value:g} | {model['sources'].get(key, '')} |" for key, value in model["figures_pj"].items()]
    if model["measured"]:
        lines += ["", "Measured on hardware (from the energy file): " +
                  ", ".join(f"{k} = {v}" for k, v in model["measured"].items())]
    lines += ["", "## Non-spiking networks of the same size (45 nm, Horowitz 2014)", "",
              "| network | MACs per step | MACs per sample | float32 | int8 |", "|---|---|---|---|---|"]
    for key in ("dense", "gru"):
        entry = comparison[key]
        lines.append(f"| {entry['description']} | {entry['macs_per_step']:,} | {entry['macs_per_sample']:,} | "
                     f"{_pj(entry['float32_pj'])} | {_pj(entry['int8_pj'])} |")
    lines += [f"| this SNN's {report['synaptic_ops_per_sample']:,.0f} synaptic ops as float32 adds | | | "
              f"{_pj(comparison['snn_synaptic_ops_as_float32_adds_pj'])} | |", "",
              f"Over {comparison['time_steps']} input steps per sample. The two estimates are of different kinds: "
              "the SNN's comes from per-operation figures of a neuromorphic chip (see its label), the others from "
              "arithmetic alone (no memory access, no data movement), so the ratio is indicative, not a measurement.",
              "", "## Loihi 2 plan", "",
              _readout_line(report["readout_integrator"]), "",
              f"{'Fits' if report['loihi2_plan']['fits'] else 'Does not fit'}: {report['loihi2_plan']['total_cores']} "
              f"neuro-cores (per layer {report['loihi2_plan']['cores_per_layer']}); each spike counts one message per "
              "destination core.", ""]
    if figures:
        lines += ["## Figures", ""] + [f"![{name}]({name})" for name in figures] + [""]
    return "\n".join(lines)
