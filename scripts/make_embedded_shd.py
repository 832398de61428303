#!/usr/bin/env python3
"""Generate a small spoken-digit spike dataset in the Spiking Heidelberg Digits layout.

The words are real synthesized speech (espeak-ng, many voice variants, speeds and
pitches), passed through a cochlea-style pipeline and written as two HDF5 files that
follow the layout of the official SHD files (Cramer et al. 2020):

    spikes/times              vlen float16, spike times in seconds, ascending per sample
    spikes/units              vlen uint16, channel index 0..699, same length as times
    labels                    uint16 (N,), 0..9 English "zero".."nine", 10..19 German
    extra/speaker             uint16 (N,), speaker id
    extra/keys                bytes (20,), class name per label
    extra/meta_info/gender    bytes (num_speakers,), indexed by speaker id
    extra/meta_info/age       float32 (num_speakers,), NaN: unknown for synthetic voices
    extra/meta_info/body_height float32 (num_speakers,), NaN: unknown

Pipeline per sample (all rates in Hz, all durations in seconds):
    espeak-ng WAV (22050 Hz) -> resample to 16 kHz -> trim silence -> random
    spectral tilt -> level normalisation with gain jitter -> random onset inside the
    window -> additive white noise at a random SNR -> 700-channel gammatone
    filterbank (ERB-spaced 50 Hz .. 7.6 kHz) -> hair cell (half-wave rectification,
    power per 1 ms, log compression between a floor and a saturation level) ->
    adaptive leaky integrate-and-fire neuron per channel.

The test split uses speakers (voice variants) that never occur in the training split,
like the official SHD test set. Only this script needs espeak-ng; the generated files
are self-contained. After writing the files the script fits a multinomial logistic
regression on per-channel spike counts (700 units summed into 140 channels) and
records its held-out-speaker test accuracy, a reference point for "learnable but not
trivial".

Usage:
    .venv/bin/python scripts/make_embedded_shd.py --out train/data/embedded_data [--seed 0]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import scipy.signal

GENERATOR_VERSION = 1

ENGLISH_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
GERMAN_WORDS = ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun")
CLASS_NAMES = ENGLISH_WORDS + GERMAN_WORDS

ESPEAK_SAMPLE_RATE_HZ = 22050


@dataclass(frozen=True)
class SpeakerIdentity:
    """One synthetic speaker: an espeak-ng voice variant with its own accent, pitch and tempo.

    The same speaker says the English words with ``english_voice`` and the German words
    with ``german_voice``, both combined with ``variant`` (espeak-ng ``voice+variant``).
    """

    variant: str
    gender: str
    english_voice: str
    split: str
    german_voice: str = "de"


# Variant genders are those espeak-ng 1.51 lists in `espeak-ng --voices=variant`.
# English accents are spread over both splits so that accent alone cannot tell the
# split apart; the test variants never appear in training.
SPEAKER_TABLE = (
    SpeakerIdentity("m1", "male", "en-us", "train"),
    SpeakerIdentity("f1", "female", "en-gb", "train"),
    SpeakerIdentity("m3", "male", "en-gb-scotland", "train"),
    SpeakerIdentity("f3", "female", "en-us", "train"),
    SpeakerIdentity("m5", "male", "en-029", "train"),
    SpeakerIdentity("f5", "female", "en-gb-x-rp", "train"),
    SpeakerIdentity("m7", "male", "en-us-nyc", "train"),
    SpeakerIdentity("Alicia", "female", "en-gb-x-gbclan", "train"),
    SpeakerIdentity("Andy", "male", "en-gb-x-gbcwmd", "train"),
    SpeakerIdentity("steph", "female", "en-us", "train"),
    SpeakerIdentity("klatt", "male", "en-gb", "train"),
    SpeakerIdentity("Annie", "female", "en-gb-scotland", "train"),
    SpeakerIdentity("boris", "male", "en-029", "train"),
    SpeakerIdentity("linda", "female", "en-us-nyc", "train"),
    SpeakerIdentity("david", "male", "en-gb-x-rp", "train"),
    SpeakerIdentity("max", "male", "en-us", "train"),
    SpeakerIdentity("m2", "male", "en-gb", "test"),
    SpeakerIdentity("f2", "female", "en-us", "test"),
    SpeakerIdentity("m4", "male", "en-gb-scotland", "test"),
    SpeakerIdentity("f4", "female", "en-029", "test"),
    SpeakerIdentity("klatt2", "male", "en-us-nyc", "test"),
    SpeakerIdentity("Andrea", "female", "en-gb-x-rp", "test"),
    SpeakerIdentity("benjamin", "male", "en-gb-x-gbclan", "test"),
    SpeakerIdentity("belinda", "female", "en-gb-x-gbcwmd", "test"),
)


@dataclass(frozen=True)
class VariabilitySettings:
    """Per-speaker and per-utterance variation; speeds in words/minute, pitch in espeak units (0..99)."""

    repetitions_per_word_train: int = 4
    repetitions_per_word_test: int = 2
    speaker_pitch_range: tuple = (25, 75)
    speaker_speed_wpm_range: tuple = (135, 200)
    utterance_pitch_jitter: int = 10
    utterance_speed_jitter_fraction: float = 0.12
    # Words start anywhere in [min, max] seconds, like the loosely aligned SHD recordings.
    onset_range_s: tuple = (0.0, 0.2)
    gain_jitter_db: tuple = (-6.0, 6.0)
    snr_db_range: tuple = (10.0, 30.0)
    # A random spectral tilt (dB per octave around 1 kHz) per utterance stands in for
    # microphone and room colouring, so average spectra alone do not identify a word.
    spectral_tilt_db_per_octave: tuple = (-4.0, 4.0)
    window_s: float = 1.0
    # Longer words may run past the window, as some SHD samples do, but never past this.
    max_duration_s: float = 1.4


@dataclass(frozen=True)
class EncoderSettings:
    """Cochlea model and spike encoder. Rates in Hz, times in seconds."""

    sample_rate_hz: int = 16000
    num_channels: int = 700
    lowest_centre_hz: float = 50.0
    highest_centre_hz: float = 7600.0
    # Speech RMS after normalisation (full scale = 1) before the gain jitter.
    speech_rms: float = 0.05
    # Hair cell: half-wave rectified power per envelope step, log-compressed between a
    # floor (no drive, like a fibre's threshold) and floor + range (saturation), both in
    # dB relative to a rectified RMS of 1 (digital full scale).
    level_floor_db: float = -58.0
    level_range_db: float = 35.0
    envelope_step_s: float = 0.001
    membrane_tau_s: float = 0.008
    # In units of the hair-cell drive, which lies in 0..1.
    threshold: float = 0.30
    # Log-normal spread of the per-channel threshold (fixed by the seed), as real fibres differ.
    threshold_log_spread: float = 0.15
    # Spike-triggered threshold increase that decays with adaptation_tau_s: onsets fire
    # densely, sustained vowels sparsely, which keeps samples within the spike budget.
    adaptation_increment: float = 1.0
    adaptation_tau_s: float = 0.06
    refractory_s: float = 0.003


@dataclass(frozen=True)
class UtteranceSpec:
    """Everything needed to render one sample deterministically."""

    split: str
    speaker_id: int
    label: int
    repetition: int
    voice: str
    word: str
    pitch: int
    speed_wpm: int
    onset_s: float
    gain_db: float
    tilt_db_per_octave: float
    snr_db: float
    noise_seed: int


def erb_spaced_frequencies(low_hz: float, high_hz: float, count: int) -> np.ndarray:
    """Centre frequencies (Hz) evenly spaced on the ERB-number scale (Glasberg & Moore 1990)."""
    to_erb = lambda f: 21.4 * np.log10(1.0 + 0.00437 * f)  # noqa: E731
    from_erb = lambda e: (10.0 ** (e / 21.4) - 1.0) / 0.00437  # noqa: E731
    return from_erb(np.linspace(to_erb(low_hz), to_erb(high_hz), count))


def synthesize_word(voice: str, word: str, pitch: int, speed_wpm: int, scratch_dir: str) -> np.ndarray:
    """Speak ``word`` with espeak-ng; returns float64 samples at ESPEAK_SAMPLE_RATE_HZ, full scale 1."""
    wav_path = os.path.join(scratch_dir, "word.wav")
    command = ["espeak-ng", "-b", "1", "-v", voice, "-p", str(pitch), "-s", str(speed_wpm), "-w", wav_path, word]
    subprocess.run(command, check=True, capture_output=True)
    with wave.open(wav_path, "rb") as wav:
        if wav.getframerate() != ESPEAK_SAMPLE_RATE_HZ or wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise RuntimeError(f"unexpected espeak-ng WAV format from {command}")
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return pcm.astype(np.float64) / 32768.0


def trim_silence(audio: np.ndarray, sample_rate_hz: int, relative_level: float = 0.02) -> np.ndarray:
    """Cut leading/trailing parts whose 5 ms frame RMS stays below ``relative_level`` of the peak frame."""
    frame = max(1, int(0.005 * sample_rate_hz))
    num_frames = len(audio) // frame
    if num_frames == 0:
        return audio
    frame_rms = np.sqrt(np.mean(audio[: num_frames * frame].reshape(num_frames, frame) ** 2, axis=1))
    active = np.flatnonzero(frame_rms >= relative_level * frame_rms.max())
    if len(active) == 0:
        return audio
    return audio[active[0] * frame : (active[-1] + 1) * frame]


def apply_spectral_tilt(audio: np.ndarray, sample_rate_hz: int, db_per_octave: float) -> np.ndarray:
    """Scale each frequency by db_per_octave * log2(f / 1 kHz) dB (FFT, zero phase); DC is removed."""
    spectrum = np.fft.rfft(audio)
    frequency_hz = np.fft.rfftfreq(len(audio), d=1.0 / sample_rate_hz)
    gain_db = np.zeros_like(frequency_hz)
    gain_db[1:] = db_per_octave * np.log2(np.maximum(frequency_hz[1:], 20.0) / 1000.0)
    spectrum *= 10.0 ** (gain_db / 20.0)
    spectrum[0] = 0.0
    return np.fft.irfft(spectrum, n=len(audio))


class CochleaEncoder:
    """Gammatone filterbank + hair cell + adaptive LIF; turns a waveform into (times_s, units)."""

    def __init__(self, settings: EncoderSettings, seed: int):
        self.settings = settings
        self.centre_hz = erb_spaced_frequencies(
            settings.lowest_centre_hz, settings.highest_centre_hz, settings.num_channels
        )
        self.filters = [
            scipy.signal.gammatone(float(f), "iir", fs=settings.sample_rate_hz) for f in self.centre_hz
        ]
        threshold_rng = np.random.default_rng([seed, 0xC0C1EA])
        self.channel_thresholds = settings.threshold * np.exp(
            settings.threshold_log_spread * threshold_rng.standard_normal(settings.num_channels)
        )

    def envelopes(self, audio: np.ndarray) -> np.ndarray:
        """Hair-cell drive in 0..1 per envelope_step_s step; shape (steps, channels)."""
        s = self.settings
        step = int(round(s.envelope_step_s * s.sample_rate_hz))
        num_steps = len(audio) // step
        audio = audio[: num_steps * step]
        rectified_power = np.empty((num_steps, s.num_channels))
        for channel, (b, a) in enumerate(self.filters):
            basilar = scipy.signal.lfilter(b, a, audio)
            rectified_power[:, channel] = (np.maximum(basilar, 0.0) ** 2).reshape(num_steps, step).mean(axis=1)
        level_db = 10.0 * np.log10(rectified_power + 1e-20)
        return np.clip((level_db - s.level_floor_db) / s.level_range_db, 0.0, 1.0).astype(np.float32)

    def spikes(self, envelope: np.ndarray) -> tuple:
        """Adaptive LIF per channel; returns spike times in seconds (ascending) and channel units."""
        s = self.settings
        dt = s.envelope_step_s
        membrane_decay = np.exp(-dt / s.membrane_tau_s)
        adaptation_decay = np.exp(-dt / s.adaptation_tau_s)
        refractory_steps = int(round(s.refractory_s / dt))
        num_channels = envelope.shape[1]
        membrane = np.zeros(num_channels)
        adaptation = np.zeros(num_channels)
        refractory_left = np.zeros(num_channels, dtype=np.int64)
        spike_times, spike_units = [], []
        for step_index, drive in enumerate(envelope):
            previous = membrane
            # Leaky integration towards the drive: a constant drive d settles at d.
            membrane = membrane_decay * membrane + (1.0 - membrane_decay) * drive
            membrane = np.where(refractory_left > 0, 0.0, membrane)
            threshold = self.channel_thresholds + adaptation
            fired = np.flatnonzero(membrane >= threshold)
            if len(fired):
                # Linear interpolation of the crossing inside the step gives sub-ms times.
                rise = membrane[fired] - previous[fired]
                fraction = np.clip((threshold[fired] - previous[fired]) / np.maximum(rise, 1e-12), 0.0, 1.0)
                spike_times.append((step_index + fraction) * dt)
                spike_units.append(fired)
                membrane[fired] = 0.0
                adaptation[fired] += s.adaptation_increment
                refractory_left[fired] = refractory_steps + 1
            adaptation *= adaptation_decay
            refractory_left = np.maximum(refractory_left - 1, 0)
        if not spike_times:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        times = np.concatenate(spike_times)
        units = np.concatenate(spike_units)
        order = np.lexsort((units, times))
        return times[order], units[order]


def render_utterance(
    spec: UtteranceSpec,
    encoder: CochleaEncoder,
    variability: VariabilitySettings,
    scratch_dir: str,
) -> tuple:
    """Synthesize, place, add noise and encode one utterance; returns (times_s, units)."""
    rate = encoder.settings.sample_rate_hz
    speech = synthesize_word(spec.voice, spec.word, spec.pitch, spec.speed_wpm, scratch_dir)
    speech = scipy.signal.resample_poly(speech, rate, ESPEAK_SAMPLE_RATE_HZ)
    speech = trim_silence(speech, rate)
    speech = apply_spectral_tilt(speech, rate, spec.tilt_db_per_octave)
    speech_rms = float(np.sqrt(np.mean(speech**2))) or 1.0
    speech *= encoder.settings.speech_rms / speech_rms * 10.0 ** (spec.gain_db / 20.0)

    onset = int(round(spec.onset_s * rate))
    max_samples = int(round(variability.max_duration_s * rate))
    total = min(max_samples, max(int(round(variability.window_s * rate)), onset + len(speech)))
    audio = np.zeros(total)
    placed = speech[: max(0, total - onset)]
    audio[onset : onset + len(placed)] = placed

    noise_rng = np.random.default_rng(spec.noise_seed)
    level_rms = float(np.sqrt(np.mean(speech**2)))
    noise_rms = level_rms * 10.0 ** (-spec.snr_db / 20.0)
    audio += noise_rng.standard_normal(total) * noise_rms

    return encoder.spikes(encoder.envelopes(audio))


def speaker_styles(seed: int, variability: VariabilitySettings) -> list:
    """Base pitch and speed (wpm) per speaker id, drawn once from the seed."""
    rng = np.random.default_rng([seed, 0x5BEA4E2])
    styles = []
    for _ in SPEAKER_TABLE:
        pitch = int(rng.integers(variability.speaker_pitch_range[0], variability.speaker_pitch_range[1] + 1))
        speed = int(rng.integers(variability.speaker_speed_wpm_range[0], variability.speaker_speed_wpm_range[1] + 1))
        styles.append({"pitch": pitch, "speed_wpm": speed})
    return styles


def speaker_splits(partition_seed: int | None) -> list:
    """The split ("train" / "test") of each speaker id: the table's own, or (``partition_seed``) a
    seeded reshuffle that keeps 16 training and 8 test voices, for development sets whose test
    voices the embedded set trains on."""
    splits = [speaker.split for speaker in SPEAKER_TABLE]
    if partition_seed is None:
        return splits
    order = np.random.default_rng([partition_seed, 0x5B117]).permutation(len(splits))
    return [splits[i] for i in order]


def plan_utterances(seed: int, variability: VariabilitySettings, styles: list, splits: list | None = None) -> list:
    """All utterance specs, train then test, in a fixed order; every class is balanced per speaker."""
    splits = splits or speaker_splits(None)
    rng = np.random.default_rng([seed, 0x0771E5])
    specs = []
    for split, repetitions in (
        ("train", variability.repetitions_per_word_train),
        ("test", variability.repetitions_per_word_test),
    ):
        for speaker_id, speaker in enumerate(SPEAKER_TABLE):
            if splits[speaker_id] != split:
                continue
            style = styles[speaker_id]
            for label, word in enumerate(CLASS_NAMES):
                base_voice = speaker.english_voice if label < 10 else speaker.german_voice
                for repetition in range(repetitions):
                    pitch_offset = int(
                        rng.integers(-variability.utterance_pitch_jitter, variability.utterance_pitch_jitter + 1)
                    )
                    speed_factor = 1.0 + rng.uniform(
                        -variability.utterance_speed_jitter_fraction, variability.utterance_speed_jitter_fraction
                    )
                    specs.append(
                        UtteranceSpec(
                            split=split,
                            speaker_id=speaker_id,
                            label=label,
                            repetition=repetition,
                            voice=f"{base_voice}+{speaker.variant}",
                            word=word,
                            pitch=int(np.clip(style["pitch"] + pitch_offset, 0, 99)),
                            speed_wpm=int(round(style["speed_wpm"] * speed_factor)),
                            onset_s=float(rng.uniform(*variability.onset_range_s)),
                            gain_db=float(rng.uniform(*variability.gain_jitter_db)),
                            tilt_db_per_octave=float(rng.uniform(*variability.spectral_tilt_db_per_octave)),
                            snr_db=float(rng.uniform(*variability.snr_db_range)),
                            noise_seed=int(rng.integers(0, 2**63 - 1)),
                        )
                    )
    return specs


_WORKER_STATE: dict = {}


def _init_worker(
    encoder_settings: EncoderSettings, variability: VariabilitySettings, seed: int, scratch_root: str
) -> None:
    _WORKER_STATE["encoder"] = CochleaEncoder(encoder_settings, seed)
    _WORKER_STATE["variability"] = variability
    _WORKER_STATE["scratch"] = tempfile.mkdtemp(prefix="worker-", dir=scratch_root)


def _render_in_worker(spec: UtteranceSpec) -> tuple:
    times, units = render_utterance(
        spec, _WORKER_STATE["encoder"], _WORKER_STATE["variability"], _WORKER_STATE["scratch"]
    )
    # float16 like the official files; rounding is monotonic, so the order stays ascending.
    return times.astype(np.float16), units.astype(np.uint16)


def _make_readable(path: str) -> None:
    """mkstemp creates mode 0600; give the file the mode a plain open() would (0666 minus umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def write_shd_file(path: Path, samples: list, specs: list, provenance: dict) -> None:
    """Write one split in the official SHD HDF5 layout, atomically (temp file + os.replace)."""
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    _make_readable(temp_name)
    try:
        with h5py.File(temp_name, "w") as h5:
            for key, value in provenance.items():
                h5.attrs[key] = value
            spikes = h5.create_group("spikes")
            times = spikes.create_dataset("times", (len(samples),), dtype=h5py.vlen_dtype(np.float16))
            units = spikes.create_dataset("units", (len(samples),), dtype=h5py.vlen_dtype(np.uint16))
            for index, (sample_times, sample_units) in enumerate(samples):
                times[index] = sample_times
                units[index] = sample_units
            h5.create_dataset("labels", data=np.array([s.label for s in specs], dtype=np.uint16))
            extra = h5.create_group("extra")
            extra.create_dataset("speaker", data=np.array([s.speaker_id for s in specs], dtype=np.uint16))
            extra.create_dataset("keys", data=np.array([name.encode("utf-8") for name in CLASS_NAMES]))
            meta = extra.create_group("meta_info")
            meta.create_dataset("gender", data=np.array([s.gender.encode("ascii") for s in SPEAKER_TABLE]))
            # Synthetic voices have no age or height; NaN says "unknown" instead of inventing values.
            meta.create_dataset("age", data=np.full(len(SPEAKER_TABLE), np.nan, dtype=np.float32))
            meta.create_dataset("body_height", data=np.full(len(SPEAKER_TABLE), np.nan, dtype=np.float32))
        os.replace(temp_name, path)
    except BaseException:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
        raise


def write_text_atomically(path: Path, text: str) -> None:
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    _make_readable(temp_name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temp_name, path)
    except BaseException:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
        raise


def channel_count_features(samples: list, num_units: int = 700, units_per_channel: int = 5) -> np.ndarray:
    """log1p of spike counts per channel over the whole sample; 700 units summed in groups of 5 -> 140."""
    features = np.zeros((len(samples), num_units // units_per_channel), dtype=np.float64)
    for row, (_, units) in enumerate(samples):
        np.add.at(features[row], units.astype(np.int64) // units_per_channel, 1.0)
    return np.log1p(features)


def logistic_regression_baseline(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    l2_penalty: float = 1e-3,
) -> dict:
    """Multinomial logistic regression (L-BFGS, L2 penalty) on standardized count features."""
    import torch

    torch.manual_seed(0)
    mean = train_features.mean(axis=0)
    std = train_features.std(axis=0) + 1e-6
    x_train = torch.tensor((train_features - mean) / std, dtype=torch.float64)
    x_test = torch.tensor((test_features - mean) / std, dtype=torch.float64)
    y_train = torch.tensor(train_labels, dtype=torch.long)
    num_classes = len(CLASS_NAMES)
    weights = torch.zeros(x_train.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights, bias], max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x_train @ weights + bias, y_train)
        loss = loss + l2_penalty * (weights**2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        train_accuracy = float(((x_train @ weights + bias).argmax(1) == y_train).double().mean())
        test_predictions = (x_test @ weights + bias).argmax(1).numpy()
    return {
        "features": "log1p spike counts per channel (700 units -> 140 by summing 5 adjacent), standardized",
        "model": f"multinomial logistic regression, L-BFGS, L2 penalty {l2_penalty}",
        "train_accuracy": round(train_accuracy, 4),
        "test_accuracy": round(float(np.mean(test_predictions == test_labels)), 4),
    }


def render_readme(report: dict) -> str:
    """README.md text for the output folder, filled from the generation report."""
    enc = report["encoder"]
    var = report["variability"]
    counts = report["counts"]
    baseline = report["baseline"]

    def speaker_rows(split: str) -> str:
        return "\n".join(
            f"| {s['speaker_id']} | `{s['english_voice']}+{s['variant']}` / `{s['german_voice']}+{s['variant']}` "
            f"| {s['gender']} | {s['pitch']} | {s['speed_wpm']} |"
            for s in report["speakers"]
            if s["split"] == split
        )

    speaker_header = "| id | voices (English / German) | gender | base pitch | base speed (wpm) |\n|---|---|---|---|---|"
    saturation_db = enc["level_floor_db"] + enc["level_range_db"]
    return f"""# Embedded spoken-digit spike dataset (synthetic, SHD layout)

A small stand-in for the Spiking Heidelberg Digits (SHD) dataset that ships with the package, so that training works offline.
It is **synthetic**: the words are spoken by the espeak-ng speech synthesizer, not by people, and encoded by a simple cochlea model, not by the one used for SHD.
Use it for smoke tests, examples and CI; use the real SHD for results.

Generated by `scripts/make_embedded_shd.py --seed {report['seed']}` with espeak-ng {report['espeak_ng_version']}; `generation.json` holds every setting, the speakers, the counts and the baseline.
Regenerate (about 3 minutes on 2 cores) with

    apt-get install -y espeak-ng
    .venv/bin/python scripts/make_embedded_shd.py --out train/data/embedded_data

## Layout
`shd_train.h5` and `shd_test.h5` follow the official SHD HDF5 layout:

| dataset | type | content |
|---|---|---|
| `spikes/times` | vlen float16 | spike times in seconds, ascending per sample |
| `spikes/units` | vlen uint16 | channel 0..{enc['num_channels'] - 1} (0 = lowest frequency), same length as `times` |
| `labels` | uint16 (N,) | class 0..19 |
| `extra/speaker` | uint16 (N,) | speaker id (see below) |
| `extra/keys` | bytes (20,) | class names, UTF-8, index = label |
| `extra/meta_info/gender` | bytes (speakers,) | `male` / `female`, from the espeak-ng voice variant, index = speaker id |
| `extra/meta_info/age` | float32 (speakers,) | **NaN**: synthetic speakers have no age |
| `extra/meta_info/body_height` | float32 (speakers,) | **NaN**: synthetic speakers have no height |

The root attributes (`source`, `generator_version`, `seed`, `split`, `note`) record the provenance.

## Classes
Labels 0..9: English {', '.join(ENGLISH_WORDS)}.
Labels 10..19: German {', '.join(GERMAN_WORDS)}.

## Split and counts
| split | samples | per class | speakers | repetitions per word and speaker | mean spikes per sample (min..max) |
|---|---|---|---|---|---|
| train | {counts['train']['samples']} | {counts['train']['samples_per_class']} | {counts['train']['speakers']} | {var['repetitions_per_word_train']} | {counts['train']['mean_spikes_per_sample']:.0f} ({counts['train']['min_spikes_per_sample']}..{counts['train']['max_spikes_per_sample']}) |
| test | {counts['test']['samples']} | {counts['test']['samples_per_class']} | {counts['test']['speakers']} | {var['repetitions_per_word_test']} | {counts['test']['mean_spikes_per_sample']:.0f} ({counts['test']['min_spikes_per_sample']}..{counts['test']['max_spikes_per_sample']}) |

Every speaker says every word equally often, so the classes are balanced.
As in SHD, the test speakers never occur in training; the training split has {counts['train']['speakers']} speakers, enough for a speaker-wise validation hold-out via `extra/speaker`.

A speaker is one espeak-ng voice variant with its own English accent, base pitch (`-p`, 0..99) and base speed (`-s`, words per minute); it says the English words with its English voice and the German words with `de`, both with its variant.

Training speakers:

{speaker_header}
{speaker_rows('train')}

Test speakers (held out):

{speaker_header}
{speaker_rows('test')}

## Variation per utterance
- pitch: speaker base +- {var['utterance_pitch_jitter']};
- speed: speaker base x (1 +- {var['utterance_speed_jitter_fraction']});
- onset: the synthesizer's silence is trimmed and the word starts uniformly {var['onset_range_s'][0]}..{var['onset_range_s'][1]} s into the sample;
- gain: {var['gain_jitter_db'][0]}..{var['gain_jitter_db'][1]} dB around a fixed speech RMS of {enc['speech_rms']} (full scale 1);
- spectral tilt: {var['spectral_tilt_db_per_octave'][0]}..{var['spectral_tilt_db_per_octave'][1]} dB per octave around 1 kHz (microphone/room colouring);
- white noise at an SNR of {var['snr_db_range'][0]}..{var['snr_db_range'][1]} dB.

Each sample covers at least {var['window_s']} s of audio; a long word may run past 1 s (cut at {var['max_duration_s']} s). {counts['train']['samples_with_spikes_after_1s'] + counts['test']['samples_with_spikes_after_1s']} samples have spikes after 1 s.

## Encoding
1. espeak-ng WAV (22050 Hz) resampled to {enc['sample_rate_hz']} Hz.
2. Basilar membrane: {enc['num_channels']} 4th-order gammatone filters (`scipy.signal.gammatone`, IIR), centre frequencies ERB-spaced from {enc['lowest_centre_hz']:.0f} Hz (unit 0) to {enc['highest_centre_hz']:.0f} Hz (unit {enc['num_channels'] - 1}).
3. Hair cell: half-wave rectification, power averaged over {enc['envelope_step_s'] * 1000:.0f} ms, log compression into a 0..1 drive between {enc['level_floor_db']:.0f} dB (threshold) and {saturation_db:.0f} dB (saturation) re digital full scale.
4. Spike encoder: one adaptive leaky integrate-and-fire neuron per channel, membrane time constant {enc['membrane_tau_s'] * 1000:.0f} ms, threshold {enc['threshold']} (fixed log-normal per-channel spread {enc['threshold_log_spread']}), spike-triggered threshold increase {enc['adaptation_increment']} decaying with {enc['adaptation_tau_s'] * 1000:.0f} ms, refractory period {enc['refractory_s'] * 1000:.0f} ms, reset to 0.
   Spike times are interpolated inside the {enc['envelope_step_s'] * 1000:.0f} ms step and stored as float16 seconds (resolution 0.5 ms below 1 s).

## Baseline
{baseline['model']} on {baseline['features']}; trained on the training split, scored on the held-out-speaker test split:

**{baseline['test_accuracy'] * 100:.1f}% test accuracy** (train {baseline['train_accuracy'] * 100:.1f}%, chance 5%).

Spike counts alone leave plenty of room: a model that uses spike timing should do clearly better.
"""


def espeak_version() -> str:
    result = subprocess.run(["espeak-ng", "--version"], check=True, capture_output=True, text=True)
    words = result.stdout.split()
    return words[words.index("NG") + 2] if "NG" in words else result.stdout.strip()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder for the .h5/.json/.md files")
    parser.add_argument("--seed", type=int, default=0, help="seeds speaker styles, jitter, noise and thresholds")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="worker processes (output does not depend on it)"
    )
    # development sets (docs/results.md): other voices for the test split, more samples, other noise and onsets
    parser.add_argument("--speaker-partition-seed", type=int, default=None,
                        help="reshuffle which 16 voices train and which 8 test (default: the embedded set's)")
    parser.add_argument("--repetitions-train", type=int, default=None, help="utterances per word and training voice")
    parser.add_argument("--repetitions-test", type=int, default=None, help="utterances per word and test voice")
    parser.add_argument("--snr-db", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                        help="white-noise SNR range in dB")
    parser.add_argument("--onset-s", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                        help="range of the word's start inside the sample, in seconds")
    args = parser.parse_args(argv)

    if shutil.which("espeak-ng") is None:
        print("espeak-ng not found; install it with: apt-get install -y espeak-ng", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    changes = {"repetitions_per_word_train": args.repetitions_train, "repetitions_per_word_test": args.repetitions_test,
               "snr_db_range": tuple(args.snr_db) if args.snr_db else None,
               "onset_range_s": tuple(args.onset_s) if args.onset_s else None}
    variability = dataclasses.replace(VariabilitySettings(), **{k: v for k, v in changes.items() if v is not None})
    encoder_settings = EncoderSettings()
    styles = speaker_styles(args.seed, variability)
    splits = speaker_splits(args.speaker_partition_seed)
    specs = plan_utterances(args.seed, variability, styles, splits)

    # spawn, so workers never inherit odd state; results come back in plan order.
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="embedded_shd_") as scratch_root, context.Pool(
        processes=max(1, args.workers),
        initializer=_init_worker,
        initargs=(encoder_settings, variability, args.seed, scratch_root),
    ) as pool:
        samples = []
        for done, sample in enumerate(pool.imap(_render_in_worker, specs, chunksize=8), start=1):
            samples.append(sample)
            if done % 200 == 0 or done == len(specs):
                print(f"rendered {done}/{len(specs)} ({time.monotonic() - started:.0f} s)", flush=True)

    provenance = {
        "source": "synthetic espeak-ng speech, generated by scripts/make_embedded_shd.py",
        "generator_version": GENERATOR_VERSION,
        "seed": args.seed,
        "note": "Spiking Heidelberg Digits layout; not the real SHD recordings. age/body_height unknown (NaN).",
    }
    counts = {}
    split_samples = {}
    for split in ("train", "test"):
        indices = [i for i, s in enumerate(specs) if s.split == split]
        split_specs = [specs[i] for i in indices]
        split_samples[split] = ([samples[i] for i in indices], split_specs)
        write_shd_file(
            args.out / f"shd_{split}.h5", split_samples[split][0], split_specs, {**provenance, "split": split}
        )
        spikes_per_sample = np.array([len(samples[i][0]) for i in indices])
        counts[split] = {
            "samples": len(indices),
            "speakers": len({s.speaker_id for s in split_specs}),
            "samples_per_class": int(len(indices) // len(CLASS_NAMES)),
            "mean_spikes_per_sample": round(float(spikes_per_sample.mean()), 1),
            "min_spikes_per_sample": int(spikes_per_sample.min()),
            "max_spikes_per_sample": int(spikes_per_sample.max()),
            "samples_with_spikes_after_1s": int(sum(float(samples[i][0][-1]) > 1.0 for i in indices if len(samples[i][0]))),
        }

    train_samples, train_specs = split_samples["train"]
    test_samples, test_specs = split_samples["test"]
    baseline = logistic_regression_baseline(
        channel_count_features(train_samples),
        np.array([s.label for s in train_specs]),
        channel_count_features(test_samples),
        np.array([s.label for s in test_specs]),
    )

    speakers = [
        {"speaker_id": i, **dataclasses.asdict(s), **styles[i], "split": splits[i]} for i, s in enumerate(SPEAKER_TABLE)
    ]
    report = {
        "generator": "scripts/make_embedded_shd.py",
        "generator_version": GENERATOR_VERSION,
        "seed": args.seed,
        "speaker_partition_seed": args.speaker_partition_seed,
        "espeak_ng_version": espeak_version(),
        "class_names": list(CLASS_NAMES),
        "speakers": speakers,
        "variability": dataclasses.asdict(variability),
        "encoder": dataclasses.asdict(encoder_settings),
        "counts": counts,
        "baseline": baseline,
        "file_bytes": {f"shd_{s}.h5": (args.out / f"shd_{s}.h5").stat().st_size for s in ("train", "test")},
    }
    # Wall time varies by machine, so it goes to stdout rather than into the committed files.
    write_text_atomically(args.out / "generation.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_text_atomically(args.out / "README.md", render_readme(report))
    print(json.dumps({"counts": counts, "baseline": baseline, "file_bytes": report["file_bytes"]}, indent=2))
    print(f"total time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
