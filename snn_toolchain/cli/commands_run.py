"""The commands that run a .net file on test samples: ``run``, ``parity``, ``report`` and ``deploy``.
Each imports what it needs inside its function (start-up time: snn_toolchain/cli/__init__.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from snn_toolchain import constants as C
from snn_toolchain.atomic import ensure_folder
from snn_toolchain.errors import ToolchainError


def _net_splits(args):
    """The dataset the .net file was trained on (see :func:`_network_and_splits`)."""
    return _network_and_splits(args)[1]


def _network_and_splits(args):
    """The .net file's network, read once, and the dataset it was trained on, padded to the file's
    time steps, graded inputs encoded with the file's own encoding."""
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
    return network, splits


def cmd_run(args) -> dict:
    network, splits = _network_and_splits(args)
    if args.backend == "loihi2":
        return run_deploy(args.net, "loihi2", args.samples or 16, splits, time_steps=args.time_steps)
    if args.backend == "emulator":
        from torch.utils.data import Subset

        from snn_toolchain.export.emulator import Emulator

        deployed = splits.deployed().test
        test = deployed if args.samples is None else Subset(deployed, range(min(args.samples, len(deployed))))
        result = Emulator(network).evaluate(test)
        print(f"[run] emulator: accuracy {100 * result['accuracy']:.2f}% on {result['samples']} test samples")
        return result
    from snn_toolchain.lava_models.lava_backend import run_lava

    result = run_lava(args.net, splits, args.samples, synapse=args.synapse, time_steps=args.time_steps,
                      network=network)
    print(f"[run] Lava fixed_pt ({args.synapse} delay synapses): accuracy {100 * result['accuracy']:.2f}% "
          f"on {len(result['predictions'])} test samples, {result['seconds_per_sample']:.2f} s per sample")
    return result


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
