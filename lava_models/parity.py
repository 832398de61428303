"""Parity check: the float PyTorch model, the batched emulator and Lava fixed_pt on the same samples.

- **Emulator vs Lava fixed_pt** must agree exactly: every spike of every hidden layer at every
  step, and the readout synapse's input at every step (hence the scores and predictions). The
  report names the first difference (sample, layer, step, neurons) when they do not.
- **Float vs fixed point** is a quantization question, not a parity one: it is reported as an
  accuracy gap and as spike counts. The float model has no per-layer latency (its layer ``l`` spike
  at step ``t`` is Lava's at step ``t + l + 1``), so counts are compared, not steps.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from snn_toolchain.atomic import atomic_path
from snn_toolchain.constants import TIME_BIN_S
from snn_toolchain.errors import ToolchainError
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.export.netfile import read_net
from snn_toolchain.lava_models.network import LavaBackend, build_lava_network, dataset_samples
from snn_toolchain.runs import compare_runs, evaluate_backend
from snn_toolchain.train.float_backend import FloatModelBackend
from snn_toolchain.train.trainer import load_model


@dataclass
class ParityReport:
    """The outcome of :func:`parity_check`. Spike counts are totals per hidden layer over all
    samples and steps; accuracies are fractions in [0, 1] (None where a model did not run)."""

    net_path: str
    synapse: str
    samples: int
    time_steps: int                  # input steps per sample (padding included)
    run_steps: int                   # Lava steps per sample
    layer_sizes: list                # neurons per spiking layer (hidden, and a spiking output)
    classes: int
    labels: list
    predictions: dict                # 'float' | 'emulator' | 'lava' -> list of class indices (or None)
    accuracy: dict                   # same keys -> fraction or None
    spike_counts: dict               # same keys -> [total spikes per hidden layer] (or None)
    spikes_identical: bool           # every hidden spike, every step, every sample
    readout_identical: bool          # the readout synapse's input at every step
    scores_identical: bool
    predictions_identical: bool      # emulator vs Lava
    mismatched_samples: list         # sample indices where emulator and Lava differ anywhere
    first_difference: dict | None    # sample, layer, step (0-based Lava step index), neurons, values
    float_fixed_agreement: float | None   # share of samples where float and emulator predict alike
    notes: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    readout: str = "sum"             # "sum" (summing readout) or "spikes" (the last layer_sizes entry spikes)

    def _spiking_layers(self) -> str:
        hidden = len(self.layer_sizes) - (self.readout == "spikes")
        text = f"{hidden} hidden layer{'s' if hidden != 1 else ''}"
        return text + (" and the spiking output layer" if self.readout == "spikes" else "")

    @property
    def ok(self) -> bool:
        return self.spikes_identical and self.readout_identical and self.scores_identical and self.predictions_identical

    @property
    def accuracy_gap(self) -> float | None:
        """Float accuracy minus emulator (fixed-point) accuracy, in percentage points."""
        if self.accuracy.get("float") is None:
            return None
        return 100.0 * (self.accuracy["float"] - self.accuracy["emulator"])

    def _accuracies(self) -> str:
        def pct(value):
            return "n/a" if value is None else f"{100 * value:.1f}%"

        return (f"accuracy float {pct(self.accuracy.get('float'))} / emulator {pct(self.accuracy['emulator'])} / "
                f"Lava {pct(self.accuracy['lava'])}")

    def verdict(self) -> str:
        """One line: PARITY OK or PARITY FAILED with the first difference, and the three accuracies."""
        if self.ok:
            return (f"PARITY OK: emulator == Lava fixed_pt on every spike of {self._spiking_layers()} "
                    f"and the readout input x {self.run_steps} steps x {self.samples} samples; {self._accuracies()}")
        d = self.first_difference
        where = (f"first difference at sample {d['sample']}, layer {d['layer']}, step {d['step']} "
                 f"(neurons {d['neurons'][:5]}: emulator {d['emulator'][:5]} vs Lava {d['lava'][:5]})"
                 if d else "scores or predictions differ")
        return (f"PARITY FAILED: {where}; {len(self.mismatched_samples)} of {self.samples} samples differ; "
                f"{self._accuracies()}")

    @property
    def spikes_per_neuron_per_sample(self) -> dict:
        """spike_counts divided by (samples x neurons of the layer), per model."""
        return {key: None if counts is None else [c / (self.samples * n) for c, n in zip(counts, self.layer_sizes)]
                for key, counts in self.spike_counts.items()}

    def to_dict(self) -> dict:
        data = asdict(self)
        data.update(ok=self.ok, verdict=self.verdict(), accuracy_gap_points=self.accuracy_gap,
                    spikes_per_neuron_per_sample=self.spikes_per_neuron_per_sample)
        return data


# --------------------------------------------------------------------------------- float model

def _resolve_checkpoint(checkpoint, network, net_path: Path) -> tuple[Path | None, str | None]:
    if checkpoint is None:
        checkpoint = network.settings.get("source_checkpoint")
        if not checkpoint:
            return None, "float model skipped: no checkpoint given and the .net names no source_checkpoint"
    path = Path(checkpoint)
    for candidate in (path, net_path.parent / path):
        if candidate.is_file():
            return candidate, None
    return None, f"float model skipped: checkpoint {checkpoint} not found"


def load_float_model(checkpoint: Path, network):
    """The trained DelaySNN of a checkpoint (``train.trainer.load_model``), in eval mode, checked
    against the .net's layer sizes. Raises ValueError with the reason when it cannot."""

    try:
        model = load_model(checkpoint)
    except ToolchainError as err:
        raise ValueError(str(err)) from None
    sizes = [block.neuron.n for block in model.blocks] + [model.readout.synapse.out_features]
    expected = [layer.weight.shape[0] for layer in network.layers]
    if sizes != expected:
        raise ValueError(f"{checkpoint} has layer sizes {sizes}, the .net {expected}")
    return model


