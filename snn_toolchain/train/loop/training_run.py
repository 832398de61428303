"""What one process of a training run trains with (``TrainingRun``) and how it is built: the model
from the seed or from ``--init-checkpoint``, the optimizer and its schedule, the data loaders with
each process's share of the batch, and the training step (``step.py``)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from snn_toolchain.errors import ToolchainError
from snn_toolchain.train.data.loading import DatasetSplits, make_loader
from snn_toolchain.train.loop.config import TrainConfig
from snn_toolchain.train.loop.devices import DistributedContext
from snn_toolchain.train.loop.regularization import ActivityRegularizer, SynapsePruner
from snn_toolchain.train.loop.step import TrainingStep, make_optimizer
from snn_toolchain.train.model.delay_snn import DelaySNN
from snn_toolchain.train.model.checkpoint import load_checkpoint_weights


def build_model(config: TrainConfig, n_inputs: int, n_classes: int, input_encoding=None) -> DelaySNN:
    """``input_encoding``: the data's graded input encoding (GSC; None for spike counts)."""
    torch.manual_seed(config.seed)
    return DelaySNN(n_inputs, n_classes, config.hidden, variant=config.neuron, delays=config.delays,
                    max_delay=config.max_delay, dropout=config.dropout, bounds=config.bounds or None,
                    train_init_state=config.train_init_state, norm=config.norm, eval_init_state=config.eval_init,
                    input_encoding=input_encoding.to_dict() if input_encoding is not None else None,
                    latency=config.latency, bn_momentum=config.bn_momentum)


@dataclass
class TrainingRun:
    """What one process of a run trains with, built before its first epoch. ``model`` is the one
    the optimizer updates; ``training_step`` runs it (under torchrun through DistributedDataParallel)."""

    config: TrainConfig
    run_dir: Path
    splits: DatasetSplits
    device: torch.device
    ctx: DistributedContext
    data_identity: dict                       # the splits' fingerprint and source, kept in checkpoint.pt
    model: DelaySNN
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    training_step: TrainingStep
    pruner: SynapsePruner | None
    train_loader: DataLoader
    sampler: DistributedSampler | None        # under torchrun it shuffles instead of the loader
    loader_generator: torch.Generator | None  # the loader's shuffling, restored on resume; None under torchrun
    valid_loader: DataLoader
    test_loader: DataLoader


def _starting_model(config: TrainConfig, splits: DatasetSplits, device: torch.device) -> DelaySNN:
    """The model the first epoch starts from, on ``device``: from the seed, or --init-checkpoint's weights."""
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
    return model.to(device)


def build_training_run(config: TrainConfig, run_dir: Path, splits: DatasetSplits, device: torch.device,
                       ctx: DistributedContext, data_identity: dict) -> TrainingRun:
    """The starting model, the optimizer, its schedule, the data loaders and the training step. The
    model's initial weights come from ``config.seed`` alone, so every process builds the same one."""
    model = _starting_model(config, splits, device)
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
    return TrainingRun(config, run_dir, splits, device, ctx, data_identity, model, optimizer, scheduler,
                       training_step, pruner, train_loader, sampler, loader_generator, valid_loader, test_loader)
