"""The end-of-run figures: learning curves, the trained delay distribution per layer and the trained
neuron parameter distributions per layer (the paper's appendix figures). PNG files, Agg backend."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from snn_toolchain.atomic import atomic_path  # noqa: E402
from snn_toolchain.neurons.dynamics import PARAM_NAMES  # noqa: E402


def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` as a PNG atomically and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def plot_curves(history: list[dict], path: Path) -> Path:
    """Loss, accuracy (with the epoch selected on validation marked) and both learning rates."""
    epochs = [row["epoch"] for row in history]
    best = max(history, key=lambda row: row["valid_acc"])
    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(1, 3, figsize=(14, 3.6), layout="constrained")
    ax_loss.plot(epochs, [r["train_loss"] for r in history], label="train")
    ax_loss.plot(epochs, [r["valid_loss"] for r in history], label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.plot(epochs, [100 * r["train_acc"] for r in history], label="train")
    ax_acc.plot(epochs, [100 * r["valid_acc"] for r in history], label="validation")
    if all("test_acc" in r for r in history):
        ax_acc.plot(epochs, [100 * r["test_acc"] for r in history], label="test", alpha=0.6)
    ax_acc.axvline(best["epoch"], color="grey", linestyle=":", label=f"selected (epoch {best['epoch']})")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    ax_lr.plot(epochs, [r["lr_weights"] for r in history], label="weights")
    delays = [r["lr_delays"] for r in history if r["lr_delays"] not in ("", None)]
    if len(delays) == len(epochs):
        ax_lr.plot(epochs, delays, label="delays")
    ax_lr.set(xlabel="epoch", ylabel="learning rate", title="learning rates", yscale="log")
    for ax in (ax_loss, ax_acc, ax_lr):
        ax.grid(alpha=0.3)
        ax.legend()
    return save_figure(fig, path)


def layer_names(model) -> list[str]:
    return [f"hidden {i + 1}" for i in range(len(model.blocks))] + ["readout"]


def plot_delays(model, path: Path) -> Path:
    """Histogram of the integer (deployed) delays of each connection layer, in time steps."""
    synapses = [block.synapse for block in model.blocks] + [model.readout.synapse]
    fig, axes = plt.subplots(1, len(synapses), figsize=(4 * len(synapses), 3.2), layout="constrained")
    for ax, synapse, name in zip(np.atleast_1d(axes), synapses, layer_names(model)):
        delays = synapse.integer_delays().cpu().numpy().ravel()
        ax.hist(delays, bins=np.arange(synapse.max_delay + 2) - 0.5, color="tab:blue", alpha=0.8)
        ax.set(title=f"{name}: mean {delays.mean():.1f} steps", xlabel="delay (steps of 10 ms)", ylabel="synapses")
        ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_neuron_parameters(model, path: Path) -> Path:
    """Distributions of alpha, beta (decays per step, fractions) and a, b, one row per hidden layer."""
    fig, axes = plt.subplots(len(model.blocks), len(PARAM_NAMES), figsize=(13, 2.8 * len(model.blocks)),
                             squeeze=False, layout="constrained")
    for row, block in enumerate(model.blocks):
        for col, name in enumerate(PARAM_NAMES):
            values = getattr(block.neuron, name).detach().cpu().numpy()
            low, high = block.neuron.bounds[name]
            ax = axes[row, col]
            ax.hist(values, bins=30, range=(low, high) if high > low else None, color="tab:orange", alpha=0.85)
            ax.set(title=f"hidden {row + 1}: {name}", xlabel=f"bounds [{low:.3g}, {high:.3g}]")
            ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_training_run(model, history: list[dict], run_dir: Path) -> list[Path]:
    run_dir = Path(run_dir)
    return [plot_curves(history, run_dir / "curves.png"), plot_delays(model, run_dir / "delays.png"),
            plot_neuron_parameters(model, run_dir / "neuron_parameters.png")]
