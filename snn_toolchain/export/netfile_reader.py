"""The content of an open ``.net`` file, read back into a ``QuantizedNetwork`` and checked key by key:
its time steps, every layer's connection and neurons, the readout as the last layer, and the graded
input encoding (the layout is in ``netfile.py``'s docstring and docs/file_format.md).

A stock lava-dl file (``ours`` False: no root ``format``) may lack ``delay``, ``bias`` and
``weightScale``; what is read in their place is said in ``notes``, one line each. NetX's dense
feed-forward files read as NetX builds them (``lava.lib.dl.netx.hdf5.Network``): a layer 0 of type
``input`` without neurons only declares the input's shape (skipped); neuron type ``LOIHI`` is CUBA;
a last dense layer without a neuron group (NetX's non-leaky integrator) is the summing readout; a
``flatten`` layer right before the first dense layer (after that input layer, if any) is a no-op for
dense input (skipped); a delay stored per output or per input neuron (lava-dl's axonal delay, 1-D)
is spread over the synapses and delays above 62 steps clamped, as NetX does. Anything else NetX
builds is refused in one line naming the layer: other layer types (conv, pool, ...) first, then
neuron types (SDNN, RF), graded spikes, and an input neuron stage.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snn_toolchain import constants as C
from snn_toolchain.errors import ToolchainError
from snn_toolchain.export.netfile_values import (INPUT_ENCODING_NAME, STOCK_NETX_FIX, NetFileError, net_file_error,
                                                 read_array, read_type)
from snn_toolchain.input_encoding import GradedInputEncoding
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
    variant = str(f.attrs.get("variant", "unknown"))
    count = len(f["layer"])
    first = _first_dense_layer(f, count, path, notes)
    layers = [_read_layer(f, index, count, ours, path, notes) for index in range(first, count)]
    if first and layers and _is_input_layer(f, path) and "shape" in f["layer/0"]:
        declared = int(np.prod(read_array(f["layer/0"], "shape", path, ndim=1)))
        if declared != layers[0].weight.shape[1]:
            raise net_file_error(path, f"the input layer 0 has shape {read_array(f['layer/0'], 'shape', path).tolist()} "
                                       f"({declared} inputs) but layer {layers[0].name} takes {layers[0].weight.shape[1]}")
    settings = dict(f["quantization"].attrs) if "quantization" in f else {}
    stored_run_steps = f.attrs.get("run_steps")
    input_encoding = _read_input_encoding(f, path)
    network = QuantizedNetwork(layers, time_steps, variant,
                               {k: v for k, v in settings.items() if isinstance(v, (int, float, str))}, notes,
                               input_encoding)
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


# layer types NetX builds that this toolchain does not read; named in the refusal
_NETX_LAYER_TYPES = {"conv": "convolution", "pool": "pooling", "convT": "transposed convolution",
                     "unpool": "unpooling", "flatten": "flatten layer, read only right before the first dense",
                     "dense_rec": "recurrent dense", "dense_comp": "complex dense", "average": "average",
                     "concat": "concatenation", "input": "input layer, which NetX takes only as layer 0"}
# neuron types NetX builds that this toolchain does not emulate
_NETX_NEURON_TYPES = {"SDNN": "sigma-delta (SDNN)", "RF": "resonate-and-fire", "RF_IZ": "resonate-and-fire",
                      "RF_PHASE": "resonate-and-fire"}


def _layer_types(f, count: int, path: Path) -> dict:
    """Every layer's type by index (a missing index is left to ``_read_layer``'s refusal)."""
    return {index: read_type(f[f"layer/{index}"], path) for index in range(count) if str(index) in f["layer"]}


def _layer_summary(types: dict) -> str:
    """The file's layers in order, runs counted: 'input, conv x5, flatten, dense x4'."""
    runs: list = []
    for index in sorted(types):
        if runs and runs[-1][0] == types[index]:
            runs[-1][1] += 1
        else:
            runs.append([types[index], 1])
    return ", ".join(name if n == 1 else f"{name} x{n}" for name, n in runs)


