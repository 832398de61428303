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
- **Readers** (``target``, ``--nir-target``): ``spec`` (the default) is all of the above. For
  another framework's NIR reader (snnTorch 1.0, Norse 1.1, Sinabs 3.1; ``nir_conventions.py``)
  the LIF layers are written as that reader runs them: ``snntorch`` is the spec at its fixed
  ``dt = 1e-4`` (a silent neuron with the finite tau ``2^30 dt``: snnTorch divides its threshold by
  ``r dt / tau``); ``norse`` writes ``r = 1`` and the Affine unscaled (Norse ignores ``r``), Euler at
  ``dt`` (default from_nir's 1e-3), each LIF layer as a ``CubaLIF`` whose current passes the input
  through (``tau_syn = dt``, ``w_in = 1``), also exact in the spec: Norse's from_nir takes a
  ``reset_method`` for CubaLIF nodes only, and with ``reset_subtract`` runs the float LIF's reset;
  ``sinabs`` writes tau in steps,
  ``-1 / ln(alpha)`` (Sinabs decays by ``exp(-1/tau)``), with the input scale ``1 - alpha`` in the
  Affine (Sinabs' from_nir reads ``norm_input=False``), no ``dt``, and no zero ``v_reset`` in the
  file (nir <= 1.0.4, which Sinabs pins, refuses it). None of the three has a node that delays a
  spike or an adaptive neuron: delays and AdLIF layers are refused for them, naming
  ``--nir-target spec``. The metadata says the reader (``nir_target``) and how it loads the graph.
- **Refused** (one line naming the layer and what to do; nothing is written): NaN or infinite
  weights, biases, delays or neuron parameters; alpha above 1; beta = 1 in an AdLIF subgraph
  (the adaptation would need an infinite time constant and input scale).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snn_toolchain.atomic import atomic_path
from snn_toolchain.constants import TIME_BIN_S
from snn_toolchain.errors import ToolchainError
from snn_toolchain.export.nir_conventions import (
    NAMES,
    NORSE_DT,
    SINABS_NORM_INPUT_KEY,
    SNNTORCH_DT,
    TARGET_KEY,
    TARGETS,
)
from snn_toolchain.quantized_network import NetworkError
from snn_toolchain.fixed_point import finite
from snn_toolchain.train.model.checkpoint import load_model

NIR_METADATA_KEY = "snn_toolchain"
# a silent neuron's time constant for snnTorch, in steps (its reader needs a finite tau; module docstring)
SILENT_STEPS = 2.0 ** 30
# how each reader loads a graph written for it (metadata 'load'; DT: the graph's step)
LOADERS = {"spec": "nir.read(FILE)", "snntorch": "snntorch.import_nir.import_from_nir(nir.read(FILE))",
           "norse": "norse.torch.from_nir(nir.read(FILE), dt=DT, reset_method=norse.torch.functional.reset."
                    "reset_subtract)",
           "sinabs": "sinabs.from_nir(nir.read(FILE), batch_size=BATCH), input (BATCH * steps, features)"}
ADLIF_SUBGRAPH = "adlif"
DELAY_EXPANSION = "per-synapse-delay"
# More intermediate units than this in one per-synapse delay expansion is refused unless asked:
# the SHD preset's layers need 17,920 + 16,384 + 2,560; SSC's 512-wide ones 71,680 + 262,144 + 17,920.
MAX_EXPANSION_UNITS = 100_000


class NirExportError(ToolchainError):
    """The network cannot be written as a NIR graph as asked."""


def _as_float(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def _finite(layer: str, what: str, values) -> np.ndarray:
    """``values`` as float64, refused as the ``.net`` export refuses them (``quantization.finite``:
    one line naming the layer, the parameter and the first bad index)."""
    try:
        return finite(layer, what, values)
    except NetworkError as err:
        raise NirExportError(f"{err} (--checkpoint names one); nothing was written") from None


def _check_decay(layer: str, name: str, values: np.ndarray, allow_one: bool) -> None:
    """A decay per step must lie in [0, 1]; 1 only where NIR can say it (alpha: a silent neuron)."""
    bad = (values > 1.0) | (values < 0.0) | ((values >= 1.0) if not allow_one else False)
    if np.any(bad):
        neuron = int(np.argmax(bad))
        value = float(values[neuron])
        if value == 1.0:
            raise NirExportError(f"layer {layer}: neuron {neuron} has {name} = 1 (no decay: the adaptation w would "
                                 "need an infinite time constant and input scale, which an AdLIF subgraph cannot "
                                 f"express in NIR); export with --format net, or retrain with bounds below 1 "
                                 f"(--bounds {name}=LOW:HIGH with HIGH < 1)")
        raise NirExportError(f"layer {layer}: neuron {neuron} has {name} = {value:g}, outside the trainer's bounds "
                             "[0, 1] (a decay per step); retrain or export an earlier checkpoint (--checkpoint)")


def _decay_tau(alpha: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """(tau, silent): tau = dt / (1 - alpha), inf where alpha = 1 (a silent neuron)."""
    silent = alpha == 1.0
    with np.errstate(divide="ignore"):
        tau = np.where(silent, np.inf, dt / np.where(silent, 0.5, 1.0 - alpha))
    return tau, silent


def _lif_nodes(prefix: str, alpha: np.ndarray, dt: float, target: str = "spec") -> dict:
    """The LIF node of a layer, as ``target`` reads it (module docstring, "Readers")."""
    _check_decay(prefix, "alpha", alpha, allow_one=True)
    tau, silent = _decay_tau(alpha, dt)
    n = alpha.shape[0]
    import nir

    if target == "norse":
        # Norse ignores r: r = 1 and the Affine unscaled, Euler at dt. A CubaLIF whose current
        # passes the input through (tau_syn = dt, w_in = 1: I = x, in the spec and in Norse), not a
        # LIF: Norse's from_nir applies its reset_method (reset_subtract: the float LIF's reset)
        # only to CubaLIF nodes
        return {prefix: nir.CubaLIF(tau_syn=np.full(n, dt), tau_mem=tau, r=np.ones(n), v_leak=np.zeros(n),
                                    v_threshold=np.ones(n), v_reset=np.zeros(n), w_in=np.ones(n))}
    if target == "sinabs":
        # Sinabs: tau in steps, alpha = exp(-1/tau) exactly; from_nir ignores r
        with np.errstate(divide="ignore"):
            tau = np.where(silent, np.inf, np.where(alpha == 0, 0.0, -1.0 / np.log(np.where(alpha > 0, alpha, 0.5))))
        r = np.ones(n)
    elif target == "snntorch":
        # snnTorch divides its one threshold by r dt / tau, which must be 1 for every neuron: a
        # silent neuron is written with a finite stand-in whose dt / tau (2^-30) rounds its float32
        # beta to exactly 1 (its Affine row is 0: it never moves either way)
        tau = np.where(silent, dt * SILENT_STEPS, tau)
        r = tau / dt
    else:
        # r = tau / dt makes the Euler step add the (pre-scaled) Affine output as it is; a silent
        # neuron's Affine row is 0 and its dt / tau is 0, so any finite r says the same: 1
        r = np.where(silent, 1.0, tau / np.where(silent, 1.0, dt))
    return {prefix: nir.LIF(tau=tau, r=r, v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n))}


def target_dt(target: str, dt: float | None) -> float:
    """The time step a graph for ``target`` is written for, in seconds: ``dt`` or the reader's own
    (spec: one time bin, 10 ms; snnTorch: its fixed 1e-4, the only one it reads; Norse: from_nir's
    default 1e-3; Sinabs: 1, its time constants are steps)."""
    if target not in TARGETS:
        raise NirExportError(f"--nir-target {target}: not one of {', '.join(TARGETS)}")
    if target == "snntorch":
        if dt is not None and not np.isclose(dt, SNNTORCH_DT, rtol=1e-12, atol=0):
            raise NirExportError(f"--nir-dt {dt:g}: snnTorch reads every graph at dt = {SNNTORCH_DT:g} s (its "
                                 "import_from_nir fixes it); drop --nir-dt for --nir-target snntorch")
        return SNNTORCH_DT
    if target == "sinabs":
        if dt is not None:
            raise NirExportError(f"--nir-dt {dt:g}: Sinabs reads time constants in steps, not seconds; drop --nir-dt "
                                 "for --nir-target sinabs")
        return 1.0
    if dt is None:
        return NORSE_DT if target == "norse" else TIME_BIN_S
    if not (np.isfinite(dt) and dt > 0):
        raise NirExportError(f"dt = {dt}: the time step must be a positive, finite number of seconds")
    return float(dt)


def _refuse_for_target(target: str, variant: str, name: str, layer: str, delay: np.ndarray) -> None:
    """What a framework's reader cannot run is refused, naming the option that writes it (spec)."""
    if target == "spec":
        return
    reader = NAMES[target]
    if variant != "lif":
        raise NirExportError(f"layer {layer}: {reader}'s NIR reader has no {variant} neuron (an AdLIF layer is a "
                             "recurrent subgraph only this toolchain reads); export with --nir-target spec, or "
                             "--format net")
    if delay.any():
        raise NirExportError(f"layer {name}: {reader}'s NIR reader has no Delay node, and none of the nodes it reads "
                             "delays a spike (its executor runs every node in the same step), so per-synapse delays "
                             "cannot be written for it; export with --nir-target spec (Delay nodes), or --format net")


def adlif_subgraph(alpha, beta, a, b, dt: float, variant: str, layer: str = "an AdLIF layer"):
    """The recurrent NIR subgraph of one layer of AdLIF neurons (see the module docstring);
    ``layer`` names it in refusals. A neuron with alpha = 1 is written silent (tau = inf, reset
    scale 0); beta = 1 cannot be written and is refused."""
    import nir

    alpha, beta, a, b = (_as_float(v) for v in (alpha, beta, a, b))
    _check_decay(layer, "alpha", alpha, allow_one=True)
    _check_decay(layer, "beta", beta, allow_one=False)
    n = alpha.shape[0]
    zeros = np.zeros(n)
    tau_u, silent = _decay_tau(alpha, dt)
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
            _refuse_for_target(target, variant, name, layer, delay)
            if neuron is not None and variant == "lif" and target != "norse":
                _check_decay(layer, "alpha", params[0], allow_one=True)
                scale = 1.0 - params[0]
                weight, bias = weight * scale[:, None], bias * scale
            conn_nodes, conn_edges, first, last = _connection(name, weight, bias, delay, dt, allow_large)
            nodes.update(conn_nodes)
            edges += [(previous, first)] + conn_edges
            previous = last
            if neuron is None:
                continue
            if variant == "lif":
                nodes.update(_lif_nodes(layer, params[0], dt, target))
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
    metadata[TARGET_KEY] = target
    metadata["load"] = LOADERS[target].replace("DT", f"{dt:g}")
    if target == "sinabs":
        # no dt: its time constants are steps; the input scale is Sinabs' from_nir's (norm_input=False)
        del metadata["dt"]
        metadata.update({"time_unit": "step", "discretisation": "exact: decay exp(-1/tau) per step",
                         SINABS_NORM_INPUT_KEY: False,
                         "reset": "subtract the threshold (Sinabs' MembraneSubtract), as the float model; Sinabs' "
                                  "MultiSpike may emit several spikes in a step where the float model emits one"})
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
        dt = target_dt(target, dt)
        graph = model_to_nir(model, dt=dt, allow_large=allow_large, target=target)
    except NirExportError as err:
        raise NirExportError(f"{checkpoint}: {err}") from None
    path = write_nir(graph, out)
    expansions = sorted(k for k, n in graph.nodes.items() if n.metadata.get(NIR_METADATA_KEY) == DELAY_EXPANSION
                        and k.endswith("_delay"))
    subgraphs = sorted(k for k, n in graph.nodes.items() if n.metadata.get(NIR_METADATA_KEY) == ADLIF_SUBGRAPH)
    silent = {}
    for key, node in graph.nodes.items():
        tau = node.nodes["u"].tau if key in subgraphs else getattr(node, "tau", None)
        if key.startswith("hidden") and tau is not None and np.any(np.isinf(tau)):
            silent[key] = [int(i) for i in np.flatnonzero(np.isinf(tau))]
    notes = []
    latency = int(graph.metadata.get("latency_steps", 0))
    if target != "spec" and latency:
        notes.append(f"{NAMES[target]} does not read latency_steps: it runs the network without the model's {latency} "
                     "step(s) per connection (each layer gets its input earlier relative to its bias)")
    if target == "snntorch" and model.config["variant"] == "lif":
        notes.append("snnTorch resets to 0 after a spike; the float LIF subtracts the threshold")
    if target == "norse":
        notes.append("load it with reset_method=reset_subtract (metadata 'load') for the float LIF's reset; "
                     "Norse's default resets to 0")
    if target == "sinabs":
        notes.append("Sinabs' MultiSpike emits trunc(v) spikes in a step where the float model emits one")
    return {"nir_file": str(path), "dt": dt, "variant": model.config["variant"], "nodes": len(graph.nodes),
            "delay_expansions": expansions, "adlif_subgraphs": subgraphs, "silent_neurons": silent,
            "target": target, "load": graph.metadata["load"], "notes": notes}
