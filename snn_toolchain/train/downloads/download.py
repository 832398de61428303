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

The transfers use only the standard library and tqdm; what to fetch (each dataset's files, base URL
and checksums) comes from the dataset registry, ``train/data/registry.py``.
"""

from __future__ import annotations

import contextlib
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterator, Mapping


from snn_toolchain.constants import GSC_FOLDER_NAME  # noqa: F401 (re-exported: where GSC is extracted)
from snn_toolchain.errors import DownloadError
from snn_toolchain.train.downloads.archives import (
    ArchiveFolderDataset,
    HeidelbergArchives,
    archive_folder_problem,
    decompress_to_final,
    extract_to_final,
    looks_like_hdf5,
    safe_extract_tar,
)
# DATASETS: name -> download entry; PUBLISHED_CHECKSUMS: served file name -> digests (the registry's tables)
from snn_toolchain.train.data.registry import (  # noqa: F401 (names re-exported for callers of this module)
    DOWNLOADS as DATASETS,
    GSC_ARCHIVE_NAME,
    GSC_BASE_URL,
    GSC_SPLIT_LISTS,
    HEIDELBERG_BASE_URL,
    PUBLISHED_CHECKSUMS,
)
from snn_toolchain.train.downloads.verified_transfer import (
    FETCH_IT_YOURSELF,
    MIRROR_ENV_VAR,
    PublishedChecksum,
    file_matches,
    make_folder,
    checksum_mismatch,
    describe,
    parse_checksum_overrides,
    parse_md5sums,
    read_small_url,
    replace,
    stderr_is_terminal,
    stream_to_file,
    temp_file_in,
)

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


# --- Official locations and checksums ------------------------------------------------------
# Each dataset's spec (train/data/registry.py) names its served files, base URL and published
# checksums; registering it fills these tables, which are looked up at call time (so tests can
# monkeypatch entries).
# "<md5>  <file name>" per line, published next to the Heidelberg files; the authors' loader
# verifies the *.h5.gz files against it (spytorch notebooks/utils.py).
HEIDELBERG_MD5SUMS_NAME = "md5sums.txt"
HEIDELBERG_FORMATS = ("zip", "gz")

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
        dataset: ``"shd"``, ``"ssc"``, ``"gsc"`` or another registered dataset with a download entry
            (case-insensitive).
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
    make_folder(data_dir)
    resolved_base_url = _resolve_base_url(base_url, spec.default_base_url)
    overrides = parse_checksum_overrides(checksums or {})
    show_progress = progress and (force_progress or stderr_is_terminal())

    if isinstance(spec, HeidelbergArchives):
        _ensure_heidelberg_files(spec, data_dir, base_url=resolved_base_url, archive_format=heidelberg_format,
                                 overrides=overrides, show_progress=show_progress, force=force)
        return data_dir
    return _ensure_archive_folder(
        spec,
        data_dir,
        base_url=resolved_base_url,
        expected=_archive_checksum(spec, overrides),
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
    make_folder(dest.parent)
    if dest.is_file() and file_matches(dest, expected):
        return dest
    with _downloaded_verified(url, dest.parent, dest.name, expected, progress) as temp_path:
        replace(temp_path, dest)
    return dest


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
                text = read_small_url(md5sums_url).decode("utf-8", errors="replace")
            except DownloadError as error:
                raise DownloadError(
                    f"cannot get the official checksum list - {error}; or {_PASS_CHECKSUM}, "
                    "or use the zip archives (heidelberg_format='zip'), whose checksums are pinned"
                ) from None
            self._served_md5s = parse_md5sums(text)
        return self._served_md5s


def _ensure_heidelberg_files(
    spec: HeidelbergArchives,
    data_dir: Path,
    *,
    base_url: str,
    archive_format: str,
    overrides: Mapping[str, PublishedChecksum],
    show_progress: bool,
    force: bool,
) -> None:
    """Make every HDF5 file of ``spec`` a decompressed official file in ``data_dir``."""
    if archive_format not in HEIDELBERG_FORMATS:
        raise DownloadError(
            f"unknown Heidelberg archive format {archive_format!r}; "
            f"choose one of {', '.join(HEIDELBERG_FORMATS)}"
        )
    resolver = _ChecksumResolver(base_url, overrides)
    for h5_name in spec.h5_names:
        _ensure_heidelberg_file(
            h5_name,
            data_dir,
            base_url=base_url,
            archive_format=archive_format,
            resolver=resolver,
            show_progress=show_progress,
            force=force,
        )


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
    if not force and final_path.is_file() and looks_like_hdf5(final_path):
        return final_path

    served_name = f"{h5_name}.{archive_format}"
    expected = resolver.expected_for(served_name)
    user_archive = data_dir / served_name
    if not force and user_archive.is_file():
        _check_user_archive(user_archive, expected)
        decompress_to_final(user_archive, served_name, final_path, archive_format)
        return final_path

    url = _join_url(base_url, served_name)
    with _downloaded_verified(url, data_dir, served_name, expected, show_progress) as archive:
        decompress_to_final(archive, url, final_path, archive_format)
    return final_path


def _check_user_archive(user_archive: Path, expected: PublishedChecksum) -> None:
    """An archive the user fetched themselves is used only if it is the official one."""
    if not file_matches(user_archive, expected):
        raise DownloadError(
            f"local file {user_archive} does not match the published checksum "
            f"({describe(expected)}); it is corrupted or not the official file - "
            "move it away and rerun --download, or fetch it again"
        )


# --- GSC ----------------------------------------------------------------------------------


def _archive_checksum(spec: ArchiveFolderDataset, overrides: Mapping[str, PublishedChecksum]) -> PublishedChecksum:
    """The digests ``spec``'s archive must match: the caller's, else the published ones."""
    expected = overrides.get(spec.archive_name) or PUBLISHED_CHECKSUMS.get(spec.archive_name)
    if expected is None:
        # Not reached with the registry's entries; kept so a registry edit cannot silently
        # turn verification off.
        raise DownloadError(
            f"no published checksum for {spec.archive_name}; {_PASS_CHECKSUM}, "
            "or fetch the file yourself and pass --data-dir to its folder"
        )
    return expected


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
        problem = archive_folder_problem(final_dir, spec)
        if problem is None:
            return final_dir
        # Not ours to delete: it may be the user's own partial copy.
        raise DownloadError(
            f"{final_dir} exists but is not a complete {spec.archive_name} extraction ({problem}); "
            "move it away and rerun --download"
        )

    user_archive = data_dir / spec.archive_name
    if not force and user_archive.is_file():
        _check_user_archive(user_archive, expected)
        extract_to_final(user_archive, str(user_archive), final_dir, spec)
        return final_dir

    url = _join_url(base_url, spec.archive_name)
    with _downloaded_verified(url, data_dir, spec.archive_name, expected, show_progress) as archive:
        extract_to_final(archive, url, final_dir, spec)
    return final_dir


# --- Downloading and verifying ------------------------------------------------------------


@contextlib.contextmanager
def _downloaded_verified(
    url: str, folder: Path, name: str, expected: PublishedChecksum, show_progress: bool
) -> Iterator[Path]:
    """Download ``url`` to a temp file in ``folder``, verify it, yield it, and always delete it."""
    with temp_file_in(folder, name) as temp_path:
        digests = stream_to_file(url, temp_path, show_progress)
        mismatch = checksum_mismatch(digests, expected)
        if mismatch is not None:
            raise DownloadError(
                f"checksum mismatch for {url}: {mismatch}; the download is corrupted or the "
                f"mirror serves a different file - nothing was written, {FETCH_IT_YOURSELF}"
            )
        yield temp_path


# --- Small helpers ------------------------------------------------------------------------


def _resolve_base_url(base_url: str | None, default_base_url: str) -> str:
    chosen = base_url or os.environ.get(MIRROR_ENV_VAR) or default_base_url
    return chosen.strip().rstrip("/")


def _join_url(base_url: str, name: str) -> str:
    return f"{base_url.rstrip('/')}/{urllib.parse.quote(name)}"
