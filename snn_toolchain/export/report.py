"""Activity and energy report of an exported network, from the batched fixed-point emulator:
the orchestration. The counting is in ``activity.py``, the energy model in ``energy.py``, the
figures in ``report_figures.py``, the Markdown in ``report_markdown.py``.

What is counted, per layer and per sample (averaged over the samples given):

- **spikes per neuron per sample**, as the paper's appendix Table 4 reports them;
- **synaptic operations**: each spike (for the input: each graded spike message, i.e. each
  non-zero (step, channel) bin) times its fan-out, the number of non-zero weights it reaches in
  the next layer;
- **neuron updates**: every neuron is updated every step, ``neurons x run_steps``; an update is
  *active* in a step where the neuron receives non-zero synaptic input, has a bias, or fires,
  *inactive* otherwise (our reading of Davies et al.'s active / inactive update energies);
- **silent neurons**: the share of a layer's neurons that do not fire in a sample (mean over
  samples), and the share that never fires in any sample;
- **spike messages**: each spike travels once to every core that holds the next layer (cores from
  the Loihi 2 partition plan).

The energy model multiplies these counts by per-operation energies (:class:`EnergyTable`). The
default figures are Loihi 1's, from pre-silicon simulations (Davies et al. 2018), and every output
labels them so: no per-operation table of Loihi 2 is public. Pass your own figures (for instance
measured on a Loihi 2 chip) as a JSON file (docs/energy.md). The comparison with non-spiking
networks uses Horowitz's 45 nm energies (2014).

Runs the whole test split in seconds (the emulator is batched); writes ``report.md``,
``report.json`` and PNG figures atomically.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

from snn_toolchain import constants as C
from snn_toolchain.atomic import atomic_folder, check_replaceable, write_json, write_text
from snn_toolchain.errors import ToolchainError
from snn_toolchain.export.activity import measure_activity
from snn_toolchain.export.energy import EnergyTable, dense_equivalents, load_energy_table, loihi2_estimate, snn_energy
from snn_toolchain.export.loihi2_plan import LOIHI2_LIMITS, plan_partition
from snn_toolchain.export.netfile import read_net
from snn_toolchain.export.neurobench_metrics import deployed_metrics
from snn_toolchain.export.report_figures import (
    PAPER_TABLE4_SPIKES,
    plot_delays,
    plot_energy,
    plot_neuron_parameters,
    plot_raster,
    plot_rates,
)
from snn_toolchain.export.report_markdown import render_markdown
from snn_toolchain.samples import is_splits
from snn_toolchain.samples_file import SamplesFile, has_labels
from snn_toolchain.train.data.loading import build_datasets, make_loader

# ============================================================================================
# The report
# ============================================================================================


def resolve_dataset(dataset):
    """(torch Dataset, class names, description) of ``dataset``: a name ('shd': the embedded test
    split), a DatasetSplits (its test split) or a torch Dataset of (x, label)."""
    if isinstance(dataset, str):
        # No padding is needed: the emulator appends empty steps up to the network's run length.
        splits = build_datasets(dataset, None, pad_steps=0)
        return splits.test, splits.class_names, f"{splits.name} test split ({splits.source})"
    if isinstance(getattr(dataset, "test", None), SamplesFile):     # --samples-file: the file is the test split
        return dataset.test, dataset.class_names, f"samples file {dataset.source}"
    if is_splits(dataset):
        # what the deployed network receives: graded features rounded to integer payloads
        return dataset.deployed().test, dataset.class_names, f"{dataset.name} test split ({dataset.source})"
    return dataset, None, type(dataset).__name__


def build_report(net_path, dataset="shd", n_samples: Optional[int] = None, out_dir=None, energy_file=None, *,
                 batch_size: int = 256, device: str = "cpu", raster_sample: int = 0, limits=None,
                 count_zero_weights: bool = False, plots: bool = True, time_steps: Optional[int] = None,
                 force: bool = False) -> dict:
    """Activity and energy report of a ``.net`` file on (the first ``n_samples`` of) ``dataset``.

    Args:
        net_path: the ``.net`` file.
        dataset: 'shd' (the embedded test split), a DatasetSplits (test split) or a torch Dataset;
            samples of a file without labels (``snn_toolchain.samples_file``) give no accuracy
            (``fixed_point_accuracy`` None).
        n_samples: how many samples (the first ones); None: all.
        out_dir: where report.md, report.json and the PNGs go (default: ``<net folder>/report``).
        energy_file: JSON of per-operation energies (pJ) replacing the Loihi 1 defaults (docs/energy.md).
        limits: Loihi 2 limits for the core plan that sets the spike-message count
            (default ``snn_toolchain.export.loihi2_plan.LOIHI2_LIMITS``).
        count_zero_weights: count synapses of weight 0 in the fan-out (default: no).
        plots: write the PNG figures.
        time_steps: input steps per sample for a stock lava-dl file, which stores none (``read_net``).
        force: replace an earlier report in ``out_dir`` (a folder holding files the toolchain did
            not write is refused whatever ``force`` says).

    The report is written whole into a temporary folder that then replaces ``out_dir``: a killed
    report leaves the earlier one as it was, never one report's figures beside another's text.

    Returns the report as a dict (the content of report.json), with ``files`` listing what was written.
    """
    import time

    started = time.perf_counter()
    net_path = Path(net_path)
    network = read_net(net_path, time_steps)
    out_dir = Path(out_dir) if out_dir is not None else net_path.parent / "report"
    check_replaceable(out_dir, "report", "--out", force, folder=True)   # before the work, not after it
    table = load_energy_table(energy_file) if energy_file is not None else EnergyTable()
    data, class_names, description = resolve_dataset(dataset)
    data = _first_samples(data, n_samples)
    plan = plan_partition(network, limits or LOIHI2_LIMITS)
    # the cores each connection layer's spikes fan out to (an input stage's own cores receive none)
    destination_cores = [max(p.cores, 1) for p in plan.connection_layers]
    activity, run = measure_activity(network, make_loader(data, batch_size), device=device,
                                     destination_cores=destination_cores, count_zero_weights=count_zero_weights,
                                     keep_sample=raster_sample)
    if not has_labels(data):       # samples of a file without labels: rates and energy, no accuracy
        run["accuracy"] = None
        if run["raster"] is not None:
            run["raster"]["label"] = None
    energy = snn_energy(activity, table)
    synops = sum(a.per_sample(a.synaptic_ops) for a in activity)
    comparison = dense_equivalents(network, table, synops)
    report = {
        "net_file": str(net_path), "variant": network.variant, "dataset": description,
        "samples": run["samples"], "fixed_point_accuracy": run["accuracy"],
        "time_steps": network.time_steps, "run_steps": network.run_steps,
        "layers": [a.to_dict() for a in activity],
        "hidden_spikes_per_neuron_per_sample": _hidden_spikes_per_neuron(activity, run["samples"]),
        "paper_table4_spikes_per_neuron_per_sample": PAPER_TABLE4_SPIKES,
        "synaptic_ops_per_sample": synops,
        "energy": {"model": table.to_dict(), **energy,
                   # a user's table replaces both built-in models; else the Loihi 2 range stands beside Loihi 1's
                   "loihi2": None if energy_file is not None else loihi2_estimate(synops, network.run_steps,
                                                                                  plan.chips_needed)},
        "neurobench": deployed_metrics(network, activity, network.time_steps),
        "non_spiking_comparison": comparison,
        "readout_integrator": _readout_integrator(network, run["readout_peak"]),
        "loihi2_plan": {"fits": plan.fits, "total_cores": plan.total_cores,
                        "cores_per_layer": [p.cores for p in plan.layers], "chips_needed": plan.chips_needed,
                        "compiler_profile": plan.limits.compiler, "profile_fit": plan.profile_fit},
        "counting": {"fan_out": "all synapses" if count_zero_weights else "non-zero weights",
                     "input_events": "one graded spike message per non-zero (step, channel) bin",
                     "active_update": "a step with non-zero synaptic input, a bias, or a spike"},
        "input_messages": _input_messages(activity[0], network),
    }
    with atomic_folder(out_dir, "report", "--out", force) as folder:
        names = _plot_figures(folder, network, activity, run["raster"], class_names, energy, comparison,
                              table.label) if plots else []
        report["seconds"] = time.perf_counter() - started
        report["files"] = [str(out_dir / name) for name in names + ["report.md", "report.json"]]
        write_text(folder / "report.md", render_markdown(report, names))
        write_json(folder / "report.json", report)
    return report


def _first_samples(data, n_samples: Optional[int]):
    """The first ``n_samples`` of ``data`` (all of them where None)."""
    from torch.utils.data import Subset

    if n_samples is None:
        return data
    if int(n_samples) < 1:
        raise ToolchainError(f"n_samples must be at least 1, got {n_samples}")
    return Subset(data, range(min(int(n_samples), len(data))))


def _hidden_spikes_per_neuron(activity: list, samples: int) -> float:
    """Spikes per hidden neuron per sample, over all hidden layers."""
    hidden = [a for a in activity if a.role == "hidden"]
    hidden_spikes = sum(a.spikes for a in hidden)
    hidden_neurons = sum(a.neurons for a in hidden)
    return hidden_spikes / max(samples * hidden_neurons, 1)


def _readout_integrator(network, readout_peak: int) -> dict | None:
    """The summing readout integrated on the chip: its peak voltage (``readout_peak``, in the integer units
    of the 24-bit state) against its limit; None for a spiking output layer, which has no such integrator."""
    if network.readout == "spikes":
        return None
    return {"peak_membrane": readout_peak, "limit": C.STATE_MAX,
            "headroom_bits": math.log2(C.STATE_MAX / readout_peak) if readout_peak else None,
            "meaning": "largest |running sum of the readout input + bias| << 6 over the samples: what a CUBA "
                       "readout integrating on the chip would hold in its 24-bit voltage"}


def _plot_figures(folder: Path, network, activity: list, raster, class_names, energy: dict, comparison: dict,
                  energy_label: str) -> list:
    """Write the report's PNG figures into ``folder``; their file names."""
    names = []
    if raster is not None:
        names.append(plot_raster(raster, class_names, folder / "raster.png").name)
    names.append(plot_rates(activity, network.variant, folder / "rates.png").name)
    names.append(plot_delays(network, folder / "delays.png").name)
    if any(layer.neuron is not None for layer in network.layers):
        names.append(plot_neuron_parameters(network, folder / "neuron_parameters.png").name)
    names.append(plot_energy(energy, comparison, energy_label, folder / "energy.png").name)
    return names


def _input_messages(inputs, network) -> dict:
    """How many messages carry the inputs, how wide they are, and how the energy model prices them."""
    kind = ("graded spikes with features encoded as payloads" if network.input_encoding is not None
            else "graded spikes carrying spike counts per bin" if inputs.message_bits else "binary spikes")
    return {"messages_per_sample": inputs.per_sample(inputs.spike_events), "message_bits": inputs.message_bits,
            "payload_bits_per_sample": inputs.per_sample(inputs.spike_events) * inputs.message_bits,
            "kind": kind,
            "energy_model": "each input message is priced as one spike message per destination core, and each of "
                            "its synapses as one synaptic op, whatever its payload width: no public figure prices "
                            "the payload multiply of a graded spike separately, so graded inputs are likely "
                            "under-priced by an unknown factor"}
