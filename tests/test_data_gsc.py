"""GSC v0.02 loading (train/data/gsc.py) on a folder tree written in exactly the official layout: the
splits, the features and their cache (a wrong cache is recomputed, not trusted), and the features
as graded payloads that the deployed splits round.
"""

import numpy as np
import pytest
import torch

from official_layout import write_gsc_folder, write_wav
from snn_toolchain.errors import DataFormatError
from snn_toolchain.input_encoding import GradedInputEncoding
from snn_toolchain.train.data import gsc
from snn_toolchain.train.data.loading import build_datasets


@pytest.fixture(scope="module")
def gsc_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech_commands_v0.02")
    expected = write_gsc_folder(root, gsc.GSC_WORDS, clips_per_word=3)
    return root, expected


def test_splits_follow_the_list_files(gsc_root):
    root, expected = gsc_root
    clips = gsc.list_clips(root)
    for split in ("train", "valid", "test"):
        assert sorted(rel for rel, _ in clips[split]) == sorted(expected[split])
    labels = {rel: label for rel, label in clips["train"]}
    assert labels["backward/spk02_nohash_0.wav"] == 0 and labels["zero/spk02_nohash_0.wav"] == 34
    assert not any(rel.startswith("_background_noise_") for split in clips.values() for rel, _ in split)


def test_features_shape_padding_and_cache(gsc_root, tmp_path, monkeypatch):
    root, _ = gsc_root
    splits = build_datasets("gsc", root, pad_steps=25, cache_dir=tmp_path)
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (35, 35, 35)
    x, y = splits.train[0]
    assert x.shape == (125, 40) and x.dtype == torch.float32 and torch.isfinite(x).all()
    assert (x[100:] == 0).all() and x[:100].std() > 0
    assert splits.n_inputs == 40 and splits.time_steps == 125 and splits.n_classes == 35
    assert len(list(tmp_path.glob("gsc_*.pt"))) == 3

    def no_recompute(*args, **kwargs):
        raise AssertionError("features were recomputed although they are cached")
    monkeypatch.setattr(gsc, "log_mel_features", no_recompute)
    again = build_datasets("gsc", root, pad_steps=25, cache_dir=tmp_path)
    torch.testing.assert_close(again.train[0][0], x)


def test_trim_and_pad_to_one_second(tmp_path):
    long_clip = np.sin(np.arange(24000) / 5.0).astype(np.float32)
    assert gsc.log_mel_features(long_clip).shape == (100, 40)
    short = gsc.log_mel_features(long_clip[:4000])
    assert short.shape == (100, 40)
    # past the clip's end (0.25 s) the padded zeros give the constant log floor
    assert torch.allclose(short[40:], short[40:41].expand(60, 40))
    torch.testing.assert_close(gsc.log_mel_features(long_clip)[:20], gsc.log_mel_features(long_clip[:16000])[:20])


def test_missing_word_folder(tmp_path):
    write_gsc_folder(tmp_path, gsc.GSC_WORDS[:-1], clips_per_word=1)
    with pytest.raises(DataFormatError, match=r"missing word folder\(s\) zero"):
        gsc.list_clips(tmp_path)


def test_missing_list_file(tmp_path):
    write_gsc_folder(tmp_path, gsc.GSC_WORDS, clips_per_word=1)
    (tmp_path / "testing_list.txt").unlink()
    with pytest.raises(DataFormatError, match=r"testing_list\.txt: file not found"):
        gsc.list_clips(tmp_path)


def test_wrong_wav_format_and_empty_clip(tmp_path):
    write_wav(tmp_path / "a.wav", np.zeros(100), rate=8000)
    with pytest.raises(DataFormatError, match=r"a\.wav: 1 channel\(s\), 16-bit, 8000 Hz"):
        gsc.read_wav(tmp_path / "a.wav")
    write_wav(tmp_path / "b.wav", np.zeros(0))
    with pytest.raises(DataFormatError, match="an empty sample"):
        gsc.read_wav(tmp_path / "b.wav")
    (tmp_path / "c.wav").write_bytes(b"RIFF....")
    with pytest.raises(DataFormatError, match="not a readable WAV"):
        gsc.read_wav(tmp_path / "c.wav")


