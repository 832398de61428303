"""Parity check, three ways: the trained model in the deployed arithmetic, the batched emulator and
Lava fixed_pt on the same samples; and the float model beside them.

- **Model (deployed arithmetic) vs emulator vs Lava fixed_pt** must agree exactly: every spike of
  every hidden layer at every step, and the readout synapse's input at every step (hence the scores
  and predictions). The model's deployed arithmetic (``DelaySNN.set_arithmetic("deployed")``) runs
  the trained model's own blocks on the integers export writes, with Lava's latency; the emulator
  runs the ``.net`` file; Lava runs its processes. The report names the first difference (sample,
  layer, step, neurons) when two of them do not agree.
- **Float vs deployed** is the quantization question: the trained float model's accuracy against
  the deployed network's, on the test samples and on as many validation samples, so that no claim
  rests on the test split alone. With the default latency the float model's spikes have the same
  run steps as the deployed ones, and differ only where rounding moved a spike.
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
from snn_toolchain.lava_models.build import build_lava_network
from snn_toolchain.lava_models.lava_backend import LavaBackend, dataset_samples, split_samples
from snn_toolchain.samples import is_splits
from snn_toolchain.samples_file import has_labels
from snn_toolchain.evaluation import compare_runs, evaluate_backend
from snn_toolchain.train.model.float_backend import FloatModelBackend
from snn_toolchain.train.model.checkpoint import latency_note, load_model


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
    classes: int                     # the network's (its readout layer's size)
    labels: list | None              # None: samples of a file without labels (no accuracy)
    # 'float' (the trained model) | 'deployed' (the model in the deployed arithmetic) | 'emulator' |
    # 'lava' -> list of class indices (or None where the model did not run)
    predictions: dict
    accuracy: dict                   # same keys -> fraction or None
    spike_counts: dict               # same keys -> [total spikes per hidden layer] (or None)
    spikes_identical: bool           # every hidden spike, every step, every sample (emulator vs Lava)
    readout_identical: bool          # the readout synapse's input at every step
    scores_identical: bool
    predictions_identical: bool      # emulator vs Lava
    mismatched_samples: list         # sample indices where emulator and Lava differ anywhere
    first_difference: dict | None    # sample, layer, step (0-based Lava step index), neurons, values
    float_fixed_agreement: float | None   # share of samples where float and emulator predict alike
    # the model in the deployed arithmetic against the emulator: None when the model did not run
    deployed_identical: bool | None = None
    deployed_first_difference: dict | None = None
    # float and deployed accuracy on as many validation samples (None without a validation split)
    validation: dict | None = None
    notes: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    readout: str = "sum"             # "sum" (summing readout) or "spikes" (the last layer_sizes entry spikes)

    def _spiking_layers(self) -> str:
        hidden = len(self.layer_sizes) - (self.readout == "spikes")
        text = f"{hidden} hidden layer{'s' if hidden != 1 else ''}"
        return text + (" and the spiking output layer" if self.readout == "spikes" else "")

    @property
    def ok(self) -> bool:
        return (self.spikes_identical and self.readout_identical and self.scores_identical
                and self.predictions_identical and self.deployed_identical is not False)

    @property
    def accuracy_gap(self) -> float | None:
        """Float accuracy minus emulator (fixed-point) accuracy, in percentage points."""
        if self.accuracy.get("float") is None:
            return None
        return 100.0 * (self.accuracy["float"] - self.accuracy["emulator"])

    def _accuracies(self) -> str:
        def pct(value):
            return "n/a" if value is None else f"{100 * value:.1f}%"

        if self.labels is None:
            agreement = "" if self.float_fixed_agreement is None else \
                f"; float and deployed predict alike on {100 * self.float_fixed_agreement:.1f}%"
            return f"no labels, no accuracy{agreement}"

        text = (f"test accuracy float {pct(self.accuracy.get('float'))} / deployed {pct(self.accuracy['emulator'])}"
                f" (emulator {pct(self.accuracy['emulator'])}, Lava {pct(self.accuracy['lava'])})")
        if self.validation:
            text += (f"; validation ({self.validation['samples']} samples) float {pct(self.validation['float'])} / "
                     f"deployed {pct(self.validation['deployed'])}")
        return text

    def verdict(self) -> str:
        """One line: PARITY OK or PARITY FAILED with the first difference, and the accuracies."""
        who = "model (deployed arithmetic) == emulator == Lava fixed_pt" if self.deployed_identical \
            else "emulator == Lava fixed_pt"
        if self.ok:
            return (f"PARITY OK: {who} on every spike of {self._spiking_layers()} "
                    f"and the readout input x {self.run_steps} steps x {self.samples} samples; {self._accuracies()}")
        differences = []
        for d, names, pair in ((self.deployed_first_difference, ("emulator", "model"), "model"),
                               (self.first_difference, ("emulator", "lava"), "Lava")):
            if d:
                differences.append(f"emulator vs {pair}: first difference at sample {d['sample']}, layer {d['layer']}, "
                                   f"step {d['step']} (neurons {d['neurons'][:5]}: emulator {d[names[0]][:5]} vs "
                                   f"{pair} {d[names[1]][:5]})")
        if not differences:
            differences.append("scores or predictions differ")
        return (f"PARITY FAILED: {'; '.join(differences)}; {len(self.mismatched_samples)} of {self.samples} samples "
                f"differ between emulator and Lava; {self._accuracies()}")

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
    """The trained DelaySNN of a checkpoint (``train.checkpoint.load_model``), in eval mode, checked
    against the .net's layer sizes. Raises ValueError with the reason when it cannot."""

    try:
        model = load_model(checkpoint)
    except ToolchainError as err:
        raise ValueError(str(err)) from None
    sizes = [block.neuron.n for block in model.blocks] + [model.readout.synapse.out_features]
    expected = [layer.weight.shape[0] for layer in network.layers]
    if sizes != expected:
        raise ValueError(f"{checkpoint} has layer sizes {sizes}, the .net {expected}")
    if model.blocks[0].synapse.in_features != network.n_inputs:
        raise ValueError(f"{checkpoint} takes {model.blocks[0].synapse.in_features} inputs, the .net {network.n_inputs}")
    # the deployed arithmetic computes what the file holds: a scale per AdLIF neuron, or (exported
    # with --scales layer, or before format version 3) one per layer; LIF layers as CUBA or not
    model.per_neuron_scales = any(layer.per_neuron_scale for layer in network.spiking_layers)
    model.lif_as_cuba = any(layer.neuron_variant == "cuba" for layer in network.spiking_layers)
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
    """Compare the trained model (in the deployed and the float arithmetic), the emulator and Lava
    fixed_pt on the first ``n_samples`` of ``dataset``.

    dataset: a torch Dataset of (x, label), a DatasetSplits (its test split) or a name ('shd' =
    the embedded set); samples of a file without labels (``snn_toolchain.samples_file``) are
    compared as well, without accuracy (``labels`` and every accuracy None). checkpoint: the float
    model's checkpoint; default: the .net's ``source_checkpoint`` attribute; the float model is
    skipped, with a note, when neither loads.
    time_steps: input steps per sample for a stock lava-dl file, which stores none (``read_net``).
    nir_traces: a file to write both backends' recorded spikes to, as NIR ``data_ir``
    (:func:`write_nir_traces`), for other tools to read.
    """
    net_path = Path(net_path)
    network = read_net(net_path, time_steps)
    samples, labels = dataset_samples(dataset, n_samples, network.time_steps)
    labelled = has_labels(dataset)
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

    model_runs = _model_runs(checkpoint, network, net_path, dataset, batch, emulated, n_samples, notes, timings)

    return ParityReport(
        net_path=str(net_path), synapse=synapse, samples=lava.samples, time_steps=network.time_steps,
        run_steps=network.run_steps, layer_sizes=[int(layer.weight.shape[0]) for layer in hidden],
        readout=network.readout,
        classes=network.n_classes, labels=labels.tolist() if labelled else None,
        predictions={**model_runs["predictions"], "emulator": emu_predictions.tolist(), "lava": lava.predictions().tolist()},
        accuracy={key: value if labelled else None for key, value in
                  {**model_runs["accuracy"], "emulator": emulator.accuracy, "lava": lava_run.accuracy}.items()},
        spike_counts={**model_runs["spike_counts"], "emulator": emulated.spike_counts(), "lava": lava.spike_counts()},
        spikes_identical=comparison.spikes_identical, readout_identical=comparison.readout_identical,
        scores_identical=comparison.scores_identical, predictions_identical=comparison.predictions_identical,
        mismatched_samples=comparison.mismatched_samples, first_difference=comparison.first_difference,
        float_fixed_agreement=model_runs["agreement"], deployed_identical=model_runs["deployed_identical"],
        deployed_first_difference=model_runs["deployed_first_difference"], validation=model_runs["validation"],
        notes=notes, timings=timings)


