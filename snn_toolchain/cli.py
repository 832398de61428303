"""``train-export``: the command line, a thin layer over functions that also work from Python.

    train-export --dataset shd              the whole pipeline (same as `train-export pipeline ...`)
    train-export train --dataset shd ...    train only (every preset value can be overridden)
    train-export sweep --dataset shd        the paper's Table 1: 5 variants x N seeds, mean and max
    train-export frontier --dataset shd     accuracy against synaptic operations over activity-penalty strengths
    train-export export --run-dir RUN       quantize to Loihi 2 fixed point, write RUN/model.net (--format nir: a NIR graph)
    train-export import-nir GRAPH.nir       a NIR graph from another framework as a .net file
    train-export run --net FILE             run test samples on the Lava CPU simulator (or the emulator)
    train-export parity --net FILE          float vs emulator vs Lava fixed_pt, spike by spike
    train-export report --net FILE          spike rates, synaptic operations, energy estimate, plots
    train-export deploy --net FILE          Loihi 2 pre-flight plan, and the chip run where lava-loihi exists
    train-export data --dataset gsc ...     load a dataset, print its summary and the count baseline

Every user-facing problem (a missing file, a bad layout, a bad option) ends the command with one
line on stderr and exit status 2, never a traceback.

The commands import what they need inside their functions: `train-export --help` and a bad option
then answer without loading torch or Lava (start-up time).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import signal
import sys
import threading
import time
from pathlib import Path

from snn_toolchain import constants as C
from snn_toolchain.atomic import check_replaceable, describe_os_error, ensure_folder
from snn_toolchain.errors import Interrupted, ToolchainError, one_line

SUBCOMMANDS = ("pipeline", "train", "sweep", "frontier", "export", "import-nir", "run", "parity", "report", "deploy", "data")


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    from snn_toolchain.train.data.registry import dataset_names  # the registry: every registered dataset

    group = parser.add_argument_group("data")
    group.add_argument("--dataset", choices=dataset_names(), default="shd",
                       help="which dataset (default: shd; without --data-dir SHD uses the embedded set)")
    group.add_argument("--data-dir", type=_path, default=None,
                       help="folder holding the official files (shd_*.h5, ssc_*.h5, or the GSC v0.02 tree)")
    group.add_argument("--download", action="store_true",
                       help="fetch the official files into --data-dir first (checksums are verified)")
    group.add_argument("--cache-dir", type=_path, default=None, help="GSC feature cache (default: inside --data-dir)")
    group.add_argument("--valid-fraction", type=float, default=0.1,
                       help="SHD: share of train held out, by speaker, for model selection (default 0.1)")
    group.add_argument("--max-delay", type=int, default=C.TRAIN_MAX_DELAY,
                       help=f"largest synaptic delay in steps; samples are right-padded by it (default {C.TRAIN_MAX_DELAY})")
    group.add_argument("--seed", type=int, default=0)


def _parse_bounds(text: str) -> dict:
    """'alpha=0:1,b=0:2' -> {'alpha': (0.0, 1.0), 'b': (0.0, 2.0)}; a preset name of
    ``BOUNDS_PRESETS`` (e.g. 'beta-appendix') expands to its overrides, later items win."""
    from snn_toolchain.neurons.dynamics import BOUNDS_PRESETS

    bounds = {}
    for item in filter(None, text.split(",")):
        if item.strip() in BOUNDS_PRESETS:
            bounds.update(BOUNDS_PRESETS[item.strip()])
            continue
        try:
            name, pair = item.split("=")
            low, high = pair.split(":")
            bounds[name.strip()] = (float(low), float(high))
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad bounds '{item}': write NAME=LOW:HIGH, e.g. alpha=0:1, "
                                             f"or a preset: {', '.join(BOUNDS_PRESETS)}") from None
    return bounds


def _add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field; unset flags keep the dataset's preset (None = not given)."""
    from snn_toolchain.train.loop.config import PRESET_NAMES, TrainConfig

    group = parser.add_argument_group("training (defaults: --preset's values for --dataset)")
    skip = {"dataset", "seed", "valid_fraction", "max_delay", "bounds", "preset"}
    group.add_argument("--preset", choices=PRESET_NAMES, default=None,
                       help="paper: the paper's Table 3 exactly (the default with --data-dir); tuned: with the "
                            "improvements measured on the development sets (the default on the embedded set)")
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            kind = {"int": int, "float": float, "str": str}.get(f.type if isinstance(f.type, str) else f.type.__name__, str)
            group.add_argument(flag, type=kind, default=None, metavar=f.name.upper())
    group.add_argument("--bounds", type=_parse_bounds, default=None,
                       help="override neuron parameter bounds, e.g. alpha=0:1,b=0:2, or name a preset: "
                            "beta-section4.3 (AdLIF+ beta in AdLIF's range, the default) or beta-appendix (beta in [0, 1])")
    group.add_argument("--run-dir", type=_path, default=None, help="the run folder (default: OUT/DATASET-NEURON-TIME)")
    group.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    group.add_argument("--out", type=_path, default=Path("runs"), help="parent folder of new run folders")


