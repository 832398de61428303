"""Fetch the official SHD, SSC and GSC v0.02 files, verified against published checksums.

What ends up under ``data_dir`` (the folder :func:`download_dataset` returns):

- ``"shd"``: ``data_dir/shd_train.h5``, ``data_dir/shd_test.h5``                -> returns ``data_dir``
- ``"ssc"``: ``data_dir/ssc_train.h5``, ``ssc_valid.h5``, ``ssc_test.h5``      -> returns ``data_dir``
- ``"gsc"``: ``data_dir/speech_commands_v0.02/`` (the extracted archive: one folder per word,
  ``validation_list.txt``, ``testing_list.txt``, ...)                          -> returns that folder

Guarantees:

- Nothing is accepted unverified. Heidelberg archives are checked against a pinned MD5, a
  checksum the caller passes, or the official ``md5sums.txt`` served next to them; the GSC
  tarball against its published SHA-256, MD5 and size, and its extracted layout is checked too.
- Every write is atomic: bytes go to a hidden ``*.part`` temp file (or folder) inside the
  destination folder, are verified, decompressed or extracted to another temp name, and only then
  ``os.replace``-d onto the final name. A failed, interrupted or corrupted download leaves no
  partial file behind and never replaces a file that was already there.
- Files already present and valid are not downloaded again (no network access at all).
- An archive the user fetched themselves and put in ``data_dir`` under its official name
  (e.g. ``shd_train.h5.zip``) is verified and used instead of downloading.
- Every failure is a :class:`~snn_toolchain.errors.DownloadError` with one line that names the
  URL or file and says what to do.

Base URLs can be overridden per call (``base_url=``) or for every dataset with the environment
variable ``SNN_TOOLCHAIN_MIRROR``; a mirror serves the official file names flat under its base
URL (``<mirror>/shd_train.h5.zip``, ``<mirror>/speech_commands_v0.02.tar.gz``, ...).

Only the standard library and tqdm are used.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterator, Mapping

from tqdm import tqdm

from snn_toolchain.constants import GSC_FOLDER_NAME, SHD_SPLIT_FILES, SSC_SPLIT_FILES
from snn_toolchain.errors import DownloadError

__all__ = [
    "MIRROR_ENV_VAR",
    "DATASETS",
    "PUBLISHED_CHECKSUMS",
    "PublishedChecksum",
    "download_dataset",
    "fetch_verified",
    "parse_md5sums",
    "safe_extract_tar",
]

# Overrides the base URL of every dataset (a flat mirror of the official file names).
MIRROR_ENV_VAR = "SNN_TOOLCHAIN_MIRROR"

# --- Official locations -------------------------------------------------------------------
# Heidelberg spiking data sets (Cramer et al. 2020). This is the base URL of the authors' own
# loader (github.com/fzenke/spytorch, notebooks/utils.py, get_shd_dataset) and of tonic
# (github.com/neuromorphs/tonic, tonic/datasets/hsd.py, HSD.base_url). The files used to live
# at https://compneuro.net/datasets/. Both "<split>.h5.gz" and "<split>.h5.zip" are served.
HEIDELBERG_BASE_URL = "https://zenkelab.org/datasets"
# "<md5>  <file name>" per line, published next to the files; the authors' loader verifies the
# *.h5.gz files against it (spytorch notebooks/utils.py).
HEIDELBERG_MD5SUMS_NAME = "md5sums.txt"

# Google Speech Commands (Warden 2018). The paper and TFDS name the http alias
# http://download.tensorflow.org/data/; this is the https form of the same Google Cloud Storage
# bucket, used by torchaudio (pytorch/audio, torchaudio/datasets/speechcommands.py).
GSC_BASE_URL = "https://storage.googleapis.com/download.tensorflow.org/data"
GSC_ARCHIVE_NAME = "speech_commands_v0.02.tar.gz"

# The official split lists at the top of the archive; they name every validation/test clip.
GSC_SPLIT_LISTS = ("validation_list.txt", "testing_list.txt")

HEIDELBERG_FORMATS = ("zip", "gz")

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_CHUNK_BYTES = 1 << 20
_NETWORK_TIMEOUT_S = 60.0
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class PublishedChecksum:
    """What is published about one served file: hex digests and the size in bytes.

    Any field may be ``None`` (not published); every field that is set is checked.
    """

    md5: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None


# Keyed by the file name as served. Looked up at call time, so tests can monkeypatch entries.
PUBLISHED_CHECKSUMS: dict[str, PublishedChecksum] = {
    # MD5 of the zipped Heidelberg files, as pinned by tonic (neuromorphs/tonic,
    # tonic/datasets/hsd.py: SHD.train_md5/test_md5, SSC.train_md5/valid_md5/test_md5) and,
    # identically, by spikingjelly (fangwei123456/spikingjelly,
    # spikingjelly/datasets/shd.py: resource_url_md5) for https://zenkelab.org/datasets/<name>.
    "shd_train.h5.zip": PublishedChecksum(md5="f3252aeb598ac776c1b526422d90eecb"),
    "shd_test.h5.zip": PublishedChecksum(md5="1503a5064faa34311c398fb0a1ed0a6f"),
    "ssc_train.h5.zip": PublishedChecksum(md5="d102be95e7144fcc0553d1f45ba94170"),
    "ssc_valid.h5.zip": PublishedChecksum(md5="b4eee3516a4a90dd0c71a6ac23a8ae43"),
    "ssc_test.h5.zip": PublishedChecksum(md5="a35ff1e9cffdd02a20eb850c17c37748"),
    # The *.h5.gz files are deliberately NOT pinned: the only copies of their MD5 found in
    # public code were single, uncorroborated hard-coded values, so they are verified against the
    # official md5sums.txt fetched from the same base URL at download time instead.
    #
    # GSC v0.02 tarball: size and SHA-256 from TensorFlow Datasets
    # (tensorflow/datasets, tensorflow_datasets/url_checksums/speech_commands.txt), SHA-256 also
    # in current torchaudio (torchaudio/datasets/speechcommands.py, _CHECKSUMS); the MD5 is the
    # one older torchaudio releases pinned (torchaudio/datasets/checksums/SPEECHCOMMANDS.txt).
    GSC_ARCHIVE_NAME: PublishedChecksum(
        md5="6b74f3901214cb2c2934e98196829835",
        sha256="af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
        size_bytes=2_428_923_189,
    ),
}


@dataclass(frozen=True)
class HeidelbergDataset:
    """SHD or SSC: one served archive per split, each holding one HDF5 file."""

    h5_names: tuple[str, ...]
    default_base_url: str = HEIDELBERG_BASE_URL


@dataclass(frozen=True)
class ArchiveFolderDataset:
    """GSC: one tarball extracted into one folder."""

    archive_name: str
    folder_name: str
    required_files: tuple[str, ...]
    default_base_url: str


DATASETS: dict[str, HeidelbergDataset | ArchiveFolderDataset] = {
    "shd": HeidelbergDataset(h5_names=tuple(SHD_SPLIT_FILES.values())),
    "ssc": HeidelbergDataset(h5_names=tuple(SSC_SPLIT_FILES.values())),
    "gsc": ArchiveFolderDataset(
        archive_name=GSC_ARCHIVE_NAME,
        folder_name=GSC_FOLDER_NAME,
        required_files=GSC_SPLIT_LISTS,
        default_base_url=GSC_BASE_URL,
    ),
}

_FETCH_IT_YOURSELF = (
    "retry, or fetch the file yourself and pass --data-dir to its folder "
    f"(or set {MIRROR_ENV_VAR} to a mirror that serves it)"
)
_PASS_CHECKSUM = "pass the expected checksum for it (download_dataset(checksums={name: digest}))"


# --- Public entry points ------------------------------------------------------------------


def download_dataset(
    dataset: str,
    data_dir: Path,
    *,
    base_url: str | None = None,
    progress: bool = True,
    heidelberg_format: str = "zip",
    checksums: Mapping[str, str] | None = None,
    force: bool = False,
    force_progress: bool = False,
) -> Path:
    """Make the official files of ``dataset`` ready under ``data_dir`` and return their folder.

    Args:
        dataset: ``"shd"``, ``"ssc"`` or ``"gsc"`` (case-insensitive).
        data_dir: destination folder; created if missing. See the module docstring for the layout.
        base_url: where the files are served (flat: ``<base_url>/<file name>``). Defaults to
            ``$SNN_TOOLCHAIN_MIRROR`` if set, else the official location of the dataset.
        progress: show a tqdm byte progress bar while downloading, when stderr is a terminal.
        heidelberg_format: ``"zip"`` (default; checked against pinned MD5s) or ``"gz"``
            (checked against the ``md5sums.txt`` served next to the files). SHD/SSC only.
        checksums: expected digests the caller vouches for, keyed by served file name
            (e.g. ``{"shd_train.h5.gz": "<md5>"}``); 32 hex digits are read as MD5, 64 as
            SHA-256. They replace the published ones for those files.
        force: download again even if the files are already present and valid. The old files
            stay in place until the new ones are verified.
        force_progress: show the progress bar even when stderr is not a terminal (e.g. in logs).

    Returns:
        ``data_dir`` for SHD/SSC, ``data_dir / "speech_commands_v0.02"`` for GSC.

    Raises:
        DownloadError: unknown dataset, network or HTTP failure, checksum mismatch, damaged or
            unsafe archive, or a destination that cannot be written. One line, with the fix.
    """
    key = dataset.strip().lower()
    if key not in DATASETS:
        raise DownloadError(
            f"unknown dataset {dataset!r} for --download; choose one of {', '.join(sorted(DATASETS))}"
        )
    spec = DATASETS[key]
    data_dir = Path(data_dir)
    _make_folder(data_dir)
    resolved_base_url = _resolve_base_url(base_url, spec.default_base_url)
    overrides = _parse_checksum_overrides(checksums or {})
    show_progress = progress and (force_progress or _stderr_is_terminal())

    if isinstance(spec, HeidelbergDataset):
        if heidelberg_format not in HEIDELBERG_FORMATS:
            raise DownloadError(
                f"unknown Heidelberg archive format {heidelberg_format!r}; "
                f"choose one of {', '.join(HEIDELBERG_FORMATS)}"
            )
        resolver = _ChecksumResolver(resolved_base_url, overrides)
        for h5_name in spec.h5_names:
            _ensure_heidelberg_file(
                h5_name,
                data_dir,
                base_url=resolved_base_url,
                archive_format=heidelberg_format,
                resolver=resolver,
                show_progress=show_progress,
                force=force,
            )
        return data_dir

    expected = overrides.get(spec.archive_name) or PUBLISHED_CHECKSUMS.get(spec.archive_name)
    if expected is None:
        # Not reached with the registry above; kept so a registry edit cannot silently
        # turn verification off.
        raise DownloadError(
            f"no published checksum for {spec.archive_name}; {_PASS_CHECKSUM}, "
            "or fetch the file yourself and pass --data-dir to its folder"
        )
    return _ensure_archive_folder(
        spec,
        data_dir,
        base_url=resolved_base_url,
        expected=expected,
        show_progress=show_progress,
        force=force,
    )


def fetch_verified(
    url: str,
    dest: Path,
    md5: str | None = None,
    sha256: str | None = None,
    *,
    size_bytes: int | None = None,
    progress: bool = False,
) -> Path:
    """Download ``url`` to ``dest`` atomically, accepting it only if it matches the digests.

    If ``dest`` already exists and matches, nothing is downloaded. Otherwise the bytes go to a
    temp file next to ``dest``, are checked, and replace ``dest`` only if they match, so a bad
    download never clobbers an existing file.

    Args:
        url: the file to fetch (http, https, or file).
        dest: final path; its folder is created if missing.
        md5, sha256: expected hex digests; at least one is required.
        size_bytes: expected size in bytes, if published.
        progress: show a tqdm byte progress bar.

    Returns:
        ``dest``.
    """
    expected = PublishedChecksum(md5=md5, sha256=sha256, size_bytes=size_bytes)
    if expected.md5 is None and expected.sha256 is None:
        raise ValueError("fetch_verified needs an md5 or sha256 to verify against")
    dest = Path(dest)
    _make_folder(dest.parent)
    if dest.is_file() and _file_matches(dest, expected):
        return dest
    with _downloaded_verified(url, dest.parent, dest.name, expected, progress) as temp_path:
        _replace(temp_path, dest)
    return dest


def parse_md5sums(text: str) -> dict[str, str]:
    """Parse ``md5sum``-style lines (``<md5>  <file name>``) into ``{file name: md5}``.

    Accepts the binary-mode marker (``<md5> *<name>``) and ``./`` prefixes; ignores blank,
    comment and malformed lines.
    """
    digests: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 2 or not _is_hex(fields[0], 32):
            continue
        name = fields[1].lstrip("*")
        while name.startswith("./"):
            name = name[2:]
        digests[name] = fields[0].lower()
    return digests


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
                relative_parts = _safe_member_parts(member, archive)
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
                        f"cannot read member {member.name!r} of {archive}; the archive is damaged, {_FETCH_IT_YOURSELF}"
                    )
                with source, open(target, "wb") as sink:
                    shutil.copyfileobj(source, sink, _CHUNK_BYTES)
                files_written += 1
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise DownloadError(
            f"archive {archive} is damaged or truncated ({_one_line(error)}); {_FETCH_IT_YOURSELF}"
        ) from None
    return files_written


# --- Heidelberg (SHD, SSC) ----------------------------------------------------------------


class _ChecksumResolver:
    """Finds the expected digest of a served file: caller's > pinned > official md5sums.txt.

    md5sums.txt is fetched at most once per download, and only when a file needs it.
    """

    def __init__(self, base_url: str, overrides: Mapping[str, PublishedChecksum]) -> None:
        self._base_url = base_url
        self._overrides = overrides
        self._served_md5s: dict[str, str] | None = None

    def expected_for(self, served_name: str) -> PublishedChecksum:
        if served_name in self._overrides:
            return self._overrides[served_name]
        if served_name in PUBLISHED_CHECKSUMS:
            return PUBLISHED_CHECKSUMS[served_name]
        served_md5s = self._official_md5sums()
        if served_name not in served_md5s:
            md5sums_url = _join_url(self._base_url, HEIDELBERG_MD5SUMS_NAME)
            raise DownloadError(
                f"{md5sums_url} lists no checksum for {served_name}; {_PASS_CHECKSUM}, "
                "or use the zip archives (heidelberg_format='zip'), whose checksums are pinned"
            )
        return PublishedChecksum(md5=served_md5s[served_name])

    def _official_md5sums(self) -> dict[str, str]:
        if self._served_md5s is None:
            md5sums_url = _join_url(self._base_url, HEIDELBERG_MD5SUMS_NAME)
            try:
                text = _read_small_url(md5sums_url).decode("utf-8", errors="replace")
            except DownloadError as error:
                raise DownloadError(
                    f"cannot get the official checksum list - {error}; or {_PASS_CHECKSUM}, "
                    "or use the zip archives (heidelberg_format='zip'), whose checksums are pinned"
                ) from None
            self._served_md5s = parse_md5sums(text)
        return self._served_md5s


def _ensure_heidelberg_file(
    h5_name: str,
    data_dir: Path,
    *,
    base_url: str,
    archive_format: str,
    resolver: _ChecksumResolver,
    show_progress: bool,
    force: bool,
) -> Path:
    """Make ``data_dir/h5_name`` a decompressed official HDF5 file; return its path."""
    final_path = data_dir / h5_name
    if not force and final_path.is_file() and _looks_like_hdf5(final_path):
        return final_path

    served_name = f"{h5_name}.{archive_format}"
    expected = resolver.expected_for(served_name)
    user_archive = data_dir / served_name
    if not force and user_archive.is_file():
        # The user fetched the archive themselves: use it, but only if it is the official one.
        if not _file_matches(user_archive, expected):
            raise DownloadError(
                f"local file {user_archive} does not match the published checksum "
                f"({_describe(expected)}); it is corrupted or not the official file - "
                "move it away and rerun --download, or fetch it again"
            )
        _decompress_to_final(user_archive, served_name, final_path, archive_format)
        return final_path

    url = _join_url(base_url, served_name)
    with _downloaded_verified(url, data_dir, served_name, expected, show_progress) as archive:
        _decompress_to_final(archive, url, final_path, archive_format)
    return final_path


def _decompress_to_final(archive: Path, origin: str, final_path: Path, archive_format: str) -> None:
    """Decompress ``archive`` to a temp file next to ``final_path``, check it, then rename it."""
    with _temp_file_in(final_path.parent, final_path.name) as temp_path:
        try:
            with open(temp_path, "wb") as sink:
                if archive_format == "gz":
                    with gzip.open(archive, "rb") as source:
                        shutil.copyfileobj(source, sink, _CHUNK_BYTES)
                else:
                    with zipfile.ZipFile(archive) as zipped, _open_zip_member(
                        zipped, final_path.name, origin
                    ) as source:
                        shutil.copyfileobj(source, sink, _CHUNK_BYTES)
        except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as error:
            if isinstance(error, OSError) and not isinstance(error, gzip.BadGzipFile) and error.errno:
                raise _write_error(final_path, error) from None
            raise DownloadError(
                f"cannot decompress {origin} ({_one_line(error)}); the archive is damaged "
                f"although its checksum matched - {_FETCH_IT_YOURSELF}"
            ) from None
        if not _looks_like_hdf5(temp_path):
            raise DownloadError(
                f"{origin} does not decompress to an HDF5 file; the archive is not the official "
                f"one - {_FETCH_IT_YOURSELF}"
            )
        _replace(temp_path, final_path)


def _open_zip_member(zipped: zipfile.ZipFile, wanted_name: str, origin: str) -> BinaryIO:
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
            f"the archive is not the official one - {_FETCH_IT_YOURSELF}"
        )
    return zipped.open(matches[0])  # type: ignore[return-value]


def _looks_like_hdf5(path: Path) -> bool:
    """True if ``path`` carries the HDF5 signature where the format allows it (0, 512, 1024, ...)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            offset = 0
            while offset + len(_HDF5_SIGNATURE) <= size:
                handle.seek(offset)
                if handle.read(len(_HDF5_SIGNATURE)) == _HDF5_SIGNATURE:
                    return True
                offset = 512 if offset == 0 else offset * 2
    except OSError:
        return False
    return False


