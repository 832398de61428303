"""The dataset types every reader returns: PyTorch ``Dataset``s of ``(x, label)`` samples, the three
splits of a dataset (:class:`DatasetSplits`) and the speaker-aware validation hold-out.

Below the readers (``heidelberg.py``, ``gsc.py``) and the dataset registry (``datasets.py``), so
that each of them can build splits; ``train/data/loading.py`` re-exports every name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from snn_toolchain.input_encoding import GradedInputEncoding
from snn_toolchain.train.data.heidelberg import HeidelbergSplit, densify


class HeidelbergDataset(Dataset):
    """A (subset of a) SHD/SSC split; samples are densified on access, which keeps SSC's
    75k samples in memory as sparse indices instead of 1.3 GB of dense counts."""

    def __init__(self, split: HeidelbergSplit, indices: np.ndarray | None = None):
        self.split = split
        self.indices = np.arange(len(split)) if indices is None else np.asarray(indices, dtype=np.int64)
        self.labels = split.labels[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, int]:
        i = int(self.indices[item])
        x = densify(self.split.flat_indices[i], self.split.binning)
        return torch.from_numpy(x), int(self.split.labels[i])

    def __getitems__(self, items: list[int]) -> "Batch":
        """A whole batch at once (DataLoader calls this when it exists): one scatter-add of every
        spike of the batch into a zeroed (batch, time, channels) tensor, ~10x faster than
        densifying and stacking sample by sample."""
        binning = self.split.binning
        sample_size = binning.total_steps * binning.channels
        chosen = self.indices[np.asarray(items, dtype=np.int64)]
        flat = torch.cat([torch.from_numpy(self.split.flat_indices[i]).long() + k * sample_size
                          for k, i in enumerate(chosen)])
        x = torch.zeros(len(chosen) * sample_size)
        x.index_put_((flat,), torch.ones(len(flat)), accumulate=True)
        labels = torch.from_numpy(self.split.labels[chosen])
        return Batch(x.view(len(chosen), binning.total_steps, binning.channels), labels)


class Batch(tuple):
    """(x, labels) already batched by a dataset's ``__getitems__``; :func:`collate` passes it on."""

    def __new__(cls, x: torch.Tensor, labels: torch.Tensor):
        return super().__new__(cls, (x, labels))


def collate(samples):
    """DataLoader collate function: batches made by ``__getitems__`` pass through, lists of
    (x, label) samples are stacked as usual."""
    if isinstance(samples, Batch):
        return tuple(samples)
    return default_collate(samples)


