"""The commands that load data and train: ``data``, ``train``, ``sweep`` and ``frontier``, and the
TrainConfig their options (parser.py) describe. Each command imports what it needs inside its
function (start-up time: snn_toolchain/cli/__init__.py)."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

from snn_toolchain.errors import ToolchainError


def cmd_data(args) -> dict:
    from snn_toolchain.input_encoding import DEFAULT_INPUT_BITS
    from snn_toolchain.train.data.baseline import logistic_regression_baseline
    from snn_toolchain.train.data.loading import build_run_datasets

    t0 = time.perf_counter()
    splits = build_run_datasets(args, args.data_dir, download=args.download, cache_dir=args.cache_dir,
                                input_bits=DEFAULT_INPUT_BITS)
    print(f"[data] {splits.summary()} in {time.perf_counter() - t0:.1f} s")
    for note in splits.notes:
        print(f"[data] {note}")
    result = {"dataset": splits.name, "source": splits.source, "train": len(splits.train),
              "valid": len(splits.valid), "test": len(splits.test), "notes": splits.notes}
    if not getattr(args, "no_baseline", False):
        baseline = logistic_regression_baseline(splits.train, splits.valid, splits.test, splits.n_classes, seed=args.seed)
        print(f"[baseline] logistic regression on per-channel spike counts: valid {100 * baseline.valid_accuracy:.1f}%, "
              f"test {100 * baseline.test_accuracy:.1f}%")
        result["count_baseline"] = baseline.__dict__
    return result


def config_from_args(args):
    from snn_toolchain.train.loop.config import TrainConfig, preset_config
    from snn_toolchain.train.data.registry import dataset_spec

    overrides = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(TrainConfig)
                 if f.name not in ("dataset", "bounds", "preset")}
    overrides["bounds"] = args.bounds or None
    embedded = getattr(args, "data_dir", None) is None and dataset_spec(args.dataset).embedded_dir is not None
    return preset_config(args.dataset, preset=getattr(args, "preset", None), embedded=embedded, **overrides)


def _run_dir(args, config) -> Path:
    if args.run_dir is not None:
        if args.run_dir.exists() and not args.run_dir.is_dir():
            raise ToolchainError(f"--run-dir {args.run_dir}: is a file; give a folder for the run")
        return args.run_dir
    if args.out.exists() and not args.out.is_dir():
        raise ToolchainError(f"--out {args.out}: is a file; give the folder that new run folders go into")
    if args.resume:
        raise ToolchainError("--resume needs --run-dir: the folder of the run to continue")
    return args.out / f"{config.dataset}-{config.neuron}{'-delays' if config.delays else ''}-{time.strftime('%Y%m%d-%H%M%S')}"


def load_splits(args, config):
    from snn_toolchain.train.data.loading import build_run_datasets

    splits = build_run_datasets(config, args.data_dir, download=args.download, cache_dir=args.cache_dir)
    print(f"[data] {splits.summary()}")
    return splits


def cmd_train(args, splits=None):
    from snn_toolchain.train.loop.trainer import PAPER_PROTOCOL_LABEL, train

    config = config_from_args(args)
    run_dir = _run_dir(args, config)
    splits = splits or load_splits(args, config)
    print(f"[train] {config.neuron}{' with' if config.delays else ' without'} delays, hidden {config.hidden}, "
          f"{config.epochs} epochs, preset {config.preset} -> {run_dir}")
    result = train(config, run_dir, splits=splits, resume=args.resume)
    if result.summary and result.summary.get("validation_is_test"):
        print("[train] no validation split (--valid-fraction 0): the schedule and every selection followed the "
              "test split; only the test-selected (paper protocol) figure below is the run's")
    else:
        print(f"[train] best validation accuracy {100 * result.best_valid_acc:.2f}% (epoch {result.best_epoch}); "
              f"test accuracy of that model {100 * result.test_acc:.2f}%")
    print(f"[train] {PAPER_PROTOCOL_LABEL}: {100 * result.test_selected_acc:.2f}% (epoch {result.test_selected_epoch})")
    return result


def cmd_sweep(args) -> dict:
    from snn_toolchain.cluster import cluster_from_args
    from snn_toolchain.train.sweeps.sweep import DataSource, run_sweep

    cluster = cluster_from_args(args)
    config = config_from_args(args)
    variants = args.variants.split(",") if args.variants is not None else None
    out = args.run_dir or args.out / f"sweep-{config.dataset}"
    if args.download:
        load_splits(args, config)   # fetch once, before any worker looks for the files
    return run_sweep(config, out, seeds=args.seeds, variants=variants, parallel=args.parallel,
                     data=DataSource(args.dataset, args.data_dir, args.cache_dir), cluster=cluster)


def cmd_frontier(args) -> dict:
    from snn_toolchain.cluster import cluster_from_args
    from snn_toolchain.export.frontier import run_frontier
    from snn_toolchain.train.sweeps.sweep import DataSource

    cluster = cluster_from_args(args)
    config = config_from_args(args)
    try:
        strengths = [float(v) for v in args.strengths.split(",") if v.strip()]
    except ValueError:
        raise ToolchainError(f"--strengths {args.strengths!r}: give numbers separated by commas, e.g. 0,1,2,4") from None
    if not all(math.isfinite(s) for s in strengths):
        raise ToolchainError(f"--strengths {args.strengths!r}: every strength must be a finite number")
    out = args.run_dir or args.out / f"frontier-{config.dataset}"
    return run_frontier(config, out, strengths, args.seeds, DataSource(args.dataset, args.data_dir, args.cache_dir),
                        args.parallel, args.init_from, prune_levels=args.prune_levels, cluster=cluster)
