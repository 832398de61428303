"""Whether a ``.net`` file may be read at all: its format and version, its content checksum (the
writer stores it, the reader verifies it), and that it is the file the export report beside it
describes (docs/file_format.md). Each refusal is one line naming the file, the key and the fix.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from snn_toolchain import constants as C
from snn_toolchain.export.netfile_values import net_file_error

CHECKSUM_ATTR = C.NET_CHECKSUM_ATTR


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


def check_format(f, path: Path) -> bool:
    """True for a file of this toolchain (root ``format``), False for a stock lava-dl file (none);
    an unknown format, or a version this reader does not know, is refused."""
    if "format" not in f.attrs:
        return False
    name = f.attrs["format"]
    name = name.decode() if isinstance(name, bytes) else name
    if not isinstance(name, str) or name != C.NET_FORMAT_NAME:
        raise net_file_error(path, f"unknown format {name!r} in root attribute 'format' (this toolchain reads "
                                   f"{C.NET_FORMAT_NAME!r} and stock lava-dl files, which have no 'format')",
                             "convert it, or read it with the tool that wrote it")
    if "format_version" not in f.attrs:
        raise net_file_error(path, f"missing root attribute 'format_version' (a {C.NET_FORMAT_NAME!r} file has one)")
    version = np.asarray(f.attrs["format_version"])
    if version.ndim != 0 or version.dtype.kind not in "iu" or not 1 <= int(version) <= C.NET_FORMAT_VERSION:
        newer = version.ndim == 0 and version.dtype.kind in "iu" and int(version) > C.NET_FORMAT_VERSION
        raise net_file_error(path, f"root attribute 'format_version' = {version.tolist()!r} is "
                                   f"{'newer than' if newer else 'not a version of'} the {C.NET_FORMAT_NAME!r} "
                                   f"format this reader knows (1..{C.NET_FORMAT_VERSION})",
                             "update snn-toolchain" if newer else "export it again with `train-export export`")
    return True


def verify_checksum(f, path: Path, ours: bool, notes: list) -> str | None:
    """The file's content checksum, verified (None where it carries none, with a note)."""
    if CHECKSUM_ATTR not in f.attrs:
        what = ("written by an older snn-toolchain" if ours else "a stock lava-dl file, without 'format'")
        notes.append(f"{path}: no content checksum ({what}): read without verifying that it is intact")
        return None
    stored = f.attrs[CHECKSUM_ATTR]
    stored = stored.decode() if isinstance(stored, bytes) else str(stored)
    if stored != content_checksum(f):
        raise net_file_error(path, f"content checksum mismatch (root attribute '{CHECKSUM_ATTR}'): the file was "
                                   "altered or damaged after it was written", "export it again")
    return stored


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
        raise net_file_error(path, f"it is not the file {report} describes (a newer or older export: an export was "
                                   "interrupted or the file was replaced)", "run the export again")
