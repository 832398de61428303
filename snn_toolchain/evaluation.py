"""What a backend computed for a batch of samples, the one evaluation loop, and the comparison of two runs.

A backend is a callable from a batch of samples, (batch, time, inputs), to a :class:`RunResult`:
the float model (``train/model/float_backend.py``), the batched emulator (``Emulator.run``), Lava's CPU
simulator (``LavaBackend``), a Loihi 2 chip. :func:`evaluate_backend` scores any of them on
labelled batches; parity is
:func:`compare_runs` of two of them: emulator against Lava (``lava_models/parity.py``), emulator
against the chip (``lava_models/loihi2.py``). Core module: numpy only.

Steps are run steps (input steps plus one step of latency per connection layer); spikes are 0/1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RunResult:
    """K samples through one backend.

    scores: (K, classes) class scores; spikes: per hidden layer (K, run_steps, neurons) 0/1;
    readout_input: (K, run_steps, classes), the readout synapse's output at every step (None where
    a backend cannot read it); synaptic_input: per hidden layer (K, run_steps, neurons), the input
    its neurons receive at every step in weight units (None where a backend does not report it; the
    emulator does when asked, for the activity report).
    """

    scores: np.ndarray
    spikes: list = field(default_factory=list)
    readout_input: np.ndarray | None = None
    synaptic_input: list | None = None

    @classmethod
    def from_samples(cls, samples) -> "RunResult":
        """From per-sample results with ``.scores``, ``.spikes`` (per layer (steps, n)) and
        ``.readout_input``, e.g. a Lava runner's."""
        samples = list(samples)
        layers = len(samples[0].spikes) if samples else 0
        readouts = [s.readout_input for s in samples]
        return cls(np.stack([np.asarray(s.scores) for s in samples]),
                   [np.stack([np.asarray(s.spikes[layer], dtype=np.uint8) for s in samples]) for layer in range(layers)],
                   None if any(r is None for r in readouts) else np.stack([np.asarray(r) for r in readouts]))

    @classmethod
    def concatenate(cls, runs) -> "RunResult":
        """Runs of consecutive batches as one run of all their samples, in order."""
        runs = list(runs)

        def joined(per_run):
            return None if any(p is None for p in per_run) else [np.concatenate(layer) for layer in zip(*per_run)]

        readouts = joined([[r.readout_input] if r.readout_input is not None else None for r in runs])
        return cls(np.concatenate([np.asarray(r.scores) for r in runs]), joined([r.spikes for r in runs]) or [],
                   None if readouts is None else readouts[0], joined([r.synaptic_input for r in runs]))

    @property
    def samples(self) -> int:
        return len(self.scores)

    def predictions(self) -> np.ndarray:
        return np.asarray(self.scores).argmax(axis=1)

    def accuracy(self, labels) -> float:
        return float(np.mean(self.predictions() == np.asarray(labels)))

    def spike_counts(self) -> list[int]:
        """Total spikes per hidden layer, over every sample and step."""
        return [int(np.asarray(s).sum()) for s in self.spikes]


@dataclass
class Evaluation:
    """A backend's pass over labelled samples (:func:`evaluate_backend`).

    accuracy: fraction in [0, 1]; samples: how many; spike_counts: total spikes per hidden layer
    over every sample and step; layer_sizes: neurons per hidden layer; run: every sample's
    :class:`RunResult`, in order (None unless ``keep_run``).
    """

    accuracy: float
    samples: int
    spike_counts: list
    layer_sizes: list
    run: RunResult | None = None

    @property
    def spikes_per_neuron_per_sample(self) -> list:
        return [total / (max(self.samples, 1) * n) for total, n in zip(self.spike_counts, self.layer_sizes)]


