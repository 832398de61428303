"""Parity over a whole test split: the samples cut into shards, each shard's parity run as one task
(of a Ray cluster, ``snn_toolchain/cluster/``, or here one after another), the shards' reports merged
into the report a one-process run gives.

Lava's CPU simulator runs one sample at a time (about 0.33 s at the SHD preset, 3 s at hidden 512),
so a whole SSC test split (20,382 samples) is about 17 hours on one core; 200 shards on a cluster
of 200 cores take minutes.

Why the merged report is exactly the one-process one: every backend runs each sample on its own
(Lava resets between samples, the emulator and the deployed arithmetic are integer arithmetic), so a
shard's runs are the one-process run's rows for its samples; and every field of the report is
either a per-sample list (concatenated, in sample order), a count (summed), an all-samples flag
(every shard's), the first difference (the first shard's that has one, its sample renumbered) or an
accuracy, recomputed from the merged predictions and labels with the one-process formula. The
validation figures come from the shards' parts of the same first validation samples. Only the float
model could differ in principle: float arithmetic may round differently in a batch of another size.

    report = sharded_parity_check("run/model.net", splits, n_samples=None, shards=64,
                                  cluster=ClusterSpec("auto"), load_dataset=functools.partial(build_datasets, ...))
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from snn_toolchain.cluster import ClusterSpec
from snn_toolchain.errors import ToolchainError
from snn_toolchain.lava_models.parity import ParityReport, parity_check
from snn_toolchain.samples import is_splits
from snn_toolchain.samples_file import SamplesFile
from snn_toolchain.train.data.loading import build_datasets
from snn_toolchain.train.data.splits import DatasetSplits, TensorFeatureDataset


def shard_ranges(n_samples: int, shards: int) -> list[range]:
    """``n_samples`` sample indices cut into at most ``shards`` consecutive ranges whose sizes
    differ by at most one (none empty)."""
    if shards < 1:
        raise ToolchainError(f"--shards {shards}: must be at least 1")
    count = min(shards, n_samples)
    bounds = [n_samples * i // count for i in range(count + 1)]
    return [range(bounds[i], bounds[i + 1]) for i in range(count)]


def count_test_samples(dataset) -> int:
    """How many test samples ``dataset`` (as ``parity_check`` takes it) holds."""
    if isinstance(dataset, str):
        dataset = build_datasets(dataset, None, pad_steps=0).test
    elif is_splits(dataset):
        dataset = dataset.test
    return len(dataset)


@dataclasses.dataclass
class ShardSplits:
    """The part of a DatasetSplits that one shard sees, in the shape ``parity_check`` reads: the
    shard's test samples and its part of the first validation samples (those a one-process run over
    the same samples would use), as Subsets of the whole splits."""

    whole: object
    test_range: range
    valid_range: range

    @property
    def n_classes(self) -> int:
        return self.whole.n_classes

    @property
    def test(self):
        from torch.utils.data import Subset   # torch: loaded by the parity check anyway

        return Subset(self.whole.test, self.test_range)

    @property
    def valid(self):
        from torch.utils.data import Subset   # as above

        return Subset(self.whole.valid, self.valid_range)

    def deployed(self) -> "ShardSplits":
        return ShardSplits(self.whole.deployed(), self.test_range, self.valid_range)


def _valid_range(splits, samples: range) -> range:
    """A shard's part of the first validation samples: those of its test samples' indices."""
    valid = len(splits.valid)
    return range(min(samples.start, valid), min(samples.stop, valid))


def shard_of(dataset, samples: range):
    """``dataset`` (a DatasetSplits, a torch Dataset or a registered name) cut to the test samples
    ``samples``, as ``parity_check`` takes it (views of ``dataset``: for this process)."""
    from torch.utils.data import Subset   # as above

    if isinstance(dataset, str):
        return Subset(build_datasets(dataset, None, pad_steps=0).test, samples)
    if is_splits(dataset):
        return ShardSplits(dataset, samples, _valid_range(dataset, samples))
    return Subset(dataset, samples)


def _own_copy(dataset, samples: range):
    """The samples ``samples`` of a torch Dataset of (x, label), holding their own data rather than
    a view of ``dataset``'s: a samples file's part keeps its labelled-or-not, encoded features
    keep their ``rounded()``, anything else becomes a dense tensor of its samples."""
    import torch   # loaded by the parity check anyway

    if isinstance(dataset, SamplesFile):
        return dataset.part(samples)
    if isinstance(dataset, TensorFeatureDataset):
        chosen = slice(samples.start, samples.stop)
        # clone: a sliced tensor pickles its whole storage
        return TensorFeatureDataset(dataset.features[chosen].clone(), dataset.labels[chosen].copy(),
                                    dataset.pad_steps, dataset.round_values)
    pairs = [dataset[i] for i in samples]
    features = (torch.stack([torch.as_tensor(np.asarray(x)) for x, _ in pairs]) if pairs
                else torch.zeros((0, 0, 0)))
    return TensorFeatureDataset(features, np.asarray([int(y) for _, y in pairs], dtype=np.int64), 0)


def shard_for_task(dataset, samples: range):
    """What a cluster task receives for the test samples ``samples`` of ``dataset``, and the range
    it runs: only that shard's samples (and its part of the validation samples), so that each task
    carries its slice, not the whole data. A registered name stays a name (each worker reads it)."""
    if isinstance(dataset, str):
        return dataset, samples
    if isinstance(dataset, DatasetSplits):
        valid = _valid_range(dataset, samples)
        # the train split is never read by a parity check: left empty
        shard = dataclasses.replace(dataset, train=_own_copy(dataset.train, range(0)),
                                    valid=_own_copy(dataset.valid, valid), test=_own_copy(dataset.test, samples))
        return shard, range(len(samples))
    if is_splits(dataset):      # another splits-shaped object: sent whole, as before
        return dataset, samples
    return _own_copy(dataset, samples), range(len(samples))


def _is_loader(dataset) -> bool:
    """Whether ``dataset`` is a function that returns the data (not the data itself)."""
    return callable(dataset) and not is_splits(dataset) and not hasattr(dataset, "__getitem__")


def run_shard(net_path: str, dataset, start: int, stop: int, checkpoint: str | None = None, synapse: str = "ring",
              time_steps: int | None = None) -> ParityReport:
    """One shard's parity: test samples ``start`` to ``stop`` (exclusive) of ``dataset``, or of
    what ``dataset()`` returns when it is a loader (a picklable function without arguments, e.g.
    ``functools.partial(build_datasets, ...)``: each worker then reads the data from shared storage
    rather than receiving it through the engine). What a cluster task runs."""
    if _is_loader(dataset):
        dataset = dataset()
    return parity_check(net_path, shard_of(dataset, range(start, stop)), stop - start, checkpoint=checkpoint,
                        synapse=synapse, progress=False, time_steps=time_steps)


def _first_difference(reports: list, starts: list, field: str) -> dict | None:
    for report, start in zip(reports, starts):
        found = getattr(report, field)
        if found is not None:
            return {**found, "sample": found["sample"] + start}
    return None


def _merged_validation(reports: list) -> dict | None:
    """The validation figures over the shards' parts: each accuracy back to its count of correct
    samples (exact: a fraction of at most millions), then correct / total as one run computes it."""
    parts = [r.validation for r in reports if r.validation]
    if not parts:
        return None
    total = sum(p["samples"] for p in parts)
    merged = {"samples": total}
    for key in ("float", "deployed"):
        if any(p.get(key) is None for p in parts):
            merged[key] = None
        else:
            merged[key] = sum(round(p[key] * p["samples"]) for p in parts) / max(total, 1)
    return merged


def _merged_timings(reports: list) -> dict:
    """Every shard's seconds (and Lava's sample count) summed: the compute spent, not the wall time;
    Lava's seconds per sample recomputed from the sums."""
    merged: dict = {}
    for report in reports:
        for key, value in report.timings.items():
            if isinstance(value, (int, float)) and not key.endswith("seconds_per_sample"):
                merged[key] = merged.get(key, 0) + value
    if merged.get("lava_samples"):
        merged["lava_seconds_per_sample"] = sum(merged.get(f"lava_{k}_s", 0.0) for k in ("runs", "resets", "reads")) \
            / merged["lava_samples"]
    return merged


