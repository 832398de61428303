"""Lava fixed_pt as a backend of :mod:`snn_toolchain.evaluation`, and the ``run --backend lava-sim``
command: dataset samples as the whole spike counts the builder takes (:func:`dataset_samples`),
:class:`LavaBackend` (samples -> ``RunResult``) and :func:`run_lava` (a ``.net`` file on a dataset).
The network itself is built and run by :mod:`snn_toolchain.lava_models.build`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snn_toolchain.evaluation import RunResult, evaluate_backend
from snn_toolchain.export.netfile import read_net
from snn_toolchain.lava_models.build import LavaTimings, build_lava_network
from snn_toolchain.lava_models.neuron_processes import LavaBuildError
from snn_toolchain.samples import is_splits, whole_samples, zero_padded
from snn_toolchain.train.data.loading import build_datasets


def split_samples(dataset, n_samples: int | None, time_steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n_samples`` of a torch Dataset of (x, label) as ((K, T, inputs) float64, (K,)
    labels), zero-padded to ``time_steps``; the values as they are (graded features unrounded)."""
    total = len(dataset)
    count = total if n_samples is None else min(int(n_samples), total)
    if count <= 0:
        raise LavaBuildError("the dataset has no samples to run")
    xs, labels = [], []
    for i in range(count):
        x, y = dataset[i]
        xs.append(np.asarray(x.numpy() if hasattr(x, "numpy") else x, dtype=np.float64))
        labels.append(int(y))
    x = np.stack(xs)
    return (x if time_steps is None else zero_padded(x, time_steps)), np.asarray(labels, dtype=np.int64)


def dataset_samples(dataset, n_samples: int | None, time_steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n_samples`` of ``dataset`` as ((K, T, inputs) int64 counts, (K,) labels).

    ``dataset`` is a torch Dataset of (x, label) with x (time, inputs), a ``DatasetSplits`` (its
    test split is used) or a dataset name ('shd': the embedded test split). Samples shorter than
    ``time_steps`` are zero-padded to it (the delay padding of the exported network).
    """
    if isinstance(dataset, str):
        dataset = build_datasets(dataset, None, pad_steps=0).test     # padded to time_steps below
    elif is_splits(dataset):
        dataset = dataset.deployed().test       # graded features as the integer payloads deployed
    x, labels = split_samples(dataset, n_samples, time_steps)
    return whole_samples(x), labels


class LavaBackend:
    """Lava fixed_pt as a backend (``snn_toolchain.evaluation``): samples (K, T, inputs) -> RunResult.

    Each call builds and compiles one network with the samples preloaded (:func:`build_lava_network`)
    and runs them all, so pass every sample in one batch. ``build(network, samples=, synapse=)``
    makes the runner (default :func:`build_lava_network`). ``timings`` describe the last call.
    """

    def __init__(self, network, synapse: str = "ring", progress: bool = True, build=None):
        self.network, self.synapse, self.progress = network, synapse, progress
        # looked up at construction, not at import, so a patched build_lava_network is the one used
        self.build = build if build is not None else build_lava_network
        self.timings: LavaTimings | None = None

    def __call__(self, samples) -> RunResult:
        runner = self.build(self.network, samples=np.asarray(samples), synapse=self.synapse)
        results = runner.run(progress=self.progress)
        self.timings = runner.timings
        return RunResult.from_samples(results)


def run_lava(net_path, dataset, n_samples: int | None, synapse: str = "ring", progress: bool = True,
             time_steps: int | None = None, network=None) -> dict:
    """Run the first ``n_samples`` of ``dataset`` through the .net file on Lava fixed_pt
    (``network``: the file's ``QuantizedNetwork`` where the caller has read it already).

    Returns accuracy, per-sample predictions and labels, spikes per hidden layer (total, and per
    neuron per sample), and seconds per sample (run + reset + read, compile included).
    """
    network = network if network is not None else read_net(net_path, time_steps)
    samples, labels = dataset_samples(dataset, n_samples, network.time_steps)
    backend = LavaBackend(network, synapse, progress)
    evaluation = evaluate_backend(backend, [(samples, labels)])
    return {
        "net": str(Path(net_path)),
        "synapse": synapse,
        "samples": evaluation.samples,
        "run_steps": network.run_steps,
        "accuracy": evaluation.accuracy,
        "predictions": evaluation.run.predictions().tolist(),
        "labels": labels.tolist(),
        "spike_counts": evaluation.spike_counts,
        "spikes_per_neuron_per_sample": evaluation.spikes_per_neuron_per_sample,
        "seconds_per_sample": backend.timings.seconds_per_sample,
        "timings": backend.timings.to_dict(),
    }
