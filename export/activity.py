"""What an exported network does, counted on the batched fixed-point emulator: spikes per neuron,
synaptic operations (each spike times its fan-out), active and inactive neuron updates, silent
neurons and spike messages between cores. Counts are per sample, averaged over the samples given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from snn_toolchain import constants as C
from snn_toolchain.errors import ToolchainError
from snn_toolchain.export.emulator import Emulator, delayed_synaptic_input


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


def layer_names(network) -> list:
    hidden = len(network.layers) - 1
    return ["input"] + [f"hidden {i + 1}" for i in range(hidden)] + ["readout"]


def measure_activity(network, batches, *, device: str = "cpu", destination_cores: Optional[list] = None,
                     count_zero_weights: bool = False, keep_sample: int = 0) -> tuple:
    """Run the emulator over ``batches`` (iterable of (x, labels)) and count everything.

    ``destination_cores[l]``: cores that hold connection layer ``l`` (each spike into it is one
    message per core); default 1. Returns (list of LayerActivity: input, hidden..., readout;
    dict with accuracy, samples, and the rasters of sample ``keep_sample`` for the plots).
    """
    emulator = Emulator(network, device=device)
    names = layer_names(network)
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
        counts = whole_counts(x, network.time_steps).to(emulator.device)
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


def whole_counts(x, time_steps: int) -> torch.Tensor:
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
