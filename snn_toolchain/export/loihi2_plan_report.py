"""The Loihi 2 resource plan (``loihi2_plan.py``) written out: the text table that ``deploy`` prints,
its JSON form (``loihi2_plan.json``), and the line that names the compiler profile and says whether
that profile was fitted to this very network's public compile (then the core counts reproduce that
compile) or not (then they are a prediction; docs/deploy_loihi2.md, "Which profile to use").

The plan objects are read by attribute only, so that this module needs nothing of the planner.
"""

from __future__ import annotations

from snn_toolchain.export.loihi2_limits import COMPILER_PROFILES, LOIHI2_LIMITS, PUBLIC_COMPILES


def _cores_text(cores) -> str:
    """'3 + 2 = 5', or '4' for one layer."""
    cores = list(cores)
    return " + ".join(map(str, cores)) + (f" = {sum(cores)}" if len(cores) > 1 else "")


def profile_fit_line(plan) -> str:
    """The plan's compiler profile, and whether it was fitted to this network's own compile."""
    limits = plan.limits
    profile = (f"lava-loihi {limits.compiler} profile{' (the default)' if limits.compiler == LOIHI2_LIMITS.compiler else ''}"
               f"{' with user settings (' + ', '.join(sorted(limits.overridden)) + ')' if limits.overridden else ''}")
    fitted = [run.name for run in PUBLIC_COMPILES if run.compiler == limits.compiler]
    fitted_text = " and ".join(fitted) if fitted else "no public compile"
    run = plan.public_compile
    # a public compile lists the connection layers: the input stage's cores are named beside them
    stage = plan.input_stage_cores
    planned = _cores_text(plan.connection_cores) + (f" (+ {stage} for the input neuron stage)" if stage else "")
    if plan.fitted_to_this_network:
        return (f"{profile}: fitted to this network's own compile ({run.name}, {_cores_text(run.cores)} cores on a "
                f"Loihi 2 board): the plan's {planned} cores reproduce that compile, they predict nothing")
    if run is not None:
        if run.compiler == limits.compiler:
            return (f"{profile}: fitted to this network's own compile ({run.name}, {_cores_text(run.cores)} cores), "
                    f"but the user settings change it: the plan's {planned} cores are a prediction")
        return (f"{profile}: not fitted to this network's compile: {run.name} compiled to "
                f"{_cores_text(run.cores)} cores under lava-loihi {run.compiler} (the {run.compiler} profile "
                f"reproduces it); this profile, fitted to {fitted_text}, predicts {planned}")
    return (f"{profile}: fitted to {fitted_text}, not to this network: its core counts are a prediction (no single "
            "profile reproduces both Oxford and MNIST; docs/deploy_loihi2.md, 'Which profile to use')")


def layer_plan_dict(plan) -> dict:
    """One layer's plan (a ``LayerPlan``) as JSON-ready values."""
    s = plan.spec
    synapses = not s.is_input_stage     # it has none: no weight width, no synapse bits (null)
    return {"name": s.name, "role": s.role, "neurons": s.neurons, "fan_in": s.fan_in, "max_delay_steps": s.max_delay,
            "neuron_kind": s.neuron_kind, "weight_bits": s.weight_bits if synapses else None,
            "stored_weight_bits": plan.stored_weight_bits if synapses else None,
            "bits_per_synapse": plan.bits_per_synapse if synapses else None, "neurons_per_core": plan.neurons_per_core,
            "synmem_words_per_core": plan.synmem_words_per_core, "limited_by": plan.limited_by,
            "cores": plan.cores, "stored_synapses": plan.stored_synapses,
            "split_steps": [list(step) for step in plan.split_steps],
            "core_assignments": [a.__dict__ for a in plan.assignments]}


def plan_dict(plan) -> dict:
    """The whole plan (a ``PartitionPlan``) as JSON-ready values; memory in SynMem words."""
    run = plan.public_compile
    return {"fits": plan.fits, "total_cores": plan.total_cores, "cores_per_layer": plan.cores_per_layer,
            "total_neurons": plan.total_neurons, "total_stored_synapses": plan.total_stored_synapses,
            "total_synmem_words": plan.total_synmem_words,
            "synmem_words_of_the_cores": plan.total_cores * plan.limits.synmem_words_per_core,
            "chips_needed": plan.chips_needed, "compiler_profile": plan.limits.compiler,
            "fitted_to_this_network": plan.fitted_to_this_network, "profile_fit": plan.profile_fit,
            "public_compile": None if run is None else {"name": run.name, "cores_per_layer": list(run.cores),
                                                        "compiler": run.compiler, "source": run.source},
            "reasons": list(plan.reasons), "hints": list(plan.hints), "warnings": list(plan.warnings),
            "notes": list(plan.notes),
            "layers": [layer.to_dict() for layer in plan.layers], "limits": plan.limits.to_dict()}


