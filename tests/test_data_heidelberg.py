"""SHD / SSC loading on files written in exactly the official layout."""

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from official_layout import random_heidelberg_samples, write_heidelberg, write_shd_folder
from snn_toolchain.errors import DataFormatError
from snn_toolchain.train.data.loading import build_datasets, make_loader, speaker_holdout
from snn_toolchain.train.data.heidelberg import BinningConfig, densify, read_heidelberg_file

HAND_TIMES = [0.0, 0.004, 0.012, 0.5, 0.995, 1.0, 1.3]
HAND_UNITS = [0, 4, 5, 699, 12, 3, 3]


def test_binning_matches_hand_computed_counts(tmp_path):
    path = write_heidelberg(tmp_path / "shd_train.h5", [(HAND_TIMES, HAND_UNITS)], [7], times_dtype=np.float32)
    split = read_heidelberg_file(path, 20, BinningConfig())
    dense = densify(split.flat_indices[0], split.binning)
    expected = np.zeros((100, 140), dtype=np.float32)
    expected[0, 0] = 2      # units 0 and 4 share input channel 0 within the first 10 ms
    expected[1, 1] = 1      # 12 ms, unit 5 -> step 1, channel 1
    expected[50, 139] = 1   # 0.5 s, unit 699 -> the last channel
    expected[99, 2] = 1     # 995 ms is still inside the 1 s window
    np.testing.assert_array_equal(dense, expected)
    assert split.dropped_late_spikes == 2 and split.total_spikes == 7  # 1.0 s and 1.3 s are past the window
    assert split.labels.tolist() == [7]


def test_padding_appends_empty_steps(tmp_path):
    path = write_heidelberg(tmp_path / "x.h5", [(HAND_TIMES, HAND_UNITS)], [0], times_dtype=np.float32)
    split = read_heidelberg_file(path, 20, BinningConfig(pad_steps=25))
    dense = densify(split.flat_indices[0], split.binning)
    assert dense.shape == (125, 140)
    assert dense[100:].sum() == 0
    assert dense[:100].sum() == 5


def test_float16_times_as_in_the_published_files(tmp_path):
    path = write_heidelberg(tmp_path / "x.h5", [([0.25, 0.75], [10, 20])], [1], times_dtype=np.float16)
    dense = densify(read_heidelberg_file(path, 20, BinningConfig()).flat_indices[0], BinningConfig())
    assert dense[25, 2] == 1 and dense[75, 4] == 1 and dense.sum() == 2


def test_shd_builds_speaker_aware_validation(tmp_path):
    folder = write_shd_folder(tmp_path, n_train=50, n_test=12, n_speakers=10)
    splits = build_datasets("shd", folder, pad_steps=25, valid_fraction=0.2, seed=3)
    train_speakers = set(np.asarray(splits.train.split.speakers)[splits.train.indices])
    valid_speakers = set(np.asarray(splits.valid.split.speakers)[splits.valid.indices])
    assert train_speakers.isdisjoint(valid_speakers) and valid_speakers
    assert len(splits.train) + len(splits.valid) == 50 and len(splits.test) == 12
    assert len(splits.valid) == 10  # 2 of 10 speakers of 5 samples each
    x, y = splits.train[0]
    assert x.shape == (125, 140) and x.dtype == torch.float32 and 0 <= y < 20
    assert splits.n_inputs == 140 and splits.time_steps == 125 and splits.n_classes == 20
    again = build_datasets("shd", folder, pad_steps=25, valid_fraction=0.2, seed=3)
    np.testing.assert_array_equal(again.valid.indices, splits.valid.indices)


def test_shd_without_validation_trains_on_the_whole_file_and_says_the_test_stands_in(tmp_path):
    folder = write_shd_folder(tmp_path, n_train=50, n_test=12, n_speakers=10)
    splits = build_datasets("shd", folder, pad_steps=25, valid_fraction=0.0, seed=3)
    assert len(splits.train) == 50 and splits.valid_is_test
    assert "50 train / no valid (the test split stands in) / 12 test" in splits.summary()