def _path(text: str) -> Path:
    """A path option: an empty one is refused (``Path('')`` would be the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; give a file or folder name ('.' for the current folder)")
    return Path(text)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def _add_net_arguments(parser: argparse.ArgumentParser, default_samples: int | None = 50) -> None:
    parser.add_argument("--net", type=_path, required=True, help="the .net file (train-export export writes one)")
    parser.add_argument("--samples", type=_positive_int, default=default_samples,
                        help=f"test samples to use (default {default_samples or 'all'})")
    from snn_toolchain.train.data.registry import dataset_names  # the registry: every registered dataset

    parser.add_argument("--dataset", choices=dataset_names(), default="shd")
    parser.add_argument("--data-dir", type=_path, default=None, help="default: the embedded set (SHD)")
    parser.add_argument("--cache-dir", type=_path, default=None)
    parser.add_argument("--time-steps", type=_positive_int, default=None,
                        help="input steps per sample, for a stock lava-dl .net file (which stores none)")


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, whose errors end with the same one line as every other error of the CLI (after
    the usage block, which stays: it shows the options)."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(2, f"train-export: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="train-export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    pipeline = sub.add_parser("pipeline", help="load data, train, export, run and check parity (the default)")
    _add_data_arguments(pipeline)
    _add_training_arguments(pipeline)
    pipeline.add_argument("--parity-samples", type=int, default=4,
                          help="test samples for the closing Lava parity check (default 4)")
    train = sub.add_parser("train", help="train one network")
    _add_data_arguments(train)
    _add_training_arguments(train)
    sweep = sub.add_parser("sweep", help="the paper's Table 1: every variant x --seeds seeds, mean and max")
    _add_data_arguments(sweep)
    _add_training_arguments(sweep)
    sweep.add_argument("--seeds", type=int, default=10, help="seeds per variant (default 10)")
    sweep.add_argument("--parallel", type=_positive_int, default=1,
                       help="trainings at once, as separate processes (default 1); on a GPU they share it")
    sweep.add_argument("--variants", default=None,
                       help="comma-separated subset of LIF,AdLIF,AdLIF+,delay-LIF,delay-AdLIF+ (default all)")
    frontier = sub.add_parser("frontier", help="accuracy against synaptic operations over activity-penalty strengths")
    _add_data_arguments(frontier)
    _add_training_arguments(frontier)
    frontier.add_argument("--strengths", default="0,1,2,4,8",
                          help="synaptic-operations penalty strengths, per million ops per sample (default 0,1,2,4,8)")
    frontier.add_argument("--prune-levels", nargs="+", default=[""], metavar="FRACTIONS",
                          help="synapse pruning levels, each a --prune value (fractions per connection from the "
                               "input's on; 0 = none), every strength trained at each, e.g. --prune-levels 0 0.6 "
                               "(default: no pruning)")
    frontier.add_argument("--seeds", type=_positive_int, default=3, help="seeds per setting (default 3)")
    frontier.add_argument("--parallel", type=_positive_int, default=1, help="trainings at once (default 1)")
    frontier.add_argument("--init-from", type=_path, default=None,
                          help="fine-tune the runs of this folder (seed<N>/best.pt, e.g. a sweep's variant folder) "
                               "instead of training from scratch")
    export = sub.add_parser("export", help="quantize a trained run to Loihi 2 fixed point and write its .net file")
    # the dataset, its split and padding are the run's own (its config.json): only where the files are
    export.add_argument("--data-dir", type=_path, default=None,
                        help="where the run's dataset is (default: the embedded set for SHD)")
    export.add_argument("--cache-dir", type=_path, default=None, help="GSC feature cache (default: inside --data-dir)")
    export.add_argument("--force", action="store_true", help="replace an earlier export (model.net, export.json)")
    export.add_argument("--run-dir", type=_path, required=True, help="the training run folder (holds best.pt)")
    export.add_argument("--checkpoint", type=_path, default=None, help="default: RUN_DIR/best.pt")
    export.add_argument("--out", type=_path, default=None,
                        help="the file to write (default: RUN_DIR/model.net, or RUN_DIR/model.nir with --format nir)")
    export.add_argument("--scales", choices=("neuron", "layer"), default="neuron",
                        help="a threshold scale per AdLIF neuron (format version 3, the default) or one per layer "
                             "(a file that readers of versions 1 and 2 read)")
    export.add_argument("--format", choices=("net", "nir"), default="net",
                        help="net: Loihi 2 fixed point, lava-dl's NetX HDF5 (default); nir: the float network as a "
                             "NIR graph (docs/nir.md)")
    export.add_argument("--nir-dt", type=_positive_float, default=C.TIME_BIN_S,
                        help=f"NIR: the time step the graph's time constants are written for, in seconds (default "
                             f"{C.TIME_BIN_S}, one step; snnTorch reads graphs with dt = 1e-4)")
    export.add_argument("--allow-large-expansion", action="store_true",
                        help="NIR: write per-synapse delay expansions of more than 100,000 units")
    import_nir = sub.add_parser("import-nir", help="a NIR graph (snnTorch, Norse, ...) as a .net file for Lava and Loihi 2")
    import_nir.add_argument("graph", type=_path, help="the .nir file")
    import_nir.add_argument("--out", type=_path, default=None, help="the .net file to write (default: GRAPH.net)")
    import_nir.add_argument("--time-steps", type=_positive_int, required=True,
                            help="input steps per sample the network will run (e.g. 125: 100 + 25 of delay padding)")
    import_nir.add_argument("--force", action="store_true", help="replace an existing .net file at --out")
    import_nir.add_argument("--dt", type=_positive_float, default=None,
                            help="seconds per step to discretise at (default: the graph's metadata 'dt'; snnTorch "
                                 "graphs need --dt 1e-4)")
    run = sub.add_parser("run", help="run test samples of a .net file on Lava (CPU simulator) or the emulator")
    _add_net_arguments(run)
    run.add_argument("--backend", choices=("lava-sim", "emulator", "loihi2"), default="lava-sim")
    run.add_argument("--synapse", choices=("ring", "stock"), default="ring",
                     help="Lava delay synapse: our ring-buffer model (fast) or stock DelayDense")
    parity = sub.add_parser("parity", help="compare float, emulator and Lava fixed_pt on the same samples")
    _add_net_arguments(parity)
    parity.add_argument("--checkpoint", type=_path, default=None, help="the float model (default: the .net's source)")
    parity.add_argument("--synapse", choices=("ring", "stock"), default="ring")
    parity.add_argument("--nir-traces", type=_path, default=None,
                        help="also write both backends' recorded spikes as NIR data_ir (HDF5) to this file")
    parity.add_argument("--report", type=_path, default=None,
                        help="the JSON report (default: NET.parity.json next to the .net file)")
    report = sub.add_parser("report", help="activity and energy report of a .net file (on the emulator)")
    _add_net_arguments(report, default_samples=None)
    report.add_argument("--energy", type=_path, default=None, help="JSON of per-operation energies (pJ) to use")
    report.add_argument("--out", type=_path, default=None, help="output folder (default: next to the .net file)")
    report.add_argument("--force", action="store_true", help="replace an earlier report in --out")
    deploy = sub.add_parser("deploy", help="Loihi 2: pre-flight check, partition plan, and the chip run")
    _add_net_arguments(deploy, default_samples=16)
    deploy.add_argument("--target", default="loihi2")
    deploy.add_argument("--out", type=_path, default=None)
    data = sub.add_parser("data", help="load a dataset and print its summary and the spike-count baseline")
    _add_data_arguments(data)
    data.add_argument("--no-baseline", action="store_true", help="skip the logistic-regression baseline")
    return parser


def cmd_data(args) -> dict:
    from snn_toolchain.train.data.baseline import logistic_regression_baseline
    from snn_toolchain.train.data.loading import build_datasets

    t0 = time.perf_counter()
    splits = build_datasets(args.dataset, args.data_dir, pad_steps=args.max_delay, valid_fraction=args.valid_fraction,
                            seed=args.seed, download=args.download, cache_dir=args.cache_dir)
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


def _load_splits(args, config):
    from snn_toolchain.train.data.loading import build_datasets

    splits = build_datasets(args.dataset, args.data_dir, pad_steps=config.max_delay, valid_fraction=config.valid_fraction,
                            seed=config.seed, download=args.download, cache_dir=args.cache_dir,
                            input_bits=config.input_bits)
    print(f"[data] {splits.summary()}")
    return splits


def cmd_train(args, splits=None):
    from snn_toolchain.train.loop.trainer import PAPER_PROTOCOL_LABEL, train

    config = config_from_args(args)
    run_dir = _run_dir(args, config)
    splits = splits or _load_splits(args, config)
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
    from snn_toolchain.train.sweeps.sweep import DataSource, run_sweep

    config = config_from_args(args)
    variants = args.variants.split(",") if args.variants is not None else None
    out = args.run_dir or args.out / f"sweep-{config.dataset}"
    if args.download:
        _load_splits(args, config)   # fetch once, before any worker looks for the files
    return run_sweep(config, out, seeds=args.seeds, variants=variants, parallel=args.parallel,
                     data=DataSource(args.dataset, args.data_dir, args.cache_dir))


def cmd_frontier(args) -> dict:
    from snn_toolchain.export.frontier import run_frontier
    from snn_toolchain.train.sweeps.sweep import DataSource

    config = config_from_args(args)
    try:
        strengths = [float(v) for v in args.strengths.split(",") if v.strip()]
    except ValueError:
        raise ToolchainError(f"--strengths {args.strengths!r}: give numbers separated by commas, e.g. 0,1,2,4") from None
    if not all(math.isfinite(s) for s in strengths):
        raise ToolchainError(f"--strengths {args.strengths!r}: every strength must be a finite number")
    out = args.run_dir or args.out / f"frontier-{config.dataset}"
    return run_frontier(config, out, strengths, args.seeds, DataSource(args.dataset, args.data_dir, args.cache_dir),
                        args.parallel, args.init_from, prune_levels=args.prune_levels)


def cmd_export(args, splits=None) -> dict:
    from snn_toolchain.export.exporter import export_run

    run_dir = args.run_dir
    if getattr(args, "format", "net") == "nir":
        from snn_toolchain.export.nir_export import export_nir

        if args.out is not None and args.out.is_dir():
            raise ToolchainError(f"--out {args.out}: is a folder; give the .nir file to write")
        if args.scales != "neuron":
            raise ToolchainError("--scales is a choice of the .net file's fixed point; a NIR graph holds the float "
                                 "network: drop --scales, or export with --format net")
        target = args.out or run_dir / "model.nir"
        check_replaceable(target, "NIR export", "--out", args.force)
        result = export_nir(args.checkpoint or run_dir / "best.pt", target,
                            dt=args.nir_dt, allow_large=args.allow_large_expansion)
        print(f"[export] wrote {result['nir_file']}: {result['variant']}, {result['nodes']} nodes, dt {args.nir_dt:g} s"
              + (f"; per-synapse delay expansions {', '.join(result['delay_expansions'])}"
                 if result["delay_expansions"] else "")
              + (f"; AdLIF subgraphs {', '.join(result['adlif_subgraphs'])}" if result["adlif_subgraphs"] else ""))
        return result
    if args.out is not None and args.out.is_dir():
        raise ToolchainError(f"--out {args.out}: is a folder; give the .net file to write, e.g. {args.out / 'model.net'}")
    config_file = run_dir / "config.json"
    if splits is None:
        if not config_file.is_file():
            raise ToolchainError(f"{config_file}: not found; --run-dir must be a training run folder")
        config = json.loads(config_file.read_text())
        missing = [k for k in ("dataset", "max_delay", "valid_fraction", "seed") if k not in config]
        if missing:
            raise ToolchainError(f"{config_file}: lacks {', '.join(missing)}; it was not written by train-export train")
        from snn_toolchain.input_encoding import GradedInputEncoding
        from snn_toolchain.train.data.loading import build_datasets
        from snn_toolchain.train.model.checkpoint import load_model

        # graded inputs are encoded as the run was trained, not fitted anew on the data found now
        checkpoint = args.checkpoint or run_dir / "best.pt"
        encoding = GradedInputEncoding.from_dict(load_model(checkpoint).config.get("input_encoding"))
        splits = build_datasets(config["dataset"], args.data_dir, pad_steps=config["max_delay"],
                                valid_fraction=config["valid_fraction"], seed=config["seed"], cache_dir=args.cache_dir,
                                input_encoding=encoding)
    return export_run(run_dir, splits, out=args.out, checkpoint=args.checkpoint,
                      per_neuron_scales=getattr(args, "scales", "neuron") == "neuron", force=args.force)


def _net_splits(args):
    """The dataset the .net file was trained on, padded to the file's time steps, graded inputs
    encoded with the file's own encoding."""
    from snn_toolchain.export.netfile import read_net
    from snn_toolchain.train.data.loading import build_datasets

    from snn_toolchain.quantized_network import check_fits_dataset

    network = read_net(args.net, args.time_steps)
    for note in network.notes:       # e.g. a file without a content checksum: read, but said
        print(f"[net] note: {note}")
    splits = build_datasets(args.dataset, args.data_dir, pad_steps=max(network.time_steps - C.TIME_STEPS, 0),
                            cache_dir=args.cache_dir, input_encoding=network.input_encoding)
    # every backend, the emulator too, refuses a network that does not fit the data with one line
    check_fits_dataset(network, splits.n_inputs, splits.n_classes, splits.time_steps, source=args.net)
    return splits


