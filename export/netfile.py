"""Write and read ``.net`` files: lava-dl's NetX HDF5 layout plus what AdLIF needs (docs/file_format.md).

    /                       attrs: format, format_version, variant, time_steps, run_steps, created_by,
                            content_sha256 (content_checksum: every other dataset and attribute)
    /quantization           attrs: decay_bits, state_bits, weight_bits, activation_shift, rounding...
    /layer/<i>/type         b"dense"
    /layer/<i>/shape        [out]
    /layer/<i>/inFeatures, outFeatures
    /layer/<i>/weight       int (out, in), in synaptic units (threshold = vThMant)
    /layer/<i>/bias         int (out,)
    /layer/<i>/delay        int (out, in), steps, 0..62 (per synapse)
    /layer/<i>/weightScale  S: integer weight = float weight * S * 2^k (and vThMant = S)
    /layer/<i>/inputShift   k (only where k > 0): the synapse's sum is shifted right by k per delay
                            group and step (Lava's weight exponent -k); absent = 0
    /input                  (graded inputs only) attrs: encoding "graded-linear", bits; datasets
                            low, high (float64, per channel): payload = clip((x - low) / (high - low),
                            0, 1) * (2^bits - 1), rounded (snn_toolchain/input_encoding.py)
    /layer/<i>/neuron/type  a registered neuron kind's tag (snn_toolchain.neurons.registry): b"ADLIF" | b"CUBA"
        ADLIF: alpha, beta, a (12-bit fractions, per neuron), b (membrane units), vThMant, variant
        CUBA:  iDecay, vDecay, vThMant, refDelay (0), gradedSpike (0)  -- lava-dl's own keys
    the last layer is the readout: neuron/type b"CUBA" with vThMant 2^18-1 ("infinite"), iDecay
    4096, vDecay 0, and attr role="sum-readout": its class scores are its synaptic input summed;
    or (root attr readout="spikes": imported NIR graphs) a spiking layer whose spike counts are the
    scores. A stock lava-dl file's last layer is a spiking layer, and it stores no time_steps.

A LIF network is written entirely in lava-dl's keys, so the stock
``lava.lib.dl.netx.hdf5.Network`` loads and runs it. Reading checks everything and refuses a
damaged or foreign file with one line naming the file, the key and the fix: the format and its
version, the content checksum, every key the writer writes (a stock lava-dl file, without our
``format`` attribute, may lack ``delay``, ``bias`` and ``weightScale``), the summing readout as the
last layer, and, through ``QuantizedNetwork.validate()``, every field range. What a reader accepts
but the caller should know (no checksum, a stock file's defaults) is in ``network.notes``.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from snn_toolchain import __version__
from snn_toolchain import constants as C
from snn_toolchain.atomic import atomic_path
from snn_toolchain.errors import ToolchainError, one_line
from snn_toolchain.input_encoding import GradedInputEncoding
from snn_toolchain.netcodec import write_layer
from snn_toolchain.quantized_network import NetworkError, QuantizedLayer, QuantizedNetwork, check_range, check_time_steps
from snn_toolchain.neurons.interface import NeuronReadContext
from snn_toolchain.neurons.registry import neuron_kind_for_net_type, registered_net_types


class NetFileError(NetworkError):
    """A .net file is missing, truncated, or not in the expected layout."""


CHECKSUM_ATTR = C.NET_CHECKSUM_ATTR
INPUT_ENCODING_NAME = "graded-linear"
LOG = logging.getLogger(__name__)


def write_net(network, path: Path | str) -> Path:
    """Write ``network`` (a QuantizedNetwork) to ``path`` atomically; an illegal network
    (``validate()``) is refused before anything is written. The last root attribute written is
    the content checksum (:func:`content_checksum`)."""
    import h5py

    network.validate()
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs.update({"format": C.NET_FORMAT_NAME, "format_version": network.format_version,
                            "variant": network.variant, "time_steps": network.time_steps,
                            "run_steps": network.run_steps, "readout": network.readout,
                            "created_by": f"snn-toolchain {__version__}"})
            quantization = f.create_group("quantization")
            quantization.attrs.update({
                "decay_bits": C.DECAY_BITS, "state_bits": C.STATE_BITS, "weight_bits": C.WEIGHT_BITS,
                "weight_range": [C.WEIGHT_MIN, C.WEIGHT_MAX], "activation_shift": C.ACTIVATION_SHIFT,
                "rounding": "parameters round to nearest; state products truncate toward zero; u, w saturate at 24 bits",
                **{k: v for k, v in network.settings.items() if isinstance(v, (int, float, str))}})
            for index, layer in enumerate(network.layers):
                write_layer(f.create_group(f"layer/{index}"), layer)
            if network.input_encoding is not None:
                _write_input_encoding(f.create_group("input"), network.input_encoding)
            f.attrs[CHECKSUM_ATTR] = content_checksum(f)
    return path


def _write_input_encoding(group, encoding: GradedInputEncoding) -> None:
    group.attrs.update({"encoding": INPUT_ENCODING_NAME, "bits": int(encoding.bits)})
    group.create_dataset("low", data=encoding.low.astype(np.float64))
    group.create_dataset("high", data=encoding.high.astype(np.float64))


def _read_input_encoding(f, path: Path) -> GradedInputEncoding | None:
    if "input" not in f:
        return None
    group = f["input"]
    name = group.attrs.get("encoding")
    name = name.decode() if isinstance(name, bytes) else name
    if name != INPUT_ENCODING_NAME:
        raise _fail(path, f"'/input' has encoding {name!r}; this reader knows {INPUT_ENCODING_NAME!r}",
                    "update snn-toolchain")
    bits = np.asarray(group.attrs.get("bits", -1))
    low = _read(group, "low", path, ndim=1, integer=False)
    high = _read(group, "high", path, ndim=1, integer=False)
    try:
        return GradedInputEncoding(int(bits), low, high)
    except (ToolchainError, TypeError, ValueError) as err:
        raise _fail(path, f"'/input' is not a valid input encoding ({err})") from None


# ------------------------------------------------------------------------------------- checksum

def _value_parts(value) -> list[bytes]:
    """A dataset's or attribute's value as bytes that say its type, shape and content."""
    if isinstance(value, str):
        return [b"str", value.encode("utf-8")]
    if isinstance(value, bytes):
        return [b"bytes", value]
    array = np.asarray(value)
    if array.dtype.kind == "O":     # variable-length strings: each element in turn
        parts = [b"object", repr(array.shape).encode()]
        for item in array.reshape(-1):
            parts.extend(_value_parts(item))
        return parts
    return [array.dtype.str.encode(), repr(array.shape).encode(), np.ascontiguousarray(array).tobytes()]


def content_checksum(f) -> str:
    """sha256 (hex) of an open .net file's content: every group, dataset (name, dtype, shape,
    bytes) and attribute (name, type, value), in name order, all but the root's ``content_sha256``.

    Computed from the values h5py reads back, so it does not depend on where HDF5 put them in
    the file; links are hashed as their target path, not followed."""
    import h5py

    digest = hashlib.sha256()

    def feed(*parts) -> None:
        for part in parts:
            part = part if isinstance(part, bytes) else str(part).encode("utf-8")
            digest.update(len(part).to_bytes(8, "little"))
            digest.update(part)

    def attributes(item) -> None:
        for name in sorted(item.attrs):
            if item.name == "/" and name == CHECKSUM_ATTR:
                continue
            feed("attr", item.name, name, *_value_parts(item.attrs[name]))

    def walk(group) -> None:
        attributes(group)
        for name in sorted(group):
            link = group.get(name, getlink=True)
            if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
                feed("link", f"{group.name}/{name}", getattr(link, "filename", ""), link.path)
                continue
            item = group[name]
            if isinstance(item, h5py.Group):
                feed("group", item.name)
                walk(item)
            elif isinstance(item, h5py.Dataset):
                feed("dataset", item.name, *_value_parts(item[()]))
                attributes(item)
            else:
                feed("other", item.name, type(item).__name__)

    walk(f)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------ reading

def _fail(path: Path, what: str, fix: str = "export it again with `train-export export`") -> NetFileError:
    # one line, whatever the value shown (a stored array's repr spans lines)
    return NetFileError(one_line(f"{path}: {what}; {fix}"))


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


def is_our_net(path: Path | str) -> bool:
    """Whether ``path`` is a .net file this toolchain wrote (HDF5 with our root ``format``)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            name = f.attrs.get("format")
    except Exception:     # not HDF5, unreadable, a folder
        return False
    name = name.decode() if isinstance(name, bytes) else name
    return name == C.NET_FORMAT_NAME


