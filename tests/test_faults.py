"""Faults a hostile-but-fair user meets (issue #9, docs/reliability.md): a run folder shared by two
runs, resumes that do not match, damaged checkpoints, file-system errors, a full disk, leftovers
of killed writes, and the CLI's one-line errors."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_support import one_line_error
from official_layout import write_shd_folder
from snn_toolchain.atomic import atomic_path, exclusive_folder_lock, write_json
from snn_toolchain.cli import main as cli_main
from snn_toolchain.errors import ToolchainError
from snn_toolchain.train.loop.config import TrainConfig
from snn_toolchain.train.data.loading import build_datasets
from snn_toolchain.train.model.checkpoint import load_checkpoint
from snn_toolchain.train.loop.trainer import train

TINY = dict(hidden=16, batch_size=8, max_delay=5, epochs=2, dropout=0.0, device="cpu")
CLI = [sys.executable, "-m", "snn_toolchain.cli"]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return write_shd_folder(tmp_path_factory.mktemp("shd"), n_train=48, n_test=16, n_speakers=6, spikes=(2000, 4000))


@pytest.fixture(scope="module")
def trained_run(tiny_folder, tmp_path_factory):
    """A 2-epoch run and its exported .net file."""
    run_dir = tmp_path_factory.mktemp("faults") / "run"
    args = ["train", "--dataset", "shd", "--data-dir", str(tiny_folder), "--run-dir", str(run_dir), "--hidden", "16",
            "--batch-size", "8", "--max-delay", "5", "--epochs", "2", "--device", "cpu"]
    assert cli_main(args) == 0
    assert cli_main(["export", "--run-dir", str(run_dir), "--data-dir", str(tiny_folder)]) == 0
    return run_dir


def _train_args(folder, run_dir, epochs, *extra):
    return ["train", "--dataset", "shd", "--data-dir", str(folder), "--run-dir", str(run_dir), "--hidden", "16",
            "--batch-size", "8", "--max-delay", "5", "--epochs", str(epochs), "--device", "cpu", *extra]




def _wait_for(condition, seconds=120.0, process=None):
    deadline = time.monotonic() + seconds
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the run ended early: {process.communicate()}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


# ------------------------------------------------------------------------- 2: one run per folder

def test_a_second_run_into_a_busy_run_folder_is_refused_and_the_lock_dies_with_its_run(tiny_folder, tmp_path,
                                                                                         capsys):
    run_dir = tmp_path / "run"
    first = subprocess.Popen(CLI + _train_args(tiny_folder, run_dir, 1000), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (run_dir / "checkpoint.pt").exists(), process=first)
        config_before = (run_dir / "config.json").read_text()
        assert cli_main(_train_args(tiny_folder, run_dir, 3, "--lr-weights", "0.5")) == 2
        one_line_error(capsys, str(run_dir), "in use by another training run", f"pid {first.pid}")
        assert cli_main(_train_args(tiny_folder, run_dir, 1000, "--resume")) == 2   # nor may it be resumed meanwhile
        one_line_error(capsys, "in use by another training run")
        assert (run_dir / "config.json").read_text() == config_before
    finally:
        first.kill()
        first.wait()
    with exclusive_folder_lock(run_dir):   # the kernel dropped the dead run's lock
        pass


def test_sigterm_stops_a_training_run_with_exit_143_and_one_line(tiny_folder, tmp_path):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(CLI + _train_args(tiny_folder, run_dir, 1000), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: (run_dir / "checkpoint.pt").exists(), process=process)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143 and err.strip().splitlines()[-1] == "train-export: interrupted", err
    assert "Traceback" not in err
    load_checkpoint(run_dir / "checkpoint.pt")   # what was written survives


def test_resume_refuses_other_data_and_fewer_epochs(tiny_folder, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert cli_main(_train_args(tiny_folder, run_dir, 2)) == 0
    capsys.readouterr()
    other = write_shd_folder(tmp_path / "other", n_train=48, n_test=16, n_speakers=6, seed=7, spikes=(2000, 4000))
    assert cli_main(_train_args(other, run_dir, 3, "--resume")) == 2
    one_line_error(capsys, "checkpoint.pt", "trained on other data", str(tiny_folder), str(other))
    assert cli_main(_train_args(tiny_folder, run_dir, 1, "--resume")) == 2
    one_line_error(capsys, "--epochs 1", "has run 2 epochs already", "--epochs 2 or more")
    assert load_checkpoint(run_dir / "checkpoint.pt")["epoch"] == 1      # nothing was overwritten
    assert cli_main(_train_args(tiny_folder, run_dir, 3, "--resume")) == 0   # the same data extends the run


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


# --------------------------------------------------------------- 3: file-system errors, exit 2

def test_file_system_errors_are_one_line_user_errors(trained_run, tiny_folder, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    net = trained_run / "model.net"
    data = ["--data-dir", str(tiny_folder)]
    cases = [
        (["train", "--dataset", "shd", "--data-dir", str(tiny_folder), "--out", str(a_file), "--epochs", "1"],
         ["--out", "is a file"]),
        (_train_args(tiny_folder, a_file / "run", 1), ["--run-dir", "is a file, not a folder"]),
        (_train_args(tiny_folder, Path("/proc/no/run"), 1), ["/proc/no/run", "cannot be created"]),
        (["export", "--run-dir", str(trained_run), *data, "--out", str(a_file / "x.net")], ["x.net", "is a file"]),
        (["export", "--run-dir", str(trained_run), *data, "--out", str(tmp_path)], ["--out", "is a folder"]),
        (["report", "--net", str(net), *data, "--samples", "2", "--out", "/proc/no/report"], ["--out", "cannot be created"]),
        (["deploy", "--net", str(net), *data, "--samples", "2", "--out", "/proc/no/deploy"], ["--out", "cannot be created"]),
        (["report", "--net", str(net), *data, "--samples", "2", "--out", str(a_file)], ["--out", "is a file"]),
    ]
    for argv, fragments in cases:
        assert cli_main(argv) == 2, argv
        one_line_error(capsys, *fragments)
    assert a_file.read_text() == "not a folder"


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


def test_leftovers_of_a_killed_write_go_with_the_next_write_to_that_folder(tmp_path):
    killed = subprocess.run([sys.executable, "-c", (
        "import os, sys\nfrom snn_toolchain.atomic import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n    tmp.write_bytes(b'half')\n    os.kill(os.getpid(), 9)\n"),
        str(tmp_path / "model.net")])
    assert killed.returncode == -signal.SIGKILL
    leftovers = list(tmp_path.glob(".model.net.*.tmp"))
    assert len(leftovers) == 1 and not (tmp_path / "model.net").exists()
    live_writer = tmp_path / ".other.json.1.abcdefgh.tmp"   # pid 1 is alive: its write goes on
    live_writer.write_text("in progress")
    write_json(tmp_path / "result.json", {"ok": True})
    assert not leftovers[0].exists() and live_writer.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [live_writer.name, "result.json"]


def test_atomic_write_refuses_a_folder_as_its_target(tmp_path):
    with pytest.raises(ToolchainError, match="is a folder"):
        with atomic_path(tmp_path):
            pass


# ------------------------------------------------------------------------------ 5: smaller ones

def test_epochs_zero_is_refused(tiny_folder, tmp_path, capsys):
    assert cli_main(_train_args(tiny_folder, tmp_path / "run", 0)) == 2
    one_line_error(capsys, "--epochs 0: must be at least 1")
    assert not (tmp_path / "run" / "result.json").exists()


def test_argparse_errors_keep_the_usage_and_end_with_the_cli_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["train", "--epochs", "x"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: train-export train")
    assert err.strip().splitlines()[-1] == "train-export: error: argument --epochs: invalid int value: 'x'"


def test_parity_with_an_unreadable_checkpoint_fails_saying_why(trained_run, tiny_folder, tmp_path, capsys):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    argv = ["parity", "--net", str(trained_run / "model.net"), "--data-dir", str(tiny_folder), "--samples", "2",
            "--checkpoint", str(broken)]
    assert cli_main(argv) == 2
    one_line_error(capsys, str(broken), "not a readable checkpoint")


def test_a_nan_delay_is_named_as_nan(trained_run, tiny_folder, tmp_path, capsys):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    best = torch.load(run_dir / "best.pt", weights_only=False)
    delay_key = next(k for k in best["model"] if k.endswith("synapse.delay"))
    best["model"][delay_key][0, 0] = float("nan")
    torch.save(best, run_dir / "best.pt")
    assert cli_main(["export", "--run-dir", str(run_dir), "--data-dir", str(tiny_folder),
                     "--out", str(run_dir / "nan.net")]) == 2
    err = one_line_error(capsys, "delay[0, 0] is nan")
    assert "-9223372036854775808" not in err
    assert not (run_dir / "nan.net").exists()


def test_training_functions_refuse_a_busy_folder_too(tiny_folder, tmp_path):
    """The lock is in train(), not only in the CLI: the Python API gets the same refusal."""
    splits = build_datasets("shd", tiny_folder, pad_steps=5, seed=0)
    with exclusive_folder_lock(tmp_path / "run"):
        with pytest.raises(ToolchainError, match="in use by another"):
            train(TrainConfig(**{**TINY, "epochs": 1}), tmp_path / "run", splits=splits, progress=False,
                  make_plots=False, log=lambda *_: None)
    assert not (tmp_path / "run" / "config.json").exists()
    assert np.isfinite(train(TrainConfig(**{**TINY, "epochs": 1}), tmp_path / "run", splits=splits, progress=False,
                             make_plots=False, log=lambda *_: None).test_acc)


def test_a_lava_command_prints_no_cuda_notice(trained_run, tiny_folder):
    """torch's cpp_extension prints "No CUDA runtime is found" on stderr when lava-dl is imported on
    a machine without CUDA; a Lava command must not pass that notice on to the user."""
    done = subprocess.run([*CLI, "run", "--net", str(trained_run / "model.net"), "--data-dir", str(tiny_folder),
                           "--samples", "1", "--backend", "lava-sim"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "No CUDA runtime" not in done.stderr + done.stdout
    assert "Prophesee" not in done.stderr + done.stdout
    assert "accuracy" in done.stdout.lower(), done.stdout


def test_a_run_from_before_the_new_settings_resumes(tiny_folder, tmp_path):
    """A checkpoint written before input_bits, the activity penalties and the CUDA-graphs default
    existed: the missing settings count as their defaults, and cuda_graphs (how a run executes,
    not what it computes) is no difference."""
    run_dir = tmp_path / "run"
    assert cli_main(_train_args(tiny_folder, run_dir, 1)) == 0
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    for key in ("input_bits", "synops_penalty", "rate_bounds", "rate_penalty"):
        del state["config"][key]
    state["config"]["cuda_graphs"] = False
    torch.save(state, run_dir / "checkpoint.pt")
    assert cli_main(_train_args(tiny_folder, run_dir, 2, "--resume")) == 0
    assert load_checkpoint(run_dir / "checkpoint.pt")["epoch"] == 1
    assert cli_main(_train_args(tiny_folder, tmp_path / "other", 1)) == 0    # and a changed setting still counts:
    assert cli_main(_train_args(tiny_folder, tmp_path / "other", 2, "--resume", "--synops-penalty", "5")) == 2