def cmd_run(args) -> dict:
    splits = _net_splits(args)
    if args.backend == "loihi2":
        return run_deploy(args.net, "loihi2", args.samples or 16, splits, time_steps=args.time_steps)
    if args.backend == "emulator":
        from torch.utils.data import Subset

        from snn_toolchain.export.emulator import Emulator
        from snn_toolchain.export.netfile import read_net

        deployed = splits.deployed().test
        test = deployed if args.samples is None else Subset(deployed, range(min(args.samples, len(deployed))))
        result = Emulator(read_net(args.net, args.time_steps)).evaluate(test)
        print(f"[run] emulator: accuracy {100 * result['accuracy']:.2f}% on {result['samples']} test samples")
        return result
    from snn_toolchain.lava_models.network import run_lava

    result = run_lava(args.net, splits, args.samples, synapse=args.synapse, time_steps=args.time_steps)
    print(f"[run] Lava fixed_pt ({args.synapse} delay synapses): accuracy {100 * result['accuracy']:.2f}% "
          f"on {len(result['predictions'])} test samples, {result['seconds_per_sample']:.2f} s per sample")
    return result


def cmd_import_nir(args) -> dict:
    from snn_toolchain.export.nir_import import import_nir

    out = args.out or args.graph.with_suffix(".net")
    if out.is_dir():
        raise ToolchainError(f"--out {out}: is a folder; give the .net file to write")
    report = import_nir(args.graph, out, args.time_steps, args.dt, force=args.force)
    network = report.network
    sizes = "-".join(str(n) for n in [network.n_inputs] + [layer.weight.shape[0] for layer in network.layers])
    print(f"[import-nir] {args.graph}: {sizes}, readout '{network.readout}', dt {report.dt:g} s")
    for change in report.changes:
        print(f"[import-nir] changed: {change}")
    print(f"[import-nir] wrote {out} ({network.time_steps} input steps per sample); run, parity, report and deploy "
          "take it like any .net file")
    return {"net_file": str(out), "changes": report.changes, "dt": report.dt}


