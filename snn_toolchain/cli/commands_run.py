"""The commands that run a .net file on test samples: ``run``, ``parity``, ``report`` and ``deploy``.
Each imports what it needs inside its function (start-up time: snn_toolchain/cli/__init__.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from snn_toolchain import constants as C
from snn_toolchain.atomic import ensure_folder
from snn_toolchain.errors import ToolchainError


def _network_and_splits(args):
    """The .net file's network, read once, and the samples to run it on: the file of
    ``--samples-file`` (:func:`_network_and_samples_file`), else the dataset it was trained on,
    padded to the file's time steps, graded inputs encoded with the file's own encoding."""
    if args.samples_file is not None:
        return _network_and_samples_file(args)
    from snn_toolchain.export.netfile import read_net
    from snn_toolchain.train.data.loading import build_datasets

    from snn_toolchain.quantized_network import NetworkError, check_fits_dataset

    network = read_net(args.net, args.time_steps)
    if network.input_stage is not None:    # its data enter through the stage's bias, not as a dataset's spikes
        raise ToolchainError(f"{args.net} takes data values through NetX's input neuron stage, not a dataset's "
                             "spikes: give --samples-file FILE holding 'values' (docs/parity.md, 'Your own samples')")
    _print_notes("net", network.notes)
    # these commands run the network only: SSC's train file and GSC's train features stay unread
    splits = build_datasets(args.dataset or "shd", args.data_dir, pad_steps=max(network.time_steps - C.TIME_STEPS, 0),
                            cache_dir=args.cache_dir, input_encoding=network.input_encoding, without_train=True)
    # every backend, the emulator too, refuses a network that does not fit the data with one line
    try:
        check_fits_dataset(network, splits.n_inputs, splits.n_classes, splits.time_steps, source=args.net)
    except NetworkError as err:
        if network.n_inputs == splits.n_inputs and network.n_classes == splits.n_classes:
            raise
        raise NetworkError(f"{err}; or run your own samples with --samples-file FILE "
                           "(docs/parity.md, 'Your own samples')") from None
    return network, splits


def _print_notes(who: str, notes) -> None:
    for note in notes:       # e.g. a file without a content checksum: read, but said
        print(f"[{who}] note: {note}")


def _network_and_samples_file(args):
    """The .net file's network and the samples of ``--samples-file`` as the test split of a
    ``DatasetSplits`` (no train or validation samples; classes: the network's), checked against the
    network (snn_toolchain/samples_file.py). A stock lava-dl file, which stores no time steps, runs
    for ``--time-steps``, or else the samples' steps plus its largest delay (the export's padding),
    and takes 0/1 spikes only unless it declares a graded input (stock NetX's first synapse is binary)."""
    mixed = [option for option, value in (("--dataset", args.dataset), ("--data-dir", args.data_dir),
                                          ("--cache-dir", args.cache_dir)) if value is not None]
    if mixed:     # before anything is read: the mistake is the command line's
        raise ToolchainError(f"--samples-file {args.samples_file} and {'/'.join(mixed)}: the samples come from one "
                             "place; leave out --dataset, --data-dir and --cache-dir, or --samples-file")
    from snn_toolchain.export.netfile import is_our_net, read_net
    from snn_toolchain.quantized_network import check_fits_dataset
    from snn_toolchain.samples_file import SamplesFile, read_samples_file, read_values_file, stock_file_time_steps
    from snn_toolchain.train.data.splits import DatasetSplits

    padding_note = None
    # a file of ours stores its time steps (its reader refuses one that does not); a stock lava-dl
    # file stores none, and is also what a file the reader refuses falls to: read_net then says why
    ours = is_our_net(args.net)
    probe = None if ours else read_net(args.net, args.time_steps or 1)
    if probe is not None and probe.input_stage is not None:
        # NetX's input neuron stage (lava-dl's bootstrap MNIST): data values enter through its
        # neurons' bias, held for the sample; its spikes are the rest of the network's input
        if args.time_steps is None:
            raise ToolchainError(f"{args.net} takes data values through NetX's input neuron stage, held for as many "
                                 "steps as it runs: give --time-steps N (lava-dl's bootstrap MNIST: 16)")
        network = probe
        from snn_toolchain.input_stage import InputStageError
        from snn_toolchain.samples_file import SamplesFileError

        values, labels, notes = read_values_file(args.samples_file, network.n_inputs)
        if args.samples is not None and args.samples < len(values):   # the stage's spikes of the samples used only
            notes.append(f"{args.samples_file}: the first {args.samples} of its {len(values)} samples (--samples)")
            values, labels = values[:args.samples], None if labels is None else labels[:args.samples]
        try:
            spikes = network.input_stage.spikes(values, network.time_steps)
        except InputStageError as err:
            raise SamplesFileError(f"{args.samples_file}: 'values': {err}") from None
        samples = SamplesFile(Path(args.samples_file), spikes, labels, "values", None, notes)
    elif args.time_steps is not None or ours:
        network = probe if probe is not None else read_net(args.net, args.time_steps)
        samples = read_samples_file(args.samples_file, network.n_inputs)
    else:
        # a stock lava-dl file: read once for its input count and delays, then for the samples' steps
        samples = read_samples_file(args.samples_file, probe.n_inputs)
        network = read_net(args.net, stock_file_time_steps(samples, probe, args.net))
        padding_note = (f"{args.net} stores no time_steps: {network.time_steps} input steps per sample, the samples' "
                        f"{samples.steps} + {network.time_steps - samples.steps} of delay padding (its largest "
                        "delay); --time-steps N sets them")
    _print_notes("net", network.notes)
    if padding_note:
        print(f"[samples] {padding_note}")
    # the network's own legality check, named by the .net file (the classes and inputs are its own)
    check_fits_dataset(network, network.n_inputs, network.n_classes, network.time_steps, source=args.net)
    samples = samples.fit(network)
    if not ours:
        samples.check_for_stock_file(network, args.net)
    _print_notes("samples", samples.notes)
    empty = samples.first(0)
    # input_encoding None: the file holds the integers the network receives already (deployed() keeps them)
    splits = DatasetSplits(name=Path(args.samples_file).name, train=empty, valid=empty, test=samples,
                           n_inputs=network.n_inputs, n_classes=network.n_classes, time_steps=network.time_steps,
                           class_names=[], source=str(args.samples_file), notes=list(samples.notes))
    print(f"[samples] {args.samples_file} holds {len(samples)} samples of {samples.steps} steps x {network.n_inputs} "
          f"inputs, {'labelled' if samples.labelled else 'no labels'}; {network.n_classes} classes (the network's "
          "readout layer)")
    return network, splits


def _time_steps_for_rereading(args, network):
    """The --time-steps to pass on to a function that reads the .net file again: a stock file read
    for a samples file's steps needs them given (:func:`_network_and_samples_file`)."""
    return network.time_steps if args.samples_file is not None else args.time_steps


def _print_predictions(who: str, predictions, spikes_per_neuron) -> None:
    """The first predictions, how many samples each class got, and the spike rates per layer."""
    import numpy as np

    shown = 20
    counts = np.bincount(np.asarray(predictions, dtype=np.int64))
    print(f"[{who}] predictions{f' (first {shown})' if len(predictions) > shown else ''}: "
          f"{list(map(int, predictions[:shown]))}; per class: "
          f"{ {c: int(n) for c, n in enumerate(counts) if n} }")
    print(f"[{who}] spikes per neuron per sample, by spiking layer: {[round(r, 3) for r in spikes_per_neuron]}")


def _run_emulator(network, test) -> dict:
    """The emulator on the samples ``test``: predictions and spike counts, accuracy where labelled
    (a samples file may have no labels)."""
    from snn_toolchain.evaluation import evaluate_backend
    from snn_toolchain.export.emulator import Emulator
    from snn_toolchain.samples_file import has_labels
    from snn_toolchain.train.data.loading import make_loader

    predictions = []
    evaluation = evaluate_backend(Emulator(network).run, make_loader(test, 256), keep_run=False,
                                  on_batch=lambda inputs, labels, run: predictions.extend(run.predictions().tolist()))
    return {"accuracy": evaluation.accuracy if has_labels(test) else None, "samples": evaluation.samples,
            "predictions": predictions, "spike_counts": evaluation.spike_counts,
            "spikes_per_neuron_per_sample": evaluation.spikes_per_neuron_per_sample}


def _outcome_text(accuracy, samples: int, samples_file) -> str:
    """'accuracy 91.00% on 100 test samples', or for a samples file 'on 6 samples of FILE', or
    without labels '6 samples of FILE, no labels, no accuracy'."""
    what = f"{samples} test samples" if samples_file is None else f"{samples} samples of {samples_file}"
    return f"{what}, no labels, no accuracy" if accuracy is None else f"accuracy {100 * accuracy:.2f}% on {what}"


def cmd_run(args) -> dict:
    network, splits = _network_and_splits(args)
    if args.backend == "loihi2":
        return run_deploy(args.net, "loihi2", args.samples or 16, splits,
                          time_steps=_time_steps_for_rereading(args, network))
    if args.backend == "emulator":
        from torch.utils.data import Subset

        from snn_toolchain.export.emulator import Emulator

        deployed = splits.deployed().test
        test = deployed if args.samples is None else Subset(deployed, range(min(args.samples, len(deployed))))
        result = _run_emulator(network, test)
        print(f"[run] emulator: {_outcome_text(result['accuracy'], result['samples'], args.samples_file)}")
        _print_predictions("run", result["predictions"], result["spikes_per_neuron_per_sample"])
        return result
    from snn_toolchain.lava_models.lava_backend import run_lava
    from snn_toolchain.samples_file import has_labels

    result = run_lava(args.net, splits, args.samples, synapse=args.synapse,
                      time_steps=_time_steps_for_rereading(args, network), network=network)
    if not has_labels(splits):
        result.update(accuracy=None, labels=None)
    print(f"[run] Lava fixed_pt ({args.synapse} delay synapses): "
          f"{_outcome_text(result['accuracy'], len(result['predictions']), args.samples_file)}, "
          f"{result['seconds_per_sample']:.2f} s per sample")
    _print_predictions("run", result["predictions"], result["spikes_per_neuron_per_sample"])
    return result


def run_parity(net_path: Path, splits, samples: int, checkpoint=None, synapse: str = "ring", time_steps=None,
               nir_traces=None, report_path=None, *, shards: int | None = None, cluster=None,
               load_dataset=None) -> dict:
    """The parity check of ``net_path`` on ``samples`` test samples of ``splits``, printed and
    written; with ``shards`` or ``cluster`` (a ``snn_toolchain.cluster.ClusterSpec``) as shards
    whose reports merge into the one-process report (lava_models/parity_shards.py); ``load_dataset``:
    how each cluster task reads the data itself (None: the samples travel with the task)."""
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
    if shards is None and cluster is None:
        report = parity_check(net_path, splits, samples, checkpoint=checkpoint, synapse=synapse,
                              time_steps=time_steps, nir_traces=nir_traces)
    else:
        from snn_toolchain.lava_models.parity_shards import sharded_parity_check

        if nir_traces is not None:
            raise ToolchainError("--nir-traces records one run's spikes: leave it out with --shards or --cluster, "
                                 "or check without them")
        count = min(samples or len(splits.test), len(splits.test))
        shards = shards or max(1, -(-count // C.PARITY_SAMPLES_PER_SHARD))
        report = sharded_parity_check(net_path, splits, count, shards=shards, cluster=cluster,
                                      checkpoint=checkpoint, synapse=synapse, time_steps=time_steps,
                                      load_dataset=load_dataset)
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
    import functools

    from snn_toolchain.cluster import cluster_from_args

    cluster = cluster_from_args(args)       # the option mistakes before any file is read
    network, splits = _network_and_splits(args)
    load_dataset = None
    if cluster is not None and args.samples_file is None:
        from snn_toolchain.cluster.engine import absolute
        from snn_toolchain.train.data.loading import build_datasets

        # each task reads the data from storage every machine sees, as this process did; the folders
        # absolute, since a worker's working folder is not ours
        load_dataset = functools.partial(build_datasets, args.dataset or "shd", absolute(args.data_dir),
                                         pad_steps=max(network.time_steps - C.TIME_STEPS, 0),
                                         cache_dir=absolute(args.cache_dir), input_encoding=network.input_encoding,
                                         without_train=True)
    result = run_parity(args.net, splits, args.samples, args.checkpoint, args.synapse,
                        _time_steps_for_rereading(args, network),
                        args.nir_traces, args.report, shards=args.shards, cluster=cluster,
                        load_dataset=load_dataset)
    if not result.get("ok", False):
        raise SystemExit(1)
    return result


def cmd_report(args) -> dict:
    from snn_toolchain.export.report import build_report

    network, splits = _network_and_splits(args)
    result = build_report(args.net, splits, n_samples=args.samples, out_dir=args.out,
                          time_steps=_time_steps_for_rereading(args, network), energy_file=args.energy, force=args.force)
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
    network, splits = _network_and_splits(args)
    return run_deploy(args.net, args.target, args.samples, splits, args.out, _time_steps_for_rereading(args, network))
