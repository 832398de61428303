"""The training loop: Adam with two learning rates, ReduceLROnPlateau on validation accuracy, atomic
per-epoch checkpoints, bit-for-bit ``--resume`` (without CUDA graphs: with them a resumed run is
equivalent, docs/training.md), both evaluation protocols, and data-parallel runs under torchrun.

A run folder holds:

- ``checkpoint.pt``: the latest epoch, everything needed to continue (model, optimizer, scheduler,
  every random generator, the history);
- ``best.pt``: the selected model: best validation accuracy (``--protocol valid``, the default) or
  best test accuracy (``--protocol paper``, labelled so everywhere);
- ``metrics.csv`` / ``metrics.json``: one row per epoch, validation and test accuracy both;
- ``result.json``: both protocols' figures, the parameter count and the selected model's analysis;
  and the plots (``plots.py``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from snn_toolchain.atomic import (
    claim_folder,
    exclusive_folder_lock,
    write_json,
    write_text,
)
from snn_toolchain.errors import ToolchainError
from snn_toolchain.train.data.augment import augment_batch, hard_labels, parse_augment
from snn_toolchain.train.model.blocks import DelaySNN, evaluate_model
from snn_toolchain.train.model.checkpoint import CHECKPOINT_VERSION, load_checkpoint, load_checkpoint_weights, save_checkpoint
from snn_toolchain.train.loop.config import LEGACY_SETTINGS, TrainConfig, resolve_batch, selection_scores
from snn_toolchain.train.data.loading import DatasetSplits, build_datasets, make_loader
from snn_toolchain.train.loop.regularization import ActivityRegularizer, SynapsePruner
from snn_toolchain.train.data.splits import data_fingerprint
from snn_toolchain.train.loop.step import TrainingStep, make_optimizer


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ToolchainError(f"--device {name}: no CUDA GPU is visible to torch; use --device cpu")
    return torch.device(name)


def build_model(config: TrainConfig, n_inputs: int, n_classes: int, input_encoding=None) -> DelaySNN:
    """``input_encoding``: the data's graded input encoding (GSC; None for spike counts)."""
    torch.manual_seed(config.seed)
    return DelaySNN(n_inputs, n_classes, config.hidden, variant=config.neuron, delays=config.delays,
                    max_delay=config.max_delay, dropout=config.dropout, bounds=config.bounds or None,
                    train_init_state=config.train_init_state, norm=config.norm, eval_init_state=config.eval_init,
                    input_encoding=input_encoding.to_dict() if input_encoding is not None else None,
                    latency=config.latency, bn_momentum=config.bn_momentum)


@dataclass
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistributedContext:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, nccl on CUDA)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistributedContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _rng_state(loader_generator: torch.Generator | None) -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if loader_generator is not None:
        state["loader"] = loader_generator.get_state()
    return state


def _set_rng_state(state: dict, loader_generator: torch.Generator | None) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if loader_generator is not None and "loader" in state:
        loader_generator.set_state(state["loader"])


METRIC_FIELDS = ("epoch", "train_loss", "train_acc", "valid_loss", "valid_acc", "test_loss", "test_acc",
                 "lr_weights", "lr_delays", "best_valid_acc", "train_synops_per_sample", "pruned", "epoch_seconds",
                 # the validation split's even- and odd-numbered samples, to compare selection rules
                 # on validation alone (scripts/compare_selection.py)
                 "valid_acc_even", "valid_loss_even", "valid_acc_odd", "valid_loss_odd")
# How the paper-protocol figure is labelled wherever it is shown: it was selected on the test split.
PAPER_PROTOCOL_LABEL = "test-selected (paper protocol)"


def _write_metrics(run_dir: Path, history: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_FIELDS)
    writer.writeheader()
    writer.writerows(history)
    write_text(run_dir / "metrics.csv", buffer.getvalue())
    write_json(run_dir / "metrics.json", history)


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


def selections(history: list[dict], rule: str = "accuracy") -> dict:
    """Both protocols' picks from a run's per-epoch history (first epoch wins a tie): the epoch the
    selection ``rule`` keeps on validation (train/loop/config.py ``selection_scores``) and its test accuracy,
    and the epoch with the best test accuracy."""
    if not history:
        return {"valid_selected": None, "test_selected": None}
    scores = selection_scores([row["valid_acc"] for row in history], [row["valid_loss"] for row in history], rule)
    by_valid = history[max(range(len(history)), key=lambda i: (scores[i], -i))]
    by_test = max(history, key=lambda row: (row["test_acc"], -row["epoch"]))
    return {"valid_selected": {"epoch": by_valid["epoch"], "valid_acc": by_valid["valid_acc"],
                               "test_acc": by_valid["test_acc"], "test_loss": by_valid["test_loss"]},
            "test_selected": {"label": PAPER_PROTOCOL_LABEL, "epoch": by_test["epoch"],
                              "test_acc": by_test["test_acc"], "valid_acc": by_test["valid_acc"]}}


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