def run_parity(net_path: Path, splits, samples: int, checkpoint=None, synapse: str = "ring", time_steps=None,
               nir_traces=None, report_path=None) -> dict:
    from snn_toolchain.atomic import write_json
    from snn_toolchain.lava_models.parity import parity_check

    if checkpoint is not None:
        from snn_toolchain.train.model.checkpoint import load_model

        load_model(checkpoint)   # a checkpoint asked for must load: one line saying why, not "float n/a"
    report_path = Path(report_path) if report_path is not None else Path(net_path).with_suffix(".parity.json")
    # where the outputs go is checked before the run, not after it
    for option, target in (("--report", report_path), ("--nir-traces", nir_traces)):
        if target is not None and Path(target).is_dir():
            raise ToolchainError(f"{option} {target}: is a folder; give the file to write")
        if target is not None:
            ensure_folder(Path(target).parent, option)
    report = parity_check(net_path, splits, samples, checkpoint=checkpoint, synapse=synapse, time_steps=time_steps,
                          nir_traces=nir_traces)
    for note in report.notes:
        print(f"[parity] note: {note}")
    print(f"[parity] {report.verdict()}", flush=True)      # the verdict first: a report that cannot be written loses nothing
    try:
        path = write_json(report_path, report.to_dict())
        print(f"[parity] details in {path}")
    except (ToolchainError, OSError) as err:
        print(f"[parity] the details could not be written ({err}); give --report another file", file=sys.stderr)
    return report.to_dict()


