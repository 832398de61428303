"""Google Speech Commands v0.02 (Warden 2018) in its standard folder layout, as log-mel features.

Layout: ``<root>/<word>/<speaker>_nohash_<k>.wav`` for 35 words, plus ``validation_list.txt`` and
``testing_list.txt`` (paths relative to the root), and ``_background_noise_/`` (ignored).
Train is every clip listed in neither file.

Features (docs/data.md): each clip is padded with zeros or trimmed to 1 s (16000 samples), then 40
log-mel filterbank energies with a 25 ms window and a 10 ms hop, computed by torchaudio's
Kaldi-compatible ``fbank`` with ``snip_edges=False`` so that 1 s gives exactly 100 steps.

Features are computed once and cached in a ``.pt`` file keyed by the feature settings and the
file list, so a second epoch (or a second run) does not recompute them.

The network receives them as graded spikes: per-channel statistics of the train split map each
feature to an integer payload of ``input_bits`` bits (``snn_toolchain.input_encoding``), with
silence and the delay padding at 0.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import wave
from pathlib import Path

import numpy as np
import torch

from snn_toolchain import constants as C
from snn_toolchain.errors import DataFormatError
from snn_toolchain.input_encoding import DEFAULT_INPUT_BITS, GradedInputEncoding, fit_encoding
from snn_toolchain.train.data.splits import DatasetSplits, TensorFeatureDataset

log = logging.getLogger(__name__)

GSC_WORDS = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four", "go",
    "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven",
    "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes", "zero",
)
assert len(GSC_WORDS) == C.GSC_CLASSES
FEATURE_VERSION = 1
GSC_FIX = "point --data-dir at the extracted speech_commands_v0.02 folder (or use --download)"


def read_wav(path: Path) -> np.ndarray:
    """A 16 kHz mono 16-bit PCM WAV file as float32 samples in [-1, 1)."""
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate, frames = wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getnframes()
            raw = wav.readframes(frames)
    except (wave.Error, EOFError, OSError) as err:
        raise DataFormatError(f"{path}: not a readable WAV file ({err}); replace it with the original clip") from None
    if (channels, width, rate) != (1, 2, C.GSC_SAMPLE_RATE):
        raise DataFormatError(f"{path}: {channels} channel(s), {8 * width}-bit, {rate} Hz; expected the GSC format "
                              f"1 channel, 16-bit PCM, {C.GSC_SAMPLE_RATE} Hz")
    if len(raw) < 2:
        raise DataFormatError(f"{path}: the clip holds no audio (an empty sample); replace it with the original clip")
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0


def log_mel_features(samples: np.ndarray) -> torch.Tensor:
    """40 log-mel energies per 10 ms step for one clip: a float32 tensor of shape (100, 40)."""
    from torchaudio.compliance import kaldi

    n = int(C.GSC_SAMPLE_RATE * C.SAMPLE_DURATION_S)
    clip = np.zeros(n, dtype=np.float32)
    clip[: min(n, samples.size)] = samples[:n]
    # Kaldi fbank expects 16-bit sample magnitudes; dither=0 keeps the features deterministic.
    waveform = torch.from_numpy(clip * 32768.0).unsqueeze(0)
    feats = kaldi.fbank(waveform, num_mel_bins=C.GSC_N_MELS, frame_length=1000 * C.GSC_WINDOW_S,
                        frame_shift=1000 * C.GSC_HOP_S, sample_frequency=C.GSC_SAMPLE_RATE, dither=0.0,
                        snip_edges=False, energy_floor=0.0)
    return feats[: C.TIME_STEPS]


def read_split_lists(root: Path) -> tuple[set[str], set[str]]:
    lists = []
    for name in ("validation_list.txt", "testing_list.txt"):
        path = root / name
        if not path.is_file():
            raise DataFormatError(f"{path}: file not found; the GSC v0.02 layout has validation_list.txt and "
                                  f"testing_list.txt at its root; {GSC_FIX}")
        entries = {line.strip() for line in path.read_text().splitlines() if line.strip()}
        if not entries:
            raise DataFormatError(f"{path}: the list is empty; use the file shipped with GSC v0.02")
        lists.append(entries)
    return lists[0], lists[1]


def list_clips(root: Path) -> dict[str, list[tuple[str, int]]]:
    """Relative clip paths and labels per split ("train", "valid", "test")."""
    missing = [word for word in GSC_WORDS if not (root / word).is_dir()]
    if missing:
        raise DataFormatError(f"{root}: missing word folder(s) {', '.join(missing)}; GSC v0.02 has "
                              f"{len(GSC_WORDS)} word folders; {GSC_FIX}")
    valid_list, test_list = read_split_lists(root)
    splits: dict[str, list[tuple[str, int]]] = {"train": [], "valid": [], "test": []}
    for label, word in enumerate(GSC_WORDS):
        for wav in sorted((root / word).glob("*.wav")):
            rel = f"{word}/{wav.name}"
            split = "test" if rel in test_list else "valid" if rel in valid_list else "train"
            splits[split].append((rel, label))
    for split, clips in splits.items():
        if not clips:
            raise DataFormatError(f"{root}: no clips in the {split} split; check validation_list.txt, "
                                  f"testing_list.txt and the word folders")
    return splits


def _cache_key(clips: list[tuple[str, int]]) -> str:
    digest = hashlib.sha256(json.dumps({"v": FEATURE_VERSION, "mels": C.GSC_N_MELS, "hop": C.GSC_HOP_S,
                                        "win": C.GSC_WINDOW_S, "clips": clips}).encode()).hexdigest()
    return digest[:16]


def _writable_cache_dir(root: Path, cache_dir: Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    preferred = root / ".snn_toolchain_cache"
    if os.access(root, os.W_OK):
        return preferred
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "snn_toolchain" / "gsc"


def compute_split_features(root: Path, split: str, clips: list[tuple[str, int]],
                           cache_dir: Path | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (clips, 100, 40) and labels (clips,) of one split, from the cache when present."""
    folder = _writable_cache_dir(root, cache_dir)
    cache_file = folder / f"gsc_{split}_{_cache_key(clips)}.pt"
    if cache_file.is_file():
        try:
            cached = torch.load(cache_file, weights_only=False)
            features, labels = cached["features"], cached["labels"]
            # a cache that loads is still checked against the clips it stands for: a wrong one
            # (another version, an edited file) would train on the wrong labels or shapes
            expected = torch.as_tensor([label for _, label in clips], dtype=torch.int64)
            if (not isinstance(features, torch.Tensor) or tuple(features.shape) != (len(clips), C.TIME_STEPS, C.GSC_N_MELS)
                    or not torch.isfinite(features).all() or not torch.equal(torch.as_tensor(labels).to(torch.int64), expected)):
                raise ValueError("its features or labels do not match the clips")
            return features, labels
        except Exception as err:  # a damaged or wrong cache is recomputed, never trusted
            log.warning("%s: unusable feature cache (%s), recomputing", cache_file, err)
    from tqdm import tqdm

    features = torch.empty(len(clips), C.TIME_STEPS, C.GSC_N_MELS)
    labels = torch.tensor([label for _, label in clips], dtype=torch.int64)
    for i, (rel, _) in enumerate(tqdm(clips, desc=f"GSC {split} features", unit="clip", leave=False,
                                      disable=len(clips) < 500)):
        features[i] = log_mel_features(read_wav(root / rel))
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as tmp:
        torch.save({"features": features, "labels": labels}, tmp)
    os.replace(tmp.name, cache_file)
    return features, labels


