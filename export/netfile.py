"""Write and read ``.net`` files: lava-dl's NetX HDF5 layout plus what AdLIF needs (docs/file_format.md).

    /                       attrs: format, format_version, variant, time_steps, run_steps, created_by
    /quantization           attrs: decay_bits, state_bits, weight_bits, activation_shift, rounding...
    /layer/<i>/type         b"dense"
    /layer/<i>/shape        [out]
    /layer/<i>/inFeatures, outFeatures
    /layer/<i>/weight       int (out, in), in synaptic units (threshold = vThMant)
    /layer/<i>/bias         int (out,)
    /layer/<i>/delay        int (out, in), steps, 0..62 (per synapse)
    /layer/<i>/weightScale  S: integer weight = float weight * S (and vThMant = S)
    /layer/<i>/neuron/type  a registered neuron kind's tag (snn_toolchain.neuron_kinds): b"ADLIF" | b"CUBA"
        ADLIF: alpha, beta, a (12-bit fractions, per neuron), b (membrane units), vThMant, variant
        CUBA:  iDecay, vDecay, vThMant, refDelay (0), gradedSpike (0)  -- lava-dl's own keys
    the last layer is the readout: neuron/type b"CUBA" with vThMant 2^18-1 ("infinite"), iDecay
    4096, vDecay 0, and attr role="sum-readout": its class scores are its synaptic input summed.

A LIF network is written entirely in lava-dl's keys, so the stock
``lava.lib.dl.netx.hdf5.Network`` loads and runs it. Reading checks everything and refuses a
damaged or foreign file with one line naming the file, the key and the fix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snn_toolchain import __version__
from snn_toolchain import constants as C
from snn_toolchain.atomic import atomic_path
from snn_toolchain.netcodec import write_layer
from snn_toolchain.network import NetworkError, QuantizedLayer, QuantizedNetwork
from snn_toolchain.neuron_kind import NeuronReadContext
from snn_toolchain.neuron_kinds import neuron_kind_for_net_type, registered_net_types


class NetFileError(NetworkError):
    """A .net file is missing, truncated, or not in the expected layout."""


def write_net(network, path: Path | str) -> Path:
    """Write ``network`` (a QuantizedNetwork) to ``path`` atomically; an illegal network
    (``validate()``) is refused before anything is written."""
    import h5py

    network.validate()
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs.update({"format": C.NET_FORMAT_NAME, "format_version": C.NET_FORMAT_VERSION,
                            "variant": network.variant, "time_steps": network.time_steps,
                            "run_steps": network.run_steps, "created_by": f"snn-toolchain {__version__}"})
            quantization = f.create_group("quantization")
            quantization.attrs.update({
                "decay_bits": C.DECAY_BITS, "state_bits": C.STATE_BITS, "weight_bits": C.WEIGHT_BITS,
                "weight_range": [C.WEIGHT_MIN, C.WEIGHT_MAX], "activation_shift": C.ACTIVATION_SHIFT,
                "rounding": "parameters round to nearest; state products truncate toward zero; u, w saturate at 24 bits",
                **{k: v for k, v in network.settings.items() if isinstance(v, (int, float, str))}})
            for index, layer in enumerate(network.layers):
                write_layer(f.create_group(f"layer/{index}"), layer)
    return path


# ------------------------------------------------------------------------------------------ reading

def _fail(path: Path, what: str, fix: str = "export it again with `train-export export`") -> NetFileError:
    return NetFileError(f"{path}: {what}; {fix}")


def _read(group, key: str, path: Path, ndim: int | None = None, integer: bool = True) -> np.ndarray:
    if key not in group:
        raise _fail(path, f"missing '{group.name}/{key}'")
    value = group[key][()]
    array = np.asarray(value)
    if integer and array.dtype.kind not in "iu":
        if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
            array = array.astype(np.int64)
        else:
            raise _fail(path, f"'{group.name}/{key}' has dtype {array.dtype}, expected integers "
                              "(a NaN or fractional value means the file was not written by the quantizer)")
    if ndim is not None and array.ndim != ndim:
        raise _fail(path, f"'{group.name}/{key}' has shape {array.shape}, expected {ndim} dimension(s)")
    return array.astype(np.int64) if integer else array


def _type(group, path: Path) -> str:
    raw = _read(group, "type", path, integer=False)
    raw = raw.reshape(-1)[0] if raw.ndim else raw.item()
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def read_net(path: Path | str):
    """Read a .net file back into a QuantizedNetwork (same integers as written)."""
    try:
        return _read_net(Path(path))
    except NetworkError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OSError) as err:
        raise _fail(Path(path), f"unexpected content ({err.__class__.__name__}: {err})") from None


def _positive_scalar(group, key: str, path: Path) -> int:
    value = _read(group, key, path)
    if value.ndim != 0 or int(value) < 1:
        raise _fail(path, f"'{group.name}/{key}' must be a positive integer scalar, got {value.tolist()}")
    return int(value)


def _read_context(group, key: str, layer: QuantizedLayer, threshold_mant: int, path: Path) -> NeuronReadContext:
    """What a neuron kind's reader needs, with this file's one-line errors."""
    return NeuronReadContext(group, key, int(layer.weight.shape[0]), layer.bias, threshold_mant,
                             lambda name, ndim=None: _read(group, name, path, ndim=ndim),
                             lambda what: _fail(path, f"layer {key}: {what}"))


def _read_net(path: Path):
    import h5py

    if not path.is_file():
        raise _fail(path, "file not found", "check the path, or export a trained run with `train-export export`")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise _fail(path, f"not a readable HDF5 file, truncated or corrupt ({err.__class__.__name__})") from None
    with handle as f:
        if "layer" not in f or len(f["layer"]) == 0:
            raise _fail(path, "no 'layer' group: not a NetX network file")
        time_steps = int(f.attrs.get("time_steps", 0))
        if time_steps <= 0:
            raise _fail(path, "missing root attribute 'time_steps' (a stock lava-dl file?)",
                        "add time_steps, or write the file with this toolchain")
        variant = str(f.attrs.get("variant", "unknown"))
        layers = []
        count = len(f["layer"])
        for index in range(count):
            key = str(index)
            if key not in f["layer"]:
                raise _fail(path, f"layer indices must be 0..{count - 1}, '{key}' is missing")
            group = f[f"layer/{key}"]
            if _type(group, path) != "dense":
                raise _fail(path, f"layer {key} has type '{_type(group, path)}', only 'dense' is supported")
            weight = _read(group, "weight", path, ndim=2)
            out_features, in_features = weight.shape
            bias = _read(group, "bias", path, ndim=1) if "bias" in group else np.zeros(out_features, dtype=np.int64)
            delay = _read(group, "delay", path) if "delay" in group else np.zeros_like(weight)
            scale = _positive_scalar(group, "weightScale", path) if "weightScale" in group else None
            is_readout = index == count - 1
            neuron_group = group["neuron"] if "neuron" in group else None
            if neuron_group is None:
                raise _fail(path, f"missing 'layer/{key}/neuron'")
            neuron_type = _type(neuron_group, path)
            threshold_mant = _positive_scalar(neuron_group, "vThMant", path)
            if scale is None:
                # a stock lava-dl file has no weightScale: a hidden layer's threshold is its scale; the
                # readout's vThMant is lava-dl's "infinite" 2^18 - 1, which no weight scale equals
                scale = 1 if is_readout else threshold_mant
            layer = QuantizedLayer(key, weight, delay, bias, scale)
            if is_readout:
                if neuron_group.attrs.get("role", "sum-readout") != "sum-readout":
                    raise _fail(path, f"layer {key}: the last layer must be the summing readout")
            else:
                kind = neuron_kind_for_net_type(neuron_type)
                if kind is None:
                    raise _fail(path, f"layer {key}: unknown neuron type '{neuron_type}' "
                                      f"(registered: {registered_net_types()})")
                layer.neuron, layer.neuron_variant = kind.read(_read_context(neuron_group, key, layer, threshold_mant,
                                                                             path))
            layers.append(layer)
        settings = dict(f["quantization"].attrs) if "quantization" in f else {}
    network = QuantizedNetwork(layers, time_steps, variant,
                               {k: v for k, v in settings.items() if isinstance(v, (int, float, str))})
    try:
        return network.validate()
    except NetFileError:
        raise
    except NetworkError as err:
        raise _fail(path, str(err)) from None
