"""One entry point for every registered dataset (``train/data/registry.py``): ``build_datasets('shd' | 'ssc' | 'gsc', data_dir)``.

It returns PyTorch ``Dataset`` objects whose samples are ``(x, label)`` with ``x`` a float32
tensor of shape ``(time_steps + pad_steps, channels)``:

- SHD / SSC: spike counts per 10 ms bin and per 5 cochlea channels (140 channels);
- GSC: 40 log-mel filterbank features per 10 ms hop, encoded as graded spike payloads
  (``snn_toolchain.input_encoding``: 0..255 at 8 bits, unrounded; ``splits.deployed()`` rounds them).

Model selection always uses a validation split, never the test split:

- SSC and GSC ship one;
- SHD does not, so a seeded, speaker-aware part of its train file is held out (whole speakers, so
  validation measures generalisation to unheard voices as the test split does).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from snn_toolchain import constants as C
from snn_toolchain.errors import DataFormatError
from snn_toolchain.input_encoding import DEFAULT_INPUT_BITS, GradedInputEncoding
from snn_toolchain.train.data.registry import EMBEDDED_DATA_DIR, LoadOptions, dataset_spec  # noqa: F401 (EMBEDDED_DATA_DIR re-exported)
from snn_toolchain.train.downloads.download import download_dataset
# re-exported: the dataset types are public names of this module
from snn_toolchain.train.data.splits import (  # noqa: F401
    Batch,
    DatasetSplits,
    HeidelbergDataset,
    TensorFeatureDataset,
    collate,
    speaker_holdout,
)


def resolve_data_dir(dataset: str, data_dir: Path | None, download: bool) -> tuple[Path, str]:
    """Where the files of ``dataset`` are, fetching them first when ``download`` is set."""
    spec = dataset_spec(dataset)
    if download:
        if data_dir is None:
            raise DataFormatError(f"--download needs --data-dir: the folder to write the {dataset.upper()} files into")

        return download_dataset(dataset, Path(data_dir)), f"{data_dir} (downloaded)"
    if data_dir is not None:
        return Path(data_dir), str(data_dir)
    if spec.embedded_dir is not None:
        return spec.embedded_dir, spec.embedded_description
    raise DataFormatError(
        f"no {dataset.upper()} data: pass --data-dir pointing at the official files, or --data-dir DIR --download")


def build_datasets(dataset: str, data_dir: Path | None = None, *, pad_steps: int = C.TRAIN_MAX_DELAY,
                   valid_fraction: float = 0.1, seed: int = 0, download: bool = False,
                   cache_dir: Path | None = None, input_bits: int = DEFAULT_INPUT_BITS,
                   input_encoding: GradedInputEncoding | None = None, without_train: bool = False) -> DatasetSplits:
    """Load train / valid / test of ``dataset``, a registered dataset (``train/data/registry.py``).

    Args:
        dataset: "shd", "ssc", "gsc" or another registered name.
        data_dir: folder holding the official files; None uses the embedded set (SHD only).
        pad_steps: empty time steps appended to every sample (the maximum synaptic delay, in steps).
        valid_fraction: SHD only: share of train held out (by speaker) for model selection.
        seed: seeds the SHD validation hold-out.
        download: fetch the official files into ``data_dir`` first.
        cache_dir: GSC only: where computed features are cached (default: inside ``data_dir``).
        input_bits: GSC only: graded spike payload bits of the encoded features.
        input_encoding: GSC only: encode with this (a run's or a .net file's) instead of fitting
            an encoding on the train split.
        without_train: only a network runs on the result (run, parity, report, deploy): the train
            split is empty wherever validation and the encoding do not need it (``LoadOptions``).
    """
    dataset = dataset.lower()
    spec = dataset_spec(dataset)
    folder, source = resolve_data_dir(dataset, data_dir, download)
    if not folder.is_dir():
        raise DataFormatError(f"{folder}: data folder not found; point --data-dir at the folder holding the "
                              f"{dataset.upper()} files")
    return spec.load(folder, LoadOptions(pad_steps, valid_fraction, seed, cache_dir, source, input_bits, input_encoding,
                                         without_train))


def build_run_datasets(settings, data_dir: Path | None = None, **options) -> DatasetSplits:
    """The datasets of a training run: ``settings`` (a ``TrainConfig``, the CLI's arguments, or a
    run's ``config.json`` as a dict) names the dataset, the validation fraction, the seed and the
    input bits, and its ``max_delay`` is the padding: every sample gets that many empty steps at its
    end, so that a spike delayed by the largest delay still reaches the readout inside the sample.
    ``options`` go to :func:`build_datasets` as they are (``download``, ``cache_dir``,
    ``input_encoding``...)."""
    def setting(name, default=None):
        return settings.get(name, default) if isinstance(settings, dict) else getattr(settings, name, default)

    options.setdefault("input_bits", setting("input_bits", DEFAULT_INPUT_BITS))
    return build_datasets(setting("dataset"), data_dir, pad_steps=setting("max_delay", C.TRAIN_MAX_DELAY),
                          valid_fraction=setting("valid_fraction", 0.1), seed=setting("seed", 0), **options)


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