# --- GSC ----------------------------------------------------------------------------------


def _ensure_archive_folder(
    spec: ArchiveFolderDataset,
    data_dir: Path,
    *,
    base_url: str,
    expected: PublishedChecksum,
    show_progress: bool,
    force: bool,
) -> Path:
    """Make ``data_dir/spec.folder_name`` the extracted, checked archive; return the folder."""
    final_dir = data_dir / spec.folder_name
    if final_dir.exists() and not force:
        problem = _archive_folder_problem(final_dir, spec)
        if problem is None:
            return final_dir
        # Not ours to delete: it may be the user's own partial copy.
        raise DownloadError(
            f"{final_dir} exists but is not a complete {spec.archive_name} extraction ({problem}); "
            "move it away and rerun --download"
        )

    user_archive = data_dir / spec.archive_name
    if not force and user_archive.is_file():
        if not _file_matches(user_archive, expected):
            raise DownloadError(
                f"local file {user_archive} does not match the published checksum "
                f"({_describe(expected)}); it is corrupted or not the official file - "
                "move it away and rerun --download, or fetch it again"
            )
        _extract_to_final(user_archive, str(user_archive), final_dir, spec)
        return final_dir

    url = _join_url(base_url, spec.archive_name)
    with _downloaded_verified(url, data_dir, spec.archive_name, expected, show_progress) as archive:
        _extract_to_final(archive, url, final_dir, spec)
    return final_dir