def test_gsc_splits_are_encoded_payloads_and_deployed_rounds_them(tmp_path):
    root = tmp_path / "gsc"
    write_gsc_folder(root, gsc.GSC_WORDS, clips_per_word=3)
    splits = build_datasets("gsc", root, pad_steps=7, cache_dir=tmp_path / "cache", input_bits=6)
    assert splits.input_encoding.bits == 6 and splits.input_gain == 1 / 63
    x, _ = splits.train[0]
    assert x.min() >= 0 and x.max() <= 63 and not torch.equal(x, torch.round(x))
    assert (x[100:] == 0).all()                           # the delay padding is silence
    deployed = splits.deployed()
    rounded, _ = deployed.train[0]
    assert torch.equal(rounded, torch.round(x))
    assert (deployed.test[1][0] == torch.round(splits.test[1][0])).all()
    # the training split's statistics, not the test split's, whatever split is read
    again = build_datasets("gsc", root, pad_steps=7, cache_dir=tmp_path / "cache", input_encoding=splits.input_encoding)
    assert again.input_encoding == splits.input_encoding and torch.equal(again.test[0][0], splits.test[0][0])
    other = GradedInputEncoding(6, splits.input_encoding.low - 1.0, splits.input_encoding.high)
    shifted = build_datasets("gsc", root, pad_steps=7, cache_dir=tmp_path / "cache", input_encoding=other)
    assert not torch.equal(shifted.test[0][0], splits.test[0][0])


def test_with_a_networks_encoding_gscs_train_features_are_not_computed(tmp_path, monkeypatch):
    """without_train and the .net file's encoding (run, parity, report, deploy): no train feature
    is computed or read; the valid and test samples equal a whole load's. Without an encoding the
    train split is still read: the encoding is fitted on it."""
    root = tmp_path / "gsc"
    write_gsc_folder(root, gsc.GSC_WORDS, clips_per_word=3)
    whole = build_datasets("gsc", root, pad_steps=2, cache_dir=tmp_path / "cache", input_bits=6)
    computed = []
    real = gsc.compute_split_features
    monkeypatch.setattr(gsc, "compute_split_features", lambda root, split, *rest: computed.append(split) or
                        real(root, split, *rest))
    runs = build_datasets("gsc", root, pad_steps=2, cache_dir=tmp_path / "cache", without_train=True,
                          input_encoding=whole.input_encoding)
    assert sorted(computed) == ["test", "valid"] and len(runs.train) == 0
    assert len(runs.test) == len(whole.test) and torch.equal(runs.test[2][0], whole.test[2][0])
    assert torch.equal(runs.valid[0][0], whole.valid[0][0])
    computed.clear()
    build_datasets("gsc", root, pad_steps=2, cache_dir=tmp_path / "cache", without_train=True)
    assert sorted(computed) == ["test", "train", "valid"]


def test_a_wrong_gsc_feature_cache_is_recomputed_not_trusted(tmp_path):
    from official_layout import write_gsc_folder
    from snn_toolchain.train.data import gsc
    from snn_toolchain.train.data.loading import build_datasets

    folder = tmp_path / "speech_commands_v0.02"
    write_gsc_folder(folder, gsc.GSC_WORDS, clips_per_word=3)
    first = build_datasets("gsc", folder, pad_steps=2)
    caches = sorted((folder / ".snn_toolchain_cache").glob("gsc_train_*.pt"))
    assert caches
    cached = torch.load(caches[0], weights_only=False)
    cached["labels"] = torch.full_like(cached["labels"], 99)          # loadable, and wrong
    torch.save(cached, caches[0])
    again = build_datasets("gsc", folder, pad_steps=2)
    labels = [int(again.train[i][1]) for i in range(len(again.train))]
    assert labels == [int(first.train[i][1]) for i in range(len(first.train))] and max(labels) < 35
