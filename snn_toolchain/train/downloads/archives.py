"""Archives for ``download.py``: safe tar extraction (no member may leave the destination), zip and
gzip members decompressed to their final name atomically, and the checks of an extracted folder.

Only the standard library.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO


from snn_toolchain.errors import DownloadError, one_line
from snn_toolchain.train.downloads.verified_transfer import (
    CHUNK_BYTES,
    FETCH_IT_YOURSELF,
    replace,
    temp_file_in,
    write_error,
)


@dataclass(frozen=True)
class ArchiveFolderDataset:
    """GSC: one tarball extracted into one folder."""

    archive_name: str
    folder_name: str
    required_files: tuple[str, ...]
    default_base_url: str


@dataclass(frozen=True)
class HeidelbergArchives:
    """SHD or SSC: one served archive per split, each holding one HDF5 file."""

    h5_names: tuple[str, ...]
    default_base_url: str


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def safe_extract_tar(archive: Path, dest_root: Path) -> int:
    """Extract a (gzip-)tar archive into ``dest_root``, refusing anything unsafe.

    Only regular files and folders are written, each to a path built from the member name's
    own components inside ``dest_root``. Absolute names, ``..`` components, links, devices and
    FIFOs are rejected. On rejection some members may already be written; callers extract into
    a temp folder they delete on error.

    Returns:
        The number of regular files written.

    Raises:
        DownloadError: unsafe member, or a damaged/truncated archive.
    """
    files_written = 0
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                relative_parts = safe_member_parts(member, archive)
                if not relative_parts:
                    continue  # the archive's own "./" entry
                target = dest_root.joinpath(*relative_parts)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                if source is None:
                    raise DownloadError(
                        f"cannot read member {member.name!r} of {archive}; the archive is damaged, {FETCH_IT_YOURSELF}"
                    )
                with source, open(target, "wb") as sink:
                    shutil.copyfileobj(source, sink, CHUNK_BYTES)
                files_written += 1
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise DownloadError(
            f"archive {archive} is damaged or truncated ({one_line(error)}); {FETCH_IT_YOURSELF}"
        ) from None
    return files_written


def safe_member_parts(member: tarfile.TarInfo, archive: Path) -> tuple[str, ...]:
    """The member's path components, or raise if extracting it could escape or is not plain."""
    name = member.name.replace("\\", "/")
    reason = None
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        reason = "absolute path"
    elif ".." in PurePosixPath(name).parts:
        reason = "'..' in its path"
    elif not (member.isfile() or member.isdir()):
        reason = "a link or special file"
    if reason is not None:
        raise DownloadError(
            f"refusing to extract {archive}: member {member.name!r} is {reason}; the archive is "
            f"not the official one - {FETCH_IT_YOURSELF}"
        )
    return tuple(part for part in PurePosixPath(name).parts if part not in ("", "."))


def decompress_to_final(archive: Path, origin: str, final_path: Path, archive_format: str) -> None:
    """Decompress ``archive`` to a temp file next to ``final_path``, check it, then rename it."""
    with temp_file_in(final_path.parent, final_path.name) as temp_path:
        try:
            with open(temp_path, "wb") as sink:
                if archive_format == "gz":
                    with gzip.open(archive, "rb") as source:
                        shutil.copyfileobj(source, sink, CHUNK_BYTES)
                else:
                    with zipfile.ZipFile(archive) as zipped, open_zip_member(
                        zipped, final_path.name, origin
                    ) as source:
                        shutil.copyfileobj(source, sink, CHUNK_BYTES)
        except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as error:
            if isinstance(error, OSError) and not isinstance(error, gzip.BadGzipFile) and error.errno:
                raise write_error(final_path, error) from None
            raise DownloadError(
                f"cannot decompress {origin} ({one_line(error)}); the archive is damaged "
                f"although its checksum matched - {FETCH_IT_YOURSELF}"
            ) from None
        if not looks_like_hdf5(temp_path):
            raise DownloadError(
                f"{origin} does not decompress to an HDF5 file; the archive is not the official "
                f"one - {FETCH_IT_YOURSELF}"
            )
        replace(temp_path, final_path)


def open_zip_member(zipped: zipfile.ZipFile, wanted_name: str, origin: str) -> BinaryIO:
    """Open the member called ``wanted_name`` (at any folder depth) for reading."""
    matches = [
        info
        for info in zipped.infolist()
        if not info.is_dir()
        and PurePosixPath(info.filename).name == wanted_name
        and not info.filename.startswith("__MACOSX/")
    ]
    if len(matches) != 1:
        members = ", ".join(info.filename for info in zipped.infolist()[:5])
        raise DownloadError(
            f"{origin} should hold exactly one {wanted_name} but holds [{members}]; "
            f"the archive is not the official one - {FETCH_IT_YOURSELF}"
        )
    return zipped.open(matches[0])  # type: ignore[return-value]


def looks_like_hdf5(path: Path) -> bool:
    """True if ``path`` carries the HDF5 signature where the format allows it (0, 512, 1024, ...)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            offset = 0
            while offset + len(HDF5_SIGNATURE) <= size:
                handle.seek(offset)
                if handle.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                    return True
                offset = 512 if offset == 0 else offset * 2
    except OSError:
        return False
    return False


def extract_to_final(archive: Path, origin: str, final_dir: Path, spec: ArchiveFolderDataset) -> None:
    """Extract into a temp folder next to ``final_dir``, check the layout, then swap it in."""
    temp_dir = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.", suffix=".part", dir=final_dir.parent))
    try:
        try:
            safe_extract_tar(archive, temp_dir)
        except OSError as error:
            raise write_error(final_dir, error) from None
        problem = archive_folder_problem(temp_dir, spec)
        if problem is not None:
            raise DownloadError(
                f"{origin} does not have the official layout ({problem}); "
                f"the archive is not the official one - {FETCH_IT_YOURSELF}"
            )
        swap_in_folder(temp_dir, final_dir)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


def swap_in_folder(new_dir: Path, final_dir: Path) -> None:
    """Put ``new_dir`` at ``final_dir``; an existing ``final_dir`` is removed only afterwards."""
    if not final_dir.exists():
        replace(new_dir, final_dir)
        return
    old_dir = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.", suffix=".old", dir=final_dir.parent))
    old_dir.rmdir()  # only the unique name is wanted
    replace(final_dir, old_dir)
    try:
        replace(new_dir, final_dir)
    except DownloadError:
        os.replace(old_dir, final_dir)  # put the previous good copy back
        raise
    shutil.rmtree(old_dir, ignore_errors=True)


def archive_folder_problem(folder: Path, spec: ArchiveFolderDataset) -> str | None:
    """Why ``folder`` is not a complete extraction, or ``None`` if it is.

    The official split lists name every validation and test clip, so each listed clip must exist.
    """
    if not folder.is_dir():
        return "it is not a folder"
    for required in spec.required_files:
        if not (folder / required).is_file():
            return f"missing {required}"
    word_folders = [
        child
        for child in folder.iterdir()
        if child.is_dir() and not child.name.startswith((".", "_")) and any(child.glob("*.wav"))
    ]
    if not word_folders:
        return "no word folders with .wav clips"
    for list_name in spec.required_files:
        for line in (folder / list_name).read_text(encoding="utf-8", errors="replace").splitlines():
            clip = line.strip()
            if clip and not (folder / clip).is_file():
                return f"{list_name} names {clip}, which is missing"
    return None