def _extract_to_final(archive: Path, origin: str, final_dir: Path, spec: ArchiveFolderDataset) -> None:
    """Extract into a temp folder next to ``final_dir``, check the layout, then swap it in."""
    temp_dir = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.", suffix=".part", dir=final_dir.parent))
    try:
        try:
            safe_extract_tar(archive, temp_dir)
        except OSError as error:
            raise _write_error(final_dir, error) from None
        problem = _archive_folder_problem(temp_dir, spec)
        if problem is not None:
            raise DownloadError(
                f"{origin} does not have the official layout ({problem}); "
                f"the archive is not the official one - {_FETCH_IT_YOURSELF}"
            )
        _swap_in_folder(temp_dir, final_dir)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


def _swap_in_folder(new_dir: Path, final_dir: Path) -> None:
    """Put ``new_dir`` at ``final_dir``; an existing ``final_dir`` is removed only afterwards."""
    if not final_dir.exists():
        _replace(new_dir, final_dir)
        return
    old_dir = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.", suffix=".old", dir=final_dir.parent))
    old_dir.rmdir()  # only the unique name is wanted
    _replace(final_dir, old_dir)
    try:
        _replace(new_dir, final_dir)
    except DownloadError:
        os.replace(old_dir, final_dir)  # put the previous good copy back
        raise
    shutil.rmtree(old_dir, ignore_errors=True)