def _unsupported_layer(path: Path, key: str, layer_type: str, contents: str = "") -> NetFileError:
    what = _NETX_LAYER_TYPES.get(layer_type, "")
    what = f" (a NetX {what}{'' if 'layer' in what else ' layer'})" if what else ""
    return net_file_error(path, f"layer {key} has type '{layer_type}'{what}: this toolchain reads dense feed-forward "
                                "networks only (an optional NetX 'input' layer 0 without neurons and a 'flatten', "
                                f"then 'dense' layers){contents}", STOCK_NETX_FIX)


def _contents(f, types: dict, path: Path) -> str:
    """'; its layers: input, conv x5, flatten, dense x4 (neurons: LOIHI)', for a refusal."""
    neurons = sorted({read_type(f[f"layer/{index}/neuron"], path) for index in types
                      if "neuron" in f[f"layer/{index}"] and "type" in f[f"layer/{index}/neuron"]})
    kinds = f" (neurons: {', '.join(neurons)})" if neurons else ""
    return f"; its layers: {_layer_summary(types)}{kinds}"


def _is_input_layer(f, path: Path) -> bool:
    return "0" in f["layer"] and read_type(f["layer/0"], path) == "input"


def _first_dense_layer(f, count: int, path: Path, notes: list) -> int:
    """The index of the first dense layer, after what NetX reads there without a connection of its
    own: an ``input`` layer 0 without neurons (the input's shape only) and a ``flatten`` right before
    the dense layer (a no-op for dense input: NetX connects the input straight to the dense synapse).

    The whole file is checked first, so that its refusal names what matters most: a layer type other
    than these (conv, pool, ...), then neurons NetX builds that this toolchain does not emulate
    (SDNN, RF, graded spikes) in any layer, then NetX's input neuron stage (an ``input`` layer 0 with
    neurons, which take the input through their bias: this toolchain's input enters layer 1's
    synapse)."""
    types = _layer_types(f, count, path)
    first = 1 if types.get(0) == "input" else 0
    flatten = types.get(first) == "flatten"
    first += flatten
    for index in sorted(types):
        if index >= first and types[index] != "dense":
            raise _unsupported_layer(path, str(index), types[index], _contents(f, types, path))
    for index in sorted(types):
        group = f[f"layer/{index}"]
        if "neuron" in group and "type" in group["neuron"]:
            _check_netx_neurons(group["neuron"], str(index), path)
    if first >= count:
        raise net_file_error(path, f"the file holds no dense layer (its layers: {_layer_summary(types)})")
    if types.get(0) == "input":
        group = f["layer/0"]
        if "neuron" in group:
            neuron_type = read_type(group["neuron"], path) if "type" in group["neuron"] else None
            raise net_file_error(path, f"layer 0 has type 'input' with a neuron group (neuron type {neuron_type!r}): "
                                       "NetX's input neuron stage, whose neurons take the input through their bias, "
                                       "which this toolchain's network cannot express (its input enters layer 1's "
                                       "synapse)", STOCK_NETX_FIX)
        notes.append(f"{path}: layer 0 is NetX's input layer without neurons (the input's shape only): skipped, the "
                     "input goes to the first dense layer's synapse as in NetX")
    if flatten:
        notes.append(f"{path}: layer {first - 1} is a 'flatten' right before the first dense layer (a no-op for a "
                     "flat input, as NetX builds it): skipped")
    return first


def _netx_neuron_refusal(path: Path, key: str, neuron_type: str) -> NetFileError | None:
    """The refusal of a neuron type NetX builds but this toolchain does not emulate (None: not one)."""
    netx = _NETX_NEURON_TYPES.get(neuron_type) or (_NETX_NEURON_TYPES["RF"] if "RF" in neuron_type else None)
    if netx is None:
        return None
    return net_file_error(path, f"layer {key}: unknown neuron type '{neuron_type}' (NetX's {netx} neurons, which "
                                f"this toolchain does not emulate; it reads {registered_net_types()} and LOIHI)",
                          STOCK_NETX_FIX)


