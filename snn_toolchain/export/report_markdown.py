"""The activity and energy report (``report.py``) as Markdown: ``report.md``, from the dict that is
also written as ``report.json``. Energies are in pJ in the dict, printed in the unit that keeps them
readable.
"""

from __future__ import annotations

from pathlib import Path

from snn_toolchain.export.report_figures import PAPER_TABLE4_SPIKES


def render_markdown(report: dict, figures: list) -> str:
    """``report.md`` of ``report`` (``build_report``'s dict); ``figures``: the PNG file names beside it."""
    lines = (_activity_lines(report) + _energy_lines(report) + _loihi2_estimate_lines(report)
             + _neurobench_lines(report["neurobench"]) + _comparison_and_plan_lines(report))
    if figures:
        lines += ["## Figures", ""] + [f"![{name}]({name})" for name in figures] + [""]
    return "\n".join(lines)


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


def _activity_lines(report: dict) -> list:
    """The title, the run in brief, and the activity table, per layer and sample."""
    lines = [f"# Activity and energy report: `{Path(report['net_file']).name}`", "",
             f"- network: {report['variant']}, {report['time_steps']} input steps ({report['run_steps']} steps on Lava)",
             f"- data: {report['dataset']}, {report['samples']} samples; " +
             ("no labels, no accuracy" if report["fixed_point_accuracy"] is None
              else f"fixed-point accuracy {100 * report['fixed_point_accuracy']:.2f}%"),
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
    return lines


def _energy_lines(report: dict) -> list:
    """How the counts were made, the input messages, and the energy per layer and sample with the
    per-operation figures (pJ) it used."""
    energy, model = report["energy"], report["energy"]["model"]
    messages = report["input_messages"]
    lines = ["", "Synaptic ops: spike events x fan-out (" + report["counting"]["fan_out"] + ") into the next layer. "
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
    return lines


def _loihi2_estimate_lines(report: dict) -> list:
    """The Loihi 2 energy range per sample, or why there is none (an energy file replaced it)."""
    loihi2 = report["energy"].get("loihi2")
    if loihi2:
        low, high = loihi2["dynamic_pj"]
        return ["", "### Loihi 2 estimate (modelled from measurements)", "",
                f"- dynamic: {_pj(low)} - {_pj(high)} per sample ({report['synaptic_ops_per_sample']:,.0f} synaptic ops "
                f"x {loihi2['synop_pj_range'][0]}-{loihi2['synop_pj_range'][1]} pJ);",
                f"- static: {_pj(loihi2['static_pj'][0])} - {_pj(loihi2['static_pj'][1])} per sample ({loihi2['chips']} chip(s) at "
                f"{loihi2['static_w_range'][0]}-{loihi2['static_w_range'][1]} W over {report['run_steps']} steps at "
                f"{loihi2['static_assumes_step_us']:g} us per step, PilotNet's measured step time: this network's "
                "is not known here).", "", f"{loihi2['label']}. Source: {loihi2['source']}. Derivation: docs/energy.md."]
    if report["energy"].get("loihi2", "absent") is None:
        return ["", "The built-in Loihi 1 and Loihi 2 models are replaced by the energy file's figures."]
    return []


def _neurobench_lines(nb: dict) -> list:
    """The NeuroBench metrics of the deployed network (``report["neurobench"]``)."""
    ops = nb["synaptic_operations"]
    return ["", "## NeuroBench metrics", "",
            "| metric | value |", "|---|---|",
            f"| activation sparsity | {nb['activation_sparsity']:.4f} |",
            f"| synaptic operations per sample: effective ACs | {ops['Effective_ACs']:,.0f} |",
            f"| effective MACs | {ops['Effective_MACs']:,.0f} |",
            f"| dense | {ops['Dense']:,.0f} |",
            f"| connection sparsity | {nb['connection_sparsity']:.4f} |",
            f"| parameters (deployed integers) | {nb['parameter_count']:,} |",
            f"| footprint (deployed, bytes at Loihi 2 widths) | {nb['footprint_bytes']:,} |", "",
            "Named and computed as NeuroBench 2.3 does (export/neurobench_metrics.py says where they differ)."]


def _comparison_and_plan_lines(report: dict) -> list:
    """Non-spiking networks of the same size (45 nm energies, pJ), the readout, and the Loihi 2 plan."""
    comparison = report["non_spiking_comparison"]
    lines = ["", "## Non-spiking networks of the same size (45 nm, Horowitz 2014)", "",
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
              f"neuro-cores (per layer {report['loihi2_plan']['cores_per_layer']}, lava-loihi "
              f"{report['loihi2_plan']['compiler_profile']} profile, docs/deploy_loihi2.md); each spike counts one "
              "message per destination core.", ""]
    if report["loihi2_plan"].get("profile_fit"):    # reports written before it was added have none
        lines += [f"Profile: {report['loihi2_plan']['profile_fit']}.", ""]
    return lines