def test_holdout_without_speakers_is_per_class_and_seeded():
    labels = np.repeat(np.arange(4), 10)
    train, valid, note = speaker_holdout(None, labels, 0.2, seed=1)
    assert "no speaker ids" in note
    assert sorted(np.concatenate([train, valid]).tolist()) == list(range(40))
    assert np.bincount(labels[valid]).tolist() == [2, 2, 2, 2]
    assert speaker_holdout(None, labels, 0.2, seed=1)[1].tolist() == valid.tolist()
    assert speaker_holdout(None, labels, 0.2, seed=2)[1].tolist() != valid.tolist()


def test_ssc_uses_its_own_validation_file(tmp_path):
    for name, n in (("train", 30), ("valid", 8), ("test", 9)):
        samples, labels = random_heidelberg_samples(n, 35, seed=n)
        write_heidelberg(tmp_path / f"ssc_{name}.h5", samples, labels)
    splits = build_datasets("ssc", tmp_path, pad_steps=0)
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (30, 8, 9)
    assert splits.n_classes == 35 and splits.train[0][0].shape == (100, 140)


def test_a_command_that_only_runs_a_network_never_reads_sscs_train_file(tmp_path):
    """without_train (run, parity, report, deploy): SSC's train file is not opened (here it is not
    even HDF5), the train split is empty, validation and test are those of a whole load; SHD, whose
    validation is held out of train, still reads it unless the test split stands in."""
    for name, n in (("train", 30), ("valid", 8), ("test", 9)):
        samples, labels = random_heidelberg_samples(n, 35, seed=n)
        write_heidelberg(tmp_path / f"ssc_{name}.h5", samples, labels)
    whole = build_datasets("ssc", tmp_path, pad_steps=3)
    (tmp_path / "ssc_train.h5").write_bytes(b"not read")
    with pytest.raises(DataFormatError):
        build_datasets("ssc", tmp_path, pad_steps=3)
    runs = build_datasets("ssc", tmp_path, pad_steps=3, without_train=True)
    assert (len(runs.train), len(runs.valid), len(runs.test)) == (0, 8, 9) and runs.n_classes == 35
    for split in ("valid", "test"):
        assert all(torch.equal(getattr(runs, split)[i][0], getattr(whole, split)[i][0]) for i in range(8))
    assert "train split not read (only a network runs here)" in runs.notes
    shd = write_shd_folder(tmp_path / "shd")
    assert len(build_datasets("shd", shd, pad_steps=0, without_train=True).valid) == \
        len(build_datasets("shd", shd, pad_steps=0).valid) > 0
    (shd / "shd_train.h5").write_bytes(b"not read")
    paper = build_datasets("shd", shd, pad_steps=0, valid_fraction=0, without_train=True)
    assert len(paper.train) == 0 and paper.valid_is_test


def test_loader_shuffling_is_seeded(tmp_path):
    splits = build_datasets("shd", write_shd_folder(tmp_path), pad_steps=0)
    def first_labels(seed):
        return [y.tolist() for _, y in make_loader(splits.train, 8, shuffle=True, seed=seed)]
    assert first_labels(5) == first_labels(5)
    assert first_labels(5) != first_labels(6)
    x, y = next(iter(make_loader(splits.train, 8, shuffle=False)))
    assert x.shape == (8, 100, 140) and y.dtype == torch.int64


def test_embedded_dataset_loads_offline():
    splits = build_datasets("shd", None, pad_steps=25)
    assert splits.n_classes == 20 and len(splits.train) > 500 and len(splits.test) > 100
    assert "embedded" in splits.source
    x, _ = splits.test[0]
    assert x.shape == (125, 140) and x.sum() > 0


# ---------------------------------------------------------------- every error case, one clear line each

def _error(tmp_path, make) -> str:
    path = tmp_path / "shd_train.h5"
    make(path)
    with pytest.raises(DataFormatError) as info:
        read_heidelberg_file(path, 20, BinningConfig())
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_missing_file(tmp_path):
    assert "file not found" in _error(tmp_path, lambda p: None)


