"""The accuracy-energy frontier: the same network trained at several strengths of the synaptic
operations penalty, and optionally at several levels of synapse pruning (train/loop/regularization.py),
each exported and counted on the emulator.

    run_frontier(config, out, strengths=[0, 1, 2, 4, 8], seeds=3, parallel=2, prune_levels=["", "0.6"])
        -> OUT/lambda<strength>[-prune<level>]/seed<N>/ (training runs), frontier.json, frontier.md,
           frontier.png

The grid is every strength at every pruning level (``--prune`` values; "" or "0" is none). The
penalty cannot lower the input layer's operations (input spikes times the first connection's
fan-out); pruning the first connection can, so the two together reach further than either.

Every point is the deployed network of a run's last epoch (``measure_point`` says why not the
validation-selected one): quantized to Loihi 2 fixed point and run on the bit-exact
emulator (what Lava computes) over the whole validation and test splits. x: synaptic operations per
sample (input included, as the report counts them) and the energy estimates; y: fixed-point test
accuracy. ``init_from``: a folder of earlier runs (``seed<N>/best.pt``, e.g. a sweep's variant
folder), fine-tuned at each strength instead of training from scratch (much cheaper; say so when
you report it).

The strength chosen as "at most 1 point lost" is picked on **validation** fixed-point accuracy
(mean over seeds), never on test; the test figures are reported for it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
from pathlib import Path

from snn_toolchain.atomic import write_json, write_text
from snn_toolchain.errors import ToolchainError
from snn_toolchain.export.activity import measure_activity
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.export.energy import EnergyTable, loihi2_estimate, snn_energy
from snn_toolchain.train.data.loading import make_loader
from snn_toolchain.train.model.quantize import quantize_model
from snn_toolchain.train.loop.regularization import parse_prune
from snn_toolchain.train.sweeps.sweep import DataSource, check_seeds, train_runs
from snn_toolchain.train.model.checkpoint import load_model

ACCEPTED_LOSS_POINTS = 1.0


def normalise_prune_level(level: str) -> str:
    """A ``--prune`` value as the frontier names it: "" for none ("0", "0,0"), else its fractions
    joined by commas without trailing zeros ("0.60,0" -> "0.6")."""
    fractions = list(parse_prune(level.strip()))
    while fractions and fractions[-1] == 0:
        fractions.pop()
    return ",".join(f"{f:g}" for f in fractions)


def _run_dir(out: Path, strength: float, seed: int, prune: str = "") -> Path:
    folder = f"lambda{strength:g}" + (f"-prune{prune.replace(',', '_')}" if prune else "")
    return out / folder / f"seed{seed}"


def point_label(strength: float, prune: str) -> str:
    return f"λ={strength:g}" + (f", pruned {prune}" if prune else "")


def measure_point(run_dir: Path, splits) -> dict:
    """The deployed network of a run's last epoch (``checkpoint.pt``): fixed-point accuracy
    (validation, test) and, on the test split, synaptic operations and energy per sample.

    The last epoch, not the validation-selected one: selecting on validation accuracy prefers the
    early epochs, before the penalty has lowered the activity, and would undo what is measured."""
    model = load_model(run_dir / "checkpoint.pt")
    network = quantize_model(model, splits.time_steps)
    deployed = splits.deployed()
    valid_activity, valid = measure_activity(network, make_loader(deployed.valid, 256))
    activity, run = measure_activity(network, make_loader(deployed.test, 256))
    synops = sum(a.per_sample(a.synaptic_ops) for a in activity)
    hidden_synops = sum(a.per_sample(a.synaptic_ops) for a in activity[1:])
    loihi1 = snn_energy(activity, EnergyTable())["per_sample"]["total_pj"]
    loihi2 = loihi2_estimate(synops, network.run_steps)
    return {"fixed_valid_acc": valid["accuracy"], "fixed_test_acc": run["accuracy"], "synops_per_sample": synops,
            "valid_synops_per_sample": sum(a.per_sample(a.synaptic_ops) for a in valid_activity),
            "hidden_synops_per_sample": hidden_synops, "loihi1_energy_uj": loihi1 / 1e6,
            "loihi2_dynamic_uj": [e / 1e6 for e in loihi2["dynamic_pj"]],
            "float_test_acc": json.loads((run_dir / "metrics.json").read_text())[-1]["test_acc"]}


def _mean_std(values: list) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(points: dict, strengths: list, seeds: int, prune_levels: list = ("",)) -> dict:
    """Per (pruning level, strength), points keyed (strength, prune, seed): mean and spread over
    seeds; the reference (no pruning and strength 0, or the first of the grid), and the chosen
    one: of the settings whose mean validation fixed-point accuracy loses at most
    ACCEPTED_LOSS_POINTS against the reference, the one with the fewest synaptic operations on the
    validation split. Nothing of the test split enters the choice."""
    rows = [row for prune in prune_levels for strength in strengths
            if (row := _summarise_setting(points, strength, prune, seeds)) is not None]
    if not rows:
        raise ToolchainError("the frontier has no finished runs")
    reference = rows[0]
    accepted = [r for r in rows if reference["fixed_valid_acc"] - r["fixed_valid_acc"] <= ACCEPTED_LOSS_POINTS]
    chosen = min(accepted, key=lambda r: r["valid_synops_per_sample"])
    # the goal asked of the frontier is phrased on test accuracy: this answers it, labelled as such
    in_view = min((r for r in rows if reference["fixed_test_acc"] - r["fixed_test_acc"] <= ACCEPTED_LOSS_POINTS),
                  key=lambda r: r["synops_per_sample"])
    return {"rows": rows, "reference": reference, "chosen": chosen, "test_view": in_view,
            "reduction": reference["synops_per_sample"] / chosen["synops_per_sample"],
            "hidden_reduction": reference["hidden_synops_per_sample"] / max(chosen["hidden_synops_per_sample"], 1e-9),
            "test_points_lost": reference["fixed_test_acc"] - chosen["fixed_test_acc"],
            "valid_points_lost": reference["fixed_valid_acc"] - chosen["fixed_valid_acc"]}


def _summarise_setting(points: dict, strength: float, prune: str, seeds: int) -> dict | None:
    """One row of the table: the mean and sample std over the seeds of one setting, or None."""
    runs = [points[strength, prune, s] for s in range(seeds) if (strength, prune, s) in points]
    if not runs:
        return None
    row = {"strength": strength, "prune": prune, "seeds": len(runs)}
    for key in ("fixed_test_acc", "fixed_valid_acc", "synops_per_sample", "valid_synops_per_sample",
                "hidden_synops_per_sample", "loihi1_energy_uj", "float_test_acc"):
        row[key], row[key + "_std"] = _mean_std([100 * r[key] if key.endswith("acc") else r[key] for r in runs])
    row["loihi2_dynamic_uj"] = [statistics.fmean(r["loihi2_dynamic_uj"][i] for r in runs) for i in (0, 1)]
    return row


def _setting(row: dict) -> str:
    return f"strength {row['strength']:g}" + (f" with pruning {row['prune']}" if row.get("prune") else "")


def _pick_text(summary: dict, pick: dict) -> str:
    ref = summary["reference"]
    return (f"{_setting(pick)}: on the test split {ref['synops_per_sample'] / pick['synops_per_sample']:.2f}x fewer "
            f"synaptic operations per sample ({ref['synops_per_sample']:,.0f} -> {pick['synops_per_sample']:,.0f}; the "
            f"hidden layers' alone {ref['hidden_synops_per_sample'] / max(pick['hidden_synops_per_sample'], 1e-9):.2f}x), "
            f"test accuracy {ref['fixed_test_acc']:.2f} -> {pick['fixed_test_acc']:.2f} "
            f"({ref['fixed_test_acc'] - pick['fixed_test_acc']:+.2f} points lost on test, "
            f"{ref['fixed_valid_acc'] - pick['fixed_valid_acc']:+.2f} on validation)")


def render(summary: dict, points: dict, settings: dict) -> str:
    ref, chosen = summary["reference"], summary["chosen"]
    lines = ["# The accuracy-energy frontier", "",
             f"Settings: {settings}. Each point: the deployed fixed-point network on the bit-exact emulator, "
             "mean ± sample std over seeds. Synaptic operations per sample count every layer, the input's too. "
             "Pruning: the fraction of each connection's synapses removed, from the input's on.", "",
             "| strength (per million ops) | pruned | seeds | fixed-point test acc. | fixed-point valid acc. | "
             "float test acc. | synaptic ops / sample | hidden ops / sample | Loihi 1 model (uJ) | "
             "Loihi 2 dynamic, modelled (uJ) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        lines.append(f"| {r['strength']:g} | {r.get('prune') or '-'} | {r['seeds']} | "
                     f"{r['fixed_test_acc']:.2f} ± {r['fixed_test_acc_std']:.2f} | "
                     f"{r['fixed_valid_acc']:.2f} ± {r['fixed_valid_acc_std']:.2f} | {r['float_test_acc']:.2f} | "
                     f"{r['synops_per_sample']:,.0f} ± {r['synops_per_sample_std']:,.0f} | "
                     f"{r['hidden_synops_per_sample']:,.0f} | {r['loihi1_energy_uj']:.2f} | "
                     f"{r['loihi2_dynamic_uj'][0]:.2f}-{r['loihi2_dynamic_uj'][1]:.2f} |")
    lines += ["", f"**Chosen on validation** (of the settings whose mean validation fixed-point accuracy is at most "
                  f"{ACCEPTED_LOSS_POINTS:g} point below the reference, {_setting(ref)}, the one with the fewest "
                  f"synaptic operations on the validation split): " + _pick_text(summary, chosen)
                  + "."]
    in_view = summary.get("test_view")
    if in_view is not None:
        lines += ["", f"**Chosen with the test split in view** (the fewest test-split operations among the settings "
                      f"whose mean test accuracy is at most {ACCEPTED_LOSS_POINTS:g} point below the reference; a "
                      "statement about the goal, not a model selection): " + _pick_text(summary, in_view)
                  + "."]
    lines += ["", "![frontier](frontier.png)", ""]
    return "\n".join(lines)


def plot(summary: dict, points: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from snn_toolchain.train.loop.plots import save_figure  # matplotlib: only when drawing

    fig, ax = plt.subplots(figsize=(6.8, 4.6), layout="constrained")
    levels = list(dict.fromkeys(r.get("prune", "") for r in summary["rows"]))
    colours = ["tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown"]
    for index, level in enumerate(levels):
        colour = colours[index % len(colours)]
        rows = [r for r in summary["rows"] if r.get("prune", "") == level]
        for key, p in sorted(points.items()):
            if key[1] == level:
                ax.scatter(p["synops_per_sample"] / 1e3, 100 * p["fixed_test_acc"], s=12, alpha=0.35, color=colour)
        ax.errorbar([r["synops_per_sample"] / 1e3 for r in rows], [r["fixed_test_acc"] for r in rows],
                    xerr=[r["synops_per_sample_std"] / 1e3 for r in rows], yerr=[r["fixed_test_acc_std"] for r in rows],
                    fmt="o-", color=colour, capsize=3,
                    label=("no pruning" if not level else f"pruned {level}") + ": mean ± std over seeds (dots: seeds)")
        for r in rows:
            ax.annotate(f"λ={r['strength']:g}", (r["synops_per_sample"] / 1e3, r["fixed_test_acc"]),
                        textcoords="offset points", xytext=(5, 5), fontsize=8, color=colour)
    reference, chosen = summary["reference"], summary["chosen"]
    ax.axhline(reference["fixed_test_acc"] - ACCEPTED_LOSS_POINTS, color="grey", lw=0.8, ls=":",
               label=f"reference - {ACCEPTED_LOSS_POINTS:g} point")
    ax.axvline(reference["synops_per_sample"] / 2e3, color="grey", lw=0.8, ls="--", label="half the reference's operations")
    ax.scatter([chosen["synops_per_sample"] / 1e3], [chosen["fixed_test_acc"]], s=120, facecolors="none",
               edgecolors="tab:red", label=f"chosen on validation (≤{ACCEPTED_LOSS_POINTS:g} point)")
    ax.set_xlabel("synaptic operations per sample (thousands, deployed network)")
    ax.set_ylabel("fixed-point test accuracy (%)")
    ax.set_title("Accuracy-energy frontier (activity penalty λ, synapse pruning)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def run_frontier(base, out: Path, strengths: list, seeds: int, data: DataSource | None = None, parallel: int = 1,
                 init_from: Path | None = None, log=print, prune_levels: list = ("",), cluster=None) -> dict:
    """Train the grid (``cluster``: a ClusterSpec, each training a task of that Ray cluster, as
    ``train_runs`` says), then measure every point here and write the frontier's files."""
    out = Path(out)
    seeds = check_seeds(seeds)      # before anything is written: no seeds would leave nothing to measure
    data = data or DataSource(base.dataset)
    strengths = sorted(set(float(s) for s in strengths))
    if len(strengths) * len(prune_levels) < 2 or any(s < 0 for s in strengths):
        raise ToolchainError("--strengths: give at least two strengths >= 0, e.g. 0,1,2,4,8 (or one strength and "
                             "two --prune-levels)")
    levels = list(dict.fromkeys(normalise_prune_level(level) for level in prune_levels))
    levels.sort(key=lambda level: parse_prune(level))     # no pruning first: the reference
    if base.prune:      # one level for every point, given as the training option
        if levels != [""]:
            raise ToolchainError("--prune and --prune-levels: give the pruning levels with --prune-levels only")
        levels, base = [normalise_prune_level(base.prune)], dataclasses.replace(base, prune="")
    grid = [(strength, prune) for prune in levels for strength in strengths]
    jobs = []
    for strength, prune in grid:
        for seed in range(seeds):
            changes = {"synops_penalty": strength, "seed": seed}
            if prune:
                changes["prune"] = prune
            if init_from is not None:
                start = Path(init_from) / f"seed{seed}" / "best.pt"
                if not start.is_file():
                    raise ToolchainError(f"--init-from {init_from}: no seed{seed}/best.pt there to fine-tune")
                # absolute: a cluster's worker does not start in this working folder, and local
                # and cluster runs of one frontier then store the same setting (resume compares it)
                changes["init_checkpoint"] = os.path.abspath(start)
            config = dataclasses.replace(base, **changes).validate()
            run_dir = _run_dir(out, strength, seed, prune)
            if not (run_dir / "result.json").exists():
                jobs.append(((point_label(strength, prune), seed), config, run_dir))
    train_runs(jobs, data, parallel, log, done=len(grid) * seeds - len(jobs), total=len(grid) * seeds, tag="frontier",
               cluster=cluster)
    points, loaded = {}, {}
    for strength, prune in grid:
        for seed in range(seeds):
            config = dataclasses.replace(base, seed=seed)
            if seed not in loaded:
                loaded[seed] = data.load(config)
            point = measure_point(_run_dir(out, strength, seed, prune), loaded[seed])
            points[strength, prune, seed] = point
            log(f"[frontier] {point_label(strength, prune)} seed {seed}: fixed-point test "
                f"{100 * point['fixed_test_acc']:.2f}%, {point['synops_per_sample']:,.0f} synaptic ops per sample")
    summary = summarise(points, strengths, seeds, levels)
    settings = {"dataset": base.dataset, "neuron": base.neuron, "delays": base.delays, "epochs": base.epochs,
                "seeds": seeds, "prune_levels": levels, "prune_epochs": base.prune_epochs or max(1, base.epochs // 2),
                "init_from": str(init_from) if init_from else None}
    write_json(out / "frontier.json", {"settings": settings, "summary": summary,
                                       "points": [{"strength": k[0], "prune": k[1], "seed": k[2], **v}
                                                  for k, v in points.items()]})
    plot(summary, points, out / "frontier.png")
    write_text(out / "frontier.md", render(summary, points, settings))
    chosen, reference = summary["chosen"], summary["reference"]
    log(f"[frontier] chosen on validation: {_setting(chosen)}, {summary['reduction']:.2f}x fewer synaptic "
        f"operations per sample, fixed-point test {reference['fixed_test_acc']:.2f}% -> {chosen['fixed_test_acc']:.2f}%")
    log(f"[frontier] wrote {out / 'frontier.md'}, {out / 'frontier.json'}, {out / 'frontier.png'}")
    return summary
