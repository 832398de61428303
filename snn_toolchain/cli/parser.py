"""The ``train-export`` argument parser: every subcommand, its options and their value checks."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

from snn_toolchain import constants as C

# what `train-export --help` shows above the list of commands
DESCRIPTION = """``train-export``: the command line, a thin layer over functions that also work from Python.

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

run, parity, report and deploy take a dataset's test split, or your own samples with
--samples-file FILE.npz|.h5 (docs/parity.md); sweep, frontier and parity spread their work over a
Ray cluster with --cluster ADDRESS (docs/scale.md).

Every user-facing problem (a missing file, a bad layout, a bad option) ends the command with one
line on stderr and exit status 2, never a traceback.

The commands import what they need inside their functions: `train-export --help` and a bad option
then answer without loading torch or Lava (start-up time).
"""


SUBCOMMANDS = ("pipeline", "train", "sweep", "frontier", "export", "import-nir", "run", "parity", "report", "deploy", "data")


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


def _add_net_arguments(parser: argparse.ArgumentParser, default_samples: int | None = 50) -> None:
    parser.add_argument("--net", type=_path, required=True, help="the .net file (train-export export writes one)")
    parser.add_argument("--samples", type=_positive_int, default=default_samples,
                        help=f"test samples to use, the first ones (default {default_samples or 'all'})")
    from snn_toolchain.train.data.registry import dataset_names  # the registry: every registered dataset

    # --samples-file excludes these three: the commands refuse the mix in one line (default None:
    # given or not is then known; None means shd)
    parser.add_argument("--dataset", choices=dataset_names(), default=None,
                        help="the registered dataset whose test split to use (default: shd)")
    parser.add_argument("--data-dir", type=_path, default=None, help="default: the embedded set (SHD)")
    parser.add_argument("--cache-dir", type=_path, default=None)
    parser.add_argument("--samples-file", type=_path, default=None, metavar="FILE",
                        help="your own samples instead of a dataset: an .npz or .h5 file with 'spikes' (samples, "
                             "steps, inputs) and optional 'labels' (samples,); classes are the network's "
                             "(docs/parity.md, 'Your own samples')")
    parser.add_argument("--time-steps", type=_positive_int, default=None,
                        help="input steps per sample, for a stock lava-dl .net file (which stores none; with "
                             "--samples-file, default: the file's steps plus the largest delay)")


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, whose errors end with the same one line as every other error of the CLI (after
    the usage block, which stays: it shows the options)."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(2, f"train-export: error: {message}\n")


def _add_training_commands(subcommands: argparse._SubParsersAction) -> None:
    """pipeline, train, sweep and frontier: the data and training options, and each one's own."""
    pipeline = subcommands.add_parser("pipeline", help="load data, train, export, run and check parity (the default)")
    _add_data_arguments(pipeline)
    _add_training_arguments(pipeline)
    pipeline.add_argument("--parity-samples", type=int, default=4,
                          help="test samples for the closing Lava parity check (default 4)")
    train = subcommands.add_parser("train", help="train one network")
    _add_data_arguments(train)
    _add_training_arguments(train)
    sweep = subcommands.add_parser("sweep", help="the paper's Table 1: every variant x --seeds seeds, mean and max")
    _add_data_arguments(sweep)
    _add_training_arguments(sweep)
    sweep.add_argument("--seeds", type=int, default=10, help="seeds per variant (default 10)")
    sweep.add_argument("--parallel", type=_positive_int, default=1,
                       help="trainings at once, as separate processes (default 1); on a GPU they share it")
    sweep.add_argument("--variants", default=None,
                       help="comma-separated subset of LIF,AdLIF,AdLIF+,delay-LIF,delay-AdLIF+ (default all)")
    from snn_toolchain.cluster import add_cluster_arguments  # --cluster: one set of options for sweep, frontier, parity

    add_cluster_arguments(sweep)
    frontier = subcommands.add_parser("frontier",
                                      help="accuracy against synaptic operations over activity-penalty strengths")
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
    add_cluster_arguments(frontier)