def _no_features() -> tuple[torch.Tensor, torch.Tensor]:
    """An empty split's features and labels, in a split's shapes."""
    return torch.zeros((0, C.TIME_STEPS, C.GSC_N_MELS)), torch.zeros(0, dtype=torch.int64)


def load_gsc(root: Path, *, pad_steps: int, cache_dir: Path | None, source: str,
             input_bits: int = DEFAULT_INPUT_BITS, input_encoding: GradedInputEncoding | None = None,
             without_train: bool = False):
    """The three splits, their features encoded as graded spike payloads (unrounded; see
    ``snn_toolchain.input_encoding``). The encoding is fitted on the train split with
    ``input_bits``, unless ``input_encoding`` is given (a run's or a .net file's own).
    ``without_train`` with ``input_encoding``: the train split is empty, its features neither
    computed nor read (a caller that only runs a network)."""
    clips = list_clips(Path(root))
    skip_train = without_train and input_encoding is not None
    features = {split: (_no_features() if skip_train and split == "train"
                        else compute_split_features(Path(root), split, split_clips, cache_dir))
                for split, split_clips in clips.items()}
    if input_encoding is None:
        input_encoding = fit_encoding(features["train"][0].numpy(), input_bits)
    elif input_encoding.channels != C.GSC_N_MELS:
        raise DataFormatError(f"{root}: the input encoding has {input_encoding.channels} channels, GSC features "
                              f"have {C.GSC_N_MELS}; use the run or .net file trained on GSC")
    datasets = {}
    for split, (split_features, labels) in features.items():
        # in place: the features were just loaded (or computed) for this call, and a second copy
        # of GSC's 1.3 GB of training features is avoided
        datasets[split] = TensorFeatureDataset(input_encoding.encode_(split_features.to(torch.float32)), labels,
                                               pad_steps)
    return DatasetSplits("gsc", datasets["train"], datasets["valid"], datasets["test"], C.GSC_N_MELS,
                         C.GSC_CLASSES, C.TIME_STEPS + pad_steps, list(GSC_WORDS), source,
                         input_encoding=input_encoding)
