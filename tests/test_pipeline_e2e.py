"""The whole pipeline (`train-export --dataset ssc|gsc`, snn_toolchain/cli/commands_pipeline.py) on
small folders in the official layouts: data, baseline, train, export, parity and report, no
traceback (issue #10). SHD's is tests/test_readme_commands.py (the README's main job).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

from official_layout import random_heidelberg_samples, write_gsc_folder, write_heidelberg
from snn_toolchain.train.data import gsc
CLI = [sys.executable, "-m", "snn_toolchain.cli"]
SMALL = ["--epochs", "2", "--hidden", "12", "--max-delay", "5", "--parity-samples", "3", "--device", "cpu"]


def write_ssc_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for seed, (split, n) in enumerate((("train", 70), ("valid", 35), ("test", 35))):
        samples, labels = random_heidelberg_samples(n, 35, seed=seed, spikes=(200, 600))
        write_heidelberg(folder / f"ssc_{split}.h5", samples, labels, keys=[f"word{k}".encode() for k in range(35)])
    return folder


def run_pipeline(dataset: str, data_dir: Path, out: Path) -> tuple[str, Path]:
    done = subprocess.run(CLI + ["--dataset", dataset, "--data-dir", str(data_dir), "--out", str(out), *SMALL],
                          capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    run_dirs = [p for p in out.iterdir() if p.is_dir()]
    assert len(run_dirs) == 1
    return done.stdout, run_dirs[0]


def check_common(out: str, run_dir: Path, dataset: str) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stages_run"] == ["data", "baseline", "train", "export", "parity", "report"], summary
    assert "stages_skipped" not in summary
    assert summary["parity"]["ok"], summary["parity"]
    assert "[parity] PARITY OK" in out and "[report] energy estimate" in out
    for name in ("model.net", "export.json", "model.parity.json", "report/report.md", "report/report.json"):
        assert (run_dir / name).is_file(), name
    with h5py.File(run_dir / "model.net") as f:
        assert f.attrs["time_steps"] == 105 and f["layer/2/weight"].shape == (35, 12)
    assert f"[data] {dataset}:" in out
    return summary


def test_ssc_pipeline_selects_on_its_own_validation_file(tmp_path):
    folder = write_ssc_folder(tmp_path / "ssc")
    out, run_dir = run_pipeline("ssc", folder, tmp_path / "runs")
    check_common(out, run_dir, "ssc")
    assert "[data] ssc: 70 train / 35 valid / 35 test" in out
    result = json.loads((run_dir / "result.json").read_text())
    assert result["data"].startswith("ssc: 70 train / 35 valid")       # ssc_valid.h5, not a hold-out of train
    assert "input quantization" not in out                              # spike counts: nothing to round


def test_gsc_pipeline_deploys_graded_inputs_with_parity(tmp_path):
    folder = tmp_path / "speech_commands_v0.02"
    write_gsc_folder(folder, gsc.GSC_WORDS, clips_per_word=3)
    out, run_dir = run_pipeline("gsc", folder, tmp_path / "runs")
    check_common(out, run_dir, "gsc")
    assert "features as 8-bit graded spikes" in out
    assert "[export] test: input quantization to 8-bit graded spikes: float" in out
    exported = json.loads((run_dir / "export.json").read_text())
    assert exported["input_encoding"]["bits"] == 8 and exported["input_shift"][0] > 0
    assert "input_quantization_loss_points" in exported["test"]
    report = json.loads((run_dir / "report" / "report.json").read_text())
    assert report["input_messages"]["message_bits"] == 8 and report["input_messages"]["messages_per_sample"] > 0
    with h5py.File(run_dir / "model.net") as f:
        assert f["input"].attrs["bits"] == 8 and f["input/low"].shape == (40,)
    # the .net carries its encoding: run and parity on it need nothing else
    again = subprocess.run(CLI + ["run", "--net", str(run_dir / "model.net"), "--dataset", "gsc", "--data-dir",
                                  str(folder), "--backend", "emulator", "--samples", "5"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "[run] emulator: accuracy" in again.stdout, again.stderr[-2000:]
    assert np.isfinite(exported["test"]["fixed_accuracy"])
