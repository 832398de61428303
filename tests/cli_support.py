"""What the tests of the command line share: the check of its errors (one line, the CLI's own), the
command that runs it in a subprocess, and the options of the small training runs they start."""

from __future__ import annotations

import sys

CLI = [sys.executable, "-m", "snn_toolchain.cli"]


def one_line_error(capsys, *fragments) -> str:
    """The captured stderr must be exactly one line, ``train-export: error: ...``, holding every one
    of ``fragments``, and no traceback; returns it."""
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("train-export: error: "), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def train_args(folder, run_dir, epochs, *extra):
    """``train`` on the SHD folder ``folder`` into ``run_dir``: 16 hidden neurons, delays up to 5."""
    return ["train", "--dataset", "shd", "--data-dir", str(folder), "--run-dir", str(run_dir), "--hidden", "16",
            "--batch-size", "8", "--max-delay", "5", "--epochs", str(epochs), "--device", "cpu", *extra]


def small_train_args(folder, run_dir, epochs=1, *extra):
    """The same, smaller: 12 hidden neurons, delays up to 4, one epoch unless told."""
    return ["train", "--dataset", "shd", "--data-dir", str(folder), "--run-dir", str(run_dir), "--hidden", "12",
            "--batch-size", "8", "--max-delay", "4", "--epochs", str(epochs), "--device", "cpu", *extra]