def cmd_parity(args) -> dict:
    result = run_parity(args.net, _net_splits(args), args.samples, args.checkpoint, args.synapse, args.time_steps,
                        args.nir_traces, args.report)
    if not result.get("ok", False):
        raise SystemExit(1)
    return result


def cmd_report(args) -> dict:
    from snn_toolchain.export.report import build_report

    result = build_report(args.net, _net_splits(args), n_samples=args.samples, out_dir=args.out,
                          time_steps=args.time_steps, energy_file=args.energy, force=args.force)
    print_report_summary(result)
    return result


def print_report_summary(result: dict) -> None:
    comparison = result["non_spiking_comparison"]
    energy = result["energy"]["per_sample"]
    total_uj = energy["total_pj"] / 1e6 if "total_pj" in energy else float("nan")
    print(f"[report] {result['samples']} samples: {result['hidden_spikes_per_neuron_per_sample']:.2f} spikes per hidden "
          f"neuron per sample, {result['synaptic_ops_per_sample']:,.0f} synaptic ops per sample")
    print(f"[report] energy estimate {total_uj:.2f} uJ per sample ({result['energy']['label']}); dense network "
          f"{comparison['dense']['float32_pj'] / 1e6:.1f} uJ float32 / {comparison['dense']['int8_pj'] / 1e6:.2f} uJ int8, "
          f"GRU {comparison['gru']['float32_pj'] / 1e6:.0f} uJ float32 (45 nm)")
    loihi2 = result["energy"].get("loihi2")
    if loihi2:
        print(f"[report] Loihi 2 estimate (modelled from measurements): dynamic {loihi2['dynamic_pj'][0] / 1e6:.2f}-"
              f"{loihi2['dynamic_pj'][1] / 1e6:.2f} uJ per sample, static {loihi2['static_pj'][0] / 1e6:.0f}-"
              f"{loihi2['static_pj'][1] / 1e6:.0f} uJ at {loihi2['static_assumes_step_us']:g} us per step")
    nb = result["neurobench"]
    print(f"[report] NeuroBench: activation sparsity {nb['activation_sparsity']:.3f}, "
          f"{nb['synaptic_operations']['Effective_ACs']:,.0f} ACs + {nb['synaptic_operations']['Effective_MACs']:,.0f} "
          f"MACs per sample, connection sparsity {nb['connection_sparsity']:.3f}, {nb['parameter_count']:,} parameters")
    print(f"[report] wrote {Path(result['files'][-2]).parent} (report.md, report.json, plots)")


