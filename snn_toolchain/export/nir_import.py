"""A NIR graph as this toolchain's network description (``QuantizedNetwork``) and a ``.net`` file.

Reads feed-forward chains of ``Input``, ``Affine``/``Linear``, ``LIF``, ``CubaLIF``, ``IF`` and
per-channel ``Delay`` nodes, ending in ``Output`` after a spiking layer (scores: its spike counts)
or after an ``Affine`` (the summing readout); and this toolchain's own expansions (the
per-synapse delay expansion and the AdLIF subgraph of ``nir_export.py``). Everything else is
refused with one line naming the node and why; networks on images (convolutions, pooling,
``Flatten``) and recurrent graphs first, before whose convention the graph follows is asked, since
no ``--nir-source`` or ``--dt`` would deploy them (NIR's reference graphs, docs/nir.md).

Whose graph it is comes first (``nir_conventions.recognise``; docs/nir.md, "Conventions"): this
toolchain's metadata, a graph's own ``dt`` (the spec), snnTorch's ``r = tau / 1e-4``, or
``source`` (``--nir-source``) for the graphs that say nothing (Norse's, Sinabs'); the one line of
what is assumed is ``ImportReport.convention``. Norse's time constants are read as written / dt,
its LIFCell's current as it runs it; Sinabs' LIF as a soft-reset LIF (this toolchain's LIF
arithmetic) with one spike per step. For the spec (and snnTorch, at its dt):

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

Here: the graph file, checked and read, and the chain walked into layers; the nodes' parameters
are read in ``nir_graph.py``, each layer is made in ``nir_layers.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from snn_toolchain.errors import ToolchainError
from snn_toolchain.export.netfile import NetFileError, check_hdf5_sizes, write_net
from snn_toolchain.export.nir_conventions import PRODUCER, Convention, recognise
from snn_toolchain.export.nir_export import NIR_METADATA_KEY
from snn_toolchain.export.nir_graph import NirImportError, delay_steps, node_chain
from snn_toolchain.export.nir_layers import connection_at, neuron_layer
from snn_toolchain.input_encoding import GradedInputEncoding
from snn_toolchain.quantized_network import QuantizedNetwork
from snn_toolchain.train.model.quantize import quantize_layer


@dataclass
class ImportReport:
    """What ``nir_to_network`` did: the deployable network, the convention it read the graph with
    (``convention``: one line saying what is assumed), and every change it made, one line each."""

    network: QuantizedNetwork
    dt: float
    changes: list = field(default_factory=list)
    convention: str = ""
    source: str = "spec"


def nir_to_network(graph, time_steps: int, dt: float | None = None, path: str = "the graph",
                   source: str | None = None) -> ImportReport:
    """The deployable network of a NIR graph (see the module docstring); NirImportError names the
    first node it cannot take. ``dt``: the time step in seconds (None: the graph's own, or its
    source's); ``source``: whose convention the graph follows (``nir_conventions.SOURCES``; None:
    recognised from the graph, or refused naming ``--nir-source``)."""
    changes = []
    _check_structure(graph, path)       # before the convention: --nir-source or --dt would not help
    convention = recognise(graph, path, source, dt, changes)
    names = node_chain(graph, path)
    layers = _layers(graph.nodes, names, convention, changes)
    if not layers:
        raise NirImportError(f"{path}: the graph holds no layer")
    encoding = graph.metadata.get("input_encoding") if isinstance(graph.metadata, dict) else None
    ours = isinstance(graph.metadata, dict) and graph.metadata.get("producer") == PRODUCER
    network = QuantizedNetwork(layers, time_steps, graph.metadata.get("variant", "lif") if ours else "lif",
                               {"source": str(path), "nir_dt": convention.dt, "nir_source": convention.source},
                               input_encoding=GradedInputEncoding.from_dict(encoding)).validate()
    if network.readout == "spikes":
        changes.append("the last layer spikes: class scores are its spike counts")
    return ImportReport(network, convention.dt, changes, convention.line, convention.source)


# NIR nodes of networks on images (convolutions, pooling, reshaping): this toolchain deploys dense
# layers only. NIR's own Lava importer builds them as lava-dl Conv and Pool blocks (it ran the NIR
# paper's convolutional and recurrent graphs on Lava).
IMAGE_NODES = ("Conv1d", "Conv2d", "SumPool2d", "AvgPool2d", "Flatten")
NIR_LAVA_IMPORTER = "NIR's own Lava importer (paper/nir_to_lava.py in github.com/neuromorphs/NIR: lava-dl blocks)"


def _flow_order(graph) -> list:
    """The graph's node names from its Input nodes along the edges (breadth first), then any not
    reached: the order a refusal names nodes in (the file's order is alphabetical, '10' before '2')."""
    successors: dict = {}
    for edge in graph.edges:
        if isinstance(edge, (tuple, list)) and len(edge) == 2:
            successors.setdefault(edge[0], []).append(edge[1])
    order = [name for name, node in graph.nodes.items() if type(node).__name__ == "Input"]
    seen = set(order)
    for name in order:                    # grows while it is walked
        for following in successors.get(name, []):
            if following not in seen and following in graph.nodes:
                seen.add(following)
                order.append(following)
    return order + [name for name in graph.nodes if name not in seen]


def _first_cycle(graph) -> list | None:
    """The node names round the first cycle of the graph's top-level edges (the first name again at
    the end), or None. A neuron subgraph (a nested NIRGraph, this toolchain's AdLIF) is one node here."""
    successors: dict = {}
    for edge in graph.edges:
        if isinstance(edge, (tuple, list)) and len(edge) == 2:
            successors.setdefault(edge[0], []).append(edge[1])
    finished: set = set()
    for start in _flow_order(graph):
        if start in finished:
            continue
        path, on_path, stack = [start], {start}, [iter(successors.get(start, []))]
        while stack:                      # depth first, without recursion (a long chain is fine)
            following = next(stack[-1], None)
            if following is None:
                done = path.pop()
                on_path.discard(done)
                finished.add(done)
                stack.pop()
                continue
            if following in on_path:
                return path[path.index(following):] + [following]
            if following not in finished:
                path.append(following)
                on_path.add(following)
                stack.append(iter(successors.get(following, [])))
    return None


def _check_structure(graph, path: str) -> None:
    """Refuse, in one line naming the node, what no option of the import can deploy: networks on
    images (IMAGE_NODES) and recurrent graphs (a cycle outside a neuron subgraph)."""
    try:
        order = _flow_order(graph)
        kinds = {name: type(graph.nodes[name]).__name__ for name in order}
        cycle = _first_cycle(graph)
    except (AttributeError, TypeError, KeyError):   # malformed nodes or edges: node_chain says so below
        return
    image = [name for name in order if kinds[name] in IMAGE_NODES]
    if image:
        counts: dict = {}
        for name in image[1:]:
            counts[kinds[name]] = counts.get(kinds[name], 0) + 1
        also = ", ".join(f"{kind}" + (f" x{count}" if count > 1 else "") for kind, count in counts.items())
        raise NirImportError(f"{path}: node '{image[0]}' ({kinds[image[0]]}"
                             f"{'; the graph also has ' + also if also else ''}): convolutional and pooling networks "
                             "are not supported by this toolchain's import (dense Affine/Linear layers only); run it "
                             f"on Lava with {NIR_LAVA_IMPORTER}, or as a lava-dl .net file in stock NetX")
    if cycle:
        raise NirImportError(f"{path}: a recurrent connection ({' -> '.join(str(name) for name in cycle)}); "
                             "recurrent networks are not supported by this toolchain's import (feed-forward chains "
                             f"only, its own AdLIF subgraph aside); run it on Lava with {NIR_LAVA_IMPORTER}")


def _layers(nodes, names: list, convention: Convention, changes: list) -> list:
    """The quantized layers of the chain ``names`` (Input first, Output last): each connection with
    the neurons after it, Delay nodes added to the connection before them (dendritic) or after
    them (axonal), and a last connection with no neurons as the summing readout."""
    import nir

    dt = convention.dt
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
                steps = delay_steps(np.asarray(node.delay).reshape(-1), dt, name, changes)
                if connection is None:                     # on the inputs of the next connection (axonal)
                    pending_delay = steps if pending_delay is None else pending_delay + steps
                else:                                      # on the outputs of this one (dendritic)
                    connection.delay = connection.delay + steps[:, None]
                index += 1
                continue
            if isinstance(node, (nir.Affine, nir.Linear)):
                if connection is not None:
                    raise NirImportError(f"node '{name}': two connections in a row without neurons between them")
                connection, index = connection_at(nodes, names, index, marker, pending_delay, dt, changes)
                pending_delay = None
                continue
            if connection is None:
                raise NirImportError(f"node '{name}' ({kind}): neurons must follow an Affine or Linear node")
            layers.append(neuron_layer(node, name, connection, convention, str(len(layers)), changes))
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
    return layers


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
    """(graph, note): NIR's type check first; a graph whose types do not line up (Norse's to_nir
    keeps the batch dimension in its Input type, Sinabs' the time dimension) is read without it,
    and the note says so (the import checks every connection's shape itself)."""
    import nir

    try:
        return nir.read(graph_path), None
    except ValueError as err:
        if "Type inference error" not in str(err):
            raise
        message = str(err).splitlines()[0] if str(err) else ""
        return nir.read(graph_path, type_check=False), f"read without NIR's type check ({message})"


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
               force: bool = False, source: str | None = None) -> ImportReport:
    """Read a NIR file, convert it (``nir_to_network``) and write the ``.net`` file atomically:
    nothing is written when the graph is refused.

    ``out`` must not exist yet: an existing file is refused (one line, nothing read or written)
    unless ``force=True`` (the CLI's ``--force``), which replaces it atomically. Empty paths and
    folders are refused by name. ``source``: whose convention the graph follows (``--nir-source``;
    None: recognised, see ``nir_conventions.recognise``)."""
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
    graph, note = _read_graph(graph_path)
    report = nir_to_network(graph, time_steps, dt, path=str(graph_path), source=source)
    if note:
        report.changes.insert(0, note)
    write_net(report.network, out)
    return report
