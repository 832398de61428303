"""The paper's analyses, written by ``sweep`` into ``sweep.md`` with figures:

- Table 1: mean and max accuracy per variant, under both protocols, with parameter counts;
- Fig. 5: every seed's accuracy per variant;
- Table 4: spikes per hidden neuron per sample, averaged over seeds;
- Fig. 3: a trained AdLIF+ neuron's spike count over a grid of (a, b) for one fixed input;
- and what the paper does not show but a deployment needs: the accuracy from the uniform initial
  state against the zero one, and with fractional against rounded delays.

The paper's own figures (Deckers et al., Tables 1 and 4, SHD, 10 seeds) are printed beside ours
for orientation only: they are on the real SHD, ours are on whatever data the sweep ran on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snn_toolchain.atomic import write_text
from snn_toolchain.neurons.dynamics import NeuronParams, NeuronState, adlif_float_step, numpy_heaviside
from snn_toolchain.train.loop.config import TrainConfig
from snn_toolchain.train.loop.selection import PAPER_PROTOCOL_LABEL, headline_label
from snn_toolchain.train.model.checkpoint import load_checkpoint, load_model

# Deckers et al., Table 1 (SHD, 2x128; mean and max over 10 seeds, selected as the paper did) and
# Table 4 (spikes per neuron per sample on SHD).
PAPER_TABLE1 = {"LIF": (84.49, 86.22), "AdLIF": (91.67, 93.85), "AdLIF+": (94.19, 95.14),
                "delay-LIF": (92.18, 93.02), "delay-AdLIF+": (95.02, 96.26)}
PAPER_TABLE4 = {"LIF": 10.75, "AdLIF": 10.7, "AdLIF+": 10.28, "delay-LIF": 13.7, "delay-AdLIF+": 11.48}


def _fmt(value, digits=2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def table1_markdown(table: dict[str, dict]) -> str:
    lines = ["| model | parameters | seeds | test mean ± std (valid-selected) | test max (valid-selected) | "
             f"test mean ± std, {PAPER_PROTOCOL_LABEL} | test max, {PAPER_PROTOCOL_LABEL} | valid mean | paper mean / max (SHD) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for variant, row in table.items():
        paper = PAPER_TABLE1.get(variant)
        lines.append(
            f"| {variant} | {row.get('parameters') or 0:,} | {row['seeds']} | {row['test_mean']:.2f} ± {row['test_std']:.2f} | "
            f"{row['test_max']:.2f} | {_fmt(row.get('paper_mean'))} ± {_fmt(row.get('paper_std'))} | "
            f"{_fmt(row.get('paper_max'))} | {row['valid_mean']:.2f} | "
            f"{f'{paper[0]:.2f} / {paper[1]:.2f}' if paper else 'n/a'} |")
    return "\n".join(lines) + "\n"


def deployment_markdown(table: dict[str, dict]) -> str:
    lines = ["| model | zero initial state, rounded delays (deployed) | uniform initial state | fractional delays | "
             "spikes per hidden neuron per sample | paper, Table 4 (SHD) |", "|---|---|---|---|---|---|"]
    for variant, row in table.items():
        lines.append(f"| {variant} | {_fmt(row.get('test_acc_zero_init'))} | {_fmt(row.get('test_acc_uniform_init'))} | "
                     f"{_fmt(row.get('test_acc_fractional_delays'))} | {_fmt(row.get('spikes_per_neuron'))} | "
                     f"{_fmt(PAPER_TABLE4.get(variant))} |")
    return "\n".join(lines) + "\n"


def ordering_lines(table: dict[str, dict]) -> list[str]:
    """The paper's claims, checked on the means of each run's headline test accuracy (``test_mean``:
    validation-selected, or test-selected where the test split stood in for validation)."""
    claims = [("LIF", "AdLIF"), ("AdLIF", "AdLIF+"), ("AdLIF+", "delay-AdLIF+"), ("LIF", "delay-LIF")]
    lines = []
    for low, high in claims:
        if low in table and high in table:
            a, b = table[low]["test_mean"], table[high]["test_mean"]
            lines.append(f"- {low} < {high}: {'holds' if a < b else 'does NOT hold'} ({a:.2f} vs {b:.2f})")
    return lines


def plot_seeds(table: dict[str, dict], path: Path) -> Path:
    """Fig. 5: each seed's test accuracy per variant, both protocols, with the means."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from snn_toolchain.train.loop.plots import save_figure  # matplotlib: only when drawing

    fig, ax = plt.subplots(figsize=(1.6 * len(table) + 2, 4), layout="constrained")
    for index, (variant, row) in enumerate(table.items()):
        for offset, key, label, colour in ((-0.12, "test_per_seed", "validation-selected", "tab:blue"),
                                           (0.12, "paper_per_seed", PAPER_PROTOCOL_LABEL, "tab:orange")):
            values = row.get(key) or []
            ax.scatter(np.full(len(values), index + offset), values, color=colour, alpha=0.7, s=22,
                       label=label if index == 0 else None)
            if values:
                ax.hlines(np.mean(values), index + offset - 0.1, index + offset + 0.1, color=colour, linewidth=2)
        if variant in PAPER_TABLE1:
            ax.scatter(index + 0.32, PAPER_TABLE1[variant][0], marker="*", color="grey", s=60,
                       label="paper mean (real SHD)" if index == 0 else None)
    ax.set_xticks(range(len(table)), list(table))
    ax.set(ylabel="test accuracy (%)", title="accuracy per seed (bars: means)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def adaptation_grid(model, x, grid: int = 41) -> dict:
    """Fig. 3's data: the spike count of one trained neuron of the first hidden layer, driven by
    the current it receives for input ``x`` (time, channels), for every (a, b) on a grid over the
    neuron's bounds; alpha and beta keep their trained values. The neuron is the most active one
    for that input. Runs the float step of ``neuron_dynamics`` (numpy), from the zero state."""
    import torch

    block = model.blocks[0]
    with torch.no_grad():
        model.eval()
        current = block.synaptic_current(model.prepare_input(torch.as_tensor(x, dtype=torch.float32)[None]))
        spikes = block.neuron(current)
    neuron = int(spikes[0].sum(0).argmax())
    drive = current[0, :, neuron].double().numpy()
    bounds = block.neuron.bounds
    a_values = np.linspace(*bounds["a"], grid)
    b_values = np.linspace(*bounds["b"], grid)
    a_grid, b_grid = np.meshgrid(a_values, b_values, indexing="ij")
    shape = a_grid.ravel().shape
    alpha = np.full(shape, float(block.neuron.alpha[neuron]))
    beta = np.full(shape, float(block.neuron.beta[neuron]))
    params = NeuronParams(alpha, beta, a_grid.ravel(), b_grid.ravel())
    state = NeuronState(np.zeros(shape), np.zeros(shape), np.zeros(shape))
    counts = np.zeros(shape)
    for value in drive:
        state = adlif_float_step(params, state, value, numpy_heaviside)
        counts += state.s
    return {"neuron": neuron, "a": a_values, "b": b_values, "counts": counts.reshape(a_grid.shape),
            "trained_a": float(block.neuron.a[neuron]), "trained_b": float(block.neuron.b[neuron]),
            "alpha": float(alpha[0]), "beta": float(beta[0])}


def plot_adaptation_grid(data: dict, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from snn_toolchain.train.loop.plots import save_figure  # matplotlib: only when drawing

    fig, ax = plt.subplots(figsize=(5.6, 4.4), layout="constrained")
    extent = [data["b"][0], data["b"][-1], data["a"][0], data["a"][-1]]
    image = ax.imshow(data["counts"], origin="lower", aspect="auto", extent=extent, cmap="viridis")
    ax.plot(data["trained_b"], data["trained_a"], marker="x", color="red", markersize=10, label="trained (a, b)")
    fig.colorbar(image, ax=ax, label="spikes per sample")
    ax.set(xlabel="b (spike-triggered adaptation)", ylabel="a (sub-threshold coupling)",
           title=f"{title}\nneuron {data['neuron']}, alpha {data['alpha']:.3f}, beta {data['beta']:.3f}")
    ax.legend(loc="upper right", fontsize=8)
    return save_figure(fig, path)


def _adaptation_figure(out: Path, data_source) -> tuple[Path, str] | None:
    """Fig. 3 from the first AdLIF+ run of the sweep (with or without delays)."""

    for variant in ("AdLIF+", "delay-AdLIF+"):
        candidates = sorted((out / variant).glob("seed*/best.pt"))
        if not candidates:
            continue
        model = load_model(candidates[0])
        config = TrainConfig(**load_checkpoint(candidates[0])["config"])
        x, _ = data_source.load(config).test[0]
        data = adaptation_grid(model, x.numpy())
        name = f"{variant} {candidates[0].parent.name}, test sample 0"
        return plot_adaptation_grid(data, out / "adaptation_grid.png", name), name
    return None


def write_sweep_report(out: Path, table: dict[str, dict], runs: dict[str, list[dict]], data_source) -> str:
    """Write OUT/sweep.md and its figures; returns the markdown."""
    out = Path(out)
    figures = []
    if table:
        figures.append(("Fig. 5: accuracy per seed", plot_seeds(table, out / "seeds.png")))
    adaptation = _adaptation_figure(out, data_source)
    if adaptation:
        figures.append((f"Fig. 3: spike count over (a, b), {adaptation[1]}", adaptation[0]))
    any_run = next((r for rs in runs.values() for r in rs), {})
    config = any_run.get("config", {})
    headline = headline_label(any_run)
    batches = sorted({r.get("config", {}).get("batch_size") for rs in runs.values() for r in rs} - {None})
    # --valid-fraction 0: "validation" was the test split, so no column of the table is honest
    no_validation = ("**No validation split** (`--valid-fraction 0`): the test split stood in for validation, "
                     "so the validation-selected columns are test-selected too; no figure here is an estimate "
                     "of accuracy on unseen data." if any_run.get("validation_is_test") else "")
    text = [
        "# Sweep: the paper's Table 1 and its analyses", "",
        f"Data: {any_run.get('data', 'n/a')}.",
        f"Settings: preset {config.get('preset')}, batch {'/'.join(map(str, batches)) or 'n/a'}"
        + (f" (halved until an epoch has {config['min_updates']} updates)" if config.get("min_updates") else "")
        + f", norm {config.get('norm')}, bounds {config.get('bounds') or 'the variant defaults'}, "
        f"evaluation from the {config.get('eval_init')} initial state, protocol of the saved models "
        f"{config.get('protocol')}, augmentation {config.get('augment') or 'none'}, {config.get('epochs')} epochs.", "",
        "## Table 1", "",
        "Test accuracy in %. *Validation-selected*: the epoch with the best validation accuracy (honest). "
        f"*{PAPER_PROTOCOL_LABEL}*: the best test accuracy over the epochs, as the paper selected; not an estimate "
        "of accuracy on unseen data. Spread is the sample standard deviation over seeds.", "",
        *([no_validation, ""] if no_validation else []),
        table1_markdown(table),
        f"Orderings claimed by the paper, on the {headline} means:", "",
        *ordering_lines(table), "",
        "## Deployment: initial state, delay rounding, Table 4", "",
        "The selected model on the test split, mean over seeds: from the zero initial state with integer delays "
        "(what Lava and Loihi 2 run), from the uniform initial state (the paper's training state), and with the "
        "trained fractional delays.", "",
        deployment_markdown(table), "",
        "## Figures", "",
        *[f"- {caption}: ![{caption}]({path.name})" for caption, path in figures], "",
    ]
    markdown = "\n".join(text)
    write_text(out / "sweep.md", markdown)
    return markdown