def merge_reports(reports: list, starts: list | None = None) -> ParityReport:
    """The shards' reports (in sample order; ``starts``: each shard's first sample, by default
    consecutive) as the one report of all their samples."""
    if not reports:
        raise ValueError("no shard reports to merge")
    if starts is None:
        starts = list(np.cumsum([0] + [r.samples for r in reports[:-1]]))
    first = reports[0]
    labelled = all(r.labels is not None for r in reports)
    labels = [label for r in reports for label in r.labels] if labelled else None
    predictions, accuracy, spike_counts = {}, {}, {}
    for key in first.predictions:
        parts = [r.predictions.get(key) for r in reports]
        predictions[key] = None if any(p is None for p in parts) else [int(v) for p in parts for v in p]
        counts = [r.spike_counts.get(key) for r in reports]
        spike_counts[key] = None if any(c is None for c in counts) else [int(sum(layer)) for layer in zip(*counts)]
        if predictions[key] is None or labels is None:
            accuracy[key] = None
        else:       # as evaluate_backend computes it over one batch of every sample
            accuracy[key] = int(np.sum(np.asarray(predictions[key]) == np.asarray(labels))) / max(len(labels), 1)
    deployed = [r.deployed_identical for r in reports]
    agreement = None
    if predictions.get("float") is not None and predictions.get("emulator") is not None:
        agreement = float(np.mean(np.asarray(predictions["float"]) == np.asarray(predictions["emulator"])))
    notes = list(dict.fromkeys(note for r in reports for note in r.notes))
    return dataclasses.replace(
        first, samples=sum(r.samples for r in reports), labels=labels, predictions=predictions, accuracy=accuracy,
        spike_counts=spike_counts,
        spikes_identical=all(r.spikes_identical for r in reports),
        readout_identical=all(r.readout_identical for r in reports),
        scores_identical=all(r.scores_identical for r in reports),
        predictions_identical=all(r.predictions_identical for r in reports),
        mismatched_samples=[k + start for r, start in zip(reports, starts) for k in r.mismatched_samples],
        first_difference=_first_difference(reports, starts, "first_difference"),
        float_fixed_agreement=agreement,
        deployed_identical=None if any(d is None for d in deployed) else all(deployed),
        deployed_first_difference=_first_difference(reports, starts, "deployed_first_difference"),
        validation=_merged_validation(reports), notes=notes, timings=_merged_timings(reports))