def _stored_number(neuron_group, key: str) -> float:
    """A scalar flag or count as stored by lava-dl (bool, int or float, possibly a 1-element array); 0 if absent."""
    if key not in neuron_group:
        return 0
    value = np.asarray(neuron_group[key][()]).reshape(-1)
    return float(value[0]) if value.size and value.dtype.kind in "biuf" else 0


def _check_netx_neurons(neuron_group, key: str, path: Path) -> None:
    """Refuse neurons whose spikes this toolchain cannot run as NetX does: SDNN and RF kinds, and
    graded spikes (a value per spike, where this toolchain's spikes are 0 or 1)."""
    neuron_type = read_type(neuron_group, path)
    refusal = _netx_neuron_refusal(path, key, neuron_type)
    if refusal is not None:
        raise refusal
    message_bits = _stored_number(neuron_group, "messageBits")
    if message_bits:
        raise net_file_error(path, f"layer {key}: neuron messageBits = {message_bits:g}: NetX builds these neurons to "
                                   "send graded spikes (a value per spike), which this toolchain's binary spikes "
                                   "cannot carry", STOCK_NETX_FIX)
    if _stored_number(neuron_group, "gradedSpike"):
        raise net_file_error(path, f"layer {key}: neuron gradedSpike is set: lava-dl trained these neurons to send "
                                   "graded spikes (a value per spike), which this toolchain's binary spikes cannot "
                                   "carry (stock NetX ignores the flag and runs them binary: not the trained "
                                   "network either)",
                             "run it with lava-dl (slayer) itself, or train it with graded_spike off")


def _neuron_type(neuron_group, path: Path, key: str, notes: list | None = None) -> str:
    """The neuron group's type, lava-dl's ``LOIHI`` read as ``CUBA`` (NetX builds both as Lava's LIF)."""
    neuron_type = read_type(neuron_group, path)
    if neuron_type == "LOIHI":
        if notes is not None:
            notes.append(f"{path}: layer {key}: neuron type 'LOIHI' is read as 'CUBA', as NetX does")
        return "CUBA"
    return neuron_type


def _read_layer(f, index: int, count: int, ours: bool, path: Path, notes: list) -> QuantizedLayer:
    """Layer ``index`` of ``count``: its dense connection, then its neurons (the last one may be
    the summing readout, which has none)."""
    key = str(index)
    if key not in f["layer"]:
        raise net_file_error(path, f"layer indices must be 0..{count - 1}, '{key}' is missing")
    group = f[f"layer/{key}"]
    if read_type(group, path) != "dense":
        raise _unsupported_layer(path, key, read_type(group, path))
    weight = _read_weight(group, key, ours, path, notes)
    out_features, in_features = weight.shape
    bias = _optional(group, "bias", ours, path, lambda: np.zeros(out_features, dtype=np.int64), notes,
                     "its biases are read as 0", ndim=1)
    delay = _read_delay(group, key, weight, ours, path, notes)
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
    neuron_type = _neuron_type(neuron_group, path, key, notes)
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


def _read_weight(group, key: str, ours: bool, path: Path, notes: list) -> np.ndarray:
    """``weight`` (out, in). lava-dl stores a dense weight squeezed, so a layer with one output or one
    input holds it 1-D: NetX reshapes it to (``prod(shape)``, -1), and so does this reader."""
    weight = read_array(group, "weight", path)
    if ours or weight.ndim != 1 or "shape" not in group:
        if weight.ndim != 2:
            raise net_file_error(path, f"'{group.name}/weight' has shape {weight.shape}, expected 2 dimension(s)")
        return weight
    out_features = int(np.prod(read_array(group, "shape", path, ndim=1)))
    if out_features < 1 or weight.size % out_features:
        raise net_file_error(path, f"layer {key}: a 1-D weight of {weight.size} values does not split into its "
                                   f"shape's {out_features} neurons")
    notes.append(f"{path}: layer {key}: its weight is stored 1-D (lava-dl squeezes a single row or column): read as "
                 f"({out_features}, {weight.size // out_features}), as NetX does")
    return weight.reshape(out_features, -1)


