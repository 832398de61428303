"""Activity and energy report of an exported network, from the batched fixed-point emulator:
the orchestration and the Markdown. The counting is in ``activity.py``, the energy model in
``energy.py``, the figures in ``report_figures.py``.

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
    if hasattr(dataset, "test") and hasattr(dataset, "n_classes"):
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
        dataset: 'shd' (the embedded test split), a DatasetSplits (test split) or a torch Dataset.
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

    from torch.utils.data import Subset

    started = time.perf_counter()
    net_path = Path(net_path)
    network = read_net(net_path, time_steps)
    out_dir = Path(out_dir) if out_dir is not None else net_path.parent / "report"
    check_replaceable(out_dir, "report", "--out", force, folder=True)   # before the work, not after it
    table = load_energy_table(energy_file) if energy_file is not None else EnergyTable()
    data, class_names, description = resolve_dataset(dataset)
    if n_samples is not None:
        if int(n_samples) < 1:
            raise ToolchainError(f"n_samples must be at least 1, got {n_samples}")
        data = Subset(data, range(min(int(n_samples), len(data))))
    plan = plan_partition(network, limits or LOIHI2_LIMITS)
    destination_cores = [max(p.cores, 1) for p in plan.layers]
    activity, run = measure_activity(network, make_loader(data, batch_size), device=device,
                                     destination_cores=destination_cores, count_zero_weights=count_zero_weights,
                                     keep_sample=raster_sample)
    energy = snn_energy(activity, table)
    synops = sum(a.per_sample(a.synaptic_ops) for a in activity)
    comparison = dense_equivalents(network, table, synops)
    hidden = [a for a in activity if a.role == "hidden"]
    hidden_spikes = sum(a.spikes for a in hidden)
    hidden_neurons = sum(a.neurons for a in hidden)
    report = {
        "net_file": str(net_path), "variant": network.variant, "dataset": description,
        "samples": run["samples"], "fixed_point_accuracy": run["accuracy"],
        "time_steps": network.time_steps, "run_steps": network.run_steps,
        "layers": [a.to_dict() for a in activity],
        "hidden_spikes_per_neuron_per_sample": hidden_spikes / max(run["samples"] * hidden_neurons, 1),
        "paper_table4_spikes_per_neuron_per_sample": PAPER_TABLE4_SPIKES,
        "synaptic_ops_per_sample": synops,
        "energy": {"model": table.to_dict(), **energy,
                   # a user's table replaces both built-in models; else the Loihi 2 range stands beside Loihi 1's
                   "loihi2": None if energy_file is not None else loihi2_estimate(synops, network.run_steps)},
        "neurobench": deployed_metrics(network, activity, network.time_steps),
        "non_spiking_comparison": comparison,
        # the summing readout integrated on the chip; a spiking output layer has no such integrator
        "readout_integrator": None if network.readout == "spikes" else {
            "peak_membrane": run["readout_peak"], "limit": C.STATE_MAX,
            "headroom_bits": math.log2(C.STATE_MAX / run["readout_peak"]) if run["readout_peak"] else None,
            "meaning": "largest |running sum of the readout input + bias| << 6 over the samples: what a CUBA "
                       "readout integrating on the chip would hold in its 24-bit voltage"},
        "loihi2_plan": {"fits": plan.fits, "total_cores": plan.total_cores,
                        "cores_per_layer": [p.cores for p in plan.layers]},
        "counting": {"fan_out": "all synapses" if count_zero_weights else "non-zero weights",
                     "input_events": "one graded spike message per non-zero (step, channel) bin",
                     "active_update": "a step with non-zero synaptic input, a bias, or a spike"},
        "input_messages": _input_messages(activity[0], network),
    }
    with atomic_folder(out_dir, "report", "--out", force) as folder:
        names = []
        if plots:
            if run["raster"] is not None:
                names.append(plot_raster(run["raster"], class_names, folder / "raster.png").name)
            names.append(plot_rates(activity, network.variant, folder / "rates.png").name)
            names.append(plot_delays(network, folder / "delays.png").name)
            if any(layer.neuron is not None for layer in network.layers):
                names.append(plot_neuron_parameters(network, folder / "neuron_parameters.png").name)
            names.append(plot_energy(energy, comparison, table.label, folder / "energy.png").name)
        report["seconds"] = time.perf_counter() - started
        report["files"] = [str(out_dir / name) for name in names + ["report.md", "report.json"]]
        write_text(folder / "report.md", render_markdown(report, names))
        write_json(folder / "report.json", report)
    return report


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


def _pj(value: float) -> str:
    """An energy in pJ, printed in the unit that keeps it readable."""
    for unit, scale in (("mJ", 1e9), ("uJ", 1e6), ("nJ", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g} pJ"


def _readout_line(readout: dict | None) -> str:
    if readout is None:
        return "Readout: a spiking output layer (class scores are its spike counts)."
    if not readout["peak_membrane"]:
        return "Readout: its input is zero on every sample."
    return (f"Readout integrated on the chip: its 24-bit voltage would peak at {readout['peak_membrane']:,} of "
            f"{readout['limit']:,} ({readout['headroom_bits']:.1f} bits of headroom"
            f"{'; it would SATURATE' if readout['headroom_bits'] < 0 else ''}).")


def render_markdown(report: dict, figures: list) -> str:
    energy, comparison, model = report["energy"], report["non_spiking_comparison"], report["energy"]["model"]
    lines = [f"# Activity and energy report: `{Path(report['net_file']).name}`", "",
             f"- network: {report['variant']}, {report['time_steps']} input steps ({report['run_steps']} steps on Lava)",
             f"- data: {report['dataset']}, {report['samples']} samples; fixed-point accuracy "
             f"{100 * report['fixed_point_accuracy']:.2f}%",
             f"- hidden neurons fire {report['hidden_spikes_per_neuron_per_sample']:.2f} spikes per neuron per sample "
             f"(paper, Table 4, on SHD: delay-AdLIF+ {PAPER_TABLE4_SPIKES['delay-adlif+']}, "
             f"AdLIF+ {PAPER_TABLE4_SPIKES['adlif+']}, LIF {PAPER_TABLE4_SPIKES['lif']})",
             "", "## Activity per sample (mean over the samples)", "",
             "| layer | neurons | spikes / neuron | spike events | synaptic ops | neuron updates | active updates "
             "| silent neurons | never fire |",
             "|---|---|---|---|---|---|---|---|---|"]
    for layer in report["layers"]:
        silent = f"{100 * layer['silent_share_per_sample']:.1f}%" if "silent_share_per_sample" in layer else ""
        never = f"{100 * layer['never_active_share']:.1f}%" if "never_active_share" in layer else ""
        spikes = f"{layer['spikes_per_neuron_per_sample']:.3g}" if layer["role"] != "readout" else "(no spikes)"
        lines.append(f"| {layer['name']} | {layer['neurons']} | {spikes} | {layer['spike_events_per_sample']:.1f} | "
                     f"{layer['synaptic_ops_per_sample']:.1f} | {layer['neuron_updates_per_sample']:.0f} | "
                     f"{layer['active_updates_per_sample']:.0f} | {silent} | {never} |")
    messages = report["input_messages"]
    lines += ["", "Synaptic ops: spike events x fan-out (" + report["counting"]["fan_out"] + ") into the next layer. "
              "Input events: " + report["counting"]["input_events"] + ". Active update: "
              + report["counting"]["active_update"] + ".", "",
              f"Input messages: {messages['messages_per_sample']:,.1f} per sample, {messages['kind']}"
              + (f", {messages['message_bits']}-bit payloads ({messages['payload_bits_per_sample']:,.0f} payload bits "
                 "per sample)" if messages["message_bits"] else "") + f". Energy: {messages['energy_model']}.", "",
              "## Energy estimate per sample", "", f"**Figures: {model['label']}.**", "",
              "| layer | synaptic ops | neuron updates | spike messages | total |", "|---|---|---|---|---|"]
    for layer in energy["layers"]:
        lines.append(f"| {layer['name']} | {_pj(layer['synaptic_pj'])} | {_pj(layer['neuron_update_pj'])} | "
                     f"{_pj(layer['spike_routing_pj'])} | {_pj(layer['total_pj'])} |")
    totals = energy["per_sample"]
    lines.append(f"| **total** | {_pj(totals['synaptic_pj'])} | {_pj(totals['neuron_update_pj'])} | "
                 f"{_pj(totals['spike_routing_pj'])} | **{_pj(totals['total_pj'])}** |")
    lines += ["", "| figure | pJ | source |", "|---|---|---|"]
    lines += [f"| {key} | {value:g} | {model['sources'].get(key, '')} |" for key, value in model["figures_pj"].items()]
    if model["measured"]:
        lines += ["", "Measured on hardware (from the energy file): " +
                  ", ".join(f"{k} = {v}" for k, v in model["measured"].items())]
    loihi2 = energy.get("loihi2")
    if loihi2:
        low, high = loihi2["dynamic_pj"]
        lines += ["", "### Loihi 2 estimate (modelled from measurements)", "",
                  f"- dynamic: {_pj(low)} - {_pj(high)} per sample ({report['synaptic_ops_per_sample']:,.0f} synaptic ops "
                  f"x {loihi2['synop_pj_range'][0]}-{loihi2['synop_pj_range'][1]} pJ);",
                  f"- static: {_pj(loihi2['static_pj'][0])} - {_pj(loihi2['static_pj'][1])} per sample (one chip's "
                  f"{loihi2['static_w_range'][0]}-{loihi2['static_w_range'][1]} W over {report['run_steps']} steps at "
                  f"{loihi2['static_assumes_step_us']:g} us per step, PilotNet's measured step time: this network's "
                  "is not known here).", "", f"{loihi2['label']}. Source: {loihi2['source']}. Derivation: docs/energy.md."]
    elif report["energy"].get("loihi2", "absent") is None:
        lines += ["", "The built-in Loihi 1 and Loihi 2 models are replaced by the energy file's figures."]
    nb = report["neurobench"]
    ops = nb["synaptic_operations"]
    lines += ["", "## NeuroBench metrics", "",
              "| metric | value |", "|---|---|",
              f"| activation sparsity | {nb['activation_sparsity']:.4f} |",
              f"| synaptic operations per sample: effective ACs | {ops['Effective_ACs']:,.0f} |",
              f"| effective MACs | {ops['Effective_MACs']:,.0f} |",
              f"| dense | {ops['Dense']:,.0f} |",
              f"| connection sparsity | {nb['connection_sparsity']:.4f} |",
              f"| parameters (deployed integers) | {nb['parameter_count']:,} |",
              f"| footprint (deployed, bytes at Loihi 2 widths) | {nb['footprint_bytes']:,} |", "",
              "Named and computed as NeuroBench 2.3 does (export/neurobench_metrics.py says where they differ)."]
    lines += ["", "## Non-spiking networks of the same size (45 nm, Horowitz 2014)", "",
              "| network | MACs per step | MACs per sample | float32 | int8 |", "|---|---|---|---|---|"]
    for key in ("dense", "gru"):
        entry = comparison[key]
        lines.append(f"| {entry['description']} | {entry['macs_per_step']:,} | {entry['macs_per_sample']:,} | "
                     f"{_pj(entry['float32_pj'])} | {_pj(entry['int8_pj'])} |")
    lines += [f"| this SNN's {report['synaptic_ops_per_sample']:,.0f} synaptic ops as float32 adds | | | "
              f"{_pj(comparison['snn_synaptic_ops_as_float32_adds_pj'])} | |", "",
              f"Over {comparison['time_steps']} input steps per sample. The two estimates are of different kinds: "
              "the SNN's comes from per-operation figures of a neuromorphic chip (see its label), the others from "
              "arithmetic alone (no memory access, no data movement), so the ratio is indicative, not a measurement.",
              "", "## Loihi 2 plan", "",
              _readout_line(report["readout_integrator"]), "",
              f"{'Fits' if report['loihi2_plan']['fits'] else 'Does not fit'}: {report['loihi2_plan']['total_cores']} "
              f"neuro-cores (per layer {report['loihi2_plan']['cores_per_layer']}); each spike counts one message per "
              "destination core.", ""]
    if figures:
        lines += ["## Figures", ""] + [f"![{name}]({name})" for name in figures] + [""]
    return "\n".join(lines)
