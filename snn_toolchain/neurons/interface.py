"""What a neuron kind is to the toolchain: the interface every kind fills in (docs/architecture.md).

A kind is the neurons a :class:`~snn_toolchain.quantized_network.QuantizedLayer` feeds, described once: its
integer parameters (a NamedTuple of int64 ``(N,)`` arrays), its fixed-point step, the ranges of its
fields, its ``layer/<i>/neuron`` group of a ``.net`` file (written and read) and the names of its
state. The built-in kinds are :mod:`snn_toolchain.neurons.adlif` and :mod:`snn_toolchain.neurons.cuba`;
:mod:`snn_toolchain.neurons.registry` registers them and answers every lookup. Lava processes are
registered per kind name above the core (``lava_models/neuron_processes.py``), since the core may
not import Lava. Core module: imports nothing of the project.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional


class FieldCheck(NamedTuple):
    """One integer field of a kind's parameters and the ``FIELD_LIMITS`` range it must stay in.

    attribute: the NamedTuple field; shown: its name in error messages (the ``.net`` key where it
    differs); limit: a key of :data:`snn_toolchain.quantized_network.FIELD_LIMITS`.
    """

    attribute: str
    shown: str
    limit: str


class NeuronReadContext(NamedTuple):
    """What a kind's reader gets for one ``layer/<i>/neuron`` group of a ``.net`` file.

    group: the h5py group; layer_name: the layer's index as a string; out_features: its neurons;
    bias: int64 (out,), the connection's bias (synaptic units); threshold_mant: ``vThMant``, an int
    or an int64 (out,) array (one per neuron, format version 3);
    array(key, ndim=None): the group's integer dataset ``key`` as int64, refused (with the file's
    one-line error) when missing, fractional or of the wrong rank; fail(what): the file's one-line
    error for ``what`` about this layer, to raise.
    """

    group: Any
    layer_name: str
    out_features: int
    bias: Any
    threshold_mant: Any
    array: Callable
    fail: Callable


@dataclass(frozen=True)
class NeuronKind:
    """One neuron kind, everything the layers below Lava need to know about it.

    name: the registry key (also what ``lava_models/neuron_processes.py`` registers a process under).
    net_type: the ``layer/<i>/neuron/type`` tag of a ``.net`` file (ASCII, at most 10 characters).
    params_type: the NamedTuple of int64 (N,) arrays a ``QuantizedLayer.neuron`` holds for this kind.
    fixed_step: ``(params, NeuronState, synaptic_input) -> NeuronState``, one time step in Loihi 2
        fixed point (numpy or torch int64; synaptic input in weight units).
    write: ``(neuron group, QuantizedLayer) -> None``, every key of the group but ``type``.
    read: ``(NeuronReadContext) -> (params, neuron_variant)``, the inverse of ``write``.
    state_names: the state variables, as the kind's Lava process names its Vars; a runner sets
        these to zero between samples.
    field_checks: the integer fields ``QuantizedLayer.validate`` checks against ``FIELD_LIMITS``.
    check_shapes: whether each checked field must have shape (N,) (a reader may broadcast scalars).
    float_step: the float (training) step, where the kind has one.
    fractions: ``params -> {name: float array}``, the parameters as the float model sees them
        (decays as fractions per step), for the report's figures.
    per_neuron_threshold: whether its neurons hold a threshold each, so that its layer may have a
        scale (vThMant) per neuron (format version 3).
    """

    name: str
    net_type: str
    params_type: type
    fixed_step: Callable
    write: Callable
    read: Callable
    state_names: tuple
    field_checks: tuple = ()
    check_shapes: bool = True
    float_step: Optional[Callable] = None
    fractions: Optional[Callable] = None
    per_neuron_threshold: bool = False