def evaluate_backend(backend, batches, *, keep_run: bool = True, on_batch=None) -> Evaluation:
    """Run ``backend`` (a callable: a batch of inputs, (batch, time, inputs) -> :class:`RunResult`)
    over ``batches`` (an iterable of (inputs, labels)) and score it: the one evaluation loop of the
    float model, the emulator and Lava.

    keep_run: concatenate every batch's run into ``Evaluation.run`` (costs memory: the spikes of
    every sample); on_batch(inputs, labels, run): called after each batch, e.g. to count activity
    without keeping the runs.
    """
    correct = total = 0
    counts, sizes, runs = None, [], []
    for inputs, labels in batches:
        run = backend(inputs)
        labels = np.asarray(labels)
        correct += int(np.sum(run.predictions() == labels))
        total += len(labels)
        batch_counts = run.spike_counts()
        counts = batch_counts if counts is None else [a + b for a, b in zip(counts, batch_counts)]
        sizes = [int(np.shape(s)[2]) for s in run.spikes]
        if on_batch is not None:
            on_batch(inputs, labels, run)
        if keep_run:
            runs.append(run)
    return Evaluation(correct / max(total, 1), total, counts or [], sizes,
                      RunResult.concatenate(runs) if keep_run and runs else None)


@dataclass
class RunComparison:
    """Two runs of the same samples, compared exactly. ``first_difference`` names the earliest
    differing sample, layer ('1', '2', ..., 'readout'), step and neurons, with both values."""

    spikes_identical: bool
    readout_identical: bool
    scores_identical: bool
    predictions_identical: bool
    mismatched_samples: list
    first_difference: dict | None
    prediction_agreement: float

    @property
    def ok(self) -> bool:
        return self.spikes_identical and self.readout_identical and self.scores_identical and self.predictions_identical


def first_difference(reference_layers: list, other_layers: list, layer_names: list,
                     names: tuple = ("emulator", "lava")) -> dict | None:
    """Earliest (by step, then layer order) difference in one sample; arrays are (steps, n)."""
    best = None
    for name, ref, other in zip(layer_names, reference_layers, other_layers):
        differs = ref != other
        if not differs.any():
            continue
        step = int(np.argmax(differs.any(axis=1)))
        if best is None or step < best[0]:
            neurons = np.flatnonzero(differs[step])
            best = (step, {"layer": name, "step": step, "neurons": neurons.tolist(),
                           names[0]: ref[step, neurons].tolist(), names[1]: other[step, neurons].tolist()})
    return None if best is None else best[1]


def compare_runs(reference: RunResult, other: RunResult, names: tuple = ("emulator", "lava")) -> RunComparison:
    """Compare every spike of every hidden layer at every step, the readout input (where both have
    it), the scores and the predictions of ``other`` against ``reference``, sample by sample."""
    if reference.samples != other.samples:
        raise ValueError(f"cannot compare runs of {reference.samples} and {other.samples} samples")
    layer_names = [str(i + 1) for i in range(len(reference.spikes))] + ["readout"]
    with_readout = reference.readout_input is not None and other.readout_input is not None
    mismatched, first = [], None
    spikes_identical = readout_identical = True
    for k in range(reference.samples):
        ref_layers = [np.asarray(s[k]) for s in reference.spikes]
        other_layers = [np.asarray(s[k]) for s in other.spikes]
        same_spikes = len(ref_layers) == len(other_layers) and all(
            a.shape == b.shape and np.array_equal(a, b) for a, b in zip(ref_layers, other_layers))
        same_readout = not with_readout or np.array_equal(reference.readout_input[k], other.readout_input[k])
        spikes_identical &= same_spikes
        readout_identical &= same_readout
        if not (same_spikes and same_readout and np.array_equal(reference.scores[k], other.scores[k])):
            mismatched.append(k)
            if first is None:
                readouts = ([reference.readout_input[k]], [other.readout_input[k]]) if with_readout else ([], [])
                found = first_difference(ref_layers + readouts[0], other_layers + readouts[1], layer_names, names)
                first = None if found is None else {"sample": k, **found}
    predictions_ref, predictions_other = reference.predictions(), other.predictions()
    return RunComparison(bool(spikes_identical), bool(readout_identical),
                         bool(np.array_equal(reference.scores, other.scores)),
                         bool(np.array_equal(predictions_ref, predictions_other)), mismatched, first,
                         float(np.mean(predictions_ref == predictions_other)) if reference.samples else 1.0)
