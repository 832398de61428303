"""The content of an open ``.net`` file, read back into a ``QuantizedNetwork`` and checked key by key:
its time steps, every layer's connection and neurons, the readout as the last layer, and the graded
input encoding (the layout is in ``netfile.py``'s docstring and docs/file_format.md).

A stock lava-dl file (``ours`` False: no root ``format``) may lack ``delay``, ``bias`` and
``weightScale``; what is read in their place is said in ``notes``, one line each. NetX's own
layouts (an ``input`` and a ``flatten`` layer before the first dense layer, ``LOIHI`` neurons, 1-D
weights and delays) and the refusals of what NetX builds but this toolchain does not read are in
``netx_compat.py``; an ``input`` layer 0 with neurons is NetX's input neuron stage
(:func:`_read_input_stage`, ``input_stage.py``); a last dense layer without a neuron group (NetX's non-leaky integrator) is the
summing readout (:func:`_read_integrator`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snn_toolchain import constants as C
from snn_toolchain.errors import ToolchainError
from snn_toolchain.export.netfile_values import (INPUT_ENCODING_NAME, STOCK_NETX_FIX, STOCK_VARIANT, NetFileError,
                                                 net_file_error, read_array, read_type)
from snn_toolchain.export.netx_compat import (first_dense_layer, is_input_layer, netx_neuron_refusal,
                                              neuron_type_as_netx, optional_array, read_delay, read_input_transform,
                                              read_weight, unsupported_layer)
from snn_toolchain.input_encoding import GradedInputEncoding
from snn_toolchain.input_stage import InputStage
from snn_toolchain.neurons.interface import NeuronReadContext
from snn_toolchain.neurons.registry import neuron_kind_for_net_type, registered_net_types
from snn_toolchain.quantized_network import NetworkError, QuantizedLayer, QuantizedNetwork, check_range, check_time_steps


def read_network(f, path: Path, ours: bool, time_steps_given: int | None, notes: list) -> QuantizedNetwork:
    """The network an open file holds, validated; ``ours``: the file is this toolchain's
    (``netfile_integrity.check_format``); ``time_steps_given``: input steps per sample, for a
    stock lava-dl file, which stores none."""
    if "layer" not in f or len(f["layer"]) == 0:
        raise net_file_error(path, "no 'layer' group: not a NetX network file")
    time_steps = _time_steps(f, path, ours, time_steps_given, notes)
    if ours and "variant" not in f.attrs:
        raise net_file_error(path, "missing root attribute 'variant'")
    variant = str(f.attrs.get("variant", STOCK_VARIANT))
    count = len(f["layer"])
    first = first_dense_layer(f, count, path, notes)
    layers = [_read_layer(f, index, count, ours, path, notes) for index in range(first, count)]
    if first and layers and is_input_layer(f, path) and "shape" in f["layer/0"]:
        declared = int(np.prod(read_array(f["layer/0"], "shape", path, ndim=1)))
        if declared != layers[0].weight.shape[1]:
            raise net_file_error(path, f"the input layer 0 has shape {read_array(f['layer/0'], 'shape', path).tolist()} "
                                       f"({declared} inputs) but layer {layers[0].name} takes {layers[0].weight.shape[1]}")
    input_stage = _read_input_stage(f, layers[0].weight.shape[1], path, notes) if first and layers else None
    settings = dict(f["quantization"].attrs) if "quantization" in f else {}
    stored_run_steps = f.attrs.get("run_steps")
    input_encoding = _read_input_encoding(f, path)
    network = QuantizedNetwork(layers, time_steps, variant,
                               {k: v for k, v in settings.items() if isinstance(v, (int, float, str))}, notes,
                               input_encoding, input_stage)
    try:
        network.validate()
    except NetFileError:
        raise
    except NetworkError as err:
        raise net_file_error(path, str(err)) from None
    if ours and (stored_run_steps is None or int(stored_run_steps) != network.run_steps):
        raise net_file_error(path, f"root attribute 'run_steps' = {stored_run_steps} but time_steps + layers = "
                                   f"{network.run_steps}")
    return network


def _time_steps(f, path: Path, ours: bool, time_steps_given: int | None, notes: list) -> int:
    """Input steps per sample: the file's own (a different ``time_steps_given`` is refused), or,
    for a stock lava-dl file, which stores none, ``time_steps_given``."""
    if "time_steps" in f.attrs:
        time_steps = check_time_steps(f.attrs["time_steps"])
        if time_steps_given is not None and int(time_steps_given) != time_steps:
            raise net_file_error(path, f"the file is for time_steps = {time_steps}, not {time_steps_given}",
                                 f"use --time-steps {time_steps} or leave it out")
        return time_steps
    if ours:
        raise net_file_error(path, "missing root attribute 'time_steps'")
    if time_steps_given is None:
        raise net_file_error(path, "a stock lava-dl file stores no time_steps (lava-dl runs as many steps as the "
                                   "input has)",
                             "give the input's steps per sample: --time-steps N (read_net(path, time_steps=N))")
    time_steps = check_time_steps(time_steps_given)
    notes.append(f"{path}: no time_steps stored (a stock lava-dl file): run for {time_steps} input steps "
                 "per sample, as given")
    return time_steps




def _read_layer(f, index: int, count: int, ours: bool, path: Path, notes: list) -> QuantizedLayer:
    """Layer ``index`` of ``count``: its dense connection, then its neurons (the last one may be
    the summing readout, which has none)."""
    key = str(index)
    if key not in f["layer"]:
        raise net_file_error(path, f"layer indices must be 0..{count - 1}, '{key}' is missing")
    group = f[f"layer/{key}"]
    if read_type(group, path) != "dense":
        raise unsupported_layer(path, key, read_type(group, path))
    weight = read_weight(group, key, ours, path, notes)
    out_features, in_features = weight.shape
    bias = optional_array(group, "bias", ours, path, lambda: np.zeros(out_features, dtype=np.int64), notes,
                     "its biases are read as 0", ndim=1)
    delay = read_delay(group, key, weight, ours, path, notes)
    scale = _positive_scale(group, "weightScale", path, out_features) if "weightScale" in group or ours else None
    neuron_group = group["neuron"] if "neuron" in group else None
    if neuron_group is None:
        if ours:
            raise net_file_error(path, f"missing 'layer/{key}/neuron'")
        return _read_integrator(group, key, index, count, weight, delay, bias, path, notes)
    is_readout = index == count - 1 and _last_is_sum_readout(f, neuron_group, key, ours, path)
    if is_readout:
        _check_readout(neuron_group, key, ours, path, notes)
    elif neuron_group.attrs.get("role") is not None:
        raise net_file_error(path, f"layer {key} is marked role {neuron_group.attrs['role']!r} but is not the "
                                   "last layer")
    neuron_type = neuron_type_as_netx(neuron_group, path, key, notes)
    threshold_mant = _positive_scale(neuron_group, "vThMant", path, out_features)
    if scale is None:
        # a stock lava-dl file has no weightScale: a hidden layer's threshold is its scale; the
        # readout's vThMant is lava-dl's "infinite" 2^18 - 1, which no weight scale equals
        scale = 1 if is_readout else threshold_mant
    shift = int(read_array(group, "inputShift", path, ndim=0)) if "inputShift" in group else 0
    layer = QuantizedLayer(key, weight, delay, bias, scale, input_shift=shift)
    if not is_readout:
        _read_neurons(neuron_group, neuron_type, key, layer, threshold_mant, path)
    return layer




def _read_integrator(group, key: str, index: int, count: int, weight, delay, bias, path: Path,
                     notes: list) -> QuantizedLayer:
    """A stock dense layer without a neuron group: NetX gives it a non-leaky integrator (CUBA with
    iDecay 0, vDecay 4096, vThMant 2^17: its voltage is its synaptic input summed so far, plus its
    bias once), which is the summing readout where it is the last layer and has no bias."""
    if index != count - 1:
        raise net_file_error(path, f"layer {key} is a dense layer without a neuron group (NetX's non-spiking "
                                   "integrator) but not the last layer", STOCK_NETX_FIX)
    if np.any(bias != 0):
        raise net_file_error(path, f"layer {key}: NetX's integrator readout (no neuron group) with a bias adds the "
                                   "bias once, not every step as this toolchain's summing readout does",
                             STOCK_NETX_FIX)
    shift = int(read_array(group, "inputShift", path, ndim=0)) if "inputShift" in group else 0
    scale = _positive_scale(group, "weightScale", path, weight.shape[0]) if "weightScale" in group else 1
    notes.append(f"{path}: layer {key} (dense, last, no neuron group: NetX's non-leaky integrator) is read as the "
                 "summing readout: its class scores are its synaptic input summed over the run (NetX's voltage; "
                 "exact while it stays within Loihi's 24-bit current)")
    return QuantizedLayer(key, weight, delay, bias, scale, input_shift=shift)


def _read_input_stage(f, n_inputs: int, path: Path, notes: list) -> InputStage | None:
    """NetX's input neuron stage: an ``input`` layer 0 with a neuron group (CUBA, or LOIHI read as
    CUBA), ``n_inputs`` neurons that take the data through their bias; None where layer 0 is not an
    input layer with neurons. Its SDNN, RF and graded-spike refusals came first (first_dense_layer)."""
    if not is_input_layer(f, path) or "neuron" not in f["layer/0"]:
        return None
    neuron_group = f["layer/0/neuron"]
    if "type" not in neuron_group:
        raise net_file_error(path, "'layer/0/neuron' (the input layer's neurons) has no 'type'")
    neuron_type = neuron_type_as_netx(neuron_group, path, "0", notes)
    if neuron_type != "CUBA":
        raise net_file_error(path, f"layer 0 (the input layer) has neuron type '{neuron_type}': NetX's input neuron "
                                   "stage is read for CUBA (and LOIHI) neurons only", STOCK_NETX_FIX)
    if "shape" not in f["layer/0"]:
        raise net_file_error(path, "the input layer 0 has neurons but no 'shape' (NetX needs it to build them)")
    threshold_mant = _positive_scale(neuron_group, "vThMant", path, n_inputs)
    context = NeuronReadContext(neuron_group, "0", n_inputs, np.zeros(n_inputs, dtype=np.int64), threshold_mant,
                                lambda name, ndim=None: read_array(neuron_group, name, path, ndim=ndim),
                                lambda what: net_file_error(path, f"layer 0: {what}"))
    params, _ = neuron_kind_for_net_type("CUBA").read(context)
    try:
        check_range("0", "input neuron vThMant", np.atleast_1d(threshold_mant), "threshold_mant", name_index=False)
        for attribute, shown in (("current_decay", "iDecay"), ("voltage_decay", "vDecay")):
            check_range("0", f"input neuron {shown}", getattr(params, attribute), "decay")
    except NetworkError as err:
        raise net_file_error(path, str(err)) from None
    weight, bias = read_input_transform(f["layer/0"], path, notes)
    notes.append(f"{path}: layer 0 is NetX's input neuron stage ({n_inputs} CUBA neurons, vThMant {threshold_mant}): "
                 f"it takes data values x, not spikes, through its neurons' bias, trunc({weight} * x + {bias}) per "
                 "sample, and its spikes are the first dense layer's input, as in NetX")
    return InputStage(params, weight, bias)


def _read_neurons(neuron_group, neuron_type: str, key: str, layer: QuantizedLayer, threshold_mant, path: Path) -> None:
    """Set ``layer.neuron`` and ``layer.neuron_variant`` by the registered kind of ``neuron_type``."""
    kind = neuron_kind_for_net_type(neuron_type)
    if kind is None:
        refusal = netx_neuron_refusal(path, key, neuron_type)
        if refusal is not None:
            raise refusal
        raise net_file_error(path, f"layer {key}: unknown neuron type '{neuron_type}' "
                                   f"(registered: {registered_net_types()})")
    # FIELD_LIMITS' range, checked before a kind shifts vThMant into a threshold
    check_range(key, "neuron vThMant", np.atleast_1d(threshold_mant), "threshold_mant",
                name_index=np.ndim(threshold_mant) > 0)
    layer.neuron, layer.neuron_variant = kind.read(_read_context(neuron_group, key, layer, threshold_mant, path))




def _positive_scalar(group, key: str, path: Path) -> int:
    value = read_array(group, key, path)
    if value.ndim != 0 or int(value) < 1:
        raise net_file_error(path, f"'{group.name}/{key}' must be a positive integer scalar, got {value.tolist()}")
    return int(value)


def _positive_scale(group, key: str, path: Path, out_features: int):
    """``weightScale`` or ``vThMant``: a positive integer for the layer, or (format version 3) one per
    neuron, an int64 (out,) array."""
    value = read_array(group, key, path)
    if value.ndim == 0:
        return _positive_scalar(group, key, path)
    if value.shape != (out_features,) or value.min() < 1:
        raise net_file_error(path, f"'{group.name}/{key}' must be a positive integer, or one per neuron "
                                   f"({out_features},), got shape {value.shape} and smallest {value.min()}")
    return value.astype(np.int64)


def _read_context(group, key: str, layer: QuantizedLayer, threshold_mant: int, path: Path) -> NeuronReadContext:
    """What a neuron kind's reader needs, with this file's one-line errors."""
    return NeuronReadContext(group, key, int(layer.weight.shape[0]), layer.bias, threshold_mant,
                             lambda name, ndim=None: read_array(group, name, path, ndim=ndim),
                             lambda what: net_file_error(path, f"layer {key}: {what}"))


def _role(neuron_group) -> str | None:
    role = neuron_group.attrs.get("role")
    return role.decode() if isinstance(role, bytes) else role


def _last_is_sum_readout(f, neuron_group, key: str, ours: bool, path: Path) -> bool:
    """Whether the last layer is the summing readout (True) or a spiking output layer (False).

    A file of ours says which in its root attribute ``readout`` (version 1 files: always the
    summing readout). A stock lava-dl file's last layer is an ordinary spiking layer, unless it
    carries our ``role = "sum-readout"`` (a file of ours whose root attributes were stripped) or is
    a CUBA layer whose threshold no 17-bit vThMant reaches (lava-dl's "infinite" threshold, 2^18 - 1:
    a readout that never fires)."""
    if not ours:
        if _role(neuron_group) == "sum-readout":
            return True
        if "type" in neuron_group and neuron_type_as_netx(neuron_group, path, key) == "CUBA" and "vThMant" in neuron_group:
            threshold = np.asarray(neuron_group["vThMant"][()])
            return threshold.ndim == 0 and threshold.dtype.kind in "iuf" and float(threshold) > C.THRESHOLD_MANT_MAX
        return False
    readout = f.attrs.get("readout", "sum")
    readout = readout.decode() if isinstance(readout, bytes) else str(readout)
    if readout not in ("sum", "spikes"):
        raise net_file_error(path, f"root attribute 'readout' = {readout!r}, expected 'sum' or 'spikes'")
    return readout == "sum"


def _check_readout(neuron_group, key: str, ours: bool, path: Path, notes: list) -> None:
    """The summing readout as write_layer writes it (a stock file's never-firing CUBA: with a note)."""
    neuron_type = neuron_type_as_netx(neuron_group, path, key) if "type" in neuron_group else None
    role = _role(neuron_group)
    expected = "neuron type 'CUBA' with role 'sum-readout'"
    if neuron_type != "CUBA" or (role != "sum-readout" and (ours or role is not None)):
        raise net_file_error(path, f"layer {key}: the last layer must be the summing readout ({expected}), found "
                                   f"neuron type {neuron_type!r}{'' if role is None else f' with role {role!r}'}"
                                   f"{' (is the readout layer missing?)' if neuron_type != 'CUBA' else ''}")
    if not ours:
        if role is None:
            notes.append(f"{path}: layer {key} (CUBA, last, threshold beyond 17 bits: it never fires) is read as the "
                         "summing readout: its class scores are its synaptic input summed over the run")
        return
    for name, value in (("iDecay", C.DECAY_UNITY), ("vDecay", 0), ("vThMant", C.READOUT_THRESHOLD_MANT)):
        stored = read_array(neuron_group, name, path)
        flat = stored.reshape(-1)
        wrong = flat != value
        if stored.ndim > 1 or flat.size == 0 or wrong.any():
            shown = flat[np.argmax(wrong)] if wrong.any() else stored.tolist()
            raise net_file_error(path, f"layer {key}: the summing readout's '{neuron_group.name}/{name}' = {shown} "
                                       f"must be {value} (the readout is written with iDecay {C.DECAY_UNITY}, "
                                       f"vDecay 0, vThMant {C.READOUT_THRESHOLD_MANT})")


def _read_input_encoding(f, path: Path) -> GradedInputEncoding | None:
    if "input" not in f:
        return None
    group = f["input"]
    name = group.attrs.get("encoding")
    name = name.decode() if isinstance(name, bytes) else name
    if name != INPUT_ENCODING_NAME:
        raise net_file_error(path, f"'/input' has encoding {name!r}; this reader knows {INPUT_ENCODING_NAME!r}",
                             "update snn-toolchain")
    bits = np.asarray(group.attrs.get("bits", -1))
    low = read_array(group, "low", path, ndim=1, integer=False)
    high = read_array(group, "high", path, ndim=1, integer=False)
    try:
        return GradedInputEncoding(int(bits), low, high)
    except (ToolchainError, TypeError, ValueError) as err:
        raise net_file_error(path, f"'/input' is not a valid input encoding ({err})") from None
