"""A NIR graph as this toolchain's network description (``QuantizedNetwork``) and a ``.net`` file.

Reads feed-forward chains of ``Input``, ``Affine``/``Linear``, ``LIF``, ``CubaLIF``, ``IF`` and
per-channel ``Delay`` nodes, ending in ``Output`` after a spiking layer (scores: its spike counts)
or after an ``Affine`` (the summing readout); and this toolchain's own expansions (the
per-synapse delay expansion and the AdLIF subgraph of ``nir_export.py``). Everything else is
refused with one line naming the node and why.

Discretisation (docs/nir.md): forward Euler at ``dt`` seconds, one step per Lava step, ``dt`` from
the graph's metadata or given (snnTorch writes its graphs for dt = 1e-4 and says nothing). With
``k = dt / tau``, in units of each neuron's ``v_threshold``:

- ``LIF``: ``v = (1 - k) v + k (v_leak + r I)`` -> Lava's CUBA with a memoryless current,
  ``vDecay = k``, weights and biases scaled by ``k r / v_threshold``, ``k v_leak / v_threshold``
  added to the bias;
- ``CubaLIF``: ``I = (1 - ks) I + ks w_in x``, then ``v`` as above -> CUBA with
  ``iDecay = ks``, ``vDecay = km``, weights scaled by ``km r ks w_in / v_threshold``;
- ``IF``: ``v = v + dt r I`` -> CUBA with ``vDecay = 0``, weights scaled by ``dt r / v_threshold``;

all of them resetting to 0 (``v_reset`` must be 0: Lava's LIF resets there). Decays are rounded
to 12-bit fractions, weights to the layer's 8-bit scale (``snn_toolchain/fixed_point.py``), delays
to whole steps (``Delay`` seconds / dt). Every such change is reported (``ImportReport.changes``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from snn_toolchain.constants import LOIHI_MAX_DELAY
from snn_toolchain.errors import ToolchainError
from snn_toolchain.export.netfile import NetFileError, check_hdf5_sizes, write_net
from snn_toolchain.export.nir_export import ADLIF_SUBGRAPH, DELAY_EXPANSION, NIR_METADATA_KEY
from snn_toolchain.input_encoding import GradedInputEncoding
from snn_toolchain.quantized_network import QuantizedNetwork
from snn_toolchain.neurons.dynamics import NeuronParams
from snn_toolchain.train.model.quantize import quantize_layer

SPIKING_NODES = ("LIF", "CubaLIF", "IF")


class NirImportError(ToolchainError):
    """A NIR graph this toolchain cannot deploy; the message names the node and the reason."""


@dataclass
class ImportReport:
    """What ``nir_to_network`` did: the deployable network and every change it made, one line each."""

    network: QuantizedNetwork
    dt: float
    changes: list = field(default_factory=list)


@dataclass
class _Connection:
    weight: np.ndarray
    bias: np.ndarray
    delay: np.ndarray          # whole steps (out, in)


def _real(values, what: str, node: str) -> np.ndarray:
    """``values`` as float64; complex numbers are refused (a float cast would drop their imaginary
    part without a word), as is anything that is no number."""
    array = np.asarray(values)
    if np.iscomplexobj(array):
        raise NirImportError(f"node '{node}': {what} holds complex numbers ({array.dtype}); NIR parameters of a "
                             "deployable network are real: write the graph with real arrays")
    try:
        return array.astype(np.float64)
    except (TypeError, ValueError):
        raise NirImportError(f"node '{node}': {what} is not numeric ({array.dtype}); write the graph with real "
                             "arrays") from None


def _flat(values, n: int, what: str, node: str, allow_inf: bool = False) -> np.ndarray:
    """``values`` as n float64 numbers (a scalar is broadcast); NaN and infinities are refused,
    ``+inf`` allowed where ``allow_inf`` (a time constant: no decay)."""
    array = _real(values, what, node)
    try:
        array = np.broadcast_to(array.reshape(-1) if array.size == n else array, (n,)).astype(np.float64)
    except ValueError:
        raise NirImportError(f"node '{node}': {what} has shape {np.shape(values)}, expected ({n},)") from None
    bad = ~np.isfinite(array) & ~(allow_inf & (array == np.inf))
    if np.any(bad):
        index = int(np.argmax(bad))
        raise NirImportError(f"node '{node}': {what}[{index}] = {array[index]}; NaN and infinite values cannot be "
                             "deployed" + (" (only +inf, no decay, is taken here)" if allow_inf else ""))
    return array


def _chain(graph, path: str) -> list:
    """The node names from the graph's Input to its Output, in order; one line if it is no chain."""
    import nir

    nodes = graph.nodes
    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    outputs = [k for k, n in nodes.items() if isinstance(n, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise NirImportError(f"{path}: the graph has {len(inputs)} Input and {len(outputs)} Output nodes; only "
                             "feed-forward chains with one of each are supported")
    successors: dict = {}
    for source, target in graph.edges:
        successors.setdefault(source, []).append(target)
    order, current = [inputs[0]], inputs[0]
    while current != outputs[0]:
        following = successors.get(current, [])
        if len(following) != 1:
            raise NirImportError(f"node '{current}': it feeds {len(following)} nodes "
                                 f"({', '.join(following) or 'none'}); only feed-forward chains are supported")
        current = following[0]
        if current in order:
            raise NirImportError(f"node '{current}': the graph has a cycle outside a neuron subgraph; "
                                 "recurrent connections are not supported")
        order.append(current)
    return order


def _count(value, what: str, node: str) -> int:
    """A neuron count from a node's metadata: a whole number of at least 1 (anything else, a NaN,
    an infinity, a string, an array, is refused naming the node)."""
    try:
        number = float(np.asarray(value).item())
    except (TypeError, ValueError):
        number = float("nan")
    if not (math.isfinite(number) and number >= 1 and number == int(number)):
        raise NirImportError(f"node '{node}': metadata '{what}' = {' '.join(repr(value).split())[:60]} is not a neuron count "
                             "(a whole number, at least 1); export the graph again")
    return int(number)


def _steps(delay_seconds, dt: float, node: str, changes: list) -> np.ndarray:
    """Delays in seconds as whole steps of ``dt``; NaN, infinite, negative and undeployable delays
    are refused with their value as the graph gives it (a cast would turn them into -2^63)."""
    seconds = _real(delay_seconds, "delay", node)
    with np.errstate(over="ignore", invalid="ignore"):
        steps = seconds / dt
    rounded = np.round(steps)
    bad = ~np.isfinite(steps) | (rounded < 0) | (rounded > LOIHI_MAX_DELAY)
    if np.any(bad):
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        shown = f"delay{list(index)} = {seconds[index]:g} s"
        hint = "fix the graph"
        if not np.isfinite(seconds[index]):
            why = "not a finite number of seconds"
        elif rounded[index] < 0:
            why = "negative"
        else:
            why = f"{steps[index]:g} steps of dt = {dt:g} s, more than Loihi 2's largest delay"
            hint = "fix the graph, or give its own dt (--dt)"
        raise NirImportError(f"node '{node}': {shown} is {why}; a Delay holds 0..{LOIHI_MAX_DELAY * dt:g} s "
                             f"(0..{LOIHI_MAX_DELAY} steps): {hint}")
    off = float(np.abs(steps - rounded).max()) if steps.size else 0.0
    if off > 1e-6:
        changes.append(f"node '{node}': delays rounded to whole steps of {dt:g} s (up to {off:.3f} steps off)")
    return rounded.astype(np.int64)


def _delay_expansion(nodes, names: list, index: int, dt: float, changes: list) -> tuple[_Connection, int]:
    """Our per-synapse delay expansion at ``names[index]`` (fan-out Linear, Delay, Affine)."""
    import nir

    fan, delay_node, gather = (nodes[names[index + k]] for k in range(3))
    name = names[index + 2]
    if not (isinstance(fan, nir.Linear) and isinstance(delay_node, nir.Delay)
            and isinstance(gather, (nir.Affine, nir.Linear))):
        raise NirImportError(f"node '{names[index]}': marked as a per-synapse delay expansion but not followed by "
                             "Delay and Affine/Linear")
    n_in, n_out = (_count(fan.metadata.get(key), key, names[index]) for key in ("in", "out"))
    units = n_in * n_out
    if np.asarray(fan.weight).shape != (units, n_in):   # before anything of that size is made
        raise NirImportError(f"node '{names[index]}': its weight has shape {np.asarray(fan.weight).shape}, "
                             f"not ({units}, {n_in}) as its metadata in = {n_in}, out = {n_out} say")
    expected = np.zeros((units, n_in))
    expected[np.arange(units), np.tile(np.arange(n_in), n_out)] = 1.0
    gather_weight = _real(gather.weight, "weight", name)
    block = np.zeros((n_out, units), dtype=bool)
    block[np.repeat(np.arange(n_out), n_in), np.arange(units)] = True
    if np.asarray(fan.weight).shape != expected.shape or not np.array_equal(np.asarray(fan.weight), expected) \
            or gather_weight.shape != (n_out, units) or np.any(gather_weight[~block] != 0):
        raise NirImportError(f"node '{name}': not in the per-synapse delay expansion's layout "
                             f"(one-hot fan-out {units} x {n_in}, block gather {n_out} x {units})")
    weight = gather_weight[block].reshape(n_out, n_in)
    _not_empty(weight, name)
    bias = _real(gather.bias, "bias", name) if isinstance(gather, nir.Affine) else np.zeros(n_out)
    delay = _steps(delay_node.delay, dt, names[index + 1], changes).reshape(n_out, n_in)
    return _Connection(weight, bias, delay), index + 3


def _plain_connection(node, name: str) -> _Connection:
    import nir

    weight = _real(node.weight, "weight", name)
    if weight.ndim != 2:
        raise NirImportError(f"node '{name}': weight of shape {weight.shape}; only dense (out, in) layers are supported")
    _not_empty(weight, name)
    bias = _real(node.bias, "bias", name) if isinstance(node, nir.Affine) else np.zeros(weight.shape[0])
    return _Connection(weight, bias.reshape(-1), np.zeros(weight.shape, dtype=np.int64))


def _not_empty(weight: np.ndarray, name: str) -> None:
    n_out, n_in = weight.shape
    if n_out == 0 or n_in == 0:
        raise NirImportError(f"node '{name}': a connection with {n_out} outputs and {n_in} inputs (weight shape "
                             f"{weight.shape}); every layer needs at least one input and one output: fix the graph")


def _spiking_layer(node, kind: str, name: str, connection: _Connection, dt: float, layer: str, changes: list):
    n = connection.weight.shape[0]
    v_threshold = _flat(node.v_threshold, n, "v_threshold", name)
    if np.any(v_threshold <= 0):
        raise NirImportError(f"node '{name}': v_threshold must be positive")
    v_reset = getattr(node, "v_reset", None)
    if v_reset is not None and np.any(_flat(v_reset, n, "v_reset", name) != 0):
        raise NirImportError(f"node '{name}': v_reset is not 0; Loihi 2's LIF (Lava's CUBA) resets to 0")
    r = _flat(node.r, n, "r", name)
    current_decay = None
    bias_scale = None
    if kind == "IF":
        k_mem, scale, leak = np.zeros(n), dt * r, np.zeros(n)
    else:
        # tau = inf: no decay and no input (dt / tau = 0); from the zero state, a silent neuron
        tau = _flat(node.tau if kind == "LIF" else node.tau_mem, n, "tau" if kind == "LIF" else "tau_mem", name,
                    allow_inf=True)
        if np.any(tau < dt):
            raise NirImportError(f"node '{name}': a time constant below dt = {dt:g} s (Euler would overshoot); "
                                 "give the graph's own dt")
        k_mem = dt / tau
        scale, leak = k_mem * r, k_mem * _flat(node.v_leak, n, "v_leak", name)
        if kind == "CubaLIF":
            tau_syn = _flat(node.tau_syn, n, "tau_syn", name)
            if np.any(tau_syn < dt):
                raise NirImportError(f"node '{name}': tau_syn below dt = {dt:g} s")
            current_decay = dt / tau_syn
            w_in = _flat(node.w_in, n, "w_in", name)
            # the Affine's bias is filtered by the current like the input, but Lava adds a bias to
            # the voltage directly: give it the current's steady state, w_in * bias
            bias_scale = scale * w_in
            scale = scale * current_decay * w_in
            if np.any(connection.bias != 0) and np.any(current_decay < 1):
                changes.append(f"node '{name}' (CubaLIF): its bias enters the voltage at the current's steady "
                               f"state from the first step (NIR filters it in over tau_syn)")
    weight = connection.weight * (scale / v_threshold)[:, None]
    bias = (connection.bias * (scale if bias_scale is None else bias_scale) + leak) / v_threshold
    alpha = 1.0 - k_mem
    zeros = np.zeros(n)
    changes.append(f"node '{name}' ({kind}): Euler at dt = {dt:g} s -> Lava CUBA, voltage decay "
                   f"{_range(k_mem)} per step"
                   + ("" if current_decay is None else f", current decay {_range(current_decay)} per step")
                   + ", reset to 0, 12-bit decays")
    return quantize_layer(layer, weight, connection.delay, bias, NeuronParams(alpha, zeros, zeros, zeros), "lif",
                          as_cuba=True, current_decay=current_decay)


def _range(values) -> str:
    values = np.asarray(values)
    return f"{values.min():.4g}" if np.allclose(values, values.min()) else f"{values.min():.4g}..{values.max():.4g}"


def adlif_subgraph_params(subgraph, n: int, dt: float, name: str) -> NeuronParams:
    """The float AdLIF parameters (alpha, beta, a, b per step) of this toolchain's AdLIF subgraph
    (``nir_export.adlif_subgraph``), checked to be in its layout: the one reading of the subgraph,
    for the import and for the reference simulation (which then runs ``adlif_float_step``)."""
    nodes = subgraph.nodes
    missing = [k for k in ("u", "w", "coupling", "jump", "adaptation", "reset", "spike") if k not in nodes]
    if missing:
        raise NirImportError(f"node '{name}': an AdLIF subgraph without {', '.join(missing)}")
    tau_u = _flat(nodes["u"].tau, n, "u.tau", name, allow_inf=True)
    silent = np.isinf(tau_u)          # alpha = 1: written with tau = inf and a reset scale of 0
    alpha = np.where(silent, 1.0, 1.0 - dt / tau_u)
    beta = 1.0 - dt / _flat(nodes["w"].tau, n, "w.tau", name)
    # the import keeps alpha, beta, a and b: the rest must be what nir_export writes, else the
    # subgraph means another neuron
    reset = np.where(silent, 0.0, -alpha / np.where(silent, 1.0, 1.0 - alpha))
    expected = {"u.r": (nodes["u"].r, 1.0), "w.r": (nodes["w"].r, 1.0 / (1.0 - beta)),
                "adaptation": (nodes["adaptation"].scale, -1.0), "spike": (nodes["spike"].threshold, 1.0),
                "reset": (nodes["reset"].scale, reset)}
    for what, (stored, value) in expected.items():
        if not np.allclose(_flat(stored, n, what, name), value, rtol=1e-9, atol=1e-12):
            raise NirImportError(f"node '{name}': its {what} is not this toolchain's AdLIF subgraph layout "
                                 "(nir_export.adlif_subgraph); such a recurrent subgraph is not supported")
    return NeuronParams(alpha, beta, _flat(nodes["coupling"].scale, n, "coupling", name),
                        _flat(nodes["jump"].scale, n, "jump", name))


def _adlif_layer(subgraph, name: str, connection: _Connection, dt: float, layer: str, changes: list):
    params = adlif_subgraph_params(subgraph, connection.weight.shape[0], dt, name)
    changes.append(f"node '{name}' (AdLIF subgraph): Euler at dt = {dt:g} s, 12-bit decays and coupling")
    return quantize_layer(layer, connection.weight, connection.delay, connection.bias, params,
                          subgraph.metadata.get("variant", "adlif+"))


def nir_to_network(graph, time_steps: int, dt: float | None = None, path: str = "the graph") -> ImportReport:
    """The deployable network of a NIR graph (see the module docstring); NirImportError names the
    first node it cannot take."""
    import nir

    graph_dt = graph.metadata.get("dt") if isinstance(graph.metadata, dict) else None
    if dt is None and graph_dt is None:
        raise NirImportError(f"{path}: the graph does not say its time step (NIR is continuous-time); pass --dt "
                             "SECONDS (snnTorch writes its graphs for dt = 1e-4)")
    changes = []
    try:
        graph_dt = None if graph_dt is None else float(graph_dt)
    except (TypeError, ValueError):
        raise NirImportError(f"{path}: the graph's metadata dt = {graph_dt!r} is not a number of seconds") from None
    if dt is None:
        dt = graph_dt
    elif graph_dt is not None and not np.isclose(graph_dt, dt):
        changes.append(f"the graph says dt = {graph_dt:g} s; discretised at the given {dt:g} s instead")
    if not (np.isfinite(dt) and dt > 0):
        raise NirImportError(f"dt = {dt}: the time step must be a positive number of seconds")
    names = _chain(graph, path)
    nodes = graph.nodes
    layers, pending_delay, connection = [], None, None
    index = 1
    name = names[0]
    try:
        while index < len(names) - 1:
            name = names[index]
            node = nodes[name]
            kind = type(node).__name__
            marker = getattr(node, "metadata", {}).get(NIR_METADATA_KEY) if isinstance(node.metadata, dict) else None
            if isinstance(node, nir.Delay):
                if connection is None:                     # on the inputs of the next connection (axonal)
                    steps = _steps(np.asarray(node.delay).reshape(-1), dt, name, changes)
                    pending_delay = steps if pending_delay is None else pending_delay + steps
                else:                                      # on the outputs of this one (dendritic)
                    connection.delay = connection.delay + _steps(np.asarray(node.delay).reshape(-1), dt, name,
                                                                 changes)[:, None]
                index += 1
                continue
            if isinstance(node, (nir.Affine, nir.Linear)):
                if connection is not None:
                    raise NirImportError(f"node '{name}': two connections in a row without neurons between them")
                if marker == DELAY_EXPANSION:
                    connection, index = _delay_expansion(nodes, names, index, dt, changes)
                else:
                    connection, index = _plain_connection(node, name), index + 1
                if pending_delay is not None:
                    if pending_delay.shape[0] != connection.weight.shape[1]:
                        raise NirImportError(f"node '{name}': the Delay before it has {pending_delay.shape[0]} channels, "
                                             f"it takes {connection.weight.shape[1]}")
                    connection.delay = connection.delay + pending_delay[None, :]
                    pending_delay = None
                continue
            if connection is None:
                raise NirImportError(f"node '{name}' ({kind}): neurons must follow an Affine or Linear node")
            layer_name = str(len(layers))
            if kind in SPIKING_NODES:
                layers.append(_spiking_layer(node, kind, name, connection, dt, layer_name, changes))
            elif isinstance(node, nir.NIRGraph) and node.metadata.get(NIR_METADATA_KEY) == ADLIF_SUBGRAPH:
                layers.append(_adlif_layer(node, name, connection, dt, layer_name, changes))
            else:
                raise NirImportError(f"node '{name}' ({kind}): not supported; this toolchain deploys Affine/Linear, LIF, "
                                     "CubaLIF, IF and per-channel Delay nodes in a feed-forward chain"
                                     + (" (LI: a non-spiking readout; end the graph with Affine -> Output, whose summed "
                                        "output is the class scores)" if kind == "LI" else ""))
            connection = None
            index += 1
        if pending_delay is not None:
            raise NirImportError(f"node '{names[-2]}': a Delay with no connection after it")
        if connection is not None:                          # Affine -> Output: the summing readout
            name = names[-2]
            layers.append(quantize_layer(str(len(layers)), connection.weight, connection.delay, connection.bias))
            changes.append("the last Affine is the summing readout: class scores are its output summed over the steps")
    except ToolchainError:        # ours, NetworkError included (a ValueError too): already one line
        raise
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as err:   # a malformed node
        raise NirImportError(f"node '{name}': unexpected content ({err.__class__.__name__}: "
                             f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if not layers:
        raise NirImportError(f"{path}: the graph holds no layer")
    encoding = graph.metadata.get("input_encoding") if isinstance(graph.metadata, dict) else None
    ours = isinstance(graph.metadata, dict) and graph.metadata.get("producer") == "snn-toolchain"
    network = QuantizedNetwork(layers, time_steps, graph.metadata.get("variant", "lif") if ours else "lif",
                               {"source": str(path), "nir_dt": dt},
                               input_encoding=GradedInputEncoding.from_dict(encoding)).validate()
    if network.readout == "spikes":
        changes.append("the last layer spikes: class scores are its spike counts")
    return ImportReport(network, dt, changes)


def _first_link(group, depth: int = 0) -> str | None:
    """The path of the first soft or external link under ``group`` (hard links only are followed)."""
    import h5py  # only for this check; nir imports it anyway

    if depth > 32:
        return group.name
    for name in group:
        if isinstance(group.get(name, getlink=True), (h5py.SoftLink, h5py.ExternalLink)):
            return f"{group.name.rstrip('/')}/{name}"
        item = group.get(name)
        if isinstance(item, h5py.Group):
            found = _first_link(item, depth + 1)
            if found:
                return found
    return None


def _check_graph_file(graph_path: Path) -> None:
    """What nir.read would choke on, checked first. It loads every dataset whole, so a small
    compressed graph can hold a huge array (the fuzz test found one that read for over an hour): the
    shapes are checked as a .net file's are. It follows links, round a cycle until Python's recursion limit: NIR graphs hold no
    links, and one is refused by name."""
    import h5py  # only for this check; nir imports it anyway

    try:
        handle = h5py.File(graph_path, "r")
    except Exception:
        return                     # not HDF5 at all: nir.read says so in one line below
    try:
        with handle:
            link = _first_link(handle)
            if link is None:
                check_hdf5_sizes(handle, graph_path)
    except NetFileError as err:
        raise NirImportError(str(err).replace("export it again with `train-export export`",
                                              "export the graph again")) from None
    except Exception:
        return                     # damaged inside: nir.read says so in one line below
    if link is not None:
        raise NirImportError(f"{graph_path}: '{link}' is a link; NIR graphs hold none (nir.read would "
                             "follow it, round a cycle); export the graph again")


# How long reading a graph may take (seconds). A graph of any size we write reads in well under a
# second; a damaged string heap can send the HDF5 library into an endless loop (the fuzz test met
# one), which no exception ends, so the read runs in a forked child that is killed after this.
NIR_READ_TIMEOUT_S = 60.0


def _nir_read(graph_path: Path):
    import nir

    return nir.read(graph_path)


def _read_graph(graph_path: Path):
    """nir.read, bounded in time, any failure one NirImportError line."""
    import multiprocessing  # only here: the forked reader

    try:
        # fork, not spawn: the child needs no imports and shares nothing but the path
        with multiprocessing.get_context("fork").Pool(1) as pool:
            return pool.apply_async(_nir_read, (graph_path,)).get(NIR_READ_TIMEOUT_S)
    except multiprocessing.TimeoutError:
        raise NirImportError(f"{graph_path}: reading it did not finish in {NIR_READ_TIMEOUT_S:.0f} s "
                             "(a damaged file); export the graph again") from None
    except Exception as err:   # h5py and nir raise many kinds for a damaged or foreign file
        raise NirImportError(f"{graph_path}: not a readable NIR file ({err.__class__.__name__}: "
                             f"{str(err).splitlines()[0] if str(err) else ''})") from None


def import_nir(graph_path: Path | str, out: Path | str, time_steps: int, dt: float | None = None,
               force: bool = False) -> ImportReport:
    """Read a NIR file, convert it (``nir_to_network``) and write the ``.net`` file atomically:
    nothing is written when the graph is refused.

    ``out`` must not exist yet: an existing file is refused (one line, nothing read or written)
    unless ``force=True`` (the CLI's ``--force``), which replaces it atomically. Empty paths and
    folders are refused by name."""
    if not str(graph_path).strip():
        raise NirImportError("the NIR file path is empty; give the .nir file to read")
    if not str(out).strip():
        raise NirImportError(f"{graph_path}: the output path is empty; give the .net file to write (--out)")
    graph_path, out = Path(graph_path), Path(out)
    if graph_path.is_dir():
        raise NirImportError(f"{graph_path}: is a folder, not a NIR file; give the .nir file to read")
    if not graph_path.is_file():
        raise NirImportError(f"{graph_path}: file not found")
    if out.is_dir():
        raise NirImportError(f"{out}: is a folder; give the .net file to write (--out)")
    if out.exists() and not force:
        raise NirImportError(f"{out}: exists; pass --force to replace it, or choose another --out")
    _check_graph_file(graph_path)
    graph = _read_graph(graph_path)
    report = nir_to_network(graph, time_steps, dt, path=str(graph_path))
    write_net(report.network, out)
    return report
