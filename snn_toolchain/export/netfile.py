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

Here: the writer, the entry of the reader, and the memory check before a file is read. The checks
of a whole file (format, checksum, export set) are in ``netfile_integrity.py``, the reading of its
content key by key in ``netfile_reader.py``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from snn_toolchain import __version__
from snn_toolchain import constants as C
from snn_toolchain.atomic import atomic_path
from snn_toolchain.export.netfile_integrity import (
    CHECKSUM_ATTR,
    check_export_set,
    check_format,
    content_checksum,
    verify_checksum,
)
from snn_toolchain.export.netfile_reader import read_network
from snn_toolchain.export.netfile_values import (INPUT_ENCODING_NAME, NetFileError, mark_foreign, net_file_error,
                                                 reading)
from snn_toolchain.input_encoding import GradedInputEncoding
from snn_toolchain.netcodec import write_layer
from snn_toolchain.quantized_network import NetworkError

LOG = logging.getLogger(__name__)


def write_net(network, path: Path | str) -> Path:
    """Write ``network`` (a QuantizedNetwork) to ``path`` atomically; an illegal network
    (``validate()``) is refused before anything is written. The last root attribute written is
    the content checksum (:func:`content_checksum`)."""
    import h5py

    network.validate()
    path = Path(path)
    if network.input_stage is not None:    # written without it, the file would mean another network
        raise net_file_error(path, "the network holds NetX's input neuron stage (read from a stock lava-dl file), "
                                   "which this toolchain's .net format does not hold", "run the stock file itself")
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
            raise net_file_error(path, f"'{group.name}' is nested deeper than 32 groups")
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
                 3 * total, "no network a Loihi 2 system runs is this large: check the file")


def read_net(path: Path | str, time_steps: int | None = None):
    """Read a .net file back into a QuantizedNetwork (same integers as written).

    ``time_steps``: input steps per sample, for a stock lava-dl file, which does not store them
    (lava-dl runs a network for as many steps as its input has); a file of ours stores its own, and
    a different value is refused.

    Refuses (NetFileError, one line naming the file and the key) anything damaged, foreign or out
    of range; what it accepts with a remark (no content checksum, a stock lava-dl file's default
    delays) is in the returned network's ``notes``, one line each, also logged at INFO."""
    with reading():
        try:
            network = _read_net(Path(path), time_steps)
        except NetFileError:
            raise
        except NetworkError as err:      # a range check met while reading: name the file
            raise net_file_error(Path(path), str(err)) from None
        except RecursionError:           # e.g. a soft link that points at its own group
            raise net_file_error(Path(path), "its links form a cycle") from None
        except (ValueError, TypeError, KeyError, IndexError, OSError, OverflowError, RuntimeError) as err:
            raise net_file_error(Path(path), f"unexpected content ({err.__class__.__name__}: {err})") from None
    for note in network.notes:
        LOG.info(note)
    return network


def _read_net(path: Path, time_steps_given: int | None = None):
    import h5py

    if not path.is_file():
        raise net_file_error(path, "file not found",
                             "check the path, or export a trained run with `train-export export`")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise net_file_error(path, "not a readable HDF5 file, truncated or corrupt "
                                   f"({err.__class__.__name__})") from None
    notes: list[str] = []
    with handle as f:
        ours = check_format(f, path)
        mark_foreign(not ours)
        check_hdf5_sizes(f, path)             # before anything reads a dataset whole, the checksum included
        check_export_set(path, verify_checksum(f, path, ours, notes))
        return read_network(f, path, ours, time_steps_given, notes)
