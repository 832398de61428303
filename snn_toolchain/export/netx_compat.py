"""Reading lava-dl's own ``.net`` layouts as NetX (``lava.lib.dl.netx.hdf5.Network``) builds them: the
part of the reader (``netfile_reader.py``) that only a stock lava-dl file needs.

- a layer 0 of type ``input`` without neurons only declares the input's shape (skipped), and a
  ``flatten`` right before the first dense layer is a no-op for dense input (skipped)
  (:func:`first_dense_layer`); an ``input`` layer 0 with CUBA neurons is NetX's input neuron stage,
  whose neurons take the data through their bias (:func:`read_input_transform`, ``input_stage.py``);
- neuron type ``LOIHI`` is CUBA (:func:`neuron_type_as_netx`);
- a weight stored 1-D (lava-dl squeezes a single row or column) is reshaped, and a delay stored per
  output or per input neuron (lava-dl's axonal delay) is spread over the synapses and clamped to
  62 steps (:func:`read_weight`, :func:`read_delay`);
- what NetX builds but this toolchain does not read is refused in one line naming the layer: other
  layer types (conv, pool, ...) first, then neuron types (SDNN, RF) and graded spikes
  (:func:`unsupported_layer`, :func:`netx_neuron_refusal`);
- the weight width NetX gives a layer's synapses (:func:`netx_weight_bits`, for the Loihi 2 plan).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from snn_toolchain import constants as C
from snn_toolchain.export.netfile_values import STOCK_NETX_FIX, NetFileError, net_file_error, read_array, read_type
from snn_toolchain.input_stage import NETX_DEFAULT_INPUT_BIAS, NETX_DEFAULT_INPUT_WEIGHT
from snn_toolchain.neurons.registry import registered_net_types


# layer types NetX builds that this toolchain does not read; named in the refusal
NETX_LAYER_TYPES = {"conv": "convolution", "pool": "pooling", "convT": "transposed convolution",
                    "unpool": "unpooling", "flatten": "flatten layer, read only right before the first dense",
                    "dense_rec": "recurrent dense", "dense_comp": "complex dense", "average": "average",
                    "concat": "concatenation", "input": "input layer, which NetX takes only as layer 0"}
# neuron types NetX builds that this toolchain does not emulate
NETX_NEURON_TYPES = {"SDNN": "sigma-delta (SDNN)", "RF": "resonate-and-fire", "RF_IZ": "resonate-and-fire",
                     "RF_PHASE": "resonate-and-fire"}


def _layer_types(f, count: int, path: Path) -> dict:
    """Every layer's type by index (a missing index is left to the reader's refusal (``netfile_reader._read_layer``))."""
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


def unsupported_layer(path: Path, key: str, layer_type: str, contents: str = "") -> NetFileError:
    what = NETX_LAYER_TYPES.get(layer_type, "")
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


def is_input_layer(f, path: Path) -> bool:
    return "0" in f["layer"] and read_type(f["layer/0"], path) == "input"


def first_dense_layer(f, count: int, path: Path, notes: list) -> int:
    """The index of the first dense layer, after what NetX reads there without a connection of its
    own: an ``input`` layer 0 without neurons (the input's shape only) and a ``flatten`` right before
    the dense layer (a no-op for dense input: NetX connects the input straight to the dense synapse).

    The whole file is checked first, so that its refusal names what matters most: a layer type other
    than these (conv, pool, ...), then neurons NetX builds that this toolchain does not emulate
    (SDNN, RF, graded spikes) in any layer. An ``input`` layer 0 with neurons is NetX's input neuron
    stage, read by ``netfile_reader._read_input_stage``."""
    types = _layer_types(f, count, path)
    first = 1 if types.get(0) == "input" else 0
    flatten = types.get(first) == "flatten"
    first += flatten
    for index in sorted(types):
        if index >= first and types[index] != "dense":
            raise unsupported_layer(path, str(index), types[index], _contents(f, types, path))
    for index in sorted(types):
        group = f[f"layer/{index}"]
        if "neuron" in group and "type" in group["neuron"]:
            _check_netx_neurons(group["neuron"], str(index), path)
    if first >= count:
        raise net_file_error(path, f"the file holds no dense layer (its layers: {_layer_summary(types)})")
    if types.get(0) == "input" and "neuron" not in f["layer/0"]:
        notes.append(f"{path}: layer 0 is NetX's input layer without neurons (the input's shape only): skipped, the "
                     "input goes to the first dense layer's synapse as in NetX")
    if flatten:
        shape = tuple(int(n) for n in np.asarray(f["layer/0/shape"][()]).reshape(-1)) \
            if types.get(0) == "input" and "shape" in f["layer/0"] else ()
        notes.append(f"{path}: layer {first - 1} is a 'flatten' right before the first dense layer: skipped; the "
                     f"input is taken flat, in the C order of the input layer's stored shape {shape} (NetX: "
                     "transpose([2, 1, 0]).flatten() of its (W, H, C) neurons)" if len(shape) > 1 else
                     f"{path}: layer {first - 1} is a 'flatten' right before the first dense layer (a no-op for a "
                     "flat input, as NetX builds it): skipped")
    return first


def read_input_transform(group, path: Path, notes: list) -> tuple[int, int]:
    """The input stage's transform (``weight``, ``bias``) as NetX reads it (``create_input``):
    ``int()`` of the stored scalar (lava-dl stores a (1,) float32), 64 and 0 where absent."""
    transform = []
    for key, default in (("weight", NETX_DEFAULT_INPUT_WEIGHT), ("bias", NETX_DEFAULT_INPUT_BIAS)):
        if key not in group:
            notes.append(f"{path}: no 'layer/0/{key}' in the input layer: its transform {key} is NetX's {default}")
            transform.append(default)
            continue
        value = np.asarray(group[key][()]).reshape(-1)
        if value.size != 1 or value.dtype.kind not in "biuf" or not np.isfinite(value[0]):
            raise net_file_error(path, f"'layer/0/{key}' (the input layer's transform) must be one number, got "
                                       f"{value.tolist() if value.size < 5 else f'{value.size} values'}")
        stored = float(value[0])
        if stored != math.trunc(stored):
            notes.append(f"{path}: layer 0: transform {key} {stored:g} is truncated to {math.trunc(stored)}, "
                         "as NetX does")
        transform.append(math.trunc(stored))
    return transform[0], transform[1]


def netx_neuron_refusal(path: Path, key: str, neuron_type: str) -> NetFileError | None:
    """The refusal of a neuron type NetX builds but this toolchain does not emulate (None: not one)."""
    netx = NETX_NEURON_TYPES.get(neuron_type) or (NETX_NEURON_TYPES["RF"] if "RF" in neuron_type else None)
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
    refusal = netx_neuron_refusal(path, key, neuron_type)
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


def neuron_type_as_netx(neuron_group, path: Path, key: str, notes: list | None = None) -> str:
    """The neuron group's type, lava-dl's ``LOIHI`` read as ``CUBA`` (NetX builds both as Lava's LIF)."""
    neuron_type = read_type(neuron_group, path)
    if neuron_type == "LOIHI":
        if notes is not None:
            notes.append(f"{path}: layer {key}: neuron type 'LOIHI' is read as 'CUBA', as NetX does")
        return "CUBA"
    return neuron_type


def read_weight(group, key: str, ours: bool, path: Path, notes: list) -> np.ndarray:
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


def read_delay(group, key: str, weight: np.ndarray, ours: bool, path: Path, notes: list) -> np.ndarray:
    """Per-synapse delays (out, in), in steps. A file of ours stores them so. A stock file may store
    none (0), one for the layer, or one per neuron (lava-dl's axonal delay, 1-D): NetX spreads a
    per-output-neuron delay over that neuron's synapses (checked first, as NetX does, where the
    layer is square), else a per-input one over its column, and clamps delays above 62 steps to 62."""
    delay = optional_array(group, "delay", ours, path, lambda: np.zeros_like(weight), notes, "its delays are read as 0")
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


def optional_array(group, key: str, ours: bool, path: Path, default, notes: list, what: str, ndim=None):
    """``group[key]``: required in a file of ours, else ``default()`` with a note."""
    if key in group or ours:
        return read_array(group, key, path, ndim=ndim)
    notes.append(f"{path}: no '{group.name}/{key}' (a stock lava-dl file): {what}")
    return default()


def netx_weight_bits(weight) -> int:
    """The weight width NetX gives a layer's synapses (``num_weight_bits``), from its integer weights.

    The same arithmetic as lava-dl's ``lava.lib.dl.netx.utils.optimize_weight_bits`` (lava-dl
    d825ac5; tests/test_loihi2_plan.py compares the two): the weights are scaled up as far as the
    8-bit signed (or unsigned, one-signed) mantissa allows, then trailing zero bits are dropped.
    All-zero weights (which NetX cannot build) count as 1 bit.
    """
    weight = np.asarray(weight, dtype=np.float64)
    if weight.size == 0 or not np.any(weight):
        return 1
    high, low = float(weight.max()), float(weight.min())
    if (high > 254 and low < 0) or (low < -256 and high > 0):   # NetX clips such weights first
        weight = np.clip(weight, -256, 254)
        high, low = float(weight.max()), float(weight.min())
    if high < 0:                                     # inhibitory only
        scale, signed = -256 / low, False
    elif low >= 0:                                   # excitatory only
        scale, signed = 255 / high, False
    else:                                            # mixed signs (also max 0 with negative weights)
        scale, signed = min(127 / high if high > 0 else math.inf, -128 / low), True
    scale_bits = math.floor(math.log2(scale)) + int(signed)
    shift = 8                                        # the most trailing zero bits all weights share
    while shift > 0 and np.any(weight / 2 ** shift != np.round(weight / 2 ** shift)):
        shift -= 1
    return int(8 - scale_bits - (shift - int(signed)))
