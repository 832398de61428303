"""The registry of neuron kinds: every dispatch on "which neurons does this layer have" asks here.

Adding a kind is one file plus one registration: a module beside :mod:`snn_toolchain.neurons.adlif`
that defines a :class:`~snn_toolchain.neurons.interface.NeuronKind`, and a :func:`register_neuron_kind`
call (the built-in kinds are registered at the bottom of this module). The ``.net`` codec
(``netcodec.py``, ``export/netfile.py``), the legality check (``network.py``), the emulator and the
Lava builder then handle it; its Lava process is registered under the same name in
``lava_models/neuron_processes.py``. Core module: imports no Lava.
"""

from __future__ import annotations

from snn_toolchain.neurons.adlif import ADLIF_KIND
from snn_toolchain.neurons.cuba import CUBA_KIND
from snn_toolchain.neurons.interface import NeuronKind

# name -> kind, in registration order (which is the order error messages list them in)
NEURON_KINDS: dict[str, NeuronKind] = {}


def register_neuron_kind(kind: NeuronKind) -> NeuronKind:
    """Add ``kind``; refused (ValueError) when its name, ``.net`` type or parameter type is taken."""
    for other in NEURON_KINDS.values():
        clash = [what for what, mine, theirs in (("name", kind.name, other.name),
                                                 ("net type", kind.net_type, other.net_type),
                                                 ("parameter type", kind.params_type, other.params_type))
                 if mine == theirs]
        if clash:
            raise ValueError(f"neuron kind {kind.name!r}: its {' and '.join(clash)} is taken by {other.name!r}")
    if len(kind.net_type.encode("ascii")) > 10:
        raise ValueError(f"neuron kind {kind.name!r}: .net type {kind.net_type!r} is longer than 10 ASCII characters")
    NEURON_KINDS[kind.name] = kind
    return kind


def unregister_neuron_kind(name: str) -> NeuronKind:
    """Remove the kind registered as ``name`` and return it (KeyError if there is none)."""
    return NEURON_KINDS.pop(name)


def neuron_kind_of(params) -> NeuronKind | None:
    """The kind whose parameter type ``params`` is (a layer's ``neuron``), None if unregistered."""
    for kind in NEURON_KINDS.values():
        if isinstance(params, kind.params_type):
            return kind
    return None


def neuron_kind_for_net_type(net_type: str) -> NeuronKind | None:
    """The kind a ``.net`` file's ``layer/<i>/neuron/type`` names, None if unregistered."""
    for kind in NEURON_KINDS.values():
        if kind.net_type == net_type:
            return kind
    return None


def registered_net_types() -> str:
    """The registered ``.net`` types, comma-separated, for error messages."""
    return ", ".join(kind.net_type for kind in NEURON_KINDS.values())


register_neuron_kind(ADLIF_KIND)
register_neuron_kind(CUBA_KIND)