def _archive_folder_problem(folder: Path, spec: ArchiveFolderDataset) -> str | None:
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


# --- Downloading and verifying ------------------------------------------------------------


@contextlib.contextmanager
def _downloaded_verified(
    url: str, folder: Path, name: str, expected: PublishedChecksum, show_progress: bool
) -> Iterator[Path]:
    """Download ``url`` to a temp file in ``folder``, verify it, yield it, and always delete it."""
    with _temp_file_in(folder, name) as temp_path:
        digests = _stream_to_file(url, temp_path, show_progress)
        mismatch = _mismatch(digests, expected)
        if mismatch is not None:
            raise DownloadError(
                f"checksum mismatch for {url}: {mismatch}; the download is corrupted or the "
                f"mirror serves a different file - nothing was written, {_FETCH_IT_YOURSELF}"
            )
        yield temp_path


@dataclass(frozen=True)
class _Digests:
    md5: str
    sha256: str
    size_bytes: int


def _stream_to_file(url: str, dest: Path, show_progress: bool) -> _Digests:
    """Copy ``url`` into ``dest`` (already created), hashing on the way; return the digests."""
    md5 = hashlib.md5()
    sha256 = hashlib.sha256()
    received = 0
    with _open_url(url) as response:
        announced = _content_length(response)
        with tqdm(
            total=announced,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=PurePosixPath(urllib.parse.urlsplit(url).path).name or url,
            disable=not show_progress,
            file=sys.stderr,
            leave=False,
        ) as bar:
            try:
                with open(dest, "wb") as sink:
                    while True:
                        try:
                            chunk = response.read(_CHUNK_BYTES)
                        except (OSError, http.client.HTTPException) as error:  # reset, timeout, truncated body
                            raise DownloadError(
                                f"connection lost while downloading {url} after {received} bytes "
                                f"({_one_line(error)}); nothing was written, {_FETCH_IT_YOURSELF}"
                            ) from None
                        if not chunk:
                            break
                        sink.write(chunk)
                        md5.update(chunk)
                        sha256.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
            except OSError as error:
                raise _write_error(dest.parent, error) from None
    if announced is not None and received != announced:
        raise DownloadError(
            f"incomplete download of {url}: got {received} of {announced} bytes; "
            f"nothing was written, {_FETCH_IT_YOURSELF}"
        )
    return _Digests(md5=md5.hexdigest(), sha256=sha256.hexdigest(), size_bytes=received)


