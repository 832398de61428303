"""The dataset registry: a dataset registered at test time is built by build_datasets, offered by the
CLI, has its preset, and its download entry and checksums are what --download looks up."""

import pytest
import torch

from snn_toolchain.errors import DataFormatError
from snn_toolchain.train.downloads import download
from snn_toolchain.train.downloads.archives import ArchiveFolderDataset
from snn_toolchain.train.loop.config import PRESETS, preset_config
from snn_toolchain.train.data.loading import TensorFeatureDataset, build_datasets
from snn_toolchain.train.data.registry import DatasetSpec, dataset_names, register_dataset, unregister_dataset
from snn_toolchain.train.data.splits import DatasetSplits
from snn_toolchain.train.downloads.verified_transfer import PublishedChecksum


def load_tones(folder, options):
    """Three fixed samples per split, 4 channels x 6 steps, padded by ``options.pad_steps``."""
    x = torch.arange(3 * 6 * 4, dtype=torch.float32).reshape(3, 6, 4) % 2
    split = TensorFeatureDataset(x, torch.tensor([0, 1, 0]), options.pad_steps)
    return DatasetSplits("tones", split, split, split, 4, 2, 6 + options.pad_steps, ["low", "high"],
                         options.source, [f"seed {options.seed}, folder {folder.name}"])


TONES = DatasetSpec(
    name="tones", n_classes=2, n_channels=4, time_steps=6, load=load_tones,
    preset=dict(hidden=8, epochs=2, batch_size=3, dropout=0.0, lr_weights=0.02, lr_delays=0.2),
    download=ArchiveFolderDataset(archive_name="tones.tar.gz", folder_name="tones", required_files=("list.txt",),
                                  default_base_url="https://example.org/tones"),
    checksums={"tones.tar.gz": PublishedChecksum(md5="0" * 32)})


@pytest.fixture
def tones():
    register_dataset(TONES)
    try:
        yield TONES
    finally:
        unregister_dataset(TONES.name)


def test_a_registered_dataset_flows_through_build_datasets_presets_cli_and_download(tones, tmp_path):
    splits = build_datasets("TONES", tmp_path, pad_steps=3, seed=7)
    assert splits.name == "tones" and splits.time_steps == 9 and splits.notes == [f"seed 7, folder {tmp_path.name}"]
    assert splits.train[0][0].shape == (9, 4) and splits.source == str(tmp_path)
    config = preset_config("tones", epochs=5)
    assert (config.dataset, config.hidden, config.epochs, config.lr_weights) == ("tones", 8, 5, 0.02)
    assert "tones" in PRESETS and PRESETS["tones"]["batch_size"] == 3
    assert dataset_names() == ("shd", "ssc", "gsc", "tones")
    from snn_toolchain.cli import build_parser

    assert build_parser().parse_args(["data", "--dataset", "tones"]).dataset == "tones"
    assert download.DATASETS["tones"] is TONES.download
    assert download.PUBLISHED_CHECKSUMS["tones.tar.gz"].md5 == "0" * 32
    with pytest.raises(DataFormatError, match="no TONES data: pass --data-dir"):
        build_datasets("tones", None)


def test_after_unregistering_the_dataset_is_unknown_everywhere(tmp_path):
    register_dataset(TONES)
    unregister_dataset("tones")
    assert "tones" not in PRESETS and "tones" not in download.DATASETS
    assert "tones.tar.gz" not in download.PUBLISHED_CHECKSUMS
    with pytest.raises(DataFormatError, match="unknown dataset 'tones': choose one of shd, ssc, gsc"):
        build_datasets("tones", tmp_path)


def test_a_taken_name_or_served_file_is_refused(tones):
    with pytest.raises(ValueError, match="unique"):
        register_dataset(TONES)
    with pytest.raises(ValueError, match="shd_test.h5.zip"):
        register_dataset(DatasetSpec(name="other", n_classes=2, n_channels=1, time_steps=1, load=load_tones,
                                     checksums={"shd_test.h5.zip": PublishedChecksum(md5="1" * 32)}))
