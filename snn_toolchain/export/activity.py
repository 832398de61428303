"""What an exported network does, counted on the runs of the batched fixed-point emulator (its
``RunResult``s, with each layer's synaptic input): spikes per neuron, synaptic operations (each
spike times its fan-out), active and inactive neuron updates, silent neurons and spike messages
between cores. Counts are per sample, averaged over the samples given.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from snn_toolchain import constants as C
from snn_toolchain.errors import ToolchainError
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.evaluation import evaluate_backend
from snn_toolchain.samples import whole_samples, zero_padded


@dataclass
class LayerActivity:
    """Counts of one layer, summed over ``samples`` samples (the *_per_sample properties divide)."""

    name: str
    role: str                     # "input", "hidden", "readout" (summing) or "output" (a spiking last layer)
    neurons: int
    samples: int = 0
    spikes: int = 0               # input: the spike counts themselves
    spike_events: int = 0         # spike messages sent (input: non-zero bins; hidden: spikes)
    synaptic_ops: int = 0         # spike events x fan-out into the next layer
    neuron_updates: int = 0
    active_updates: int = 0
    silent_neuron_samples: int = 0    # (sample, neuron) pairs without a spike
    message_bits: int = 0             # input only: payload bits of each message (0: binary spikes)
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
        if self.role == "input":
            out["message_bits"] = self.message_bits
            out["payload_bits_per_sample"] = self.per_sample(self.spike_events) * self.message_bits
        if self.role in ("hidden", "output"):
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
                     count_zero_weights: bool = False, keep_sample: int = 0, backend=None) -> tuple:
    """Run ``backend`` over ``batches`` (iterable of (x, labels)) and count everything in its runs.

    backend: a callable (batch of whole spike counts -> RunResult with ``synaptic_input``); default
    the batched emulator on ``device`` (``Emulator.run`` keeping the synaptic input). The counts
    come from the runs it reports, through the one evaluation loop (``evaluate_backend``), except
    the input layer's, which are the samples themselves. ``destination_cores[l]``: cores that hold
    connection layer ``l`` (each spike into it is one message per core); default 1. Returns (list of
    LayerActivity: input, hidden..., readout; dict with accuracy, samples, and the rasters of sample
    ``keep_sample`` for the plots).
    """
    if backend is None:
        emulator = Emulator(network, device=device)
        backend = functools.partial(emulator.run, keep_synaptic_input=True)
    names = layer_names(network)
    n_layers = len(network.layers)
    cores = list(destination_cores or [1] * n_layers)
    activity = [LayerActivity(names[0], "input", network.n_inputs, destination_cores=cores[0])]
    for index, layer in enumerate(network.layers):
        role = ("readout" if network.readout == "sum" else "output") if index == n_layers - 1 else "hidden"
        next_cores = cores[index + 1] if index + 1 < n_layers else 0
        activity.append(LayerActivity(names[index + 1], role, int(layer.weight.shape[0]), destination_cores=next_cores))
    counter = _RunCounter(network, activity, count_zero_weights, keep_sample)
    evaluation = evaluate_backend(backend, ((whole_samples(torch.as_tensor(x), network, trim_empty_tail=True), labels)
                                           for x, labels in batches),
                                  keep_run=False, on_batch=counter.count)
    if evaluation.samples == 0:
        raise ToolchainError("the dataset has no samples to report on")
    return activity, {"accuracy": evaluation.accuracy, "samples": evaluation.samples, "raster": counter.kept,
                      "readout_peak": counter.readout_peak}


class _RunCounter:
    """Adds one batch's run (a RunResult) to the LayerActivity counts of ``measure_activity``."""

    def __init__(self, network, activity: list, count_zero_weights: bool, keep_sample: int):
        self.network, self.activity, self.keep_sample = network, activity, keep_sample
        self.fan_outs = [fan_out(layer.weight, count_zero_weights) for layer in network.layers]
        self.biased = [np.asarray(layer.bias) != 0 for layer in network.layers]
        self.readout_bias = np.asarray(network.layers[-1].bias, dtype=np.int64)
        self.readout_peak, self.total, self.kept = 0, 0, None

    def count(self, inputs, labels, run) -> None:
        network, activity = self.network, self.activity
        if run.synaptic_input is None:
            raise ToolchainError("the backend does not report its neurons' synaptic input, which the activity "
                                 "count needs; use the emulator")
        counts = np.asarray(inputs, dtype=np.int64)
        padded = zero_padded(counts, network.run_steps)
        if counts.size:
            activity[0].message_bits = max(activity[0].message_bits, network.input_message_bits(int(counts.max())))
        sources = [padded] + [np.asarray(s, dtype=np.int64) for s in run.spikes]
        batch = counts.shape[0]
        n_layers = len(network.layers)
        for index in range(n_layers):
            source = sources[index]
            events = (source > 0).sum(axis=1)                                     # (batch, n_source)
            sender = activity[index]
            sender.spikes += int(source.sum())
            sender.spike_events += int(events.sum())
            sender.synaptic_ops += int((events @ self.fan_outs[index]).sum())
            # the neurons fed by this connection
            receiver = activity[index + 1]
            if index == n_layers - 1:
                synaptic_input = np.asarray(run.readout_input)
                fired = (np.asarray(run.spikes[index]) > 0 if network.readout == "spikes"
                         else np.zeros(synaptic_input.shape, dtype=bool))
            else:
                synaptic_input = np.asarray(run.synaptic_input[index])
                fired = np.asarray(run.spikes[index]) > 0
            active = (synaptic_input != 0) | fired | self.biased[index]
            receiver.neuron_updates += batch * network.run_steps * receiver.neurons
            receiver.active_updates += int(active.sum())
        for index, spikes in enumerate(run.spikes):
            layer_activity = activity[index + 1]
            per_sample_neuron = np.asarray(spikes, dtype=np.int64).sum(axis=1)      # (batch, n)
            layer_activity.silent_neuron_samples += int((per_sample_neuron == 0).sum())
            totals = per_sample_neuron.sum(axis=0)
            layer_activity.per_neuron_spikes = totals if layer_activity.per_neuron_spikes is None \
                else layer_activity.per_neuron_spikes + totals
        for layer_activity in activity:
            layer_activity.samples += batch
        # A readout integrated on the chip (CUBA, memoryless current, no leak) holds this running sum
        # << 6 in its 24-bit voltage: the peak says how close it comes to saturating.
        running = np.cumsum(np.asarray(run.readout_input, dtype=np.int64) + self.readout_bias, axis=1) \
            << C.ACTIVATION_SHIFT
        self.readout_peak = max(self.readout_peak, int(np.abs(running).max()))
        self.total += batch
        if self.kept is None and self.keep_sample < self.total:
            k = self.keep_sample - (self.total - batch)
            self.kept = {"input": padded[k], "hidden": [np.asarray(s[k]) for s in run.spikes],
                         "readout_input": np.asarray(run.readout_input[k]), "label": int(labels[k]),
                         "prediction": int(run.predictions()[k]), "index": self.keep_sample}
