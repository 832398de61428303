"""One entry point for every dataset: ``build_datasets('shd' | 'ssc' | 'gsc', data_dir)``.

It returns PyTorch ``Dataset`` objects whose samples are ``(x, label)`` with ``x`` a float32
tensor of shape ``(time_steps + pad_steps, channels)``:

- SHD / SSC: spike counts per 10 ms bin and per 5 cochlea channels (140 channels);
- GSC: 40 log-mel filterbank features per 10 ms hop.

Model selection always uses a validation split, never the test split:

- SSC and GSC ship one;
- SHD does not, so a seeded, speaker-aware part of its train file is held out (whole speakers, so
  validation measures generalisation to unheard voices as the test split does).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from snn_toolchain import constants as C
from snn_toolchain.errors import DataFormatError
from snn_toolchain.train.download import download_dataset
from snn_toolchain.train.heidelberg import BinningConfig, HeidelbergSplit, densify, read_heidelberg_file

log = logging.getLogger(__name__)

EMBEDDED_DATA_DIR = Path(__file__).resolve().parent / "embedded_data"
DATASETS = ("shd", "ssc", "gsc")


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
    """Samples held as one dense float32 tensor (GSC's cached features), right-padded on access."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, pad_steps: int):
        self.features = features
        self.labels = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        self.pad_steps = pad_steps

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, int]:
        x = self.features[item]
        if self.pad_steps:
            x = torch.nn.functional.pad(x, (0, 0, 0, self.pad_steps))
        return x, int(self.labels[item])

    def __getitems__(self, items: list[int]) -> Batch:
        index = torch.as_tensor(items, dtype=torch.int64)
        x = self.features[index]
        if self.pad_steps:
            x = torch.nn.functional.pad(x, (0, 0, 0, self.pad_steps))
        return Batch(x, torch.as_tensor(self.labels[index.numpy()], dtype=torch.int64))


@dataclass
class DatasetSplits:
    """The three splits of one dataset and what a model needs to know about it."""

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

    def summary(self) -> str:
        return (f"{self.name}: {len(self.train)} train / {len(self.valid)} valid / {len(self.test)} test "
                f"samples, {self.n_inputs} inputs x {self.time_steps} steps, {self.n_classes} classes "
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


def resolve_data_dir(dataset: str, data_dir: Path | None, download: bool) -> tuple[Path, str]:
    """Where the files of ``dataset`` are, fetching them first when ``download`` is set."""
    if download:
        if data_dir is None:
            raise DataFormatError(f"--download needs --data-dir: the folder to write the {dataset.upper()} files into")

        return download_dataset(dataset, Path(data_dir)), f"{data_dir} (downloaded)"
    if data_dir is not None:
        return Path(data_dir), str(data_dir)
    if dataset == "shd":
        return EMBEDDED_DATA_DIR, "the embedded synthetic spoken-digit set (SHD layout)"
    raise DataFormatError(
        f"no {dataset.upper()} data: pass --data-dir pointing at the official files, or --data-dir DIR --download")


def build_datasets(dataset: str, data_dir: Path | None = None, *, pad_steps: int = C.TRAIN_MAX_DELAY,
                   valid_fraction: float = 0.1, seed: int = 0, download: bool = False,
                   cache_dir: Path | None = None) -> DatasetSplits:
    """Load train / valid / test of ``dataset``.

    Args:
        dataset: "shd", "ssc" or "gsc".
        data_dir: folder holding the official files; None uses the embedded set (SHD only).
        pad_steps: empty time steps appended to every sample (the maximum synaptic delay, in steps).
        valid_fraction: SHD only: share of train held out (by speaker) for model selection.
        seed: seeds the SHD validation hold-out.
        download: fetch the official files into ``data_dir`` first.
        cache_dir: GSC only: where computed features are cached (default: inside ``data_dir``).
    """
    dataset = dataset.lower()
    if dataset not in DATASETS:
        raise DataFormatError(f"unknown dataset '{dataset}': choose one of {', '.join(DATASETS)}")
    folder, source = resolve_data_dir(dataset, data_dir, download)
    if not folder.is_dir():
        raise DataFormatError(f"{folder}: data folder not found; point --data-dir at the folder holding the "
                              f"{dataset.upper()} files")
    if dataset == "gsc":
        from snn_toolchain.train.gsc import load_gsc  # torchaudio: loaded only for GSC

        # --download extracts into DIR/speech_commands_v0.02; accept DIR itself on later runs.
        if not (folder / "validation_list.txt").exists() and (folder / C.GSC_FOLDER_NAME).is_dir():
            folder = folder / C.GSC_FOLDER_NAME

        return load_gsc(folder, pad_steps=pad_steps, cache_dir=cache_dir, source=source)

    binning = BinningConfig(pad_steps=pad_steps)
    files = C.SHD_SPLIT_FILES if dataset == "shd" else C.SSC_SPLIT_FILES
    n_classes = C.SHD_CLASSES if dataset == "shd" else C.SSC_CLASSES
    splits = {name: read_heidelberg_file(folder / filename, n_classes, binning) for name, filename in files.items()}
    notes = []
    if dataset == "shd":
        train_idx, valid_idx, note = speaker_holdout(splits["train"].speakers, splits["train"].labels,
                                                     valid_fraction, seed)
        notes.append(note)
        train = HeidelbergDataset(splits["train"], train_idx)
        valid = HeidelbergDataset(splits["train"], valid_idx)
    else:
        train = HeidelbergDataset(splits["train"])
        valid = HeidelbergDataset(splits["valid"])
    test = HeidelbergDataset(splits["test"])
    for name, split in splits.items():
        if split.dropped_late_spikes:
            notes.append(f"{name}: dropped {split.dropped_late_spikes} of {split.total_spikes} spikes at or after "
                         f"{binning.duration_s:g} s ({100 * split.dropped_late_spikes / split.total_spikes:.2f}%)")
    class_names = splits["train"].class_names or [str(i) for i in range(n_classes)]
    for note in notes:
        log.info(note)
    return DatasetSplits(dataset, train, valid, test, binning.channels, n_classes, binning.total_steps,
                         class_names, source, notes)


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool = False, seed: int = 0, num_workers: int = 0,
                drop_last: bool = False, sampler=None) -> DataLoader:
    """A DataLoader whose shuffling order depends only on ``seed`` and the epoch count
    (the generator is owned by the loader, so resuming can restore it). ``sampler`` (e.g. a
    DistributedSampler) replaces the shuffling."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle if sampler is None else None,
                      sampler=sampler, num_workers=num_workers, drop_last=drop_last, generator=generator,
                      collate_fn=collate)  # no persistent workers: they would draw their seed once, so a resumed run would shuffle differently
