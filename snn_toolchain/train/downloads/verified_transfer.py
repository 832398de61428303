"""Verified transfers for ``download.py``: streaming a URL into a temp file while hashing it, the
checksums that are published for a served file, and the atomic file operations every download uses.

Only the standard library and tqdm. Byte counts are bytes; timeouts are seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator, Mapping

from tqdm import tqdm

from snn_toolchain.errors import DownloadError, one_line

# Overrides the base URL of every dataset (a flat mirror of the official file names).
MIRROR_ENV_VAR = "SNN_TOOLCHAIN_MIRROR"

FETCH_IT_YOURSELF = (
    "retry, or fetch the file yourself and pass --data-dir to its folder "
    f"(or set {MIRROR_ENV_VAR} to a mirror that serves it)"
)


CHUNK_BYTES = 1 << 20


NETWORK_TIMEOUT_S = 60.0


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class PublishedChecksum:
    """What is published about one served file: hex digests and the size in bytes.

    Any field may be ``None`` (not published); every field that is set is checked.
    """

    md5: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None


@dataclass(frozen=True)
class Digests:
    md5: str
    sha256: str
    size_bytes: int


def stream_to_file(url: str, dest: Path, show_progress: bool) -> Digests:
    """Copy ``url`` into ``dest`` (already created), hashing on the way; return the digests."""
    md5 = hashlib.md5()
    sha256 = hashlib.sha256()
    received = 0
    with open_url(url) as response:
        announced = content_length(response)
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
                            chunk = response.read(CHUNK_BYTES)
                        except (OSError, http.client.HTTPException) as error:  # reset, timeout, truncated body
                            raise DownloadError(
                                f"connection lost while downloading {url} after {received} bytes "
                                f"({one_line(error)}); nothing was written, {FETCH_IT_YOURSELF}"
                            ) from None
                        if not chunk:
                            break
                        sink.write(chunk)
                        md5.update(chunk)
                        sha256.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
            except OSError as error:
                raise write_error(dest.parent, error) from None
    if announced is not None and received != announced:
        raise DownloadError(
            f"incomplete download of {url}: got {received} of {announced} bytes; "
            f"nothing was written, {FETCH_IT_YOURSELF}"
        )
    return Digests(md5=md5.hexdigest(), sha256=sha256.hexdigest(), size_bytes=received)


def read_small_url(url: str) -> bytes:
    """Whole body of a small text file (e.g. md5sums.txt), as bytes."""
    with open_url(url) as response:
        try:
            return response.read()
        except (OSError, http.client.HTTPException) as error:
            raise DownloadError(
                f"connection lost while downloading {url} ({one_line(error)}); {FETCH_IT_YOURSELF}"
            ) from None


def open_url(url: str):
    """Open ``url`` for reading; turn every network/HTTP failure into a one-line DownloadError."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise DownloadError(
            f"cannot download {url}: unsupported URL scheme {scheme!r}; "
            f"use an http(s) base URL (or {MIRROR_ENV_VAR})"
        )
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    # A proxy cannot reach this machine's loopback, so never route loopback through one.
    handlers = [urllib.request.ProxyHandler({})] if host in LOOPBACK_HOSTS else []
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, headers={"User-Agent": "snn-toolchain-download"})
    try:
        return opener.open(request, timeout=NETWORK_TIMEOUT_S)
    except urllib.error.HTTPError as error:
        error.close()
        raise DownloadError(
            f"HTTP {error.code} {one_line(error.reason)} for {url}; the file is not served there - "
            f"check the base URL / {MIRROR_ENV_VAR}, or fetch the file yourself and pass --data-dir to its folder"
        ) from None
    except urllib.error.URLError as error:
        raise DownloadError(
            f"cannot reach {url} ({one_line(error.reason)}); check the network connection, "
            f"or {FETCH_IT_YOURSELF}"
        ) from None
    except (OSError, ValueError, http.client.HTTPException) as error:  # timeouts, TLS, bad URLs/replies
        raise DownloadError(
            f"cannot download {url} ({one_line(error)}); check the network connection, "
            f"or {FETCH_IT_YOURSELF}"
        ) from None


def content_length(response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def file_matches(path: Path, expected: PublishedChecksum) -> bool:
    md5 = hashlib.md5()
    sha256 = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
                md5.update(chunk)
                sha256.update(chunk)
                size += len(chunk)
    except OSError:
        return False
    return checksum_mismatch(Digests(md5.hexdigest(), sha256.hexdigest(), size), expected) is None


def checksum_mismatch(actual: Digests, expected: PublishedChecksum) -> str | None:
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


def describe(expected: PublishedChecksum) -> str:
    parts = []
    if expected.sha256:
        parts.append(f"sha256 {expected.sha256}")
    if expected.md5:
        parts.append(f"md5 {expected.md5}")
    if expected.size_bytes is not None:
        parts.append(f"{expected.size_bytes} bytes")
    return ", ".join(parts)


def is_hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdefABCDEF" for c in text)


def parse_checksum_overrides(checksums: Mapping[str, str]) -> dict[str, PublishedChecksum]:
    parsed: dict[str, PublishedChecksum] = {}
    for served_name, digest in checksums.items():
        digest = digest.strip().lower()
        if is_hex(digest, 32):
            parsed[served_name] = PublishedChecksum(md5=digest)
        elif is_hex(digest, 64):
            parsed[served_name] = PublishedChecksum(sha256=digest)
        else:
            raise DownloadError(
                f"checksum {digest!r} given for {served_name} is neither an MD5 (32 hex digits) "
                "nor a SHA-256 (64 hex digits); pass it as <file>=<hex digest>"
            )
    return parsed


@contextlib.contextmanager
def temp_file_in(folder: Path, name: str) -> Iterator[Path]:
    """A hidden ``.<name>.*.part`` file in ``folder`` that is removed unless renamed away."""
    try:
        handle, temp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    except OSError as error:
        raise write_error(folder, error) from None
    os.close(handle)
    temp_path = Path(temp_name)
    try:
        yield temp_path
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp_path.unlink()


def replace(source: Path, dest: Path) -> None:
    try:
        os.replace(source, dest)
    except OSError as error:
        raise write_error(dest, error) from None


def make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_error(folder, error) from None


def write_error(path: Path, error: OSError) -> DownloadError:
    return DownloadError(
        f"cannot write {path} ({one_line(error)}); free disk space or choose a writable --data-dir"
    )


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def parse_md5sums(text: str) -> dict[str, str]:
    """Parse ``md5sum``-style lines (``<md5>  <file name>``) into ``{file name: md5}``.

    Accepts the binary-mode marker (``<md5> *<name>``) and ``./`` prefixes; ignores blank,
    comment and malformed lines.
    """
    digests: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 2 or not is_hex(fields[0], 32):
            continue
        name = fields[1].lstrip("*")
        while name.startswith("./"):
            name = name[2:]
        digests[name] = fields[0].lower()
    return digests