def _read_small_url(url: str) -> bytes:
    """Whole body of a small text file (e.g. md5sums.txt), as bytes."""
    with _open_url(url) as response:
        try:
            return response.read()
        except (OSError, http.client.HTTPException) as error:
            raise DownloadError(
                f"connection lost while downloading {url} ({_one_line(error)}); {_FETCH_IT_YOURSELF}"
            ) from None


def _open_url(url: str):
    """Open ``url`` for reading; turn every network/HTTP failure into a one-line DownloadError."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise DownloadError(
            f"cannot download {url}: unsupported URL scheme {scheme!r}; "
            f"use an http(s) base URL (or {MIRROR_ENV_VAR})"
        )
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    # A proxy cannot reach this machine's loopback, so never route loopback through one.
    handlers = [urllib.request.ProxyHandler({})] if host in _LOOPBACK_HOSTS else []
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, headers={"User-Agent": "snn-toolchain-download"})
    try:
        return opener.open(request, timeout=_NETWORK_TIMEOUT_S)
    except urllib.error.HTTPError as error:
        error.close()
        raise DownloadError(
            f"HTTP {error.code} {_one_line(error.reason)} for {url}; the file is not served there - "
            f"check the base URL / {MIRROR_ENV_VAR}, or fetch the file yourself and pass --data-dir to its folder"
        ) from None
    except urllib.error.URLError as error:
        raise DownloadError(
            f"cannot reach {url} ({_one_line(error.reason)}); check the network connection, "
            f"or {_FETCH_IT_YOURSELF}"
        ) from None
    except (OSError, ValueError, http.client.HTTPException) as error:  # timeouts, TLS, bad URLs/replies
        raise DownloadError(
            f"cannot download {url} ({_one_line(error)}); check the network connection, "
            f"or {_FETCH_IT_YOURSELF}"
        ) from None


def _content_length(response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def _file_matches(path: Path, expected: PublishedChecksum) -> bool:
    md5 = hashlib.md5()
    sha256 = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
                md5.update(chunk)
                sha256.update(chunk)
                size += len(chunk)
    except OSError:
        return False
    return _mismatch(_Digests(md5.hexdigest(), sha256.hexdigest(), size), expected) is None


def _mismatch(actual: _Digests, expected: PublishedChecksum) -> str | None:
    """Describe the first disagreement with ``expected``, or ``None`` if everything set agrees."""
    if expected.size_bytes is not None and actual.size_bytes != expected.size_bytes:
        return f"expected {expected.size_bytes} bytes, got {actual.size_bytes}"
    if expected.sha256 is not None and actual.sha256 != expected.sha256.lower():
        return f"expected sha256 {expected.sha256.lower()}, got {actual.sha256}"
    if expected.md5 is not None and actual.md5 != expected.md5.lower():
        return f"expected md5 {expected.md5.lower()}, got {actual.md5}"
    if expected.md5 is None and expected.sha256 is None:
        return "no checksum to verify against"
    return None


def _describe(expected: PublishedChecksum) -> str:
    parts = []
    if expected.sha256:
        parts.append(f"sha256 {expected.sha256}")
    if expected.md5:
        parts.append(f"md5 {expected.md5}")
    if expected.size_bytes is not None:
        parts.append(f"{expected.size_bytes} bytes")
    return ", ".join(parts)


# --- Small helpers ------------------------------------------------------------------------


def _resolve_base_url(base_url: str | None, default_base_url: str) -> str:
    chosen = base_url or os.environ.get(MIRROR_ENV_VAR) or default_base_url
    return chosen.strip().rstrip("/")


def _join_url(base_url: str, name: str) -> str:
    return f"{base_url.rstrip('/')}/{urllib.parse.quote(name)}"


def _parse_checksum_overrides(checksums: Mapping[str, str]) -> dict[str, PublishedChecksum]:
    parsed: dict[str, PublishedChecksum] = {}
    for served_name, digest in checksums.items():
        digest = digest.strip().lower()
        if _is_hex(digest, 32):
            parsed[served_name] = PublishedChecksum(md5=digest)
        elif _is_hex(digest, 64):
            parsed[served_name] = PublishedChecksum(sha256=digest)
        else:
            raise DownloadError(
                f"checksum {digest!r} given for {served_name} is neither an MD5 (32 hex digits) "
                "nor a SHA-256 (64 hex digits); pass it as <file>=<hex digest>"
            )
    return parsed


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdefABCDEF" for c in text)


@contextlib.contextmanager
def _temp_file_in(folder: Path, name: str) -> Iterator[Path]:
    """A hidden ``.<name>.*.part`` file in ``folder`` that is removed unless renamed away."""
    try:
        handle, temp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    except OSError as error:
        raise _write_error(folder, error) from None
    os.close(handle)
    temp_path = Path(temp_name)
    try:
        yield temp_path
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp_path.unlink()


def _replace(source: Path, dest: Path) -> None:
    try:
        os.replace(source, dest)
    except OSError as error:
        raise _write_error(dest, error) from None


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _write_error(folder, error) from None


def _write_error(path: Path, error: OSError) -> DownloadError:
    return DownloadError(
        f"cannot write {path} ({_one_line(error)}); free disk space or choose a writable --data-dir"
    )


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _safe_member_parts(member: tarfile.TarInfo, archive: Path) -> tuple[str, ...]:
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
            f"not the official one - {_FETCH_IT_YOURSELF}"
        )
    return tuple(part for part in PurePosixPath(name).parts if part not in ("", "."))
