"""A training run's folder. It holds:

- ``checkpoint.pt``: the latest epoch, everything needed to continue (model, optimizer, scheduler,
  every random generator, the history);
- ``best.pt``: the selected model: best validation accuracy (``--protocol valid``, the default) or
  best test accuracy (``--protocol paper``, labelled so everywhere);
- ``metrics.csv`` / ``metrics.json``: one row per epoch, validation and test accuracy both;
- ``result.json``: both protocols' figures, the parameter count and the selected model's analysis;
  and the plots (``plots.py``).

This module claims the folder, writes the metrics and checks that a checkpoint can be resumed; the
trainer (``trainer.py``) writes the checkpoints and result.json.

One run at a time in a folder, also across machines that share the storage: a run holds the
folder's lease (``.lease``, ``snn_toolchain/cluster/lease.py``: a heartbeat, so a holder on another
machine is known alive or dead) and its flock (``.lock``: the kernel's, released the instant its
process dies). :func:`claim_run_folder` says how the two go together.
"""

from __future__ import annotations

import contextlib
import csv
import io
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from snn_toolchain.atomic import claim_folder, exclusive_folder_lock, write_json, write_text
from snn_toolchain.cluster.lease import FolderLease
from snn_toolchain.errors import ToolchainError
from snn_toolchain.train.loop.config import LEGACY_SETTINGS, TrainConfig

METRIC_FIELDS = ("epoch", "train_loss", "train_acc", "valid_loss", "valid_acc", "test_loss", "test_acc",
                 "lr_weights", "lr_delays", "best_valid_acc", "train_synops_per_sample", "pruned", "epoch_seconds",
                 # the validation split's even- and odd-numbered samples, to compare selection rules
                 # on validation alone (scripts/compare_selection.py)
                 "valid_acc_even", "valid_loss_even", "valid_acc_odd", "valid_loss_odd")


# A shared file system's server keeps the flock of a machine that died for a while (NFSv4: its
# 90 s lease by default): after the lease has shown that machine dead, its flock is waited for this
# long (seconds), then the run goes on under the lease alone (NFSv3 keeps it until the machine boots).
DEAD_MACHINE_LOCK_WAIT_S = 120.0
LOCK_POLL_S = 1.0


def claim_run_folder(run_dir: Path, held: contextlib.ExitStack) -> None:
    """Claim ``run_dir`` for this run and hold it until ``held`` closes: its lease, then its flock.

    The lease refuses a live holder on any machine and replaces a dead one (at once on this
    machine; after LEASE_TIMEOUT_S without a heartbeat on another). The flock then refuses at once
    a process of this machine that holds only the flock (a run of a version without the lease, or
    ``exclusive_folder_lock`` itself); only when the lease replaced a dead holder of another machine
    is a busy flock that machine's leftover on the file server, waited for as
    DEAD_MACHINE_LOCK_WAIT_S says."""
    # a folder of the user's is never written into (a run folder of ours, or one from before
    # the mark, which holds our checkpoint); one run per folder: a second one is refused
    claim_folder(run_dir, "training run", "--run-dir", legacy=(run_dir / "checkpoint.pt").is_file())
    lease = held.enter_context(FolderLease(run_dir, "training run"))
    deadline = time.monotonic() + DEAD_MACHINE_LOCK_WAIT_S
    while True:
        try:
            held.enter_context(exclusive_folder_lock(run_dir, "training run"))
            return
        except ToolchainError:
            if not lease.replaced_elsewhere:
                raise
            if time.monotonic() >= deadline:
                print(f"[train] {run_dir}: the flock of the machine found dead is still held by the file server; "
                      "going on under the lease, which no other run can take", file=sys.stderr, flush=True)
                return
        time.sleep(LOCK_POLL_S)


def start_run_folder(run_dir: Path, config: TrainConfig) -> None:
    """Refuse a folder that holds a run already; else record the run's settings (config.json)."""
    if (run_dir / "checkpoint.pt").exists():
        raise ToolchainError(f"{run_dir}: holds a training run already; continue it with --resume, "
                             "or choose another --run-dir")
    write_json(run_dir / "config.json", config.to_dict())


def mark_unfinished(run_dir: Path) -> None:
    # the run is unfinished until its end writes result.json again: an earlier result beside a
    # newer checkpoint would be a mixed set (export refuses a run without one)
    with contextlib.suppress(FileNotFoundError):
        (run_dir / "result.json").unlink()


def check_resumable(state: dict, config: TrainConfig, data_identity: dict, run_dir: Path) -> None:
    """Refuse to continue ``state`` (``run_dir``'s checkpoint.pt) with other settings, on other data
    (``data_identity``: the fingerprint and source of the splits given now) or to fewer epochs."""
    checkpoint_path = run_dir / "checkpoint.pt"
    # More epochs may be asked for on resume (extending a run); anything else must match.
    changed = config.differences(state["config"], ignore=("epochs",))
    if changed:
        legacy = [f"--{k.replace('_', '-')} {v}" for k, v in LEGACY_SETTINGS.items()
                  if k in changed and k not in state["config"]]
        hint = f" (it predates {', '.join(legacy)}: pass that)" if legacy else ""
        raise ToolchainError(f"{checkpoint_path}: the checkpoint was written with other settings ({', '.join(changed)})"
                             f"{hint}; resume with the same options or start a new run folder")
    trained_on = state.get("data", {})
    if trained_on.get("fingerprint") not in (None, data_identity["fingerprint"]):
        raise ToolchainError(f"{checkpoint_path}: the run was trained on other data ({trained_on.get('source')}), "
                             f"not {data_identity['source']}; resume with the same --data-dir "
                             "or start a new run folder")
    if config.epochs < state["epoch"] + 1:
        raise ToolchainError(f"--epochs {config.epochs}: {run_dir} has run {state['epoch'] + 1} epochs already; "
                             f"resume with --epochs {state['epoch'] + 1} or more")


def rng_state(loader_generator: torch.Generator | None) -> dict:
    """Every random generator's state, for checkpoint.pt: a resumed run draws what an uninterrupted one would."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if loader_generator is not None:
        state["loader"] = loader_generator.get_state()
    return state


def restore_rng_state(state: dict, loader_generator: torch.Generator | None) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if loader_generator is not None and "loader" in state:
        loader_generator.set_state(state["loader"])


def write_metrics(run_dir: Path, history: list[dict]) -> None:
    """metrics.csv and metrics.json: ``history``, one row per epoch."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_FIELDS)
    writer.writeheader()
    writer.writerows(history)
    write_text(run_dir / "metrics.csv", buffer.getvalue())
    write_json(run_dir / "metrics.json", history)
