"""A training run's folder (train/loop/run_folder.py; docs/reliability.md): one run at a time (the
lock dies with its run, and ``train()`` takes it too, not only the CLI), and ``--resume`` only of
the same run: the same data, no fewer epochs, the same settings (settings added since count as
their defaults), a readable checkpoint.
"""

import subprocess

import numpy as np
import pytest
import torch

from cli_support import CLI, one_line_error, train_args as _train_args
from official_layout import write_shd_folder
from process_support import wait_for as _wait_for
from snn_toolchain.atomic import exclusive_folder_lock
from snn_toolchain.cli import main as cli_main
from snn_toolchain.errors import ToolchainError
from snn_toolchain.train.data.loading import build_datasets
from snn_toolchain.train.loop.config import TrainConfig
from snn_toolchain.train.loop.trainer import train
from snn_toolchain.train.model.checkpoint import load_checkpoint
from training_support import TINY


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


# ------------------------------------------------------------------------------------------ resume

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


def test_resume_refuses_other_settings_and_bad_checkpoints(tiny_folder, tmp_path):
    splits = build_datasets("shd", tiny_folder, pad_steps=5, seed=0)
    train(TrainConfig(**{**TINY, "epochs": 1}), tmp_path, splits=splits, progress=False, make_plots=False,
          log=lambda *_: None)
    with pytest.raises(ToolchainError, match="other settings \\(hidden\\)"):
        train(TrainConfig(**{**TINY, "hidden": 12}), tmp_path, splits=splits, resume=True, log=lambda *_: None)
    (tmp_path / "checkpoint.pt").write_bytes(b"truncated")
    with pytest.raises(ToolchainError, match="not a readable checkpoint"):
        train(TrainConfig(**TINY), tmp_path, splits=splits, resume=True, log=lambda *_: None)
    with pytest.raises(ToolchainError, match="no checkpoint to resume from"):
        train(TrainConfig(**TINY), tmp_path / "empty", splits=splits, resume=True, log=lambda *_: None)


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


def test_a_file_setting_stored_relative_equals_the_same_file_given_absolute(tmp_path, monkeypatch):
    """A frontier or sweep started before --init-from was stored absolute resumes: the stored
    relative path is taken from the working folder; another file is still a difference."""
    monkeypatch.chdir(tmp_path)
    stored = TrainConfig(init_checkpoint="runs/seed0/best.pt").to_dict()
    assert TrainConfig(init_checkpoint=str(tmp_path / "runs" / "seed0" / "best.pt")).differences(stored) == []
    assert TrainConfig(init_checkpoint=str(tmp_path / "runs" / "seed1" / "best.pt")).differences(stored) == \
        ["init_checkpoint"]
    assert TrainConfig().differences(stored) == ["init_checkpoint"]