def _read_delay(group, key: str, weight: np.ndarray, ours: bool, path: Path, notes: list) -> np.ndarray:
    """Per-synapse delays (out, in), in steps. A file of ours stores them so. A stock file may store
    none (0), one for the layer, or one per neuron (lava-dl's axonal delay, 1-D): NetX spreads a
    per-output-neuron delay over that neuron's synapses (checked first, as NetX does, where the
    layer is square), else a per-input one over its column, and clamps delays above 62 steps to 62."""
    delay = _optional(group, "delay", ours, path, lambda: np.zeros_like(weight), notes, "its delays are read as 0")
    if ours or "delay" not in group:
        return delay
    out_features, in_features = weight.shape
    if delay.ndim == 0:
        delay = np.full(weight.shape, int(delay), dtype=np.int64)
    elif delay.ndim == 1 and delay.size in (out_features, in_features):
        per_output = delay.size == out_features
        delay = np.repeat(delay.reshape(-1, 1), in_features, axis=1) if per_output \
            else np.repeat(delay.reshape(1, -1), out_features, axis=0)
        notes.append(f"{path}: layer {key}: one delay per {'output' if per_output else 'input'} neuron (lava-dl's "
                     "axonal delay): given to each of its synapses, as NetX does")
    elif delay.ndim == 1:
        raise net_file_error(path, f"layer {key}: a 1-D delay of {delay.size} values fits neither its "
                                   f"{out_features} outputs nor its {in_features} inputs (NetX refuses it too)")
    if delay.size and delay.max() > C.LOIHI_MAX_DELAY:
        notes.append(f"{path}: layer {key}: delays up to {int(delay.max())} steps are clamped to "
                     f"{C.LOIHI_MAX_DELAY}, as NetX does (it warns)")
        delay = np.minimum(delay, C.LOIHI_MAX_DELAY)
    return delay


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


def _read_neurons(neuron_group, neuron_type: str, key: str, layer: QuantizedLayer, threshold_mant, path: Path) -> None:
    """Set ``layer.neuron`` and ``layer.neuron_variant`` by the registered kind of ``neuron_type``."""
    kind = neuron_kind_for_net_type(neuron_type)
    if kind is None:
        refusal = _netx_neuron_refusal(path, key, neuron_type)
        if refusal is not None:
            raise refusal
        raise net_file_error(path, f"layer {key}: unknown neuron type '{neuron_type}' "
                                   f"(registered: {registered_net_types()})")
    # FIELD_LIMITS' range, checked before a kind shifts vThMant into a threshold
    check_range(key, "neuron vThMant", np.atleast_1d(threshold_mant), "threshold_mant",
                name_index=np.ndim(threshold_mant) > 0)
    layer.neuron, layer.neuron_variant = kind.read(_read_context(neuron_group, key, layer, threshold_mant, path))


def _optional(group, key: str, ours: bool, path: Path, default, notes: list, what: str, ndim=None):
    """``group[key]``: required in a file of ours, else ``default()`` with a note."""
    if key in group or ours:
        return read_array(group, key, path, ndim=ndim)
    notes.append(f"{path}: no '{group.name}/{key}' (a stock lava-dl file): {what}")
    return default()


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
        if "type" in neuron_group and _neuron_type(neuron_group, path, key) == "CUBA" and "vThMant" in neuron_group:
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
    neuron_type = _neuron_type(neuron_group, path, key) if "type" in neuron_group else None
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
