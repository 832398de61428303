#!/usr/bin/env python3
"""Generate a small spoken Speech Commands set in the exact GSC v0.02 folder layout.

GSC v0.02 (Warden 2018) cannot be downloaded on the machines this project is built on, so this
writes a stand-in in its layout, to run the GSC pipeline on real speech rather than tones:

    <out>/speech_commands_v0.02/<word>/<speaker>_nohash_<k>.wav   16 kHz mono 16-bit PCM, <= 1 s
    <out>/speech_commands_v0.02/validation_list.txt, testing_list.txt   (paths relative to the root)
    <out>/speech_commands_v0.02/_background_noise_/white_noise.wav

The 35 GSC words are spoken by espeak-ng in the synthetic voices of ``make_embedded_shd.py`` (voice
variants with their own accent, pitch and tempo; per-utterance pitch, speed, level, spectral tilt,
onset and noise jitter). As in GSC, whole speakers are held out: the 16 training voices give the
train split, 4 other voices validation and 4 more test.

    .venv/bin/python scripts/make_spoken_gsc.py --out /tmp/spoken_gsc [--repetitions 3] [--seed 0]

Only this script needs espeak-ng (Debian: ``apt-get install espeak-ng``).
"""
from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
import scipy.signal

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_embedded_shd import (  # noqa: E402  (the embedded set's voices and speech pipeline)
    ESPEAK_SAMPLE_RATE_HZ,
    SPEAKER_TABLE,
    apply_spectral_tilt,
    synthesize_word,
    trim_silence,
)
from snn_toolchain.train.data.gsc import GSC_WORDS  # noqa: E402

SAMPLE_RATE_HZ = 16000


def speaker_code(variant: str, seed: int) -> str:
    """An 8-hex-digit speaker id as GSC's file names have, stable for a voice and seed."""
    return hashlib.sha1(f"{seed}:{variant}".encode()).hexdigest()[:8]


def plan(repetitions: int, seed: int) -> list:
    rng = np.random.default_rng([seed, 0x65C])
    held_out = [s for s in SPEAKER_TABLE if s.split == "test"]
    split_of = {s.variant: "train" for s in SPEAKER_TABLE if s.split == "train"}
    split_of.update({s.variant: "valid" if k % 2 == 0 else "test" for k, s in enumerate(held_out)})
    jobs = []
    for speaker in SPEAKER_TABLE:
        split = split_of[speaker.variant]
        base_pitch, base_speed = int(rng.integers(25, 76)), int(rng.integers(135, 201))
        for word in GSC_WORDS:
            for k in range(repetitions if split == "train" else max(1, repetitions - 1)):
                jobs.append(dict(
                    path=f"{word}/{speaker_code(speaker.variant, seed)}_nohash_{k}.wav", split=split,
                    voice=f"{speaker.english_voice}+{speaker.variant}", word=word,
                    pitch=int(np.clip(base_pitch + rng.integers(-10, 11), 0, 99)),
                    speed=int(round(base_speed * rng.uniform(0.88, 1.12))), onset=float(rng.uniform(0.0, 0.25)),
                    gain_db=float(rng.uniform(-10, 6)), tilt=float(rng.uniform(-4, 4)),
                    snr_db=float(rng.uniform(10, 35)), noise_seed=int(rng.integers(0, 2**63 - 1))))
    return jobs


def write_wav(path: Path, audio: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(audio, -1.0, 1.0 - 1 / 32768) * 32768).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE_HZ)
        wav.writeframes(pcm.tobytes())


def render(job_and_root) -> str:
    job, root = job_and_root
    with tempfile.TemporaryDirectory() as scratch:
        speech = synthesize_word(job["voice"], job["word"], job["pitch"], job["speed"], scratch)
    speech = scipy.signal.resample_poly(speech, SAMPLE_RATE_HZ, ESPEAK_SAMPLE_RATE_HZ)
    speech = apply_spectral_tilt(trim_silence(speech, SAMPLE_RATE_HZ), SAMPLE_RATE_HZ, job["tilt"])
    speech *= 0.1 / (float(np.sqrt(np.mean(speech ** 2))) or 1.0) * 10 ** (job["gain_db"] / 20)
    onset = int(job["onset"] * SAMPLE_RATE_HZ)
    audio = np.zeros(SAMPLE_RATE_HZ)
    placed = speech[: SAMPLE_RATE_HZ - onset]
    audio[onset:onset + len(placed)] = placed
    noise = np.random.default_rng(job["noise_seed"]).standard_normal(len(audio))
    audio += noise * float(np.sqrt(np.mean(speech ** 2))) * 10 ** (-job["snr_db"] / 20)
    write_wav(Path(root) / job["path"], audio)
    return job["path"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repetitions", type=int, default=3, help="utterances per word per training voice")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)

    root = args.out / "speech_commands_v0.02"
    jobs = plan(args.repetitions, args.seed)
    started = time.perf_counter()
    with multiprocessing.Pool(args.workers) as pool:
        for _ in pool.imap_unordered(render, [(job, str(root)) for job in jobs], chunksize=8):
            pass
    for name, split in (("validation_list.txt", "valid"), ("testing_list.txt", "test")):
        (root / name).write_text("".join(j["path"] + "\n" for j in jobs if j["split"] == split))
    write_wav(root / "_background_noise_" / "white_noise.wav",
              0.1 * np.random.default_rng(args.seed).standard_normal(2 * SAMPLE_RATE_HZ))
    counts = {split: sum(j["split"] == split for j in jobs) for split in ("train", "valid", "test")}
    print(f"wrote {len(jobs)} clips to {root} in {time.perf_counter() - started:.0f} s: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
