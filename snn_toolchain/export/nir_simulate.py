"""A reference float simulation of the NIR graphs this toolchain reads and writes: the meaning of a
graph, step by step, in float64 numpy, as docs/nir.md states it (for the spec: forward Euler at
``dt``, strict thresholds, LIF/CubaLIF/IF reset to ``v_reset``; for snnTorch's, Norse's and
Sinabs' graphs their conventions, ``nir_conventions.py``; ``Delay`` in whole steps, the AdLIF
subgraph as the AdLIF float step it encodes). It is what an imported graph is compared with before quantization, and it checks
that our export says exactly what our float model computes.

A time constant of ``inf`` (``dt / tau = 0``) is a neuron whose membrane never moves: from the zero
state it never spikes. Our export writes a neuron with alpha = 1 so (docs/nir.md), and it is read
back as alpha = 1, whatever its ``r`` (no ``0 * inf``).
"""

from __future__ import annotations

import numpy as np

from snn_toolchain.export.nir_conventions import NeuronSteps, neuron_steps, recognise
from snn_toolchain.export.nir_export import ADLIF_SUBGRAPH, NIR_METADATA_KEY
from snn_toolchain.export.nir_graph import NirImportError, adlif_subgraph_params, node_chain, real_values
from snn_toolchain.neurons.dynamics import NeuronState, adlif_float_step, numpy_heaviside


class _Delay:
    def __init__(self, node, dt: float, name: str = "a Delay"):
        seconds = np.asarray(node.delay, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(seconds)) or np.any(seconds < 0):
            index = int(np.argmax(~np.isfinite(seconds) | (seconds < 0)))
            raise NirImportError(f"node '{name}': delay[{index}] = {seconds[index]:g} s is not a finite, non-negative "
                                 "number of seconds; fix the graph")
        self.steps = np.round(seconds / dt).astype(np.int64)
        self.history: list = []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.history.append(x)
        out = np.zeros_like(x)
        t = len(self.history) - 1
        for d in np.unique(self.steps):
            if t - d >= 0:
                channels = self.steps == d
                out[:, channels] = self.history[t - d][:, channels]
        return out


class _Spiking:
    """LIF, CubaLIF or IF, one step as the graph's convention reads it (``neuron_steps``)."""

    def __init__(self, steps: NeuronSteps, batch: int, n: int):
        self.steps = steps
        self.keep = 1.0 - steps.voltage_decay
        self.i = np.zeros((batch, n)) if steps.current_decay is not None else None
        self.v = np.zeros((batch, n))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        steps = self.steps
        if self.i is not None:
            self.i = (1.0 - steps.current_decay) * self.i + steps.current_input * x
            x = self.i
        # tau = inf: decay 0 and input 0, the membrane stays where it is
        self.v = self.keep * self.v + steps.voltage_input * x + steps.leak
        if steps.multi_spike:     # Sinabs' MultiSpike: trunc(v / v_threshold) where v > 0
            spikes = np.where(self.v > 0, np.trunc(self.v / steps.v_threshold), 0.0)
        else:
            spikes = (self.v > steps.v_threshold).astype(np.float64)
        if steps.subtract_reset:
            self.v = self.v - spikes * steps.v_threshold
        else:
            self.v = np.where(spikes > 0, steps.v_reset, self.v)
        return spikes


class _AdLIF:
    """This toolchain's AdLIF subgraph (nir_export.adlif_subgraph): its Euler step is, exactly, the
    AdLIF float step, so it runs that one definition (snn_toolchain.neurons.dynamics)."""

    def __init__(self, graph, name: str, dt: float, batch: int, n: int):
        self.params = adlif_subgraph_params(graph, n, dt, name)
        self.state = NeuronState(*(np.zeros((batch, n)) for _ in range(3)))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.state = adlif_float_step(self.params, self.state, x, numpy_heaviside)
        return self.state.s


class _Latency:
    """Every channel ``steps`` steps late: the latency a connection adds (``latency_steps``)."""

    def __init__(self, steps: int):
        self.steps, self.history = steps, []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.history.append(x)
        t = len(self.history) - 1
        return self.history[t - self.steps] if t >= self.steps else np.zeros_like(x)


def simulate_nir(graph, inputs: np.ndarray, dt: float | None = None,
                 source: str | None = None) -> tuple[np.ndarray, list]:
    """Run ``inputs`` (batch, steps, channels) through ``graph``; returns (scores (batch, classes):
    the output summed over the steps, which for a spiking last layer is its spike counts; the spikes
    (batch, steps, n) of every spiking node, in order).

    A graph whose metadata gives ``latency_steps`` (this toolchain's, docs/nir.md) is run as the
    model it came from runs: each connection delivers its input that many steps late, the inputs get
    that many zero steps per connection appended (the spikes then cover those run steps too), and a
    summing readout counts its bias once per input step.

    The neurons are read as ``import-nir`` reads them: ``source`` names the convention
    (``nir_conventions.SOURCES``), None recognises it; ``dt`` in seconds (None: the graph's or
    its source's). Spikes are counts (Sinabs' MultiSpike may give more than 1 in a step)."""
    import nir

    metadata = graph.metadata if isinstance(graph.metadata, dict) else {}
    convention = recognise(graph, "the graph", source, dt)
    dt = convention.dt
    latency = int(metadata.get("latency_steps", 0))
    inputs = np.asarray(inputs, dtype=np.float64)
    batch, steps, _ = inputs.shape
    stages, spiking = [], []
    width = inputs.shape[2]
    connection_starts, readout_bias = 0, 0.0
    starts_connection = True
    for name in node_chain(graph, "the graph")[1:-1]:
        node = graph.nodes[name]
        kind = type(node).__name__
        if latency and starts_connection and isinstance(node, (nir.Affine, nir.Linear, nir.Delay)):
            stages.append(_Latency(latency))
            connection_starts += 1
        starts_connection = False
        if isinstance(node, (nir.Affine, nir.Linear)):
            weight = real_values(node.weight, "weight", name)  # complex numbers refused, not truncated
            bias = real_values(node.bias, "bias", name) if isinstance(node, nir.Affine) else 0.0
            stages.append(lambda x, w=weight, b=bias: x @ w.T + b)
            width, readout_bias = weight.shape[0], bias
        elif isinstance(node, nir.Delay):
            stages.append(_Delay(node, dt, name))
        elif kind in ("LIF", "CubaLIF", "IF"):
            stages.append(_Spiking(neuron_steps(node, kind, width, convention, name), batch, width))
            spiking.append(len(stages) - 1)
            starts_connection, readout_bias = True, 0.0
        elif isinstance(node, nir.NIRGraph) and node.metadata.get(NIR_METADATA_KEY) == ADLIF_SUBGRAPH:
            stages.append(_AdLIF(node, name, dt, batch, width))
            spiking.append(len(stages) - 1)
            starts_connection, readout_bias = True, 0.0
        else:
            raise NirImportError(f"node '{name}' ({kind}): not simulated (not a node this toolchain deploys)")
    if latency:
        inputs = np.pad(inputs, ((0, 0), (0, latency * connection_starts), (0, 0)))
    records = [[] for _ in spiking]
    total = None
    for t in range(inputs.shape[1]):
        x = inputs[:, t]
        for index, stage in enumerate(stages):
            x = stage(x)
            if index in spiking:
                records[spiking.index(index)].append(x)
        total = x if total is None else total + x
    recorded = [np.stack(r, axis=1) for r in records]
    if latency:   # the readout's bias once per input step, not per run step
        total = total - (inputs.shape[1] - steps) * readout_bias
    return total, recorded
