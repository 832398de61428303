"""The training loop: Adam with two learning rates, ReduceLROnPlateau on validation accuracy, atomic
per-epoch checkpoints, bit-for-bit ``--resume`` (without CUDA graphs: with them a resumed run is
equivalent, docs/training.md), both evaluation protocols, and data-parallel runs under torchrun.

What a run folder holds: ``run_folder.py``; what a run trains with: ``training_run.py``; which
epoch it keeps: ``selection.py``; its devices and the torchrun process group: ``devices.py``.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from snn_toolchain.atomic import write_json
from snn_toolchain.errors import ToolchainError
from snn_toolchain.train.data.augment import augment_batch, hard_labels, parse_augment
from snn_toolchain.train.data.loading import DatasetSplits, build_run_datasets
from snn_toolchain.train.data.splits import data_fingerprint
from snn_toolchain.train.loop.config import TrainConfig, resolve_batch
from snn_toolchain.train.loop.devices import DistributedContext, join_devices
from snn_toolchain.train.loop.run_folder import (
    check_resumable,
    claim_run_folder,
    mark_unfinished,
    restore_rng_state,
    rng_state,
    start_run_folder,
    write_metrics,
)
from snn_toolchain.train.loop.selection import PAPER_PROTOCOL_LABEL, BestEpoch, selection_split, selections
from snn_toolchain.train.loop.training_run import TrainingRun, build_model, build_training_run
from snn_toolchain.train.model.delay_snn import DelaySNN
from snn_toolchain.train.model.model_evaluation import evaluate_model
from snn_toolchain.train.model.checkpoint import CHECKPOINT_VERSION, load_checkpoint, save_checkpoint

# what the CLI, the API, the sweeps, the tests and the benchmarks import from here
__all__ = ["PAPER_PROTOCOL_LABEL", "TrainConfig", "TrainResult", "analyse_selected_model", "build_model",
           "selections", "train"]


@dataclass
class TrainResult:
    """What a run ended with. ``best_epoch``, ``best_valid_acc`` and ``test_acc`` are the
    validation-selected model's (the honest figure); ``test_selected_acc`` is the best test
    accuracy over the epochs, the paper's protocol. ``model`` is the one kept as best.pt (chosen by
    the run's protocol). Epochs count from 1."""

    run_dir: Path
    best_valid_acc: float
    best_epoch: int
    test_acc: float
    test_loss: float
    epochs_run: int
    model: DelaySNN
    test_selected_acc: float = float("nan")
    test_selected_epoch: int = 0
    summary: dict | None = None


def analyse_selected_model(model: DelaySNN, test_loader, device) -> dict:
    """The selected model on the test split under the settings that the paper and deployment differ
    in: initial state zero (Lava, the chip) or uniform (the paper's training state), and integer
    (deployed) or fractional (trained) delays. Spike counts are the deployed model's. A model
    trained in the deployed arithmetic (``--qat``) is the deployed network: it has neither a
    uniform start nor fractional delays, so those figures are None."""
    deployed = evaluate_model(model.set_eval_init_state("zero"), test_loader, device, count_spikes=True)
    if model.arithmetic == "deployed":
        return {"test_acc_zero_init": deployed["accuracy"], "test_acc_uniform_init": None,
                "test_acc_fractional_delays": None, "delay_rounding_cost_points": None,
                "spikes_per_neuron_per_sample": deployed["spikes_per_neuron_per_sample"], "arithmetic": "deployed"}
    uniform = evaluate_model(model.set_eval_init_state("uniform"), test_loader, device)
    model.set_delay_rounding(evaluation=False)
    fractional = evaluate_model(model.set_eval_init_state("zero"), test_loader, device)
    model.set_delay_rounding(evaluation=True)
    return {"test_acc_zero_init": deployed["accuracy"], "test_acc_uniform_init": uniform["accuracy"],
            "test_acc_fractional_delays": fractional["accuracy"],
            "delay_rounding_cost_points": 100 * (fractional["accuracy"] - deployed["accuracy"]),
            "spikes_per_neuron_per_sample": deployed["spikes_per_neuron_per_sample"]}