def test_truncated_file(tmp_path):
    def make(path):
        write_heidelberg(path, *random_heidelberg_samples(20, 20))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    message = _error(tmp_path, make)
    assert "truncated or corrupt" in message and "download it again" in message


def test_not_hdf5(tmp_path):
    assert "not a readable HDF5 file" in _error(tmp_path, lambda p: p.write_bytes(b"spikes" * 100))


def test_missing_key(tmp_path):
    def make(path):
        write_heidelberg(path, *random_heidelberg_samples(3, 20))
        with h5py.File(path, "a") as f:
            del f["spikes/units"]
    assert "missing dataset 'spikes/units'" in _error(tmp_path, make)


def test_wrong_times_dtype(tmp_path):
    def make(path):
        with h5py.File(path, "w") as f:
            f.create_dataset("spikes/times", data=np.zeros(2, dtype=np.int32))
            f.create_dataset("spikes/units", (2,), dtype=h5py.vlen_dtype(np.uint16))
            f.create_dataset("labels", data=np.zeros(2, dtype=np.uint16))
    assert "expected variable-length float" in _error(tmp_path, make)


def test_wrong_label_dtype(tmp_path):
    def make(path):
        write_heidelberg(path, *random_heidelberg_samples(3, 20))
        with h5py.File(path, "a") as f:
            del f["labels"]
            f.create_dataset("labels", data=np.zeros(3, dtype=np.float32))
    assert "1-D unsigned integer" in _error(tmp_path, make)


def test_sample_count_mismatch(tmp_path):
    def make(path):
        write_heidelberg(path, *random_heidelberg_samples(3, 20))
        with h5py.File(path, "a") as f:
            del f["labels"]
            f.create_dataset("labels", data=np.zeros(4, dtype=np.uint16))
    assert "one entry per sample" in _error(tmp_path, make)


def test_times_and_units_differ_in_length(tmp_path):
    message = _error(tmp_path, lambda p: write_heidelberg(p, [([0.1, 0.2], [1])], [0]))
    assert "sample 0 has 2 spike times but 1 units" in message


def test_empty_sample(tmp_path):
    message = _error(tmp_path, lambda p: write_heidelberg(p, [([0.1], [1]), ([], [])], [0, 1]))
    assert "sample 1 has no spikes" in message


def test_unit_out_of_range(tmp_path):
    assert "expected 0..699" in _error(tmp_path, lambda p: write_heidelberg(p, [([0.1], [700])], [0]))


def test_label_out_of_range(tmp_path):
    assert "label 20, expected 0..19" in _error(tmp_path, lambda p: write_heidelberg(p, [([0.1], [1])], [20]))


def test_negative_time(tmp_path):
    assert "negative or non-finite" in _error(tmp_path, lambda p: write_heidelberg(p, [([-0.1], [1])], [0]))


def test_missing_folder_and_unknown_dataset(tmp_path):
    with pytest.raises(DataFormatError, match="data folder not found"):
        build_datasets("shd", tmp_path / "nowhere")
    with pytest.raises(DataFormatError, match="unknown dataset 'mnist'"):
        build_datasets("mnist", tmp_path)
    with pytest.raises(DataFormatError, match="no SSC data"):
        build_datasets("ssc", None)
    with pytest.raises(DataFormatError, match=r"shd_test\.h5: file not found"):
        write_heidelberg(tmp_path / "shd_train.h5", *random_heidelberg_samples(3, 20))
        build_datasets("shd", tmp_path)


def test_batched_loading_equals_sample_by_sample(tmp_path):
    splits = build_datasets("shd", write_shd_folder(tmp_path, spikes=(100, 400)), pad_steps=7)
    order = [5, 0, 17, 3, 3, 9]
    x, y = next(iter(make_loader(splits.train, 6, sampler=order)))
    torch.testing.assert_close(x, torch.stack([splits.train[i][0] for i in order]), rtol=0, atol=0)
    assert y.tolist() == [splits.train[i][1] for i in order]