def sharded_parity_check(net_path, dataset, n_samples: int | None, *, shards: int, cluster: ClusterSpec | None = None,
                         checkpoint=None, synapse: str = "ring", time_steps: int | None = None, load_dataset=None,
                         log=print) -> ParityReport:
    """``parity_check`` over the first ``n_samples`` test samples of ``dataset`` (None: all), run
    as ``shards`` shards and merged (:func:`merge_reports`).

    cluster: run each shard as a task of that Ray cluster (the .net file, the checkpoint and the
    data must be on storage every machine sees); None: one shard after another in this process.
    load_dataset: a picklable function without arguments that returns ``dataset`` (e.g.
    ``functools.partial(build_datasets, name, data_dir, pad_steps=..., input_encoding=...)``), for
    each task to read the data itself; without it each task receives its own shard's samples
    through the engine (:func:`shard_for_task`; a samples file, for one). A shard that fails fails
    the check: a verdict needs every sample."""
    available = count_test_samples(dataset)
    count = available if n_samples is None else min(int(n_samples), available)
    if count < 1:
        raise ToolchainError(f"{net_path}: no test samples to check")
    ranges = shard_ranges(count, shards)
    source = load_dataset if load_dataset is not None else dataset
    if cluster is None:
        reports = []
        for number, samples in enumerate(ranges, 1):
            log(f"[parity] shard {number}/{len(ranges)}: samples {samples.start}-{samples.stop - 1}")
            reports.append(run_shard(str(net_path), source, samples.start, samples.stop,
                                     None if checkpoint is None else str(checkpoint), synapse, time_steps))
    else:
        reports = _run_on_cluster(net_path, source, ranges, checkpoint, synapse, time_steps, cluster, log)
    report = merge_reports(reports, [r.start for r in ranges])
    report.notes.append(f"run as {len(ranges)} shards" + (f" on the Ray cluster at {cluster.address}" if cluster else "")
                        + "; timings are the shards' seconds summed")
    return report


def _run_on_cluster(net_path, source, ranges: list, checkpoint, synapse: str, time_steps, cluster: ClusterSpec,
                    log) -> list:
    from snn_toolchain.cluster.engine import Task, absolute, run_tasks  # Ray: only when --cluster is given

    net = str(absolute(net_path))
    checkpoint = None if checkpoint is None else str(absolute(checkpoint))
    tasks = []
    for number, r in enumerate(ranges):
        # a loader travels as it is (each worker reads the data); data itself, one shard's slice
        data, samples = (source, r) if _is_loader(source) else shard_for_task(source, r)
        tasks.append(Task(number, f"shard {number + 1}/{len(ranges)} (samples {r.start}-{r.stop - 1})", run_shard,
                          (net, data, samples.start, samples.stop, checkpoint, synapse, time_steps)))
    results, failures = run_tasks(tasks, cluster, tag="parity", log=log,
                                  describe=lambda report: "identical" if report.ok else "DIFFERS")
    if failures:
        raise ToolchainError(f"{len(failures)} of {len(tasks)} parity shards failed "
                             f"({', '.join(f.label + ': ' + f.error for f in failures)}); no verdict without "
                             "every sample: run the command again")
    return [results[number] for number in range(len(ranges))]
