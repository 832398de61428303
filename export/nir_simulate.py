"""A reference float simulation of the NIR graphs this toolchain reads and writes: the meaning of a
graph, step by step, in float64 numpy, as docs/nir.md states it (forward Euler at ``dt``, strict
thresholds, LIF/CubaLIF/IF reset to ``v_reset``, ``Delay`` in whole steps, the AdLIF subgraph in the
order w, u, s). It is what an imported graph is compared with before quantization, and it checks
that our export says exactly what our float model computes.
"""

from __future__ import annotations

import numpy as np

from snn_toolchain.export.nir_export import ADLIF_SUBGRAPH, NIR_METADATA_KEY
from snn_toolchain.export.nir_import import NirImportError, _chain


def _vector(values, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(values, dtype=np.float64).reshape(-1) if np.size(values) == n
                           else np.asarray(values, dtype=np.float64), (n,))


class _Delay:
    def __init__(self, node, dt: float):
        self.steps = np.round(np.asarray(node.delay, dtype=np.float64).reshape(-1) / dt).astype(np.int64)
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
        else:
            self.v = self.v + self.k * (self.v_leak - self.v + self.r * x)
        spikes = self.v > self.v_th
        self.v = np.where(spikes, self.v_reset, self.v)
        return spikes.astype(np.float64)


class _AdLIF:
    """This toolchain's AdLIF subgraph (nir_export.adlif_subgraph), in its stated order."""

    def __init__(self, graph, dt: float, batch: int, n: int):
        nodes = graph.nodes
        self.k_u, self.k_w = dt / _vector(nodes["u"].tau, n), dt / _vector(nodes["w"].tau, n)
        self.r_u, self.r_w = _vector(nodes["u"].r, n), _vector(nodes["w"].r, n)
        self.adaptation, self.coupling = _vector(nodes["adaptation"].scale, n), _vector(nodes["coupling"].scale, n)
        self.jump, self.reset = _vector(nodes["jump"].scale, n), _vector(nodes["reset"].scale, n)
        self.threshold = _vector(nodes["spike"].threshold, n)
        self.u, self.w, self.s = (np.zeros((batch, n)) for _ in range(3))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.w = self.w + self.k_w * (self.r_w * (self.coupling * self.u + self.jump * self.s) - self.w)
        self.u = self.u + self.k_u * (self.r_u * (x + self.adaptation * self.w + self.reset * self.s) - self.u)
        self.s = (self.u > self.threshold).astype(np.float64)
        return self.s


def simulate_nir(graph, inputs: np.ndarray, dt: float | None = None) -> tuple[np.ndarray, list]:
    """Run ``inputs`` (batch, steps, channels) through ``graph``; returns (scores (batch, classes):
    the output summed over the steps, which for a spiking last layer is its spike counts; the spikes
    (batch, steps, n) of every spiking node, in order)."""
    import nir

    dt = float(dt if dt is not None else graph.metadata["dt"])
    inputs = np.asarray(inputs, dtype=np.float64)
    batch, steps, _ = inputs.shape
    stages, spiking = [], []
    width = inputs.shape[2]
    for name in _chain(graph, "the graph")[1:-1]:
        node = graph.nodes[name]
        kind = type(node).__name__
        if isinstance(node, (nir.Affine, nir.Linear)):
            weight = np.asarray(node.weight, dtype=np.float64)
            bias = np.asarray(node.bias, dtype=np.float64) if isinstance(node, nir.Affine) else 0.0
            stages.append(lambda x, w=weight, b=bias: x @ w.T + b)
            width = weight.shape[0]
        elif isinstance(node, nir.Delay):
            stages.append(_Delay(node, dt))
        elif kind in ("LIF", "CubaLIF", "IF"):
            stages.append(_Spiking(node, kind, dt, batch, width))
            spiking.append(len(stages) - 1)
        elif isinstance(node, nir.NIRGraph) and node.metadata.get(NIR_METADATA_KEY) == ADLIF_SUBGRAPH:
            stages.append(_AdLIF(node, dt, batch, width))
            spiking.append(len(stages) - 1)
        else:
            raise NirImportError(f"node '{name}' ({kind}): not simulated (not a node this toolchain deploys)")
    recorded = [np.zeros((batch, steps, 0)) for _ in spiking]
    records = [[] for _ in spiking]
    total = None
    for t in range(steps):
        x = inputs[:, t]
        for index, stage in enumerate(stages):
            x = stage(x)
            if index in spiking:
                records[spiking.index(index)].append(x)
        total = x if total is None else total + x
    recorded = [np.stack(r, axis=1) for r in records]
    return total, recorded
