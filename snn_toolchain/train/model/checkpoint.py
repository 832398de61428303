"""Checkpoints: writing ``checkpoint.pt`` / ``best.pt`` atomically, reading them back with one-line
errors, and rebuilding the trained DelaySNN from one (``load_model``). Export, parity, NIR and the
frontier need only this module, not the training loop (train/loop/trainer.py)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from snn_toolchain.atomic import atomic_path, describe_os_error
from snn_toolchain.constants import SYNAPSE_LATENCY_STEPS
from snn_toolchain.errors import ToolchainError
from snn_toolchain.train.model.delay_snn import DelaySNN
from snn_toolchain.train.loop.config import LEGACY_SETTINGS

CHECKPOINT_VERSION = 1


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write atomically: a failed write (a full disk) leaves the previous file in place and says so."""
    try:
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
    except (RuntimeError, OSError) as err:
        # torch reports a failed write as RuntimeError("[enforce fail at inline_container.cc...]")
        if isinstance(err, OSError):
            reason = describe_os_error(err)
        else:
            free = _free_bytes(path.parent)
            reason = (f"{path}: the write failed ({str(err).splitlines()[0][:120]})"
                      + (f"; the disk has {free // 1024} KiB free" if free is not None else ""))
        kept = " (the previous one is kept)" if path.exists() else ""
        raise ToolchainError(f"{reason}; {path.name} was not written{kept}: free disk space or choose "
                             "another --run-dir, then continue with --resume") from None


def _free_bytes(folder: Path) -> int | None:
    try:
        stats = os.statvfs(folder)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize


def load_checkpoint(path: Path) -> dict:
    """A checkpoint.pt or best.pt this toolchain wrote; one-line ToolchainError when it is missing,
    truncated, foreign or of another version."""
    try:
        # our own file: it holds numpy RNG states, which torch >= 2.6 refuses under weights_only
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise ToolchainError(f"{path}: no checkpoint to resume from; start without --resume") from None
    except Exception as err:  # a truncated or foreign file
        raise ToolchainError(f"{path}: not a readable checkpoint ({err.__class__.__name__}); "
                             "delete it to start over, or resume from another run folder") from None
    if not isinstance(payload, dict):
        raise ToolchainError(f"{path}: not a checkpoint of this toolchain; delete it or use another run folder")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise ToolchainError(f"{path}: checkpoint version {payload.get('version')} is not {CHECKPOINT_VERSION}")
    return payload


def load_checkpoint_weights(path: Path) -> dict:
    """The model weights of a best.pt or checkpoint.pt (``--init-checkpoint``)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
        return payload["model"]
    except FileNotFoundError:
        raise ToolchainError(f"{path}: no such checkpoint for --init-checkpoint") from None
    except Exception as err:
        raise ToolchainError(f"{path}: not a readable checkpoint ({err.__class__.__name__})") from None


# Model settings added after checkpoints were first written, and the value such a checkpoint was
# trained with (not the new default): a model is rebuilt as it was trained. The same values as the
# run settings' (train/loop/config.py), for the settings the model holds.
LEGACY_MODEL_CONFIG = {key: LEGACY_SETTINGS[key] for key in ("latency", "bn_momentum")}


def model_from_config(model_config: dict) -> DelaySNN:
    """The DelaySNN a checkpoint's ``model_config`` describes; settings it predates take the value
    such models were trained with (``LEGACY_MODEL_CONFIG``)."""
    return DelaySNN(**{**LEGACY_MODEL_CONFIG, **model_config})


def load_model(checkpoint: Path | str) -> DelaySNN:
    """The DelaySNN of a ``best.pt`` / ``checkpoint.pt`` file, in evaluation mode on the CPU, starting
    every sample from zero as Lava and the chip do (export, parity and the sweep's figures use it)."""
    checkpoint = Path(checkpoint)
    try:
        payload = torch.load(checkpoint, map_location="cpu", weights_only=False)
        model = model_from_config(payload["model_config"]) if "model_config" in payload else None
    except FileNotFoundError:
        raise ToolchainError(f"{checkpoint}: no such checkpoint; train first (train-export train) or pass --checkpoint") from None
    except Exception as err:
        raise ToolchainError(f"{checkpoint}: not a readable checkpoint ({err.__class__.__name__})") from None
    if model is None:
        raise ToolchainError(f"{checkpoint}: holds no model configuration; use the run's best.pt")
    model.load_state_dict(payload["model"])
    return model.set_eval_init_state("zero").eval()


def latency_note(model: DelaySNN) -> str | None:
    """What export and parity say of a model trained without Lava's latency (None for one with it):
    its float figures leave out the pre-roll its deployed network has."""
    if model.latency == SYNAPSE_LATENCY_STEPS:
        return None
    return (f"trained with latency {model.latency} (the paper's timing), not Lava's {SYNAPSE_LATENCY_STEPS} step "
            "per connection: its deployed network integrates each layer's bias before its input arrives, which "
            "the float figures do not include; train or fine-tune with --latency 1 (the default) for a float model "
            "that computes what is deployed")