def write_nir_traces(path, runs: dict, dt: float) -> Path:
    """Recorded spikes of every spiking layer, per backend, as NIR's ``data_ir`` (``nir.write_data``):
    one ``NIRGraphData`` whose nodes are ``<backend>_layer<i>`` with ``TimeGriddedData`` spikes
    (samples, run steps, neurons), bool, ``dt`` seconds per step; written atomically.

    Flat, not one nested ``NIRGraphData`` per backend: nir 1.0.8's ``write_data`` recurses forever
    on nested graph data (its inner writer iterates the outer graph's nodes)."""
    import nir

    nodes = {f"{backend}_layer{i}": nir.NIRNodeData({"spikes": nir.TimeGriddedData(np.asarray(s, dtype=bool), dt)})
             for backend, run in runs.items() for i, s in enumerate(run.spikes)}
    path = Path(path)
    with atomic_path(path) as tmp:
        nir.write_data(tmp, nir.NIRGraphData(nodes))
    return path


def parity_check(net_path, dataset, n_samples: int, checkpoint=None, synapse: str = "ring",
                 progress: bool = True, time_steps: int | None = None, nir_traces=None) -> ParityReport:
    """Compare the float model, the emulator and Lava fixed_pt on the first ``n_samples`` of ``dataset``.

    dataset: a torch Dataset of (x, label), a DatasetSplits (its test split) or a name ('shd' =
    the embedded set). checkpoint: the float model's checkpoint; default: the .net's
    ``source_checkpoint`` attribute; the float model is skipped, with a note, when neither loads.
    time_steps: input steps per sample for a stock lava-dl file, which stores none (``read_net``).
    nir_traces: a file to write both backends' recorded spikes to, as NIR ``data_ir``
    (:func:`write_nir_traces`), for other tools to read.
    """
    net_path = Path(net_path)
    network = read_net(net_path, time_steps)
    samples, labels = dataset_samples(dataset, n_samples, network.time_steps)
    batch = [(samples, labels)]   # one batch: Lava compiles once for all its samples
    notes, timings = [], {}
    hidden = [layer for layer in network.layers if layer.neuron is not None]

    t0 = time.perf_counter()
    emulator = evaluate_backend(Emulator(network).run, batch)
    timings["emulator_s"] = time.perf_counter() - t0
    emulated = emulator.run
    emu_predictions = emulated.predictions()

    lava_backend = LavaBackend(network, synapse, progress, build=build_lava_network)
    lava_run = evaluate_backend(lava_backend, batch)
    lava = lava_run.run
    timings.update({f"lava_{k}": v for k, v in lava_backend.timings.to_dict().items()})
    comparison = compare_runs(emulated, lava, ("emulator", "lava"))
    if nir_traces is not None:
        write_nir_traces(nir_traces, {"emulator": emulated, "lava": lava},
                         float(network.settings.get("nir_dt", TIME_BIN_S)))
        notes.append(f"recorded spikes of both backends written to {nir_traces} (NIR data_ir)")

    float_predictions, float_counts, float_accuracy, agreement = None, None, None, None
    checkpoint_path, note = _resolve_checkpoint(checkpoint, network, net_path)
    if note:
        notes.append(note)
    else:
        try:
            model = load_float_model(checkpoint_path, network)
            t0 = time.perf_counter()
            floating = evaluate_backend(FloatModelBackend(model), batch)
            timings["float_s"] = time.perf_counter() - t0
            float_predictions, float_counts = floating.run.predictions(), floating.spike_counts
            float_accuracy = floating.accuracy
            agreement = float(np.mean(float_predictions == emu_predictions))
            notes.append("float spike counts cover the input steps only; the float model has no per-layer "
                         "latency, so counts, not steps, are compared with fixed point")
        except Exception as err:   # any unreadable or foreign checkpoint: report it, keep the fixed-point parity
            notes.append(f"float model skipped: {err}")

    return ParityReport(
        net_path=str(net_path), synapse=synapse, samples=lava.samples, time_steps=network.time_steps,
        run_steps=network.run_steps, layer_sizes=[int(layer.weight.shape[0]) for layer in hidden],
        readout=network.readout,
        classes=network.n_classes, labels=labels.tolist(),
        predictions={"float": None if float_predictions is None else float_predictions.tolist(),
                     "emulator": emu_predictions.tolist(), "lava": lava.predictions().tolist()},
        accuracy={"float": float_accuracy, "emulator": emulator.accuracy, "lava": lava_run.accuracy},
        spike_counts={"float": float_counts, "emulator": emulated.spike_counts(), "lava": lava.spike_counts()},
        spikes_identical=comparison.spikes_identical, readout_identical=comparison.readout_identical,
        scores_identical=comparison.scores_identical, predictions_identical=comparison.predictions_identical,
        mismatched_samples=comparison.mismatched_samples, first_difference=comparison.first_difference,
        float_fixed_agreement=agreement, notes=notes, timings=timings)