def stored_checksum(path: Path | str) -> str | None:
    """The content checksum a .net file of ours carries (None: none, or not readable)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            value = f.attrs.get(CHECKSUM_ATTR)
    except Exception:
        return None
    return value.decode() if isinstance(value, bytes) else (None if value is None else str(value))


def check_export_set(path: Path, checksum: str | None) -> None:
    """A .net file beside the ``export.json`` of the export that wrote it must be that export's file:
    a killed export could leave a new .net beside an old report (they form a set; export writes the
    report last, with the .net's checksum). ``checksum``: the one the file carries (verified)."""
    report = path.parent / "export.json"
    if not report.is_file():
        return
    try:
        import json

        data = json.loads(report.read_text())
        described = Path(data["net_file"]).resolve() == path.resolve()
        expected = data.get("net_sha256")
    except (OSError, ValueError, KeyError, TypeError):
        return          # not an export report of ours: nothing to check against
    if described and expected is not None and expected != checksum:
        raise _fail(path, f"it is not the file {report} describes (a newer or older export: an export was "
                          "interrupted or the file was replaced)", "run the export again")


def available_bytes() -> int | None:
    """The memory this machine has available now (Linux: MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_memory(path: Path, what: str, nbytes: int, fix: str) -> None:
    """Refuse, before the work, what would need more than half the available memory."""
    available = available_bytes()
    if available is not None and nbytes > available // 2:
        raise NetFileError(f"{path}: {what} needs {nbytes / 2**30:.1f} GiB, more than half of the "
                           f"{available / 2**30:.1f} GiB this machine has available; {fix}")


def check_hdf5_sizes(f, path: Path) -> None:
    """Refuse a file whose datasets, read whole, would need more memory than this machine has: a
    small compressed file can hold a 60000 x 60000 weight (3.6 GB read, 28.8 GB as int64). The
    datasets are visited by their shapes only, links not followed (a link cycle is refused)."""
    import h5py

    total, largest, seen = 0, ("", 0), set()

    def visit(group, depth: int = 0) -> None:
        nonlocal total, largest
        if depth > 32:
            raise _fail(path, f"'{group.name}' is nested deeper than 32 groups")
        for name in group:
            link = group.get(name, getlink=True)
            if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
                continue
            item = group[name]
            if item.id.__hash__() in seen:
                continue
            seen.add(item.id.__hash__())
            if isinstance(item, h5py.Group):
                visit(item, depth + 1)
            elif isinstance(item, h5py.Dataset) and item.shape is not None:
                # as int64 or float64 once read, or the stored element where that is larger (a
                # damaged type can claim an opaque element of 128 MiB in a file of 2 kB)
                size = int(np.prod(item.shape, dtype=np.float64)) * max(8, int(item.id.get_type().get_size()))
                total += size
                if size > largest[1]:
                    largest = (item.name, size)

    visit(f)
    # several copies live at once while reading and checking (the read, the int64 array, the network)
    check_memory(path, f"reading it ('{largest[0]}' alone {largest[1] / 2**30:.1f} GiB as 64-bit values)",
                 3 * total, "no network a Loihi 2 system runs is this large (120M synapses a chip): check the file")


def read_net(path: Path | str, time_steps: int | None = None):
    """Read a .net file back into a QuantizedNetwork (same integers as written).

    ``time_steps``: input steps per sample, for a stock lava-dl file, which does not store them
    (lava-dl runs a network for as many steps as its input has); a file of ours stores its own, and
    a different value is refused.

    Refuses (NetFileError, one line naming the file and the key) anything damaged, foreign or out
    of range; what it accepts with a remark (no content checksum, a stock lava-dl file's default
    delays) is in the returned network's ``notes``, one line each, also logged at INFO."""
    try:
        network = _read_net(Path(path), time_steps)
    except NetFileError:
        raise
    except NetworkError as err:      # a range check met while reading: name the file
        raise _fail(Path(path), str(err)) from None
    except RecursionError:           # e.g. a soft link that points at its own group
        raise _fail(Path(path), "its links form a cycle") from None
    except (ValueError, TypeError, KeyError, IndexError, OSError, OverflowError, RuntimeError) as err:
        raise _fail(Path(path), f"unexpected content ({err.__class__.__name__}: {err})") from None
    for note in network.notes:
        LOG.info(note)
    return network


def _positive_scalar(group, key: str, path: Path) -> int:
    value = _read(group, key, path)
    if value.ndim != 0 or int(value) < 1:
        raise _fail(path, f"'{group.name}/{key}' must be a positive integer scalar, got {value.tolist()}")
    return int(value)


def _positive_scale(group, key: str, path: Path, out_features: int):
    """``weightScale`` or ``vThMant``: a positive integer for the layer, or (format version 3) one per
    neuron, an int64 (out,) array."""
    value = _read(group, key, path)
    if value.ndim == 0:
        return _positive_scalar(group, key, path)
    if value.shape != (out_features,) or value.min() < 1:
        raise _fail(path, f"'{group.name}/{key}' must be a positive integer, or one per neuron ({out_features},), "
                          f"got shape {value.shape} and smallest {value.min()}")
    return value.astype(np.int64)


def _read_context(group, key: str, layer: QuantizedLayer, threshold_mant: int, path: Path) -> NeuronReadContext:
    """What a neuron kind's reader needs, with this file's one-line errors."""
    return NeuronReadContext(group, key, int(layer.weight.shape[0]), layer.bias, threshold_mant,
                             lambda name, ndim=None: _read(group, name, path, ndim=ndim),
                             lambda what: _fail(path, f"layer {key}: {what}"))


def _is_ours(f, path: Path) -> bool:
    """True for a file of this toolchain (root ``format``), False for a stock lava-dl file (none);
    an unknown format, or a version this reader does not know, is refused."""
    if "format" not in f.attrs:
        return False
    name = f.attrs["format"]
    name = name.decode() if isinstance(name, bytes) else name
    if not isinstance(name, str) or name != C.NET_FORMAT_NAME:
        raise _fail(path, f"unknown format {name!r} in root attribute 'format' (this toolchain reads "
                          f"{C.NET_FORMAT_NAME!r} and stock lava-dl files, which have no 'format')",
                    "convert it, or read it with the tool that wrote it")
    if "format_version" not in f.attrs:
        raise _fail(path, f"missing root attribute 'format_version' (a {C.NET_FORMAT_NAME!r} file has one)")
    version = np.asarray(f.attrs["format_version"])
    if version.ndim != 0 or version.dtype.kind not in "iu" or not 1 <= int(version) <= C.NET_FORMAT_VERSION:
        newer = version.ndim == 0 and version.dtype.kind in "iu" and int(version) > C.NET_FORMAT_VERSION
        raise _fail(path, f"root attribute 'format_version' = {version.tolist()!r} is "
                          f"{'newer than' if newer else 'not a version of'} the {C.NET_FORMAT_NAME!r} format this "
                          f"reader knows (1..{C.NET_FORMAT_VERSION})",
                    "update snn-toolchain" if newer else "export it again with `train-export export`")
    return True


def _check_content(f, path: Path, ours: bool, notes: list) -> str | None:
    """The file's content checksum, verified (None where it carries none, with a note)."""
    if CHECKSUM_ATTR not in f.attrs:
        what = ("written by an older snn-toolchain" if ours else "a stock lava-dl file, without 'format'")
        notes.append(f"{path}: no content checksum ({what}): read without verifying that it is intact")
        return None
    stored = f.attrs[CHECKSUM_ATTR]
    stored = stored.decode() if isinstance(stored, bytes) else str(stored)
    if stored != content_checksum(f):
        raise _fail(path, f"content checksum mismatch (root attribute '{CHECKSUM_ATTR}'): the file was altered or "
                          "damaged after it was written", "export it again")
    return stored


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
        if "type" in neuron_group and _type(neuron_group, path) == "CUBA" and "vThMant" in neuron_group:
            threshold = np.asarray(neuron_group["vThMant"][()])
            return threshold.ndim == 0 and threshold.dtype.kind in "iuf" and float(threshold) > C.THRESHOLD_MANT_MAX
        return False
    readout = f.attrs.get("readout", "sum")
    readout = readout.decode() if isinstance(readout, bytes) else str(readout)
    if readout not in ("sum", "spikes"):
        raise _fail(path, f"root attribute 'readout' = {readout!r}, expected 'sum' or 'spikes'")
    return readout == "sum"


def _check_readout(neuron_group, key: str, ours: bool, path: Path, notes: list) -> None:
    """The summing readout as write_layer writes it (a stock file's never-firing CUBA: with a note)."""
    neuron_type = _type(neuron_group, path) if "type" in neuron_group else None
    role = _role(neuron_group)
    expected = "neuron type 'CUBA' with role 'sum-readout'"
    if neuron_type != "CUBA" or (role != "sum-readout" and (ours or role is not None)):
        raise _fail(path, f"layer {key}: the last layer must be the summing readout ({expected}), found neuron type "
                          f"{neuron_type!r}{'' if role is None else f' with role {role!r}'}"
                          f"{' (is the readout layer missing?)' if neuron_type != 'CUBA' else ''}")
    if not ours:
        if role is None:
            notes.append(f"{path}: layer {key} (CUBA, last, threshold beyond 17 bits: it never fires) is read as the "
                         "summing readout: its class scores are its synaptic input summed over the run")
        return
    for name, value in (("iDecay", C.DECAY_UNITY), ("vDecay", 0), ("vThMant", C.READOUT_THRESHOLD_MANT)):
        stored = _read(neuron_group, name, path)
        flat = stored.reshape(-1)
        wrong = flat != value
        if stored.ndim > 1 or flat.size == 0 or wrong.any():
            shown = flat[np.argmax(wrong)] if wrong.any() else stored.tolist()
            raise _fail(path, f"layer {key}: the summing readout's '{neuron_group.name}/{name}' = {shown} must be "
                              f"{value} (the readout is written with iDecay {C.DECAY_UNITY}, vDecay 0, "
                              f"vThMant {C.READOUT_THRESHOLD_MANT})")


def _optional(group, key: str, ours: bool, path: Path, default, notes: list, what: str, ndim=None):
    """``group[key]``: required in a file of ours, else ``default()`` with a note."""
    if key in group or ours:
        return _read(group, key, path, ndim=ndim)
    notes.append(f"{path}: no '{group.name}/{key}' (a stock lava-dl file): {what}")
    return default()


def _read_net(path: Path, time_steps_given: int | None = None):
    import h5py

    if not path.is_file():
        raise _fail(path, "file not found", "check the path, or export a trained run with `train-export export`")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise _fail(path, f"not a readable HDF5 file, truncated or corrupt ({err.__class__.__name__})") from None
    notes: list[str] = []
    with handle as f:
        ours = _is_ours(f, path)
        check_hdf5_sizes(f, path)             # before anything reads a dataset whole, the checksum included
        check_export_set(path, _check_content(f, path, ours, notes))
        if "layer" not in f or len(f["layer"]) == 0:
            raise _fail(path, "no 'layer' group: not a NetX network file")
        if "time_steps" in f.attrs:
            time_steps = check_time_steps(f.attrs["time_steps"])
            if time_steps_given is not None and int(time_steps_given) != time_steps:
                raise _fail(path, f"the file is for time_steps = {time_steps}, not {time_steps_given}",
                            f"use --time-steps {time_steps} or leave it out")
        elif ours:
            raise _fail(path, "missing root attribute 'time_steps'")
        elif time_steps_given is None:
            raise _fail(path, "a stock lava-dl file stores no time_steps (lava-dl runs as many steps as the input "
                              "has)", "give the input's steps per sample: --time-steps N (read_net(path, time_steps=N))")
        else:
            time_steps = check_time_steps(time_steps_given)
            notes.append(f"{path}: no time_steps stored (a stock lava-dl file): run for {time_steps} input steps "
                         "per sample, as given")
        if ours and "variant" not in f.attrs:
            raise _fail(path, "missing root attribute 'variant'")
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
            bias = _optional(group, "bias", ours, path, lambda: np.zeros(out_features, dtype=np.int64), notes,
                             "its biases are read as 0", ndim=1)
            delay = _optional(group, "delay", ours, path, lambda: np.zeros_like(weight), notes,
                              "its delays are read as 0")
            scale = _positive_scale(group, "weightScale", path, out_features) if "weightScale" in group or ours else None
            neuron_group = group["neuron"] if "neuron" in group else None
            if neuron_group is None:
                raise _fail(path, f"missing 'layer/{key}/neuron'")
            is_readout = index == count - 1 and _last_is_sum_readout(f, neuron_group, key, ours, path)
            if is_readout:
                _check_readout(neuron_group, key, ours, path, notes)
            elif neuron_group.attrs.get("role") is not None:
                raise _fail(path, f"layer {key} is marked role {neuron_group.attrs['role']!r} but is not the last layer")
            neuron_type = _type(neuron_group, path)
            threshold_mant = _positive_scale(neuron_group, "vThMant", path, out_features)
            if scale is None:
                # a stock lava-dl file has no weightScale: a hidden layer's threshold is its scale; the
                # readout's vThMant is lava-dl's "infinite" 2^18 - 1, which no weight scale equals
                scale = 1 if is_readout else threshold_mant
            shift = int(_read(group, "inputShift", path, ndim=0)) if "inputShift" in group else 0
            layer = QuantizedLayer(key, weight, delay, bias, scale, input_shift=shift)
            if not is_readout:
                kind = neuron_kind_for_net_type(neuron_type)
                if kind is None:
                    raise _fail(path, f"layer {key}: unknown neuron type '{neuron_type}' "
                                      f"(registered: {registered_net_types()})")
                # FIELD_LIMITS' range, checked before a kind shifts vThMant into a threshold
                check_range(key, "neuron vThMant", np.atleast_1d(threshold_mant), "threshold_mant",
                            name_index=np.ndim(threshold_mant) > 0)
                layer.neuron, layer.neuron_variant = kind.read(_read_context(neuron_group, key, layer, threshold_mant,
                                                                             path))
            layers.append(layer)
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
        raise _fail(path, str(err)) from None
    if ours and (stored_run_steps is None or int(stored_run_steps) != network.run_steps):
        raise _fail(path, f"root attribute 'run_steps' = {stored_run_steps} but time_steps + layers = "
                          f"{network.run_steps}")
    return network