def train(config: TrainConfig, run_dir: Path, *, splits: DatasetSplits | None = None, data_dir: Path | None = None,
          resume: bool = False, progress: bool | None = None, make_plots: bool = True, log=print) -> TrainResult:
    """Train ``config`` into ``run_dir``; with ``resume`` continue from ``run_dir/checkpoint.pt``.

    The result of a resumed run is bit-for-bit that of an uninterrupted one (same seed, same
    device, same number of data-loader workers), except on CUDA with CUDA graphs (the default
    there), where the dropout masks after the resume point differ: an equivalent run.
    """
    with contextlib.ExitStack() as held:
        return _train(config, Path(run_dir), held, splits=splits, data_dir=data_dir, resume=resume,
                      progress=progress, make_plots=make_plots, log=log)


@dataclass
class _EpochsSoFar:
    """The epochs a run has finished: a metrics row each and the one kept as best.pt.
    ``start_epoch`` (from 0) is where this call of ``train`` starts: after the checkpoint's on resume."""

    history: list[dict] = field(default_factory=list)
    start_epoch: int = 0
    best: BestEpoch = field(default_factory=BestEpoch)


def _train(config: TrainConfig, run_dir: Path, held: contextlib.ExitStack, *, splits, data_dir, resume, progress,
           make_plots, log) -> TrainResult:
    config, splits, device, ctx = _prepare_data_and_devices(config, run_dir, held, splits, data_dir, log)
    data_identity = {"fingerprint": data_fingerprint(splits), "source": splits.source}
    run = build_training_run(config, run_dir, splits, device, ctx, data_identity)
    so_far = _resume_from_checkpoint(run, log) if resume else _EpochsSoFar()
    if ctx.is_main:
        if not resume:
            start_run_folder(run_dir, config)
        mark_unfinished(run_dir)
    _run_epochs(run, so_far, progress, log)
    result = _test_kept_model(run, so_far)
    _write_result(run, result, so_far.history, make_plots)
    return result


def _prepare_data_and_devices(config: TrainConfig, run_dir: Path, held: contextlib.ExitStack,
                              splits: DatasetSplits | None, data_dir: Path | None,
                              log) -> tuple[TrainConfig, DatasetSplits, torch.device, DistributedContext]:
    """Check the settings, read the splits (unless given), size the batch from them (the config
    returned holds it), join the devices and, in the main process, claim ``run_dir``."""
    config.validate()
    if splits is None:
        splits = build_run_datasets(config, data_dir)
    config, batch_reason = resolve_batch(config, len(splits.train))
    device, ctx = join_devices(config.device)
    if ctx.is_main:
        log(f"[train] preset {config.preset}; {batch_reason}")
        claim_run_folder(run_dir, held)
    return config, splits, device, ctx


def _resume_from_checkpoint(run: TrainingRun, log) -> _EpochsSoFar:
    """Restore the model, optimizer, schedule and random generators from the run folder's checkpoint.pt."""
    state = load_checkpoint(run.run_dir / "checkpoint.pt")
    check_resumable(state, run.config, run.data_identity, run.run_dir)
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    restore_rng_state(state["rng"], run.loader_generator)
    so_far = _EpochsSoFar(state["history"], state["epoch"] + 1, BestEpoch.from_checkpoint(state))
    if run.ctx.is_main:
        log(f"[train] resuming {run.run_dir} at epoch {so_far.start_epoch + 1}/{run.config.epochs}")
    return so_far


def _run_epochs(run: TrainingRun, so_far: _EpochsSoFar, progress: bool | None, log) -> None:
    """Train the epochs from ``so_far.start_epoch`` on, each ending in ``_evaluate_and_checkpoint``.
    ``progress``: a bar per epoch; None lets tqdm decide: bars on a terminal, none in logs and CI."""
    from tqdm import tqdm

    config, model = run.config, run.model
    bar_disabled = True if not run.ctx.is_main else {None: None, True: False, False: True}[progress]
    n_batches = len(run.train_loader) if not config.max_train_batches else min(len(run.train_loader),
                                                                                config.max_train_batches)
    augmentations = parse_augment(config.augment)
    rounding_delays = False   # --delay-rounding-epochs: switched on for the last epochs
    zero_start = False        # --zero-start-epochs: likewise
    for epoch in range(so_far.start_epoch, config.epochs):
        started = time.perf_counter()
        if run.sampler is not None:
            run.sampler.set_epoch(epoch)
        if (epoch >= config.epochs - config.delay_rounding_epochs) != rounding_delays:
            rounding_delays = not rounding_delays
            model.set_delay_rounding(training=rounding_delays)
            run.training_step.graph = None  # a captured step holds the other delay path
        if (epoch >= config.epochs - config.zero_start_epochs) != zero_start:
            zero_start = not zero_start
            model.set_train_init_state("zero" if zero_start else config.train_init_state)
            run.training_step.graph = None  # a captured step holds the other initial state
        pruned = run.pruner.update(model, epoch) if run.pruner is not None else None
        model.train()
        bar = tqdm(total=n_batches, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False,
                   disable=bar_disabled)
        trained = _train_one_epoch(run, epoch, n_batches, augmentations, bar)
        _evaluate_and_checkpoint(run, so_far, epoch, trained, pruned, started, log)


