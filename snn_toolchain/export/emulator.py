"""Batched fixed-point emulator of an exported network: exactly the integers Lava computes.

It runs a whole batch of samples at once, on CPU or GPU, with the neuron update of
``snn_toolchain.neurons.dynamics`` (``adlif_fixed_step`` / ``cuba_fixed_step``), the same
function the Lava ``fixed_pt`` ProcessModel calls (each layer's step is its neuron kind's, from the
registry ``snn_toolchain.neurons.registry``).

Timing follows Lava (measured, docs/fixed_point.md): a spike sent at step ``r`` through a synapse
of delay ``d`` reaches the next layer at step ``r + 1 + d``. A sample of ``T`` input steps is run
for ``T + L`` steps (``L`` connection layers) so that the last input reaches the readout; samples
of more than ``T`` steps are refused (the sample contract, ``snn_toolchain/samples.py``, as by Lava).
Class scores are the readout's synaptic input summed over the run, plus ``T`` times its bias
(the training model computes its scores so too); for a network whose last layer spikes (stock
lava-dl networks, imported NIR graphs), its spike counts. ``spikes`` then holds that layer too.

The synapse and the neuron loop are ``train/model/deployed.py``'s (``deployed_synaptic_input``,
``run_fixed_point``), which the training model's deployed arithmetic runs too; here they run on the
``.net`` file's int64 integers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from snn_toolchain.export.netfile import available_bytes
from snn_toolchain.quantized_network import NetworkError
from snn_toolchain.samples import class_scores, whole_samples, zero_padded
from snn_toolchain.evaluation import RunResult, evaluate_backend
from snn_toolchain.train.data.loading import make_loader
from snn_toolchain.train.model.deployed import deployed_synaptic_input, run_fixed_point


@dataclass
class EmulationResult:
    scores: torch.Tensor              # int64 (batch, classes)
    spikes: list[torch.Tensor]        # per spiking layer, uint8 (batch, run_steps, neurons)
    readout_input: torch.Tensor       # int64 (batch, run_steps, classes): the readout synapse's output
    # per hidden layer, int64 (batch, run_steps, neurons): its synaptic input; None unless kept
    synaptic_input: list[torch.Tensor] | None = None

    def predictions(self) -> torch.Tensor:
        return self.scores.argmax(dim=1)

    def to_run_result(self) -> RunResult:
        """The same numbers as numpy, in the form every backend reports (snn_toolchain.evaluation)."""
        kept = None if self.synaptic_input is None else [a.cpu().numpy() for a in self.synaptic_input]
        return RunResult(self.scores.cpu().numpy(), [s.cpu().numpy() for s in self.spikes],
                         self.readout_input.cpu().numpy(), kept)

    def spike_counts(self) -> list[torch.Tensor]:
        """Spikes per neuron per sample, (batch, neurons) for each hidden layer."""
        return [s.sum(dim=1, dtype=torch.int64) for s in self.spikes]


def _to_device(params, device):
    return type(params)(*(torch.as_tensor(np.asarray(p), dtype=torch.int64, device=device) for p in params))


class Emulator:
    """Holds a QuantizedNetwork's integers on ``device``; call it on (batch, time, inputs) counts."""

    def __init__(self, network, device: str | torch.device = "cpu"):
        self.network = network
        self.device = torch.device(device)
        self.layers = []
        for layer in network.layers:
            # the biases: hidden ones are in the neuron parameters, the readout's in samples.class_scores
            tensors = [torch.as_tensor(x, dtype=torch.int64, device=self.device) for x in (layer.weight, layer.delay)]
            neuron = _to_device(layer.neuron, self.device) if layer.neuron is not None else None
            self.layers.append((*tensors, neuron, int(layer.input_shift)))

    @torch.no_grad()
    def __call__(self, inputs: torch.Tensor, keep_synaptic_input: bool = False) -> EmulationResult:
        """Run (batch, time, inputs) whole spike counts for ``run_steps``; ``keep_synaptic_input``
        also returns each hidden layer's synaptic input (for activity counting)."""
        # samples longer than the exported time_steps: refused, as by Lava
        counts = whole_samples(torch.as_tensor(inputs, device=self.device), self.network)
        chunk = self.samples_per_chunk(keep_synaptic_input)
        if len(counts) <= chunk:
            return self._run_batch(counts, keep_synaptic_input)
        # as many samples at a time as memory allows: long samples (time_steps up to 4096) and
        # large batches would not fit at once
        parts = [self._run_batch(counts[i:i + chunk], keep_synaptic_input) for i in range(0, len(counts), chunk)]

        def joined(name):
            values = [getattr(part, name) for part in parts]
            if values[0] is None:
                return None
            if isinstance(values[0], list):
                return [torch.cat(layer) for layer in zip(*values)]
            return torch.cat(values)

        return EmulationResult(joined("scores"), joined("spikes"), joined("readout_input"), joined("synaptic_input"))

    def bytes_per_sample(self, keep_synaptic_input: bool = False) -> int:
        """An upper estimate of the memory one sample takes in a batch, in bytes: int64 and float64
        traces of every layer at every run step, and the widest layer's delay windows (the GEMM)."""
        units = self.network.n_inputs + sum(int(layer.weight.shape[0]) for layer in self.network.layers)
        windows = max(int(layer.weight.shape[1]) * (int(np.max(layer.delay, initial=0)) + 2)
                      for layer in self.network.layers)
        per_step = 8 * (6 * units + windows) + (8 * units if keep_synaptic_input else 0)
        return int(self.network.run_steps) * per_step

    def samples_per_chunk(self, keep_synaptic_input: bool = False) -> int:
        """How many samples to run at once: what half the available memory holds (at least one; a
        sample that alone needs more is refused in one line)."""
        available = available_bytes()
        per_sample = self.bytes_per_sample(keep_synaptic_input)
        if available is None:
            return 1 << 30
        if per_sample > available // 2:
            raise NetworkError(f"one sample of this network ({self.network.run_steps} run steps) needs about "
                               f"{per_sample / 2**30:.1f} GiB in the emulator, more than half of the "
                               f"{available / 2**30:.1f} GiB available; run fewer time steps or on a larger machine")
        return max(1, (available // 2) // per_sample)

    def _run_batch(self, counts: torch.Tensor, keep_synaptic_input: bool) -> EmulationResult:
        x = zero_padded(counts, self.network.run_steps)
        spikes, synaptic_inputs = [], []
        for weight, delay, neuron, shift in self.layers:
            synaptic_input = deployed_synaptic_input(x, weight, delay, float(1 << shift)).to(torch.int64)
            if neuron is None:     # the summing readout, last
                break
            x = run_fixed_point(neuron, synaptic_input).to(torch.uint8)
            spikes.append(x)
            if keep_synaptic_input:
                synaptic_inputs.append(synaptic_input)
        readout_input = synaptic_input         # the last layer's synaptic input, either readout
        scores = class_scores(self.network, readout_input, spikes[-1] if spikes else None)
        if self.network.readout == "spikes" and keep_synaptic_input:
            synaptic_inputs.pop()              # kept per hidden layer; the output's is readout_input
        return EmulationResult(scores, spikes, readout_input, synaptic_inputs if keep_synaptic_input else None)

    def run(self, inputs, keep_synaptic_input: bool = False) -> RunResult:
        """The emulator as a backend (snn_toolchain.evaluation): a batch of spike counts or graded payloads
        (batch, time, inputs) -> RunResult (int64 scores, uint8 spikes per hidden layer)."""
        return self(inputs, keep_synaptic_input).to_run_result()

    def evaluate(self, dataset, batch_size: int = 256) -> dict:
        """Accuracy and spike counts of the whole ``dataset`` (a torch Dataset of (x, label)),
        through the one evaluation loop (``snn_toolchain.evaluation.evaluate_backend``)."""
        evaluation = evaluate_backend(self.run, make_loader(dataset, batch_size), keep_run=False)
        return {"accuracy": evaluation.accuracy, "samples": evaluation.samples,
                "spikes_per_neuron_per_sample": evaluation.spikes_per_neuron_per_sample}
