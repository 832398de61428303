"""A reference float simulation of the NIR graphs this toolchain reads and writes: the meaning of a
graph, step by step, in float64 numpy, as docs/nir.md states it (forward Euler at ``dt``, strict
thresholds, LIF/CubaLIF/IF reset to ``v_reset``, ``Delay`` in whole steps, the AdLIF subgraph as
the AdLIF float step it encodes). It is what an imported graph is compared with before quantization, and it checks
that our export says exactly what our float model computes.

A time constant of ``inf`` (``dt / tau = 0``) is a neuron whose membrane never moves: from the zero
state it never spikes. Our export writes a neuron with alpha = 1 so (docs/nir.md), and it is read
back as alpha = 1, whatever its ``r`` (no ``0 * inf``).
"""

from __future__ import annotations

import numpy as np

from snn_toolchain.export.nir_export import ADLIF_SUBGRAPH, NIR_METADATA_KEY
from snn_toolchain.export.nir_graph import NirImportError, adlif_subgraph_params, node_chain, real_values
from snn_toolchain.neurons.dynamics import NeuronState, adlif_float_step, numpy_heaviside


def _vector(values, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(values, dtype=np.float64).reshape(-1) if np.size(values) == n
                           else np.asarray(values, dtype=np.float64), (n,))


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
    """LIF, CubaLIF or IF: Euler step, strict threshold, reset to v_reset."""

    def __init__(self, node, kind: str, dt: float, batch: int, n: int):
        self.kind, self.dt = kind, dt
        self.r = _vector(node.r, n)
        self.v_th = _vector(node.v_threshold, n)
        self.v_reset = np.zeros(n) if getattr(node, "v_reset", None) is None else _vector(node.v_reset, n)
        self.v_leak = np.zeros(n) if kind == "IF" else _vector(node.v_leak, n)
        self.k = None if kind == "IF" else dt / _vector(node.tau if kind == "LIF" else node.tau_mem, n)
        if kind == "CubaLIF":
            self.k_syn, self.w_in, self.i = dt / _vector(node.tau_syn, n), _vector(node.w_in, n), np.zeros((batch, n))
        self.v = np.zeros((batch, n))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.kind == "CubaLIF":
            self.i = self.i + self.k_syn * (self.w_in * x - self.i)
            x = self.i
        if self.kind == "IF":
            self.v = self.v + self.dt * self.r * x
        else:   # tau = inf (k = 0): the membrane stays where it is, even for an infinite r
            moving = self.k != 0
            self.v = self.v + np.where(moving, self.k * (self.v_leak - self.v + np.where(moving, self.r, 0.0) * x), 0.0)
        spikes = self.v > self.v_th
        self.v = np.where(spikes, self.v_reset, self.v)
        return spikes.astype(np.float64)


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


def simulate_nir(graph, inputs: np.ndarray, dt: float | None = None) -> tuple[np.ndarray, list]:
    """Run ``inputs`` (batch, steps, channels) through ``graph``; returns (scores (batch, classes):
    the output summed over the steps, which for a spiking last layer is its spike counts; the spikes
    (batch, steps, n) of every spiking node, in order).

    A graph whose metadata gives ``latency_steps`` (this toolchain's, docs/nir.md) is run as the
    model it came from runs: each connection delivers its input that many steps late, the inputs get
    that many zero steps per connection appended (the spikes then cover those run steps too), and a
    summing readout counts its bias once per input step."""
    import nir

    metadata = graph.metadata if isinstance(graph.metadata, dict) else {}
    dt = float(dt if dt is not None else metadata["dt"])
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
            stages.append(_Spiking(node, kind, dt, batch, width))
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