def _model_runs(checkpoint, network, net_path: Path, dataset, batch, emulated, n_samples: int, notes: list,
                timings: dict) -> dict:
    """The trained model on the parity's samples, in the float and the deployed arithmetic, and on
    as many validation samples; every key None where the model cannot run (with a note)."""
    result = {"predictions": {"float": None, "deployed": None}, "accuracy": {"float": None, "deployed": None},
              "spike_counts": {"float": None, "deployed": None}, "agreement": None, "deployed_identical": None,
              "deployed_first_difference": None, "validation": None}
    checkpoint_path, note = _resolve_checkpoint(checkpoint, network, net_path)
    if note:
        notes.append(note + "; the parity is emulator against Lava only")
        return result
    try:
        model = load_float_model(checkpoint_path, network)
    except Exception as err:   # any unreadable or foreign checkpoint: report it, keep the fixed-point parity
        notes.append(f"float model skipped: {err}")
        return result
    t0 = time.perf_counter()
    samples, labels = batch[0]
    if is_splits(dataset):     # graded features unrounded for the float model
        samples, _ = split_samples(dataset.test, n_samples, network.time_steps)
    try:
        runs = {"float": evaluate_backend(FloatModelBackend(model), [(samples, labels)]),
                "deployed": evaluate_backend(FloatModelBackend(model, arithmetic="deployed"), batch)}
    except Exception as err:   # a checkpoint that loads but cannot run these samples: say so, keep the rest
        notes.append(f"float model skipped: {checkpoint_path} does not run these samples "
                     f"({type(err).__name__}: {str(err).splitlines()[0][:160]})")
        return result
    timings["float_s"] = time.perf_counter() - t0
    for name, evaluation in runs.items():
        result["predictions"][name] = evaluation.run.predictions().tolist()
        result["accuracy"][name] = evaluation.accuracy
        result["spike_counts"][name] = evaluation.spike_counts
    comparison = compare_runs(emulated, runs["deployed"].run, ("emulator", "model"))
    result["deployed_identical"] = comparison.ok
    result["deployed_first_difference"] = comparison.first_difference
    source = network.settings.get("source_checkpoint")
    if not comparison.ok and source and Path(source).resolve() != Path(checkpoint_path).resolve():
        notes.append(f"the model differs from the emulator: {checkpoint_path} is not the checkpoint this .net was "
                     f"exported from ({source}); pass that one with --checkpoint, or export this one")
    result["agreement"] = float(np.mean(runs["float"].run.predictions() == emulated.predictions()))
    if latency_note(model):
        notes.append(f"the model was {latency_note(model)}")
    if is_splits(dataset) and len(dataset.valid):
        # the float model takes graded features unrounded (as it was trained); the deployed
        # network their integer payloads
        raw, labels = split_samples(dataset.valid, n_samples, network.time_steps)
        deployed, _ = dataset_samples(dataset.deployed().valid, n_samples, network.time_steps)
        result["validation"] = {
            "samples": int(len(labels)),
            "float": evaluate_backend(FloatModelBackend(model), [(raw, labels)], keep_run=False).accuracy,
            "deployed": evaluate_backend(Emulator(network).run, [(deployed, labels)], keep_run=False).accuracy}
    return result