@dataclass
class _TrainingSums:
    """One epoch's sums over its training samples; ``synops`` (hidden synaptic operations) stays a
    tensor on the device, None without an activity regularizer."""

    loss: float
    correct: int
    count: int
    synops: torch.Tensor | None


def _train_one_epoch(run: TrainingRun, epoch: int, n_batches: int, augmentations, bar) -> _TrainingSums:
    """Train on the first ``n_batches`` batches of the train split, advancing ``bar``, then close it."""
    loss_sum, correct, count, synops_sum = 0.0, 0, 0, None
    for step, (x, y) in enumerate(run.train_loader):
        if step >= n_batches:
            break
        x, y = x.to(run.device, non_blocking=True), y.to(run.device, non_blocking=True)
        if augmentations:
            x, y = augment_batch(x, y, augmentations, run.splits.n_classes)
        loss, scores = run.training_step(x, y)
        if run.training_step.synops is not None:      # stays on the device: read once, in the metrics row
            synops_sum = run.training_step.synops * len(y) + (0 if synops_sum is None else synops_sum)
        loss_sum += loss.item() * len(y)
        correct += (scores.argmax(1) == hard_labels(y)).sum().item()
        count += len(y)
        bar.update()
        bar.set_postfix(loss=f"{loss_sum / count:.3f}", acc=f"{correct / count:.3f}",
                        lr=f"{run.optimizer.param_groups[0]['lr']:.2g}")
    bar.close()
    if not math.isfinite(loss_sum):
        raise ToolchainError(f"epoch {epoch + 1}: the training loss is not finite; lower --lr-weights "
                             f"(now {run.config.lr_weights}) or --lr-delays (now {run.config.lr_delays})")
    return _TrainingSums(loss_sum, correct, count, synops_sum)


def _evaluate_and_checkpoint(run: TrainingRun, so_far: _EpochsSoFar, epoch: int, trained: _TrainingSums, pruned,
                             started: float, log) -> None:
    """Evaluate the epoch, step the schedule, keep the epoch as best.pt if it is selected, add its
    metrics row and, in the main process, write the metrics and checkpoint.pt and log the epoch.
    ``pruned``: each connection's pruned fraction (None without --prune); ``started``: the
    epoch's start on ``time.perf_counter`` (seconds)."""
    config, model, best = run.config, run.model, so_far.best
    valid = evaluate_model(model, run.valid_loader, run.device, halves=True)
    test = evaluate_model(model, run.test_loader, run.device)
    # the schedule follows validation under both protocols: the protocol only picks best.pt, so
    # the validation-selected figure of a paper-protocol run never saw the test split, unless
    # --valid-fraction 0 made the test split the validation split (the paper's SHD protocol)
    run.scheduler.step(valid["accuracy"])
    split = selection_split(config.protocol)
    if best.consider(epoch, so_far.history, valid, test, config.select, split) and run.ctx.is_main:
        save_checkpoint(run.run_dir / "best.pt", {"version": CHECKPOINT_VERSION, "config": config.to_dict(),
                                                  "model": model.state_dict(), "model_config": model.config,
                                                  "epoch": epoch, "valid_acc": valid["accuracy"],
                                                  "test_acc": test["accuracy"], "selected_on": split})
    lrs = {g.get("name", str(i)): g["lr"] for i, g in enumerate(run.optimizer.param_groups)}
    row = {"epoch": epoch + 1, "train_loss": trained.loss / max(trained.count, 1),
           "train_acc": trained.correct / max(trained.count, 1), "valid_loss": valid["loss"],
           "valid_acc": valid["accuracy"], "test_loss": test["loss"], "test_acc": test["accuracy"],
           "lr_weights": lrs.get("weights"), "lr_delays": lrs.get("delays", ""), "best_valid_acc": best.accuracy,
           "train_synops_per_sample": "" if trained.synops is None else float(trained.synops) / max(trained.count, 1),
           "pruned": "" if pruned is None else "/".join(f"{p:.3f}" for p in pruned),
           "epoch_seconds": round(time.perf_counter() - started, 3),
           **{f"valid_{what}_{name}": half["accuracy" if what == "acc" else "loss"]
              for name, half in zip(("even", "odd"), valid["halves"]) for what in ("acc", "loss")}}
    so_far.history.append(row)
    if not run.ctx.is_main:
        return
    write_metrics(run.run_dir, so_far.history)
    save_checkpoint(run.run_dir / "checkpoint.pt", {
        "version": CHECKPOINT_VERSION, "config": config.to_dict(), "model": model.state_dict(),
        "model_config": model.config, "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
        "rng": rng_state(run.loader_generator), "history": so_far.history, "epoch": epoch,
        **best.checkpoint_fields(), "data": run.data_identity})
    # with --valid-fraction 0 the split called valid is the test split: the line must not call it valid
    valid_name = "test (standing in for valid)" if run.splits.valid_is_test else "valid"
    log(f"[train] epoch {epoch + 1}/{config.epochs}: loss {row['train_loss']:.3f}, "
        f"train {100 * row['train_acc']:.1f}%, {valid_name} {100 * row['valid_acc']:.1f}% "
        f"(best {'test' if config.protocol == 'paper' else 'valid'} {100 * best.accuracy:.1f}% @ {best.epoch + 1}), "
        f"lr {row['lr_weights']:.2g}, "
        + (f"{row['train_synops_per_sample']:,.0f} hidden synaptic ops/sample, " if trained.synops is not None else "")
        + (f"pruned {row['pruned']}, " if pruned is not None else "")
        + f"{row['epoch_seconds']:.1f} s")


