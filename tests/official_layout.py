"""Writers of small files in exactly the official SHD/SSC and GSC v0.02 layouts, for the tests."""

from __future__ import annotations

import wave
from pathlib import Path

import h5py
import numpy as np


def write_heidelberg(path: Path, samples: list[tuple[np.ndarray, np.ndarray]], labels, speakers=None,
                     keys=None, times_dtype=np.float16) -> Path:
    """An SHD/SSC file: spikes/times (vlen float, s), spikes/units (vlen uint16), labels, extra/*."""
    path = Path(path)
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (len(samples),), dtype=h5py.vlen_dtype(np.dtype(times_dtype)))
        units = f.create_dataset("spikes/units", (len(samples),), dtype=h5py.vlen_dtype(np.dtype("uint16")))
        for i, (t, u) in enumerate(samples):
            times[i] = np.asarray(t, dtype=times_dtype)
            units[i] = np.asarray(u, dtype=np.uint16)
        f.create_dataset("labels", data=np.asarray(labels, dtype=np.uint16))
        if speakers is not None:
            f.create_dataset("extra/speaker", data=np.asarray(speakers, dtype=np.uint16))
        f.create_dataset("extra/keys", data=np.array(keys or [f"class-{i}".encode() for i in range(20)]))
    return path


def random_heidelberg_samples(n: int, n_classes: int, seed: int = 0, max_time: float = 0.9,
                              spikes: tuple[int, int] = (5, 60)):
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n):
        k = int(rng.integers(*spikes))
        samples.append((np.sort(rng.uniform(0, max_time, k)), rng.integers(0, 700, k)))
    labels = rng.integers(0, n_classes, n)
    return samples, labels


def write_shd_folder(folder: Path, n_train=40, n_test=10, n_speakers=5, seed=0, spikes=(5, 60)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    samples, labels = random_heidelberg_samples(n_train, 20, seed, spikes=spikes)
    write_heidelberg(folder / "shd_train.h5", samples, labels, speakers=np.arange(n_train) % n_speakers)
    samples, labels = random_heidelberg_samples(n_test, 20, seed + 1, spikes=spikes)
    write_heidelberg(folder / "shd_test.h5", samples, labels, speakers=np.full(n_test, n_speakers))
    return folder


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000, channels: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(samples, -1, 1 - 1 / 32768) * 32768).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def write_gsc_folder(root: Path, words, clips_per_word: int = 3, seed: int = 0) -> dict[str, list[str]]:
    """A GSC v0.02 tree: word folders of 16 kHz clips, the two list files, _background_noise_."""
    rng = np.random.default_rng(seed)
    split_of = {}
    for word in words:
        for k in range(clips_per_word):
            rel = f"{word}/spk{k:02d}_nohash_0.wav"
            length = int(rng.integers(8000, 17000))  # shorter and longer than 1 s
            tone = np.sin(2 * np.pi * (200 + 40 * len(word)) * np.arange(length) / 16000)
            write_wav(root / rel, 0.3 * tone + 0.01 * rng.standard_normal(length))
            split_of[rel] = ("valid", "test", "train")[k % 3]
    write_wav(root / "_background_noise_" / "white_noise.wav", 0.1 * rng.standard_normal(32000))
    (root / "validation_list.txt").write_text("".join(r + "\n" for r, s in split_of.items() if s == "valid"))
    (root / "testing_list.txt").write_text("".join(r + "\n" for r, s in split_of.items() if s == "test"))
    return {s: [r for r, v in split_of.items() if v == s] for s in ("train", "valid", "test")}
