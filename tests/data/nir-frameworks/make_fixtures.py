"""Make the framework graphs of tests/test_nir_frameworks.py (README.md in this folder says which
environment runs which part, and the versions).

    python make_fixtures.py snntorch             # this project's venv (snntorch 1.0.0, nir 1.0.8)
    python make_fixtures.py ours-for-sinabs      # this project's venv: our LIF export for Sinabs
    python make_fixtures.py norse sinabs sinabs-reads-ours   # a venv with norse 1.1.0, sinabs 3.1.3, nir 1.0.4

Each network is 30-16-5, built as that framework's users build it, with random weights scaled so
that both layers fire; every one runs the same 8 samples x 40 steps of random spikes (numpy seed
1, rate 0.15). A graph ``NAME.nir`` comes with ``NAME.npz``: ``x`` (8, 40, 30), the framework's
own spikes per layer ``spikes0``, ``spikes1`` (8, 40, n; counts for Sinabs' MultiSpike) and
``scores`` (the last layer's output summed over the steps).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
N_IN, HIDDEN, CLASSES, SAMPLES, STEPS = 30, 16, 5, 8, 40


def spike_inputs() -> np.ndarray:
    return (np.random.default_rng(1).random((SAMPLES, STEPS, N_IN)) < 0.15).astype(np.float32)


def save(name: str, graph, x: np.ndarray, spikes: list, scores) -> None:
    import nir

    nir.write(HERE / f"{name}.nir", graph)
    np.savez_compressed(HERE / f"{name}.npz", x=x, spikes0=spikes[0], spikes1=spikes[1], scores=scores)
    print(name, [float(s.sum()) for s in spikes])


def make_snntorch() -> None:
    import snntorch as snn
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(N_IN, HIDDEN),
        snn.Leaky(beta=torch.rand(HIDDEN) * 0.3 + 0.65, threshold=torch.ones(HIDDEN), init_hidden=True,
                  reset_mechanism="zero"),
        torch.nn.Linear(HIDDEN, CLASSES),
        snn.Leaky(beta=torch.full((CLASSES,), 0.85), threshold=torch.ones(CLASSES), init_hidden=True, output=True,
                  reset_mechanism="zero"))
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[2].weight.mul_(2.0)
        net[0].bias.fill_(0.05)
    x = spike_inputs()
    spikes = [[], []]
    with torch.no_grad():
        for t in range(STEPS):
            hidden = net[1](net[0](torch.as_tensor(x[:, t])))
            out, _ = net[3](net[2](hidden))
            spikes[0].append(hidden)
            spikes[1].append(out)
    spikes = [torch.stack(s, 1).numpy() for s in spikes]
    graph = export_to_nir(net, torch.zeros(1, N_IN), ignore_dims=[0])
    save("snntorch_leaky", graph, x, spikes, spikes[1].sum(1))


def _run_norse(net, x: np.ndarray) -> list:
    spikes, state = [[], []], None
    with torch.no_grad():
        for t in range(STEPS):
            current = net[0](torch.as_tensor(x[:, t]))
            z0, s0 = net[1](current, state[0] if state else None)
            z1, s1 = net[3](net[2](z0), state[1] if state else None)
            state = (s0, s1)
            spikes[0].append(z0)
            spikes[1].append(z1)
    return [torch.stack(s, 1).numpy() for s in spikes]


def make_norse() -> None:
    """Norse's cells with their default parameters (LIFCell: tau_mem 10 ms, tau_syn 5 ms; LIFBoxCell:
    tau_mem 10 ms; dt 1 ms), written by norse.torch.to_nir at its default dt = 1e-3."""
    import norse.torch as norse

    x = spike_inputs()
    for name, cell, gains in (("norse_lifcell", norse.LIFCell, (8.0, 8.0)),
                              ("norse_lifbox", norse.LIFBoxCell, (40.0, 40.0))):
        torch.manual_seed(0)
        net = torch.nn.ModuleList([torch.nn.Linear(N_IN, HIDDEN), cell(), torch.nn.Linear(HIDDEN, CLASSES), cell()])
        with torch.no_grad():
            net[0].weight.mul_(gains[0])
            net[2].weight.mul_(gains[1])
        spikes = _run_norse(net, x)
        sequential = norse.SequentialState(*net)
        save(name, norse.to_nir(sequential, torch.zeros(1, N_IN)), x, spikes, spikes[1].sum(1))


def _run_sinabs(graph_or_net, x: np.ndarray, from_graph: bool) -> tuple:
    import sinabs

    net = sinabs.from_nir(graph_or_net, batch_size=x.shape[0]) if from_graph else graph_or_net
    names = ["hidden0", "hidden1"] if from_graph else ["1", "3"]
    recorded = {}
    for key in names:
        module = getattr(net, key) if from_graph else net[int(key)]
        module.register_forward_hook(lambda m, i, o, key=key: recorded.__setitem__(key, o.detach()))
    inputs = torch.as_tensor(x)
    with torch.no_grad():
        out = net(inputs.reshape(-1, N_IN)) if from_graph else net(inputs)
    out = out[0] if isinstance(out, tuple) else out
    spikes = [recorded[k].reshape(x.shape[0], x.shape[1], -1).numpy() for k in names]
    return spikes, out.reshape(x.shape[0], x.shape[1], -1).sum(1).numpy()


def make_sinabs() -> None:
    """sinabs.layers.LIF with its defaults (MultiSpike, MembraneSubtract, norm_input=True), tau_mem
    20 steps, written by sinabs.to_nir."""
    import sinabs
    import sinabs.layers as sl

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(N_IN, HIDDEN), sl.LIF(tau_mem=20.0), torch.nn.Linear(HIDDEN, CLASSES),
                              sl.LIF(tau_mem=20.0))
    with torch.no_grad():
        net[0].weight.mul_(80.0)
        net[2].weight.mul_(40.0)
    x = spike_inputs()
    spikes, scores = _run_sinabs(net, x, from_graph=False)
    for layer in (net[1], net[3]):
        layer.reset_states()
    graph = sinabs.to_nir(net, torch.zeros(1, STEPS, N_IN))
    save("sinabs_lif", graph, x, spikes, scores)


def make_ours_for_sinabs() -> None:
    """Our LIF export for Sinabs (``--nir-target sinabs``) of tests/nir_support.py's ``active_lif``
    network (LIF, no delays, latency 0)."""
    sys.path.insert(0, str(HERE.parents[1]))
    from nir_support import active_lif

    from snn_toolchain.export.nir_export import model_to_nir, write_nir

    write_nir(model_to_nir(active_lif(), target="sinabs"), HERE / "ours_for_sinabs.nir")
    np.savez_compressed(HERE / "ours_for_sinabs.npz", x=spike_inputs())


def make_sinabs_reads_ours() -> None:
    import nir

    x = np.load(HERE / "ours_for_sinabs.npz")["x"]
    spikes, scores = _run_sinabs(nir.read(HERE / "ours_for_sinabs.nir"), x, from_graph=True)
    np.savez_compressed(HERE / "ours_for_sinabs.npz", x=x, spikes0=spikes[0], spikes1=spikes[1], scores=scores)
    print("sinabs reads ours", [float(s.sum()) for s in spikes])


if __name__ == "__main__":
    makers = {"snntorch": make_snntorch, "norse": make_norse, "sinabs": make_sinabs,
              "ours-for-sinabs": make_ours_for_sinabs, "sinabs-reads-ours": make_sinabs_reads_ours}
    for part in sys.argv[1:] or ["snntorch"]:
        makers[part]()
