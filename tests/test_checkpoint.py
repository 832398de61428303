"""Checkpoints (train/model/checkpoint.py; docs/reliability.md): a truncated or foreign checkpoint is a
one-line error naming the file, for ``train --resume``, ``export`` and ``parity --checkpoint``; a
full disk ends training with one line and keeps the last checkpoint; and checkpoints load under
torch's ``weights_only`` default.
"""

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from cli_support import CLI, one_line_error, train_args as _train_args
from process_support import wait_for as _wait_for
from snn_toolchain.cli import main as cli_main
from snn_toolchain.train.data.loading import build_datasets
from snn_toolchain.train.loop.config import TrainConfig
from snn_toolchain.train.loop.trainer import train
from snn_toolchain.train.model.checkpoint import load_checkpoint
from training_support import TINY


def test_truncated_checkpoints_are_one_line_errors(trained_run, tiny_folder, tmp_path, capsys):
    import shutil

    damaged = tmp_path / "run"
    shutil.copytree(trained_run, damaged)
    for name in ("checkpoint.pt", "best.pt"):
        data = (damaged / name).read_bytes()
        (damaged / name).write_bytes(data[: len(data) // 2])
    assert cli_main(_train_args(tiny_folder, damaged, 3, "--resume")) == 2
    one_line_error(capsys, str(damaged / "checkpoint.pt"), "not a readable checkpoint")
    assert cli_main(["export", "--run-dir", str(damaged), "--data-dir", str(tiny_folder)]) == 2
    one_line_error(capsys, str(damaged / "best.pt"), "not a readable checkpoint")
    torch.save([1, 2, 3], damaged / "checkpoint.pt")   # a foreign pickle, not our dictionary
    assert cli_main(_train_args(tiny_folder, damaged, 3, "--resume")) == 2
    one_line_error(capsys, "not a checkpoint of this toolchain")


def test_parity_with_an_unreadable_checkpoint_fails_saying_why(trained_run, tiny_folder, tmp_path, capsys):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    argv = ["parity", "--net", str(trained_run / "model.net"), "--data-dir", str(tiny_folder), "--samples", "2",
            "--checkpoint", str(broken)]
    assert cli_main(argv) == 2
    one_line_error(capsys, str(broken), "not a readable checkpoint")


def _mount_tmpfs(folder: Path, size_kib: int) -> bool:
    if os.geteuid() != 0:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


def test_a_full_disk_ends_training_with_one_line_and_keeps_the_last_checkpoint(tiny_folder, tmp_path):
    """The disk fills while the run trains. Where a tmpfs cannot be mounted (not root), the process
    gets a file-size limit (RLIMIT_FSIZE) instead: a real failed write either way, through torch."""
    disk = tmp_path / "disk"
    mounted = _mount_tmpfs(disk, 4096)
    try:
        run_dir = disk / "run"
        if mounted:
            process = subprocess.Popen(CLI + _train_args(tiny_folder, run_dir, 1000), stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, text=True)
            _wait_for(lambda: (run_dir / "checkpoint.pt").exists(), process=process)
            with open(disk / "filler", "wb") as filler, contextlib.suppress(OSError):
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
        else:
            def limit_file_size():
                import resource

                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

            process = subprocess.Popen(CLI + _train_args(tiny_folder, run_dir, 1000), stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, text=True, preexec_fn=limit_file_size)
        _, err = process.communicate(timeout=300)
        lines = err.strip().splitlines()
        assert process.returncode == 2 and "Traceback" not in err, err
        assert lines[-1].startswith("train-export: error: ") and "was not written" in lines[-1] or \
            "No space left" in lines[-1] or "File too large" in lines[-1], err
        assert "--resume" in lines[-1] or "free disk space" in lines[-1] or "ulimit" in lines[-1], err
        assert not list(run_dir.glob(".*.tmp")), "a failed write left its temporary file"
        if mounted:
            assert load_checkpoint(run_dir / "checkpoint.pt")["epoch"] >= 0   # the earlier checkpoint survives
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(disk)], check=False)


def test_checkpoints_load_under_weights_only_defaults(tiny_folder, tmp_path):
    """torch >= 2.6 loads with weights_only=True by default; our loader must not depend on the default."""
    from snn_toolchain.train.model.checkpoint import load_checkpoint

    splits = build_datasets("shd", tiny_folder, pad_steps=5, seed=0)
    train(TrainConfig(**{**TINY, "epochs": 1}), tmp_path, splits=splits, progress=False, make_plots=False,
          log=lambda *_: None)
    with pytest.raises(Exception):
        torch.load(tmp_path / "checkpoint.pt", weights_only=True)   # what a newer torch does by default
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 0