# Exit codes of `deploy` (and `run --backend loihi2`), by outcome (lava_models/loihi2.py, DeployResult).
DEPLOY_EXIT_CODES = {"ran": 0, "does-not-fit": 1, "bad-input": 2, "no-lava-loihi": 3, "hardware-failed": 4,
                     "parity-mismatch": 5}


def run_deploy(net, target: str, samples, dataset, out=None, time_steps=None) -> dict:
    """Deploy with the plan and progress printed; a failed outcome ends the command with its exit code."""
    from snn_toolchain.lava_models.loihi2 import deploy

    result = deploy(net, target, samples=samples, dataset=dataset, out=out, say=lambda line: print(line, flush=True),
                    time_steps=time_steps)
    if not result.ok:
        raise SystemExit(DEPLOY_EXIT_CODES[result.outcome])
    return result.run or {}


def cmd_deploy(args) -> dict:
    if args.out is not None:
        ensure_folder(args.out, "--out")
    return run_deploy(args.net, args.target, args.samples, _net_splits(args), args.out, args.time_steps)


def cmd_pipeline(args) -> dict:
    from snn_toolchain.atomic import write_json
    from snn_toolchain.train.data.baseline import logistic_regression_baseline

    config = config_from_args(args)
    splits = _load_splits(args, config)
    baseline = logistic_regression_baseline(splits.train, splits.valid, splits.test, splits.n_classes, seed=config.seed)
    print(f"[baseline] logistic regression on per-channel spike counts: valid {100 * baseline.valid_accuracy:.1f}%, "
          f"test {100 * baseline.test_accuracy:.1f}%")
    result = cmd_train(args, splits)
    from snn_toolchain.export.exporter import export_run

    exported = export_run(result.run_dir, splits)
    net_path = Path(exported["net_file"])
    summary = {"stages_run": ["data", "baseline", "train", "export"], "data": splits.summary(),
               "count_baseline": baseline.__dict__, "best_valid_acc": result.best_valid_acc,
               "test_acc": result.test_acc, "fixed_point_test_acc": exported["test"]["fixed_accuracy"],
               "net_file": str(net_path), "run_dir": str(result.run_dir)}
    parity = run_parity(net_path, splits, args.parity_samples)
    summary["parity"] = {"ok": parity.get("ok"), "verdict": parity.get("verdict")}
    summary["stages_run"].append("parity")
    from snn_toolchain.export.report import build_report

    print_report_summary(build_report(net_path, splits, out_dir=result.run_dir / "report"))
    summary["report"] = str(result.run_dir / "report")
    summary["stages_run"].append("report")
    summary["test_selected_acc"] = result.test_selected_acc
    write_json(result.run_dir / "summary.json", summary)
    print(f"[pipeline] ran: {', '.join(summary['stages_run'])}.")
    from snn_toolchain.train.loop.trainer import PAPER_PROTOCOL_LABEL

    print(f"[pipeline] test accuracy: {100 * result.test_acc:.2f}% validation-selected (epoch {result.best_epoch}), "
          f"{100 * result.test_selected_acc:.2f}% {PAPER_PROTOCOL_LABEL} (epoch {result.test_selected_epoch}); "
          f"deployed fixed point {100 * exported['test']['fixed_accuracy']:.2f}%"
          + (f"; {summary['parity']['verdict'].split(':')[0]}" if "parity" in summary else ""))
    print(f"[pipeline] outputs in {result.run_dir} (summary.json, metrics.csv, best.pt, model.net, report/, *.png)")
    return summary


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS + ("-h", "--help"):
        argv.insert(0, "pipeline")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    handlers = {"pipeline": cmd_pipeline, "train": cmd_train, "sweep": cmd_sweep, "frontier": cmd_frontier,
                "export": cmd_export,
                "import-nir": cmd_import_nir,
                "run": cmd_run, "parity": cmd_parity, "report": cmd_report, "deploy": cmd_deploy, "data": cmd_data}
    in_main_thread = threading.current_thread() is threading.main_thread()   # signals need it
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupted) if in_main_thread else None
    try:
        handlers[args.command](args)
    except ToolchainError as err:
        print(f"train-export: error: {one_line(err)}", file=sys.stderr)   # one line, always
        return 2
    except OSError as err:   # the file system refused: a user's problem to fix, told in one line
        print(f"train-export: error: {describe_os_error(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        signum = err.signum if isinstance(err, Interrupted) else signal.SIGINT
        print("train-export: interrupted", file=sys.stderr)
        return 128 + int(signum)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous_sigterm)
    return 0


def _raise_interrupted(signum, frame):
    # SIGTERM takes the same clean-up path as Ctrl-C: every `finally` runs, Lava workers are stopped
    raise Interrupted(signum)


if __name__ == "__main__":
    sys.exit(main())