def _add_export_commands(subcommands: argparse._SubParsersAction) -> None:
    """export (a run to a .net file or a NIR graph) and import-nir (a NIR graph to a .net file)."""
    export = subcommands.add_parser("export",
                                    help="quantize a trained run to Loihi 2 fixed point and write its .net file")
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
    export.add_argument("--nir-target", choices=("spec", "snntorch", "norse", "sinabs"), default="spec",
                        help="NIR: the reader the graph is written for (default spec: the NIR spec, delays and AdLIF "
                             "included); snntorch, norse, sinabs: LIF networks without delays as that framework's "
                             "NIR reader runs them (docs/nir.md)")
    export.add_argument("--nir-dt", type=_positive_float, default=None,
                        help=f"NIR: the time step the graph's time constants are written for, in seconds (default: "
                             f"the reader's; spec {C.TIME_BIN_S}, one step; snntorch {C.SNNTORCH_DT:g}, the only one it "
                             f"reads; norse {C.NORSE_DT:g}, from_nir's default; sinabs takes none, its time constants "
                             "are steps)")
    export.add_argument("--allow-large-expansion", action="store_true",
                        help="NIR: write per-synapse delay expansions of more than 100,000 units")
    import_nir = subcommands.add_parser("import-nir",
                                        help="a NIR graph (snnTorch, Norse, ...) as a .net file for Lava and Loihi 2")
    import_nir.add_argument("graph", type=_path, help="the .nir file")
    import_nir.add_argument("--out", type=_path, default=None, help="the .net file to write (default: GRAPH.net)")
    import_nir.add_argument("--time-steps", type=_positive_int, required=True,
                            help="input steps per sample the network will run (e.g. 125: 100 + 25 of delay padding)")
    import_nir.add_argument("--force", action="store_true", help="replace an existing .net file at --out")
    import_nir.add_argument("--dt", type=_positive_float, default=None,
                            help="seconds per step to discretise at (default: the graph's metadata 'dt', else its "
                                 f"source's: snntorch {C.SNNTORCH_DT:g}, norse {C.NORSE_DT:g}; sinabs counts in "
                                 "steps)")
    import_nir.add_argument("--nir-source", choices=("spec", "snntorch", "norse", "sinabs"), default=None,
                            help="whose convention the graph follows (default: recognised from our metadata, the "
                                 f"graph's dt, or snnTorch's r = tau/{C.SNNTORCH_DT:g}; a graph that says none is "
                                 "refused): norse "
                                 "(tau written x dt, LIFCell as CubaLIF), sinabs (tau in steps, MultiSpike, subtract "
                                 "reset), snntorch, spec (docs/nir.md, Conventions)")


def _add_run_commands(subcommands: argparse._SubParsersAction) -> None:
    """run, parity, report and deploy: the commands that take a .net file and test samples."""
    run = subcommands.add_parser("run", help="run test samples of a .net file on Lava (CPU simulator) or the emulator")
    _add_net_arguments(run)
    run.add_argument("--backend", choices=("lava-sim", "emulator", "loihi2"), default="lava-sim")
    run.add_argument("--synapse", choices=("ring", "stock"), default="ring",
                     help="Lava delay synapse: our ring-buffer model (fast) or stock DelayDense")
    parity = subcommands.add_parser("parity", help="compare float, emulator and Lava fixed_pt on the same samples")
    _add_net_arguments(parity)
    parity.add_argument("--checkpoint", type=_path, default=None, help="the float model (default: the .net's source)")
    parity.add_argument("--synapse", choices=("ring", "stock"), default="ring")
    parity.add_argument("--nir-traces", type=_path, default=None,
                        help="also write both backends' recorded spikes as NIR data_ir (HDF5) to this file")
    parity.add_argument("--report", type=_path, default=None,
                        help="the JSON report (default: NET.parity.json next to the .net file)")
    parity.add_argument("--shards", type=_positive_int, default=None,
                        help="cut the samples into this many shards, each checked on its own and the reports merged "
                             "(the same verdict as one run; default with --cluster: one shard per "
                             f"{C.PARITY_SAMPLES_PER_SHARD} samples, else one run)")
    from snn_toolchain.cluster import add_cluster_arguments  # the same options as sweep and frontier

    add_cluster_arguments(parity, work="shard")
    report = subcommands.add_parser("report", help="activity and energy report of a .net file (on the emulator)")
    _add_net_arguments(report, default_samples=None)
    report.add_argument("--energy", type=_path, default=None, help="JSON of per-operation energies (pJ) to use")
    report.add_argument("--out", type=_path, default=None, help="output folder (default: next to the .net file)")
    report.add_argument("--force", action="store_true", help="replace an earlier report in --out")
    deploy = subcommands.add_parser("deploy", help="Loihi 2: pre-flight check, partition plan, and the chip run")
    _add_net_arguments(deploy, default_samples=16)
    deploy.add_argument("--target", default="loihi2")
    deploy.add_argument("--out", type=_path, default=None)


def _add_data_command(subcommands: argparse._SubParsersAction) -> None:
    data = subcommands.add_parser("data", help="load a dataset and print its summary and the spike-count baseline")
    _add_data_arguments(data)
    data.add_argument("--no-baseline", action="store_true", help="skip the logistic-regression baseline")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="train-export", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    subcommands = parser.add_subparsers(dest="command")
    # in the order of SUBCOMMANDS: --help lists them as they are added
    _add_training_commands(subcommands)
    _add_export_commands(subcommands)
    _add_run_commands(subcommands)
    _add_data_command(subcommands)
    return parser
