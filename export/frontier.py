"""The accuracy-energy frontier: the same network trained at several strengths of the synaptic
operations penalty (train/regularization.py), each exported and counted on the emulator.

    run_frontier(config, out, strengths=[0, 1, 2, 4, 8], seeds=3, parallel=2)
        -> OUT/lambda<strength>/seed<N>/ (training runs), frontier.json, frontier.md, frontier.png

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
import statistics
from pathlib import Path

from snn_toolchain.atomic import write_json, write_text
from snn_toolchain.errors import ToolchainError
from snn_toolchain.export.activity import measure_activity
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.export.energy import EnergyTable, loihi2_estimate, snn_energy
from snn_toolchain.train.data import make_loader
from snn_toolchain.train.quantize import quantize_model
from snn_toolchain.train.sweep import DataSource, train_runs
from snn_toolchain.train.trainer import load_model

ACCEPTED_LOSS_POINTS = 1.0


def _run_dir(out: Path, strength: float, seed: int) -> Path:
    return out / f"lambda{strength:g}" / f"seed{seed}"


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


def summarise(points: dict, strengths: list, seeds: int) -> dict:
    """Per strength: mean and spread over seeds; the reference (strength 0, or the weakest), and the
    chosen one: of the strengths whose mean validation fixed-point accuracy loses at most
    ACCEPTED_LOSS_POINTS against the reference, the one with the fewest synaptic operations on the
    validation split. Nothing of the test split enters the choice."""
    rows = []
    for strength in strengths:
        runs = [points[strength, s] for s in range(seeds) if (strength, s) in points]
        if not runs:
            continue
        row = {"strength": strength, "seeds": len(runs)}
        for key in ("fixed_test_acc", "fixed_valid_acc", "synops_per_sample", "valid_synops_per_sample",
                    "hidden_synops_per_sample", "loihi1_energy_uj", "float_test_acc"):
            row[key], row[key + "_std"] = _mean_std([100 * r[key] if key.endswith("acc") else r[key] for r in runs])
        row["loihi2_dynamic_uj"] = [statistics.fmean(r["loihi2_dynamic_uj"][i] for r in runs) for i in (0, 1)]
        rows.append(row)
    if not rows:
        raise ToolchainError("the frontier has no finished runs")
    reference = rows[0]
    accepted = [r for r in rows if reference["fixed_valid_acc"] - r["fixed_valid_acc"] <= ACCEPTED_LOSS_POINTS]
    chosen = min(accepted, key=lambda r: r["valid_synops_per_sample"])
    return {"rows": rows, "reference": reference, "chosen": chosen,
            "reduction": reference["synops_per_sample"] / chosen["synops_per_sample"],
            "hidden_reduction": reference["hidden_synops_per_sample"] / max(chosen["hidden_synops_per_sample"], 1e-9),
            "test_points_lost": reference["fixed_test_acc"] - chosen["fixed_test_acc"],
            "valid_points_lost": reference["fixed_valid_acc"] - chosen["fixed_valid_acc"]}


def render(summary: dict, points: dict, settings: dict) -> str:
    ref, chosen = summary["reference"], summary["chosen"]
    lines = ["# The accuracy-energy frontier", "",
             f"Settings: {settings}. Each point: the deployed fixed-point network on the bit-exact emulator, "
             "mean ± sample std over seeds. Synaptic operations per sample count every layer, the input's too.", "",
             "| strength (per million ops) | seeds | fixed-point test acc. | fixed-point valid acc. | float test acc. | "
             "synaptic ops / sample | hidden ops / sample | Loihi 1 model (uJ) | Loihi 2 dynamic, modelled (uJ) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        lines.append(f"| {r['strength']:g} | {r['seeds']} | {r['fixed_test_acc']:.2f} ± {r['fixed_test_acc_std']:.2f} | "
                     f"{r['fixed_valid_acc']:.2f} ± {r['fixed_valid_acc_std']:.2f} | {r['float_test_acc']:.2f} | "
                     f"{r['synops_per_sample']:,.0f} ± {r['synops_per_sample_std']:,.0f} | "
                     f"{r['hidden_synops_per_sample']:,.0f} | {r['loihi1_energy_uj']:.2f} | "
                     f"{r['loihi2_dynamic_uj'][0]:.2f}-{r['loihi2_dynamic_uj'][1]:.2f} |")
    lines += ["", f"**Chosen on validation** (of the strengths whose mean validation fixed-point accuracy is at most "
                  f"{ACCEPTED_LOSS_POINTS:g} point below strength {ref['strength']:g}, the one with the fewest synaptic "
                  f"operations on the validation split): strength {chosen['strength']:g}: on the test split "
                  f"{summary['reduction']:.2f}x fewer synaptic operations per sample "
                  f"({ref['synops_per_sample']:,.0f} -> {chosen['synops_per_sample']:,.0f}; the hidden layers' alone "
                  f"{summary['hidden_reduction']:.2f}x, the input's are fixed), test accuracy "
                  f"{ref['fixed_test_acc']:.2f} -> {chosen['fixed_test_acc']:.2f} "
                  f"({summary['test_points_lost']:+.2f} points lost on test, {summary['valid_points_lost']:+.2f} on "
                  "validation).", "", "![frontier](frontier.png)", ""]
    return "\n".join(lines)


def plot(summary: dict, points: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from snn_toolchain.train.plots import save_figure  # matplotlib: only when drawing

    fig, ax = plt.subplots(figsize=(6.4, 4.4), layout="constrained")
    rows = summary["rows"]
    for (strength, _), p in sorted(points.items()):
        ax.scatter(p["synops_per_sample"] / 1e3, 100 * p["fixed_test_acc"], s=12, alpha=0.35, color="tab:blue")
    ax.errorbar([r["synops_per_sample"] / 1e3 for r in rows], [r["fixed_test_acc"] for r in rows],
                xerr=[r["synops_per_sample_std"] / 1e3 for r in rows], yerr=[r["fixed_test_acc_std"] for r in rows],
                fmt="o-", color="tab:blue", capsize=3, label="mean ± std over seeds (dots: seeds)")
    for r in rows:
        ax.annotate(f"λ={r['strength']:g}", (r["synops_per_sample"] / 1e3, r["fixed_test_acc"]),
                    textcoords="offset points", xytext=(5, 5), fontsize=8)
    chosen = summary["chosen"]
    ax.scatter([chosen["synops_per_sample"] / 1e3], [chosen["fixed_test_acc"]], s=120, facecolors="none",
               edgecolors="tab:red", label=f"chosen on validation (≤{ACCEPTED_LOSS_POINTS:g} point)")
    ax.set_xlabel("synaptic operations per sample (thousands, deployed network)")
    ax.set_ylabel("fixed-point test accuracy (%)")
    ax.set_title("Accuracy-energy frontier (activity penalty strength λ)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def run_frontier(base, out: Path, strengths: list, seeds: int, data: DataSource | None = None, parallel: int = 1,
                 init_from: Path | None = None, log=print) -> dict:
    out = Path(out)
    data = data or DataSource(base.dataset)
    strengths = sorted(set(float(s) for s in strengths))
    if len(strengths) < 2 or any(s < 0 for s in strengths):
        raise ToolchainError("--strengths: give at least two strengths >= 0, e.g. 0,1,2,4,8")
    if seeds < 1:
        raise ToolchainError(f"--seeds {seeds}: must be at least 1")
    jobs = []
    for strength in strengths:
        for seed in range(seeds):
            changes = {"synops_penalty": strength, "seed": seed}
            if init_from is not None:
                start = Path(init_from) / f"seed{seed}" / "best.pt"
                if not start.is_file():
                    raise ToolchainError(f"--init-from {init_from}: no seed{seed}/best.pt there to fine-tune")
                changes["init_checkpoint"] = str(start)
            config = dataclasses.replace(base, **changes).validate()
            run_dir = _run_dir(out, strength, seed)
            if not (run_dir / "result.json").exists():
                jobs.append(((f"lambda {strength:g}", seed), config, run_dir))
    train_runs(jobs, data, parallel, log, done=len(strengths) * seeds - len(jobs), total=len(strengths) * seeds,
               tag="frontier")
    points, loaded = {}, {}
    for strength in strengths:
        for seed in range(seeds):
            config = dataclasses.replace(base, seed=seed)
            if seed not in loaded:
                loaded[seed] = data.load(config)
            splits = loaded[seed]
            points[strength, seed] = measure_point(_run_dir(out, strength, seed), splits)
            log(f"[frontier] lambda {strength:g} seed {seed}: fixed-point test "
                f"{100 * points[strength, seed]['fixed_test_acc']:.2f}%, "
                f"{points[strength, seed]['synops_per_sample']:,.0f} synaptic ops per sample")
    summary = summarise(points, strengths, seeds)
    settings = {"dataset": base.dataset, "neuron": base.neuron, "delays": base.delays, "epochs": base.epochs,
                "seeds": seeds, "init_from": str(init_from) if init_from else None}
    write_json(out / "frontier.json", {"settings": settings, "summary": summary,
                                       "points": [{"strength": k[0], "seed": k[1], **v} for k, v in points.items()]})
    plot(summary, points, out / "frontier.png")
    markdown = render(summary, points, settings)
    write_text(out / "frontier.md", markdown)
    chosen, reference = summary["chosen"], summary["reference"]
    log(f"[frontier] chosen on validation: strength {chosen['strength']:g}, {summary['reduction']:.2f}x fewer synaptic "
        f"operations per sample, fixed-point test {reference['fixed_test_acc']:.2f}% -> {chosen['fixed_test_acc']:.2f}%")
    log(f"[frontier] wrote {out / 'frontier.md'}, {out / 'frontier.json'}, {out / 'frontier.png'}")
    return summary
