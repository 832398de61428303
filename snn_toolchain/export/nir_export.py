"""A trained network as a NIR graph (the Neuromorphic Intermediate Representation, ``nir`` 1.0.8),
and the conventions both directions share (``nir_import.py`` reads graphs back; docs/nir.md).

NIR is continuous-time: each node is an ODE with time constants in seconds, and each tool
discretises it with its own time step. Our networks are discrete, one step = ``dt`` (10 ms). The
graph says how to get our steps back:

- **Discretisation: forward Euler at ``dt``**, ``dt`` in the graph's metadata. Euler is exact for
  our update: a LIF ``u[t] = alpha u[t-1] + (1 - alpha) I[t]`` is the Euler step of
  ``tau du/dt = -u + r I`` with ``tau = dt / (1 - alpha)``. snnTorch reads NIR the same way, with
  its own fixed ``dt = 1e-4`` s, so a graph for snnTorch is written with ``dt=1e-4``.
- **LIF variants** (no adaptation): ``Affine`` -> ``LIF`` with ``r = tau / dt`` and the input scale
  ``1 - alpha`` folded into the Affine (its Euler step then adds the Affine's output to the
  membrane as it is), ``v_threshold = 1``, ``v_leak = 0``, ``v_reset = 0``. **Lossy:** NIR's LIF
  resets to ``v_reset``; our float LIF subtracts the threshold one step after a spike. The deployed
  network (Lava's CUBA, ``docs/fixed_point.md``) resets to 0, as NIR does.
- **AdLIF / AdLIF+**: NIR has no adaptive neuron; each layer is a recurrent subgraph (a nested
  ``NIRGraph`` marked ``metadata['snn_toolchain'] = 'adlif'``): ``LI`` u (tau = dt/(1-alpha), r =
  1), ``LI`` w (tau = dt/(1-beta), r = 1/(1-beta)) driven by ``Scale`` a from u and ``Scale`` b
  from the spikes, ``Scale`` -1 from w into u, a ``Threshold`` at 1 giving the spikes, and the
  reset as ``Scale`` -alpha/(1-alpha) from the spikes back into u. Exact, per step in the order
  w, u, s, with w and the reset taking last step's u and s; no other framework reads it as one
  neuron.
- **Per-synapse delays**: NIR's ``Delay`` is one delay per channel. A delay matrix is expanded:
  ``Linear`` fan-out (one-hot, N_in*N_out x N_in) -> ``Delay`` (N_in*N_out, seconds) ->
  ``Affine`` (N_out x N_in*N_out), marked ``metadata['snn_toolchain'] = 'per-synapse-delay'``.
  It costs N_in*N_out intermediate units; above ``MAX_EXPANSION_UNITS`` the export refuses unless
  asked (``allow_large=True``, ``--allow-large-expansion``). Delays are the deployed integers.
- **The readout** is ``Affine`` -> ``Output``: the class scores are that output summed over the
  steps (graph metadata ``readout = 'sum'``), as the summing readout computes them.
- BatchNorm is folded into the Affines, as at export to ``.net``; for graded inputs (GSC) the
  model's input gain is folded into the first Affine and the input encoding is in the metadata.
- **Silent neurons (alpha = 1)**: AdLIF+ trains alpha within [0, 1], and a neuron at the bound
  keeps its membrane, ``u[t] = u[t-1] - s[t-1]``; starting from zero, as deployed, it never moves
  and never spikes. It is written exactly as that: ``tau = inf`` (``dt / tau = 0``), a reset scale
  of 0 and, for LIF, ``r = 1`` (its Affine row is already 0); the import and ``nir_simulate`` read
  ``tau = inf`` as alpha = 1.
- **Readers** (``target``, ``--nir-target``): ``spec`` (the default) is all of the above; for
  snnTorch's, Norse's and Sinabs' NIR readers the LIF layers are written as that reader runs them,
  and delays and AdLIF layers are refused (``nir_targets.py``, which says each reader's ``dt``, LIF
  node and notes). The metadata says the reader (``nir_target``) and how it loads the graph.
- **Refused** (one line naming the layer and what to do; nothing is written): NaN or infinite
  weights, biases, delays or neuron parameters; alpha above 1; beta = 1 in an AdLIF subgraph
  (the adaptation would need an infinite time constant and input scale).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snn_toolchain.atomic import atomic_path
from snn_toolchain.export.nir_conventions import TARGET_KEY
from snn_toolchain.export.nir_targets import (  # noqa: F401 (NirExportError re-exported: the export's error)
    NirExportError,
    check_decay,
    decay_tau,
    folds_input_scale,
    lif_nodes,
    refuse_for_target,
    target_dt,
    target_metadata,
    target_notes,
)
from snn_toolchain.quantized_network import NetworkError
from snn_toolchain.fixed_point import finite
from snn_toolchain.train.model.checkpoint import load_model

NIR_METADATA_KEY = "snn_toolchain"
ADLIF_SUBGRAPH = "adlif"
DELAY_EXPANSION = "per-synapse-delay"
# More intermediate units than this in one per-synapse delay expansion is refused unless asked:
# the SHD preset's layers need 17,920 + 16,384 + 2,560; SSC's 512-wide ones 71,680 + 262,144 + 17,920.
MAX_EXPANSION_UNITS = 100_000


def _as_float(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def _finite(layer: str, what: str, values) -> np.ndarray:
    """``values`` as float64, refused as the ``.net`` export refuses them (``quantization.finite``:
    one line naming the layer, the parameter and the first bad index)."""
    try:
        return finite(layer, what, values)
    except NetworkError as err:
        raise NirExportError(f"{err} (--checkpoint names one); nothing was written") from None


def adlif_subgraph(alpha, beta, a, b, dt: float, variant: str, layer: str = "an AdLIF layer"):
    """The recurrent NIR subgraph of one layer of AdLIF neurons (see the module docstring);
    ``layer`` names it in refusals. A neuron with alpha = 1 is written silent (tau = inf, reset
    scale 0); beta = 1 cannot be written and is refused."""
    import nir

    alpha, beta, a, b = (_as_float(v) for v in (alpha, beta, a, b))
    check_decay(layer, "alpha", alpha, allow_one=True)
    check_decay(layer, "beta", beta, allow_one=False)
    n = alpha.shape[0]
    zeros = np.zeros(n)
    tau_u, silent = decay_tau(alpha, dt)
    tau_w = dt / (1.0 - beta)
    # the reset -alpha/(1-alpha) enters u through dt/tau_u = 1 - alpha; a silent neuron's u never
    # takes input (dt/tau_u = 0), so its reset scale is 0 (not -inf, which would make 0 * inf = NaN)
    reset = np.where(silent, 0.0, -alpha / np.where(silent, 1.0, 1.0 - alpha))
    nodes = {
        "input": nir.Input(input_type={"input": np.array([n])}),
        "u": nir.LI(tau=tau_u, r=np.ones(n), v_leak=zeros),
        "w": nir.LI(tau=tau_w, r=1.0 / (1.0 - beta), v_leak=zeros),
        "spike": nir.Threshold(threshold=np.ones(n)),
        "adaptation": nir.Scale(scale=-np.ones(n)),
        "coupling": nir.Scale(scale=a),
        "jump": nir.Scale(scale=b),
        "reset": nir.Scale(scale=reset),
        "output": nir.Output(output_type={"output": np.array([n])}),
    }
    edges = [("input", "u"), ("w", "adaptation"), ("adaptation", "u"), ("u", "spike"), ("spike", "output"),
             ("u", "coupling"), ("coupling", "w"), ("spike", "jump"), ("jump", "w"), ("spike", "reset"),
             ("reset", "u")]
    return nir.NIRGraph(nodes, edges, metadata={NIR_METADATA_KEY: ADLIF_SUBGRAPH, "variant": variant,
                                                "order": "per step: w from u[t-1], s[t-1]; u from I[t], w[t], "
                                                         "s[t-1]; s[t] = u[t] > 1"})


def _connection(prefix: str, weight: np.ndarray, bias: np.ndarray, delay: np.ndarray, dt: float,
                allow_large: bool) -> tuple[dict, list, str, str]:
    """Nodes and edges of one connection: an Affine, or the per-synapse delay expansion; returns
    (nodes, edges inside, first node, last node)."""
    import nir

    if not delay.any():
        return {prefix: nir.Affine(weight=weight, bias=bias)}, [], prefix, prefix
    n_out, n_in = weight.shape
    units = n_out * n_in
    if units > MAX_EXPANSION_UNITS and not allow_large:
        raise NirExportError(f"layer {prefix}: its per-synapse delays need {units:,} intermediate units in NIR "
                             f"(more than {MAX_EXPANSION_UNITS:,}); pass --allow-large-expansion to write it anyway")
    fan_out = np.zeros((units, n_in))
    fan_out[np.arange(units), np.tile(np.arange(n_in), n_out)] = 1.0          # unit k = j * n_in + i
    gather = np.zeros((n_out, units))
    gather[np.repeat(np.arange(n_out), n_in), np.arange(units)] = weight.reshape(-1)
    marker = {NIR_METADATA_KEY: DELAY_EXPANSION, "in": n_in, "out": n_out}
    nodes = {f"{prefix}_fanout": nir.Linear(weight=fan_out, metadata=marker),
             f"{prefix}_delay": nir.Delay(delay=delay.reshape(-1).astype(np.float64) * dt, metadata=marker),
             prefix: nir.Affine(weight=gather, bias=bias, metadata=marker)}
    edges = [(f"{prefix}_fanout", f"{prefix}_delay"), (f"{prefix}_delay", prefix)]
    return nodes, edges, f"{prefix}_fanout", prefix


def model_to_nir(model, dt: float | None = None, allow_large: bool = False, target: str = "spec"):
    """A trained ``DelaySNN`` (BatchNorm folded, delays rounded as deployed) as a ``nir.NIRGraph``,
    written for ``target``'s reader (``TARGETS``; module docstring, "Readers"); ``dt`` in seconds
    (None: the reader's own, ``target_dt``)."""
    import nir
    import torch

    dt = target_dt(target, dt)
    folded = model.folded().eval()
    variant = model.config["variant"]
    nodes = {"input": nir.Input(input_type={"input": np.array([model.config["n_inputs"]])})}
    edges, previous = [], "input"
    blocks = list(folded.blocks) + [folded.readout]
    with torch.no_grad():
        for index, block in enumerate(blocks):
            synapse = block.synapse
            neuron = getattr(block, "neuron", None)
            name = f"fc{index}" if neuron is not None else "readout"
            layer = f"hidden{index}"
            # every value checked before any is used: a NaN would reach the graph as NaN, a NaN
            # delay as -9.2e16 s (NaN cast to int64)
            gain = _finite(name, "input gain", folded.input_gain) if index == 0 else 1.0
            weight = _finite(name, "weight", synapse.weight.detach()) * gain
            bias = (_finite(name, "bias", synapse.bias.detach()) if synapse.bias is not None
                    else np.zeros(weight.shape[0]))
            delay = _finite(name, "delay", synapse.rounded_delays().detach().cpu()).astype(np.int64)
            params = ([_finite(layer, f"neuron {p}", getattr(neuron, p).detach()) for p in ("alpha", "beta", "a", "b")]
                      if neuron is not None else None)
            refuse_for_target(target, variant, name, layer, delay)
            if neuron is not None and variant == "lif" and folds_input_scale(target):
                check_decay(layer, "alpha", params[0], allow_one=True)
                scale = 1.0 - params[0]
                weight, bias = weight * scale[:, None], bias * scale
            conn_nodes, conn_edges, first, last = _connection(name, weight, bias, delay, dt, allow_large)
            nodes.update(conn_nodes)
            edges += [(previous, first)] + conn_edges
            previous = last
            if neuron is None:
                continue
            if variant == "lif":
                nodes.update(lif_nodes(layer, params[0], dt, target))
            else:
                nodes[layer] = adlif_subgraph(*params, dt=dt, variant=variant, layer=layer)
            edges.append((last, layer))
            previous = layer
    n_classes = model.config["n_classes"]
    nodes["output"] = nir.Output(output_type={"output": np.array([n_classes])})
    edges.append((previous, "output"))
    metadata = {"dt": float(dt), "discretisation": "forward-euler", "readout": "sum",
                "readout_meaning": "class scores = the output summed over the steps",
                "reset": ("LIF: NIR resets to v_reset = 0; the float model subtracts the threshold one step "
                          "later; the deployed network resets to 0" if variant == "lif"
                          else "exact in the AdLIF subgraphs (soft reset, one step after the spike)"),
                "variant": variant, "producer": "snn-toolchain",
                # the model's timing (docs/nir.md): each connection delivers its input this many
                # steps late besides its Delay nodes, as Lava's synapses do; the graph's nodes
                # themselves hold the network without it, which is what tools that do not read this
                # key compute
                "latency_steps": int(getattr(model, "latency", 0))}
    metadata.update(target_metadata(target, dt))
    if target == "sinabs":
        del metadata["dt"]              # its time constants are steps (nir_targets)
    encoding = model.config.get("input_encoding")
    if encoding:
        metadata["input_encoding"] = {"bits": int(encoding["bits"]), "low": list(encoding["low"]),
                                      "high": list(encoding["high"])}
    return nir.NIRGraph(nodes, edges, metadata=metadata)


def _drop_zero_resets(path: Path) -> None:
    """Remove LIF/CubaLIF ``v_reset`` datasets that are all 0: nir 1.0.4 (Sinabs 3.1.3 pins nir
    <= 1.0.4) refuses a LIF with ``v_reset``, and nir 1.0.8 reads one without it as 0, the same."""
    import h5py

    with h5py.File(path, "a") as handle:
        found = []
        handle.visititems(lambda key, item: found.append(item) if isinstance(item, h5py.Group) and "type" in item
                          and item["type"][()] in (b"LIF", b"CubaLIF") and "v_reset" in item else None)
        for group in found:
            if not np.any(group["v_reset"][()]):
                del group["v_reset"]


def write_nir(graph, path: Path | str) -> Path:
    """``nir.write`` atomically: a temporary file in the target's folder, then a rename. A graph
    written for Sinabs is made readable by the nir version Sinabs pins (``_drop_zero_resets``)."""
    import nir

    path = Path(path)
    with atomic_path(path) as tmp:
        nir.write(tmp, graph)
        if isinstance(graph.metadata, dict) and graph.metadata.get(TARGET_KEY) == "sinabs":
            _drop_zero_resets(Path(tmp))
    return path


def export_nir(checkpoint: Path | str, out: Path | str, dt: float | None = None, allow_large: bool = False,
               target: str = "spec") -> dict:
    """Write a run's model (``best.pt`` or another checkpoint) as a NIR graph file for ``target``'s
    reader (``TARGETS``; ``dt`` None: the reader's own); returns a summary (``silent_neurons``: per
    hidden layer, the neurons with alpha = 1, written as never spiking; ``notes``: what the reader
    will compute differently from the float model, one line each). A refusal names the checkpoint
    and writes nothing: a graph already at ``out`` stays."""
    model = load_model(checkpoint)
    try:
        # the user's dt (None: the reader's own), checked once, in model_to_nir
        graph = model_to_nir(model, dt=dt, allow_large=allow_large, target=target)
    except NirExportError as err:
        raise NirExportError(f"{checkpoint}: {err}") from None
    # the step the graph was written for: its metadata's, or 1 for Sinabs (time constants in steps)
    dt = float(graph.metadata.get("dt", 1.0))
    path = write_nir(graph, out)
    expansions = sorted(k for k, n in graph.nodes.items() if n.metadata.get(NIR_METADATA_KEY) == DELAY_EXPANSION
                        and k.endswith("_delay"))
    subgraphs = sorted(k for k, n in graph.nodes.items() if n.metadata.get(NIR_METADATA_KEY) == ADLIF_SUBGRAPH)
    silent = {}
    for key, node in graph.nodes.items():
        # a LIF's tau, Norse's CubaLIF's tau_mem, an AdLIF subgraph's u
        tau = node.nodes["u"].tau if key in subgraphs else getattr(node, "tau", getattr(node, "tau_mem", None))
        if key.startswith("hidden") and tau is not None and np.any(np.isinf(tau)):
            silent[key] = [int(i) for i in np.flatnonzero(np.isinf(tau))]
    notes = target_notes(target, model.config["variant"], int(graph.metadata.get("latency_steps", 0)))
    return {"nir_file": str(path), "dt": dt, "variant": model.config["variant"], "nodes": len(graph.nodes),
            "delay_expansions": expansions, "adlif_subgraphs": subgraphs, "silent_neurons": silent,
            "target": target, "load": graph.metadata["load"], "notes": notes}