def plan_table(plan) -> str:
    """The plan as a text table a person can read in a terminal."""
    lim = plan.limits
    lines = [f"Loihi 2 resource plan, lava-loihi {lim.compiler} profile "
             f"({COMPILER_PROFILES[lim.compiler]['description']}): {lim.chips} chip(s) x {lim.cores_per_chip} "
             f"neuro-cores; per core {lim.synmem_words_per_core:,} SynMem words (split rule '{lim.split_rule}', "
             f"up to {lim.synmem_budget_words:,.0f}), {lim.neurons_per_core} neuron units, "
             f"{lim.input_axons_per_core:,} input axons",
             f"profile: {plan.profile_fit}"]
    header = ("layer", "role", "neurons", "fan-in", "weight bits", "max delay", "bits/synapse", "neurons/core",
              "SynMem/core", "limited by", "cores", "synapses")
    rows = []
    for layer in plan.layers:
        s = layer.spec
        widths = (f"{s.weight_bits}" if layer.stored_weight_bits == s.weight_bits
                  else f"{s.weight_bits}->{layer.stored_weight_bits}")
        synapses = not s.is_input_stage     # it has none: no weight width, no synapse bits
        rows.append((s.name, s.role, str(s.neurons), str(s.fan_in), widths if synapses else "-", str(s.max_delay),
                     str(layer.bits_per_synapse) if synapses else "-",
                     str(layer.neurons_per_core) if layer.cores else "-",
                     f"{layer.synmem_words_per_core:,}" if layer.cores else "-", layer.limited_by,
                     str(layer.cores) if layer.cores else "-", f"{layer.stored_synapses:,}"))
    rows.append(("total", "", str(plan.total_neurons), "", "", "", "", "", "", "", str(plan.total_cores),
                 f"{plan.total_stored_synapses:,}"))
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.rjust(w) if c[:1].isdigit() else c.ljust(w) for c, w in zip(r, widths)) for r in rows)
    lines.append(f"(SynMem/core: 64-bit words of the fullest core = fan-in x ceil((neurons x bits/synapse + "
                 f"{lim.synapse_list_header_bits}) / 64); synapses: weights stored, zeros included, a count, not a "
                 "limit)")
    lines.append("cores:")
    for layer in plan.layers:
        lines.append(f"  layer {layer.spec.name}: {_describe_assignments(layer)}")
    if plan.fits:
        used = plan.total_cores * lim.synmem_words_per_core
        lines.append(f"verdict: FITS on {plan.chips_needed} chip(s): {plan.total_cores} of {lim.total_cores} cores; "
                     f"synaptic memory {plan.total_synmem_words:,} of {used:,} SynMem words ({plan.total_cores} "
                     f"cores x {lim.synmem_words_per_core:,}-word register, {100 * plan.total_synmem_words / used:.3g}%)")
    else:
        lines.append("verdict: DOES NOT FIT")
        lines.extend(f"  reason: {r}" for r in plan.reasons)
        lines.extend(f"  hint: {h}" for h in plan.hints)
    lines.extend(f"warning: {w}" for w in plan.warnings)
    lines.append("assumptions: " + " ".join(plan.notes))
    return "\n".join(lines)


def _describe_assignments(layer) -> str:
    if not layer.assignments:
        return "not placed (one neuron does not fit a core)"
    if len(layer.assignments) <= 8:
        return "; ".join(f"core {a.core}: neurons {a.first_neuron}-{a.first_neuron + a.neurons - 1} "
                         f"({a.synmem_words:,} SynMem words)" for a in layer.assignments)
    sizes = sorted({a.neurons for a in layer.assignments}, reverse=True)
    return (f"cores {layer.assignments[0].core}-{layer.assignments[-1].core}, "
            f"{' or '.join(map(str, sizes))} neurons each")