class TensorFeatureDataset(Dataset):
    """Samples held as one dense float32 tensor (GSC's encoded features), right-padded with zeros
    on access. ``round_values``: samples come out rounded to integers (the graded payloads a
    deployed network receives; :meth:`rounded` makes such a view without copying the features)."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, pad_steps: int, round_values: bool = False):
        self.features = features
        self.labels = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        self.pad_steps = pad_steps
        self.round_values = round_values

    def rounded(self) -> "TensorFeatureDataset":
        return TensorFeatureDataset(self.features, self.labels, self.pad_steps, round_values=True)

    def __len__(self) -> int:
        return len(self.labels)

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        if self.round_values:
            x = torch.round(x)
        if self.pad_steps:
            x = torch.nn.functional.pad(x, (0, 0, 0, self.pad_steps))
        return x

    def __getitem__(self, item: int) -> tuple[torch.Tensor, int]:
        return self._finish(self.features[item]), int(self.labels[item])

    def __getitems__(self, items: list[int]) -> Batch:
        index = torch.as_tensor(items, dtype=torch.int64)
        return Batch(self._finish(self.features[index]), torch.as_tensor(self.labels[index.numpy()], dtype=torch.int64))


@dataclass
class DatasetSplits:
    """The three splits of one dataset and what a model needs to know about it. Code that takes
    either splits or a plain dataset tells them apart with ``snn_toolchain.samples.is_splits`` (in
    the core, which cannot import this module)."""

    name: str
    train: Dataset
    valid: Dataset
    test: Dataset
    n_inputs: int
    n_classes: int
    time_steps: int               # including the delay padding
    class_names: list[str]
    source: str                   # where the data came from, for logs and reports
    notes: list[str] = field(default_factory=list)
    # real-valued features encoded as graded payloads (GSC; snn_toolchain.input_encoding): the
    # samples are unrounded payloads, deployed() rounds them; None: the samples are spike counts
    input_encoding: GradedInputEncoding | None = None

    @property
    def valid_is_test(self) -> bool:
        """Whether the test split stands in for validation (``--valid-fraction 0``, the paper's
        protocol on SHD): then no figure of the run is validation-selected."""
        return any(note.startswith("no validation split") for note in self.notes)

    @property
    def input_gain(self) -> float:
        """What the float model multiplies its inputs by (1 for spike counts, 1/levels for payloads)."""
        return 1.0 if self.input_encoding is None else self.input_encoding.gain

    def deployed(self) -> "DatasetSplits":
        """The splits as a deployed network receives them: integer payloads (rounded), the same
        splits for spike counts, which are integers already."""
        if self.input_encoding is None:
            return self
        return dataclasses.replace(self, train=self.train.rounded(), valid=self.valid.rounded(),
                                   test=self.test.rounded())

    def summary(self) -> str:
        encoded = ("" if self.input_encoding is None else
                   f", features as {self.input_encoding.bits}-bit graded spikes")
        valid = ("no valid (the test split stands in)" if self.valid_is_test else f"{len(self.valid)} valid")
        return (f"{self.name}: {len(self.train)} train / {valid} / {len(self.test)} test "
                f"samples, {self.n_inputs} inputs x {self.time_steps} steps, {self.n_classes} classes{encoded} "
                f"(from {self.source})")


def speaker_holdout(speakers: np.ndarray | None, labels: np.ndarray, fraction: float,
                    seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Split sample indices into (train, valid) with about ``fraction`` of the samples in valid.

    Whole speakers are held out, drawn in a seeded random order until the fraction is reached.
    With fewer than two speakers (or no speaker ids) it falls back to a seeded per-class split and
    says so in the returned note.
    """
    rng = np.random.default_rng(seed)
    n = len(labels)
    target = max(1, int(round(fraction * n)))
    if speakers is not None and len(np.unique(speakers)) >= 2:
        unique = np.unique(speakers)
        order = rng.permutation(unique)
        held: list[int] = []
        count = 0
        for speaker in order[:-1]:  # always keep at least one speaker for training
            held.append(int(speaker))
            count += int(np.sum(speakers == speaker))
            if count >= target:
                break
        valid_mask = np.isin(speakers, held)
        note = f"validation = speakers {sorted(held)} held out of train ({valid_mask.sum()} samples)"
        return np.flatnonzero(~valid_mask), np.flatnonzero(valid_mask), note
    valid_idx = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        valid_idx.extend(members[: max(1, int(round(fraction * len(members))))])
    valid_mask = np.zeros(n, dtype=bool)
    valid_mask[valid_idx] = True
    note = "no speaker ids in the file: validation is a seeded per-class random hold-out"
    return np.flatnonzero(~valid_mask), np.flatnonzero(valid_mask), note


def data_fingerprint(splits: DatasetSplits, samples_per_split: int = 16) -> str:
    """A short hash of what the splits hold, so a resumed run can tell it is fed the same data.

    It covers the shapes, every label of every split and ``samples_per_split`` evenly spaced
    samples of each (all of them would cost seconds on SSC and GSC for a check that a change of
    files fails already on the labels or the sizes). Paths are not part of it: a moved data folder
    still resumes.
    """
    import hashlib

    digest = hashlib.sha256(f"{splits.name}|{splits.n_inputs}|{splits.n_classes}|{splits.time_steps}".encode())
    for dataset in (splits.train, splits.valid, splits.test):
        count = len(dataset)
        digest.update(f"|{count}|".encode())
        labels = getattr(dataset, "labels", None)
        if labels is not None:
            digest.update(np.ascontiguousarray(np.asarray(labels)).tobytes())
        for index in sorted({int(i) for i in np.linspace(0, count - 1, num=min(count, samples_per_split))}):
            x, y = dataset[index]
            digest.update(np.ascontiguousarray(np.asarray(x)).tobytes())
            digest.update(np.ascontiguousarray(np.asarray(y)).tobytes())
    return digest.hexdigest()[:16]