def _train(config: TrainConfig, run_dir: Path, held: contextlib.ExitStack, *, splits, data_dir, resume, progress,
           make_plots, log) -> TrainResult:
    from tqdm import tqdm

    config.validate()
    if splits is None:
        splits = build_datasets(config.dataset, data_dir, pad_steps=config.max_delay,
                                valid_fraction=config.valid_fraction, seed=config.seed, input_bits=config.input_bits)
    config, batch_reason = resolve_batch(config, len(splits.train))
    device = select_device(config.device)
    ctx = init_distributed(device)
    if ctx.enabled and device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    if ctx.is_main:
        log(f"[train] preset {config.preset}; {batch_reason}")
        # a folder of the user's is never written into (a run folder of ours, or one from before
        # the mark, which holds our checkpoint); one run per folder: a second one is refused
        claim_folder(run_dir, "training run", "--run-dir", legacy=(run_dir / "checkpoint.pt").is_file())
        held.enter_context(exclusive_folder_lock(run_dir, "training run"))
    data_identity = {"fingerprint": data_fingerprint(splits), "source": splits.source}

    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    random.seed(config.seed)
    model = build_model(config, splits.n_inputs, splits.n_classes, splits.input_encoding)
    if config.init_checkpoint:
        start = load_checkpoint_weights(Path(config.init_checkpoint))
        try:
            model.load_state_dict(start)
        except RuntimeError as err:
            raise ToolchainError(f"{config.init_checkpoint}: its model does not match these settings "
                                 f"({str(err).splitlines()[0]}); use the same --hidden, --neuron, --delays, --norm") from None
    if config.qat:
        # quantization-aware: train the deployed network itself (train/model/deployed.py). BatchNorm acts
        # folded into each layer with its running statistics frozen (batch statistics have no
        # deployed form); the weights and BatchNorm's scale and shift train through the fold, in
        # the parametrisation the float run trained in
        model.set_arithmetic("deployed")
    model = model.to(device)
    # the deployed arithmetic reads values back from the device (a layer's input shift, the delay
    # groups of a shifted layer, the largest delay): no CUDA graphs for --qat
    use_graphs = config.cuda_graphs and device.type == "cuda" and not ctx.enabled and not config.qat
    optimizer = make_optimizer(model, config.lr_weights, config.lr_delays, device, cuda_graphs=use_graphs)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=config.lr_factor,
                                                           patience=config.lr_patience, min_lr=config.lr_min)
    if config.batch_size % ctx.world_size:
        raise ToolchainError(f"--batch-size {config.batch_size} must be divisible by the {ctx.world_size} processes")
    local_batch = config.batch_size // ctx.world_size
    if ctx.enabled:
        sampler = DistributedSampler(splits.train, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=config.shuffle,
                                     seed=config.seed, drop_last=True)
        train_loader = make_loader(splits.train, local_batch, sampler=sampler, num_workers=config.num_workers)
        loader_generator = None
    else:
        sampler = None
        train_loader = make_loader(splits.train, local_batch, shuffle=config.shuffle, seed=config.seed,
                                   num_workers=config.num_workers)
        loader_generator = train_loader.generator
    valid_loader = make_loader(splits.valid, max(local_batch, 64), shuffle=False)
    test_loader = make_loader(splits.test, max(local_batch, 64), shuffle=False)
    if ctx.enabled and device.type == "cuda" and config.norm == "batchnorm":
        # statistics over the global batch, as one process would compute them; torch has no
        # SyncBatchNorm on the CPU, so gloo runs normalise each rank's share of the batch
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    wrapped = DistributedDataParallel(model) if ctx.enabled else model
    if ctx.enabled:
        # every rank built the same model from the same seed; from here on each rank draws its own
        # dropout masks and initial membranes
        torch.manual_seed(config.seed * 1000 + ctx.rank)
    regularizer = ActivityRegularizer.from_config(config)
    pruner = SynapsePruner.from_config(config)
    if pruner is not None:
        pruner.check_fits(model)
    training_step = TrainingStep(model, optimizer, forward=wrapped, cuda_graphs=use_graphs, regularizer=regularizer,
                                 pruner=pruner)

    augmentations = parse_augment(config.augment)
    select_split = "test_acc" if config.protocol == "paper" else "valid_acc"
    history: list[dict] = []
    rounding_delays = False   # --delay-rounding-epochs: switched on for the last epochs
    zero_start = False        # --zero-start-epochs: likewise
    # best_score is what --select ranks by (an accuracy, a negated loss, a running mean); best_acc
    # is the chosen epoch's accuracy on the selection split, what the log and metrics show
    start_epoch, best_score, best_acc, best_epoch = 0, -math.inf, -1.0, -1
    checkpoint_path = run_dir / "checkpoint.pt"
    if resume:
        state = load_checkpoint(checkpoint_path)
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
                                 f"not {splits.source}; resume with the same --data-dir or start a new run folder")
        if config.epochs < state["epoch"] + 1:
            raise ToolchainError(f"--epochs {config.epochs}: {run_dir} has run {state['epoch'] + 1} epochs already; "
                                 f"resume with --epochs {state['epoch'] + 1} or more")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"], loader_generator)
        history, start_epoch = state["history"], state["epoch"] + 1
        best_acc, best_epoch = state["best_valid_acc"], state["best_epoch"]
        best_score = state.get("best_score", best_acc)     # runs from before --select ranked by accuracy
        if ctx.is_main:
            log(f"[train] resuming {run_dir} at epoch {start_epoch + 1}/{config.epochs}")
    elif ctx.is_main:
        if checkpoint_path.exists():
            raise ToolchainError(f"{run_dir}: holds a training run already; continue it with --resume, "
                                 "or choose another --run-dir")
        write_json(run_dir / "config.json", config.to_dict())
    if ctx.is_main:
        # the run is unfinished until its end writes result.json again: an earlier result beside a
        # newer checkpoint would be a mixed set (export refuses a run without one)
        with contextlib.suppress(FileNotFoundError):
            (run_dir / "result.json").unlink()

    # progress None lets tqdm decide: bars on a terminal, none in logs and CI.
    bar_disabled = True if not ctx.is_main else {None: None, True: False, False: True}[progress]
    n_batches = len(train_loader) if not config.max_train_batches else min(len(train_loader), config.max_train_batches)
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        if sampler is not None:
            sampler.set_epoch(epoch)
        if (epoch >= config.epochs - config.delay_rounding_epochs) != rounding_delays:
            rounding_delays = not rounding_delays
            model.set_delay_rounding(training=rounding_delays)
            training_step.graph = None  # a captured step holds the other delay path
        if (epoch >= config.epochs - config.zero_start_epochs) != zero_start:
            zero_start = not zero_start
            model.set_train_init_state("zero" if zero_start else config.train_init_state)
            training_step.graph = None  # a captured step holds the other initial state
        pruned = pruner.update(model, epoch) if pruner is not None else None
        model.train()
        loss_sum, correct, count, synops_sum = 0.0, 0, 0, None
        bar = tqdm(total=n_batches, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False,
                   disable=bar_disabled)
        for step, (x, y) in enumerate(train_loader):
            if step >= n_batches:
                break
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if augmentations:
                x, y = augment_batch(x, y, augmentations, splits.n_classes)
            loss, scores = training_step(x, y)
            if training_step.synops is not None:      # stays on the device: read once, below
                synops_sum = training_step.synops * len(y) + (0 if synops_sum is None else synops_sum)
            loss_sum += loss.item() * len(y)
            correct += (scores.argmax(1) == hard_labels(y)).sum().item()
            count += len(y)
            bar.update()
            bar.set_postfix(loss=f"{loss_sum / count:.3f}", acc=f"{correct / count:.3f}",
                            lr=f"{optimizer.param_groups[0]['lr']:.2g}")
        bar.close()
        if not math.isfinite(loss_sum):
            raise ToolchainError(f"epoch {epoch + 1}: the training loss is not finite; lower --lr-weights "
                                 f"(now {config.lr_weights}) or --lr-delays (now {config.lr_delays})")
        valid = evaluate_model(model, valid_loader, device, halves=True)
        test = evaluate_model(model, test_loader, device)
        valid_acc = valid["accuracy"]
        scores = selection_scores([row["valid_acc"] for row in history] + [valid_acc],
                                  [row["valid_loss"] for row in history] + [valid["loss"]], config.select)
        selection_score = {"valid_acc": scores[-1], "test_acc": test["accuracy"]}[select_split]
        # the schedule follows validation under both protocols: the protocol only picks best.pt, so
        # the validation-selected figure of a paper-protocol run never saw the test split
        scheduler.step(valid_acc)
        if selection_score > best_score:
            best_score, best_epoch = selection_score, epoch
            best_acc = {"valid_acc": valid_acc, "test_acc": test["accuracy"]}[select_split]
            if ctx.is_main:
                save_checkpoint(run_dir / "best.pt", {"version": CHECKPOINT_VERSION, "config": config.to_dict(),
                                                      "model": model.state_dict(), "model_config": model.config,
                                                      "epoch": epoch, "valid_acc": valid_acc,
                                                      "test_acc": test["accuracy"], "selected_on": select_split})
        lrs = {g.get("name", str(i)): g["lr"] for i, g in enumerate(optimizer.param_groups)}
        row = {"epoch": epoch + 1, "train_loss": loss_sum / max(count, 1), "train_acc": correct / max(count, 1),
               "valid_loss": valid["loss"], "valid_acc": valid_acc, "test_loss": test["loss"],
               "test_acc": test["accuracy"], "lr_weights": lrs.get("weights"),
               "lr_delays": lrs.get("delays", ""), "best_valid_acc": best_acc,
               "train_synops_per_sample": "" if synops_sum is None else float(synops_sum) / max(count, 1),
               "pruned": "" if pruned is None else "/".join(f"{p:.3f}" for p in pruned),
               "epoch_seconds": round(time.perf_counter() - t0, 3),
               **{f"valid_{what}_{name}": half["accuracy" if what == "acc" else "loss"]
                  for name, half in zip(("even", "odd"), valid["halves"]) for what in ("acc", "loss")}}
        history.append(row)
        if ctx.is_main:
            _write_metrics(run_dir, history)
            save_checkpoint(checkpoint_path, {
                "version": CHECKPOINT_VERSION, "config": config.to_dict(), "model": model.state_dict(),
                "model_config": model.config, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": _rng_state(loader_generator), "history": history, "epoch": epoch,
                "best_valid_acc": best_acc, "best_score": best_score, "best_epoch": best_epoch,
                "data": data_identity})
            log(f"[train] epoch {epoch + 1}/{config.epochs}: loss {row['train_loss']:.3f}, "
                f"train {100 * row['train_acc']:.1f}%, valid {100 * valid_acc:.1f}% "
                f"(best {'test' if config.protocol == 'paper' else 'valid'} {100 * best_acc:.1f}% @ {best_epoch + 1}), "
                f"lr {row['lr_weights']:.2g}, "
                + (f"{row['train_synops_per_sample']:,.0f} hidden synaptic ops/sample, " if synops_sum is not None else "")
                + (f"pruned {row['pruned']}, " if pruned is not None else "")
                + f"{row['epoch_seconds']:.1f} s")

    if ctx.enabled:
        dist.barrier()  # rank 0 may still be writing best.pt
    best = load_checkpoint(run_dir / "best.pt") if (run_dir / "best.pt").exists() else None
    if best is not None:
        model.load_state_dict(best["model"])
    picks = selections(history, config.select)
    valid_pick, test_pick = picks["valid_selected"] or {}, picks["test_selected"] or {}
    analysis = analyse_selected_model(model, test_loader, device) if best is not None else {}
    model.set_eval_init_state(config.eval_init)
    # the saved model's test figures were computed at its epoch, with the same settings; a run
    # without epochs evaluates its initial model once
    saved = history[best_epoch] if 0 <= best_epoch < len(history) else None
    final = ({"accuracy": saved["test_acc"], "loss": saved["test_loss"]} if saved
             else evaluate_model(model, test_loader, device))
    result = TrainResult(run_dir, valid_pick.get("valid_acc", float("nan")), valid_pick.get("epoch", 0),
                         valid_pick.get("test_acc", final["accuracy"]), valid_pick.get("test_loss", final["loss"]),
                         len(history), model, test_pick.get("test_acc", float("nan")), test_pick.get("epoch", 0))
    summary = {"best_valid_acc": result.best_valid_acc, "best_epoch": result.best_epoch,
               # --valid-fraction 0 (the paper's protocol on SHD): "validation" is the test split
               "validation_is_test": config.valid_fraction == 0 and splits.valid_is_test,
               "test_acc": result.test_acc, "test_loss": result.test_loss,
               "test_selected": test_pick or None, "protocol": config.protocol,
               "saved_model": {"selected_on": select_split, "epoch": best_epoch + 1,
                               "test_acc": final["accuracy"], "eval_init": config.eval_init},
               "selected_model_analysis": analysis, "parameters": model.parameter_count(),
               "epochs_run": len(history), "config": config.to_dict(), "data": splits.summary()}
    result.summary = summary
    if ctx.is_main:
        write_json(run_dir / "result.json", summary)
        if make_plots and history:
            from snn_toolchain.train.loop.plots import plot_training_run  # matplotlib: only when drawing

            plot_training_run(model, history, run_dir)
    if ctx.enabled:
        dist.barrier()  # result.json exists for every rank before any of them returns (sweeps read it)
    return result
