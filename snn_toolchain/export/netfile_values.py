"""One value of a ``.net`` file, read and checked, and the one-line refusal that names the file, the
key and the fix: what the writer and reader (``netfile.py``, ``netfile_reader.py``) and the checks
of a whole file (``netfile_integrity.py``) share.
"""

from __future__ import annotations

import contextlib
import contextvars
from pathlib import Path

import numpy as np

from snn_toolchain.errors import one_line
from snn_toolchain.quantized_network import NetworkError


class NetFileError(NetworkError):
    """A .net file is missing, truncated, or not in the expected layout."""


# '/input' attribute 'encoding' of graded inputs: payload = clip((x - low) / (high - low), 0, 1) * (2^bits - 1)
INPUT_ENCODING_NAME = "graded-linear"


OUR_FIX = "export it again with `train-export export`"
# the fix for a file this toolchain did not write (no root 'format'): re-exporting is no advice there
FOREIGN_FIX = "this file was not written by snn-toolchain (no root 'format'): check it with the tool that wrote it"
STOCK_NETX_FIX = "run such a network with stock lava-dl NetX (lava.lib.dl.netx.hdf5.Network)"
# the variant of a network read from a file without root 'variant' (which every file of ours has):
# how code that holds only the network (the Loihi 2 plan's hints) tells a file we did not write
STOCK_VARIANT = "unknown"

# whether the file being read is foreign (set by ``reading`` once its root 'format' is known)
_FOREIGN: contextvars.ContextVar = contextvars.ContextVar("netfile_foreign", default=None)


@contextlib.contextmanager
def reading():
    """While a file is read: ``mark_foreign`` may say it is not ours, and every refusal without its
    own fix then gives ``FOREIGN_FIX`` instead of advice to export it again."""
    token = _FOREIGN.set([False])
    try:
        yield
    finally:
        _FOREIGN.reset(token)


def mark_foreign(foreign: bool) -> None:
    state = _FOREIGN.get()
    if state is not None:
        state[0] = bool(foreign)


def net_file_error(path: Path, what: str, fix: str | None = None) -> NetFileError:
    """The refusal of ``path``: ``"<path>: <what>; <fix>"`` (by default, to export it again, or for a
    file this toolchain did not write, ``FOREIGN_FIX``)."""
    if fix is None:
        state = _FOREIGN.get()
        fix = FOREIGN_FIX if state is not None and state[0] else OUR_FIX
    # one line, whatever the value shown (a stored array's repr spans lines)
    return NetFileError(one_line(f"{path}: {what}; {fix}"))


def read_array(group, key: str, path: Path, ndim: int | None = None, integer: bool = True) -> np.ndarray:
    """``group[key]`` read whole: int64 where ``integer`` (a float dataset of whole numbers is taken),
    else as stored; refused when missing, of another type, or not of ``ndim`` dimensions."""
    if key not in group:
        raise net_file_error(path, f"missing '{group.name}/{key}'")
    value = group[key][()]
    array = np.asarray(value)
    if integer and array.dtype.kind not in "iu":
        if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
            array = array.astype(np.int64)
        else:
            raise net_file_error(path, f"'{group.name}/{key}' has dtype {array.dtype}, expected integers "
                                       "(a NaN or fractional value means the file was not written by the quantizer)")
    if ndim is not None and array.ndim != ndim:
        raise net_file_error(path, f"'{group.name}/{key}' has shape {array.shape}, expected {ndim} dimension(s)")
    return array.astype(np.int64) if integer else array


def read_type(group, path: Path) -> str:
    """The text of ``group/type`` (a layer's b"dense", a neuron's b"CUBA"), stored as a scalar or a 1-element array."""
    raw = read_array(group, "type", path, integer=False)
    raw = raw.reshape(-1)[0] if raw.ndim else raw.item()
    return raw.decode() if isinstance(raw, bytes) else str(raw)