def _test_kept_model(run: TrainingRun, so_far: _EpochsSoFar) -> TrainResult:
    """Load best.pt back into the model, analyse it on the test split and gather both protocols'
    figures; ``summary`` is what result.json holds."""
    config, model, history, kept_epoch = run.config, run.model, so_far.history, so_far.best.epoch
    run.ctx.wait_for_all()  # rank 0 may still be writing best.pt
    best = load_checkpoint(run.run_dir / "best.pt") if (run.run_dir / "best.pt").exists() else None
    if best is not None:
        model.load_state_dict(best["model"])
    picks = selections(history, config.select)
    valid_pick, test_pick = picks["valid_selected"] or {}, picks["test_selected"] or {}
    analysis = analyse_selected_model(model, run.test_loader, run.device) if best is not None else {}
    model.set_eval_init_state(config.eval_init)
    # the saved model's test figures were computed at its epoch, with the same settings; a run
    # without epochs evaluates its initial model once
    saved = history[kept_epoch] if 0 <= kept_epoch < len(history) else None
    final = ({"accuracy": saved["test_acc"], "loss": saved["test_loss"]} if saved
             else evaluate_model(model, run.test_loader, run.device))
    result = TrainResult(run.run_dir, valid_pick.get("valid_acc", float("nan")), valid_pick.get("epoch", 0),
                         valid_pick.get("test_acc", final["accuracy"]), valid_pick.get("test_loss", final["loss"]),
                         len(history), model, test_pick.get("test_acc", float("nan")), test_pick.get("epoch", 0))
    result.summary = {"best_valid_acc": result.best_valid_acc, "best_epoch": result.best_epoch,
                      # --valid-fraction 0 (the paper's protocol on SHD): "validation" is the test split
                      "validation_is_test": config.valid_fraction == 0 and run.splits.valid_is_test,
                      "test_acc": result.test_acc, "test_loss": result.test_loss,
                      "test_selected": test_pick or None, "protocol": config.protocol,
                      "saved_model": {"selected_on": selection_split(config.protocol), "epoch": kept_epoch + 1,
                                      "test_acc": final["accuracy"], "eval_init": config.eval_init},
                      "selected_model_analysis": analysis, "parameters": model.parameter_count(),
                      "epochs_run": len(history), "config": config.to_dict(), "data": run.splits.summary()}
    return result


def _write_result(run: TrainingRun, result: TrainResult, history: list[dict], make_plots: bool) -> None:
    """result.json and the plots, from the main process; every process returns once they exist."""
    if run.ctx.is_main:
        write_json(run.run_dir / "result.json", result.summary)
        if make_plots and history:
            from snn_toolchain.train.loop.plots import plot_training_run  # matplotlib: only when drawing

            plot_training_run(run.model, history, run.run_dir)
    run.ctx.wait_for_all()  # result.json exists for every rank before any of them returns (sweeps read it)
