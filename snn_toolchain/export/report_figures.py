"""The report's figures: a spike raster, firing rates per layer beside the paper's Table 4, the
deployed delays, the neuron parameters and the energy breakdown. PNG files, written atomically
with the figure writer of ``train/loop/plots.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from snn_toolchain.export.activity import layer_names
from snn_toolchain.train.loop.plots import save_figure
from snn_toolchain.train.sweeps.report import PAPER_TABLE4

PAPER_TABLE4_SPIKES = {name.lower(): spikes for name, spikes in PAPER_TABLE4.items()}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_raster(raster: dict, class_names: Optional[list], path: Path) -> Path:
    """Input counts, hidden spikes and the readout's running class scores of one sample."""
    plt = _pyplot()
    hidden = raster["hidden"]
    ratios = [1.2] + [1.0] * len(hidden) + [0.8]
    fig, axes = plt.subplots(len(ratios), 1, figsize=(10, 2.3 * len(ratios)), sharex=True,
                             gridspec_kw={"height_ratios": ratios}, layout="constrained")
    inputs = raster["input"]
    image = axes[0].imshow(inputs.T, aspect="auto", origin="lower", cmap="Greys", interpolation="nearest")
    fig.colorbar(image, ax=axes[0], label="spikes per bin")
    axes[0].set(ylabel="input channel", title=f"sample {raster['index']}: input ({int(inputs.sum())} spikes)")
    for ax, (index, spikes) in zip(axes[1:], enumerate(hidden)):
        steps, neurons = np.nonzero(spikes)
        ax.scatter(steps, neurons, s=2, marker="|", color="tab:blue")
        ax.set(ylabel="neuron", ylim=(-0.5, spikes.shape[1] - 0.5),
               title=f"hidden {index + 1}: {int(spikes.sum())} spikes, "
                     f"{int((spikes.sum(axis=0) > 0).sum())} of {spikes.shape[1]} neurons fire")
    scores = np.cumsum(raster["readout_input"], axis=0)
    image = axes[-1].imshow(scores.T, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=axes[-1], label="summed input")
    name = (lambda i: class_names[i] if class_names and i < len(class_names) else str(i))
    axes[-1].set(ylabel="class", xlabel="time step",
                 title=f"readout: running sum of its synaptic input (label {name(raster['label'])}, "
                       f"prediction {name(raster['prediction'])})")
    return save_figure(fig, path)


def plot_rates(activity: list, variant: str, path: Path) -> Path:
    """Spikes per neuron per sample by layer, and each hidden neuron's rate, sorted."""
    plt = _pyplot()
    spiking = [a for a in activity if a.role in ("input", "hidden", "output")]
    fig, (ax_bar, ax_sorted) = plt.subplots(1, 2, figsize=(12, 3.8), layout="constrained")
    values = [a.spikes_per_neuron_per_sample for a in spiking]
    bars = ax_bar.bar([a.name for a in spiking], values, color=["tab:gray"] + ["tab:blue"] * (len(spiking) - 1))
    ax_bar.bar_label(bars, fmt="%.2f")
    paper = PAPER_TABLE4_SPIKES.get(f"delay-{variant}") if variant else None
    if paper is not None:
        ax_bar.axhline(paper, color="tab:red", linestyle="--", label=f"paper Table 4, delay-{variant} on SHD: {paper}")
        ax_bar.legend(loc="upper right", fontsize=8)
    ax_bar.set(ylabel="spikes per neuron per sample", title="activity by layer")
    for a in spiking[1:]:
        rates = np.sort(a.per_neuron_spikes / max(a.samples, 1))[::-1]
        ax_sorted.plot(np.arange(len(rates)), rates, label=f"{a.name} ({100 * a.silent_share:.0f}% silent per sample)")
    ax_sorted.set(xlabel="neuron (sorted)", ylabel="spikes per sample", title="per-neuron rates", yscale="symlog")
    ax_sorted.legend(fontsize=8)
    for ax in (ax_bar, ax_sorted):
        ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_delays(network, path: Path) -> Path:
    """Histogram of the integer delays (steps) stored in the .net file, per connection layer."""
    plt = _pyplot()
    names = layer_names(network)[1:]
    fig, axes = plt.subplots(1, len(network.layers), figsize=(4 * len(network.layers), 3.2), layout="constrained",
                             squeeze=False)
    for ax, layer, name in zip(axes[0], network.layers, names):
        delays = np.asarray(layer.delay).ravel()
        ax.hist(delays, bins=np.arange(int(delays.max(initial=0)) + 2) - 0.5, color="tab:blue", alpha=0.85)
        ax.set(title=f"into {name}: mean {delays.mean():.2f}, max {int(delays.max(initial=0))}",
               xlabel="delay (steps)", ylabel="synapses")
        ax.grid(alpha=0.3)
    return save_figure(fig, path)


def neuron_parameter_fractions(layer) -> dict:
    """A hidden layer's neuron parameters as the float model sees them: alpha, beta, a (fractions)
    and b (threshold units); for a CUBA layer alpha = 1 - vDecay / 4096 only."""
    kind = layer.neuron_kind
    return {} if kind is None or kind.fractions is None else kind.fractions(layer.neuron)


def plot_neuron_parameters(network, path: Path) -> Path:
    plt = _pyplot()
    hidden = [layer for layer in network.layers if layer.neuron is not None]
    names = ("alpha", "beta", "a", "b")
    units = {"alpha": "membrane decay per step", "beta": "adaptation decay per step",
             "a": "membrane -> adaptation coupling", "b": "adaptation jump (threshold units)"}
    fig, axes = plt.subplots(max(len(hidden), 1), len(names), figsize=(13, 2.8 * max(len(hidden), 1)),
                             squeeze=False, layout="constrained")
    for row, layer in enumerate(hidden):
        values = neuron_parameter_fractions(layer)
        for col, name in enumerate(names):
            ax = axes[row, col]
            if name in values:
                ax.hist(values[name], bins=30, color="tab:orange", alpha=0.85)
                ax.set(title=f"hidden {row + 1}: {name}", xlabel=units[name])
            else:
                ax.text(0.5, 0.5, f"{name}: not in a {layer.neuron_variant} layer", ha="center", va="center",
                        transform=ax.transAxes)
                ax.set_axis_off()
            ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_energy(energy: dict, comparison: dict, label: str, path: Path) -> Path:
    plt = _pyplot()
    names = ["SNN estimate", "dense float32", "dense int8", "GRU float32", "GRU int8"]
    values = [energy["per_sample"]["total_pj"], comparison["dense"]["float32_pj"], comparison["dense"]["int8_pj"],
              comparison["gru"]["float32_pj"], comparison["gru"]["int8_pj"]]
    fig, ax = plt.subplots(figsize=(9, 3.8), layout="constrained")
    bars = ax.bar(names, [v / 1e6 for v in values], color=["tab:blue"] + ["tab:gray"] * 4)
    ax.bar_label(bars, fmt="%.3g")
    ax.set(ylabel="energy per sample (uJ)", yscale="log",
           title="energy per sample: SNN (counted operations) vs non-spiking networks (45 nm MACs)")
    import textwrap

    fig.text(0.01, -0.02, textwrap.fill(f"SNN figures: {label}", 150), fontsize=7, va="top")
    ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path)
