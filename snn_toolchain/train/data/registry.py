"""The dataset registry: one small spec per dataset (tonic's way), looked up by everything that
names a dataset: ``build_datasets``, the CLI's ``--dataset`` choices, ``--download`` and the presets.

Adding a dataset is one file plus one registration: a reader module (as ``heidelberg.py`` or
``gsc.py``) that defines a :class:`DatasetSpec` (its classes, input channels and steps, its
preset, its download entry and published checksums, and a ``load`` function returning
``DatasetSplits``), and a :func:`register_dataset` call (the built-in SHD, SSC and GSC are
specified and registered below).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, NamedTuple, Optional

import numpy as np

from snn_toolchain import constants as C
from snn_toolchain.errors import DataFormatError
from snn_toolchain.input_encoding import DEFAULT_INPUT_BITS, GradedInputEncoding
from snn_toolchain.train.downloads.archives import ArchiveFolderDataset, HeidelbergArchives
from snn_toolchain.train.data.heidelberg import BinningConfig, read_heidelberg_file
from snn_toolchain.train.downloads.verified_transfer import PublishedChecksum

if TYPE_CHECKING:   # the readers import torch, loaded when a dataset is: the CLI's parser reads this registry
    from snn_toolchain.train.data.splits import DatasetSplits

log = logging.getLogger(__name__)

EMBEDDED_DATA_DIR = Path(__file__).resolve().parent / "embedded_data"


class LoadOptions(NamedTuple):
    """What ``build_datasets`` passes to a dataset's ``load``: pad_steps (empty steps appended to
    every sample, the maximum delay), valid_fraction and seed (a held-out validation split where
    the dataset ships none), cache_dir (computed features), source (where the files came from);
    for real-valued features (GSC), input_bits (graded spike payload bits) and input_encoding (a
    run's or a .net file's own encoding, used instead of fitting one on the train split);
    without_train: the caller only runs a network (run, parity, report, deploy), so the train split
    is left empty wherever neither the validation split nor the encoding comes from it (SSC's
    75k-sample train file, GSC's train features are then not read)."""

    pad_steps: int
    valid_fraction: float
    seed: int
    cache_dir: Optional[Path]
    source: str
    input_bits: int = DEFAULT_INPUT_BITS
    input_encoding: Optional[GradedInputEncoding] = None
    without_train: bool = False


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset.

    name: the ``--dataset`` value (lower case). n_classes; n_channels: inputs per step;
    time_steps: input steps per sample before the delay padding (10 ms each).
    load: ``(folder, LoadOptions) -> DatasetSplits``, the reader, given the data folder.
    download: how ``--download`` fetches the files (``HeidelbergArchives`` or
    ``ArchiveFolderDataset``), None where it cannot. checksums: served file name ->
    ``PublishedChecksum``, the digests downloads are verified against.
    preset: ``TrainConfig`` values of the paper's preset for the dataset (its Table 3 row; the
    "tuned" preset adds ``train/loop/config.py``'s ``TUNED_PRESET``).
    embedded_dir, embedded_description: the folder used without ``--data-dir`` (None: refused).
    """

    name: str
    n_classes: int
    n_channels: int
    time_steps: int
    load: Callable
    preset: Mapping = field(default_factory=dict)
    download: HeidelbergArchives | ArchiveFolderDataset | None = None
    checksums: Mapping = field(default_factory=dict)
    embedded_dir: Optional[Path] = None
    embedded_description: str = ""


DATASET_SPECS: dict[str, DatasetSpec] = {}
# Filled by register_dataset; train/downloads/download.py looks names and files up here, at call time (so
# tests can monkeypatch entries).
DOWNLOADS: dict = {}
PUBLISHED_CHECKSUMS: dict[str, PublishedChecksum] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` (its download entry and checksums too); refused (ValueError) when its name or
    one of its served files is taken."""
    if spec.name != spec.name.lower() or spec.name in DATASET_SPECS:
        raise ValueError(f"dataset {spec.name!r}: names are lower case and unique")
    taken = sorted(set(spec.checksums) & set(PUBLISHED_CHECKSUMS))
    if taken:
        raise ValueError(f"dataset {spec.name!r}: checksums for {', '.join(taken)} are already registered")
    DATASET_SPECS[spec.name] = spec
    if spec.download is not None:
        DOWNLOADS[spec.name] = spec.download
    PUBLISHED_CHECKSUMS.update(spec.checksums)
    return spec


def unregister_dataset(name: str) -> DatasetSpec:
    """Remove the dataset ``name`` with its download entry and checksums; returns its spec."""
    spec = DATASET_SPECS.pop(name)
    DOWNLOADS.pop(name, None)
    for served in spec.checksums:
        PUBLISHED_CHECKSUMS.pop(served, None)
    return spec


def dataset_names() -> tuple[str, ...]:
    return tuple(DATASET_SPECS)


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of ``name`` (case-insensitive); DataFormatError listing the registered ones."""
    spec = DATASET_SPECS.get(name.lower())
    if spec is None:
        raise DataFormatError(f"unknown dataset '{name.lower()}': choose one of {', '.join(DATASET_SPECS)}")
    return spec


# ------------------------------------------------------------------------------ SHD and SSC

def heidelberg_loader(name: str, files: dict, n_classes: int, hold_out_speakers: bool) -> Callable:
    """The ``load`` of SHD or SSC: one HDF5 file per split in ``files`` (split -> file name);
    ``hold_out_speakers``: validation is whole speakers held out of train (SHD ships no validation)."""

    def load(folder: Path, options: LoadOptions) -> DatasetSplits:
        from snn_toolchain.train.data.splits import DatasetSplits, HeidelbergDataset, speaker_holdout  # torch

        binning = BinningConfig(pad_steps=options.pad_steps)
        # validation held out of train (SHD) needs the train file, unless the test split stands in
        skip_train = options.without_train and (not hold_out_speakers or options.valid_fraction == 0)
        splits = {split: read_heidelberg_file(folder / filename, n_classes, binning) for split, filename in files.items()
                  if not (skip_train and split == "train")}
        notes = ["train split not read (only a network runs here)"] if skip_train else []
        # the train split, or where its file was not read an empty one (a view of no test samples)
        whole_train = HeidelbergDataset(splits["test"], np.arange(0)) if skip_train else HeidelbergDataset(splits["train"])
        if hold_out_speakers and options.valid_fraction == 0:
            # the paper's protocol on a dataset without a validation split: the whole train file
            # trains, and the test split stands in for validation (schedule and selection)
            notes.append("no validation split (--valid-fraction 0): the whole train file trains and the test split "
                         "stands in for validation, as in the paper's protocol")
            train = whole_train
            valid = HeidelbergDataset(splits["test"])
        elif hold_out_speakers:
            train_idx, valid_idx, note = speaker_holdout(splits["train"].speakers, splits["train"].labels,
                                                         options.valid_fraction, options.seed)
            notes.append(note)
            train = HeidelbergDataset(splits["train"], train_idx)
            valid = HeidelbergDataset(splits["train"], valid_idx)
        else:
            train = whole_train
            valid = HeidelbergDataset(splits["valid"])
        test = HeidelbergDataset(splits["test"])
        for split_name, split in splits.items():
            if split.dropped_late_spikes:
                notes.append(f"{split_name}: dropped {split.dropped_late_spikes} of {split.total_spikes} spikes at or "
                             f"after {binning.duration_s:g} s "
                             f"({100 * split.dropped_late_spikes / split.total_spikes:.2f}%)")
        class_names = splits["train" if "train" in splits else "test"].class_names or [str(i) for i in range(n_classes)]
        for note in notes:
            log.info(note)
        return DatasetSplits(name, train, valid, test, binning.channels, n_classes, binning.total_steps,
                             class_names, options.source, notes)

    return load


# Heidelberg spiking data sets (Cramer et al. 2020). This is the base URL of the authors' own
# loader (github.com/fzenke/spytorch, notebooks/utils.py, get_shd_dataset) and of tonic
# (github.com/neuromorphs/tonic, tonic/datasets/hsd.py, HSD.base_url). The files used to live
# at https://compneuro.net/datasets/. Both "<split>.h5.gz" and "<split>.h5.zip" are served.
HEIDELBERG_BASE_URL = "https://zenkelab.org/datasets"

# MD5 of the zipped Heidelberg files, as pinned by tonic (neuromorphs/tonic,
# tonic/datasets/hsd.py: SHD.train_md5/test_md5, SSC.train_md5/valid_md5/test_md5) and,
# identically, by spikingjelly (fangwei123456/spikingjelly,
# spikingjelly/datasets/shd.py: resource_url_md5) for https://zenkelab.org/datasets/<name>.
# The *.h5.gz files are deliberately NOT pinned: the only copies of their MD5 found in public code
# were single, uncorroborated hard-coded values, so they are verified against the official
# md5sums.txt fetched from the same base URL at download time instead.
SHD = DatasetSpec(
    name="shd", n_classes=C.SHD_CLASSES, n_channels=C.INPUT_CHANNELS, time_steps=C.TIME_STEPS,
    load=heidelberg_loader("shd", C.SHD_SPLIT_FILES, C.SHD_CLASSES, hold_out_speakers=True),
    # the paper's Table 3, exactly (the improvements beyond it are train/loop/config.py's TUNED_PRESET)
    preset=dict(hidden=128, epochs=100, batch_size=128, dropout=0.5, lr_weights=0.01, lr_delays=0.1),
    download=HeidelbergArchives(h5_names=tuple(C.SHD_SPLIT_FILES.values()), default_base_url=HEIDELBERG_BASE_URL),
    checksums={"shd_train.h5.zip": PublishedChecksum(md5="f3252aeb598ac776c1b526422d90eecb"),
               "shd_test.h5.zip": PublishedChecksum(md5="1503a5064faa34311c398fb0a1ed0a6f")},
    embedded_dir=EMBEDDED_DATA_DIR, embedded_description="the embedded synthetic spoken-digit set (SHD layout)")

# The paper's Table 3 gives SSC and GSC one preset.
SPEECH_COMMANDS_PRESET = dict(hidden=512, epochs=200, batch_size=32, dropout=0.25, lr_weights=0.001, lr_delays=0.01)

SSC = DatasetSpec(
    name="ssc", n_classes=C.SSC_CLASSES, n_channels=C.INPUT_CHANNELS, time_steps=C.TIME_STEPS,
    load=heidelberg_loader("ssc", C.SSC_SPLIT_FILES, C.SSC_CLASSES, hold_out_speakers=False),
    preset=SPEECH_COMMANDS_PRESET,
    download=HeidelbergArchives(h5_names=tuple(C.SSC_SPLIT_FILES.values()), default_base_url=HEIDELBERG_BASE_URL),
    checksums={"ssc_train.h5.zip": PublishedChecksum(md5="d102be95e7144fcc0553d1f45ba94170"),
               "ssc_valid.h5.zip": PublishedChecksum(md5="b4eee3516a4a90dd0c71a6ac23a8ae43"),
               "ssc_test.h5.zip": PublishedChecksum(md5="a35ff1e9cffdd02a20eb850c17c37748")})


# ------------------------------------------------------------------------------ GSC

# Google Speech Commands (Warden 2018). The paper and TFDS name the http alias
# http://download.tensorflow.org/data/; this is the https form of the same Google Cloud Storage
# bucket, used by torchaudio (pytorch/audio, torchaudio/datasets/speechcommands.py).
GSC_BASE_URL = "https://storage.googleapis.com/download.tensorflow.org/data"
GSC_ARCHIVE_NAME = "speech_commands_v0.02.tar.gz"
# The official split lists at the top of the archive; they name every validation/test clip.
GSC_SPLIT_LISTS = ("validation_list.txt", "testing_list.txt")


def load_gsc_folder(folder: Path, options: LoadOptions) -> DatasetSplits:
    from snn_toolchain.train.data.gsc import load_gsc   # torch: not for the CLI's parser

    # --download extracts into DIR/speech_commands_v0.02; accept DIR itself on later runs.
    if not (folder / "validation_list.txt").exists() and (folder / C.GSC_FOLDER_NAME).is_dir():
        folder = folder / C.GSC_FOLDER_NAME
    return load_gsc(folder, pad_steps=options.pad_steps, cache_dir=options.cache_dir, source=options.source,
                    input_bits=options.input_bits, input_encoding=options.input_encoding,
                    without_train=options.without_train)


GSC = DatasetSpec(
    name="gsc", n_classes=C.GSC_CLASSES, n_channels=C.GSC_N_MELS, time_steps=C.TIME_STEPS, load=load_gsc_folder,
    preset=SPEECH_COMMANDS_PRESET,
    download=ArchiveFolderDataset(archive_name=GSC_ARCHIVE_NAME, folder_name=C.GSC_FOLDER_NAME,
                                  required_files=GSC_SPLIT_LISTS, default_base_url=GSC_BASE_URL),
    # size and SHA-256 from TensorFlow Datasets (tensorflow/datasets,
    # tensorflow_datasets/url_checksums/speech_commands.txt), SHA-256 also in current torchaudio
    # (torchaudio/datasets/speechcommands.py, _CHECKSUMS); the MD5 is the one older torchaudio
    # releases pinned (torchaudio/datasets/checksums/SPEECHCOMMANDS.txt).
    checksums={GSC_ARCHIVE_NAME: PublishedChecksum(
        md5="6b74f3901214cb2c2934e98196829835",
        sha256="af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
        size_bytes=2_428_923_189)})

register_dataset(SHD)
register_dataset(SSC)
register_dataset(GSC)
