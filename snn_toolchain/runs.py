"""What a backend computed for a batch of samples, and the comparison of two such runs.

Every backend that runs a :class:`~snn_toolchain.network.QuantizedNetwork` (the batched emulator,
Lava's CPU simulator, a Loihi 2 chip) reports a :class:`RunResult`; parity is
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
    a backend cannot read it).
    """

    scores: np.ndarray
    spikes: list = field(default_factory=list)
    readout_input: np.ndarray | None = None

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
