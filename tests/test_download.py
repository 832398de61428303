"""Tests of the --download path against a loopback HTTP server serving generated look-alike files.

Nothing here leaves 127.0.0.1: every URL points at the loopback server, and an autouse guard
fails any socket connection to another host.
"""

from __future__ import annotations

import collections
import gzip
import hashlib
import http.server
import io
import socket
import tarfile
import threading
import urllib.parse
import wave
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest

from snn_toolchain import constants
from snn_toolchain.errors import DownloadError
from snn_toolchain.train.downloads import download
from snn_toolchain.train.downloads.download import PublishedChecksum

SERVED_PREFIX = "/datasets"


# --- Loopback server ----------------------------------------------------------------------


@dataclass
class Truncated:
    """A reply that announces ``announced_bytes`` but sends only ``body`` and hangs up."""

    body: bytes
    announced_bytes: int


class LoopbackServer:
    """Serves ``files`` (name -> bytes or Truncated) under ``base_url`` and counts requests."""

    def __init__(self) -> None:
        self.files: dict[str, bytes | Truncated] = {}
        self.hits: collections.Counter[str] = collections.Counter()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
                name = path[len(SERVED_PREFIX) + 1 :] if path.startswith(SERVED_PREFIX + "/") else path
                server.hits[name] += 1
                reply = server.files.get(name)
                if reply is None:
                    self.send_error(404, "Not Found")
                    return
                body, announced = (
                    (reply.body, reply.announced_bytes) if isinstance(reply, Truncated) else (reply, len(reply))
                )
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(announced))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        host, port = self._httpd.server_address[:2]
        self.base_url = f"http://{host}:{port}{SERVED_PREFIX}"
        # A short poll interval: shutdown() waits for the next poll, 0.5 s by default.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, name="loopback-http", daemon=True
        )
        self._thread.start()

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def server():
    loopback = LoopbackServer()
    try:
        yield loopback
    finally:
        loopback.close()


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Fail any connection to a host other than 127.0.0.1, and ignore the user's mirror/proxies."""
    monkeypatch.delenv(download.MIRROR_ENV_VAR, raising=False)
    for proxy_var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy_var, raising=False)
    real_create_connection = socket.create_connection

    def guarded_create_connection(address, *args, **kwargs):
        host = address[0]
        if host != "127.0.0.1":
            raise AssertionError(f"test tried to connect to {host!r}; only 127.0.0.1 is allowed")
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded_create_connection)


# --- Generated look-alikes of the official files ------------------------------------------


def make_heidelberg_h5(n_samples: int, n_classes: int, seed: int) -> bytes:
    """Bytes of a small HDF5 file in the official SHD/SSC layout (times in seconds)."""
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        times = h5.create_dataset(
            constants.H5_TIMES, shape=(n_samples,), dtype=h5py.vlen_dtype(np.float32)
        )
        units = h5.create_dataset(
            constants.H5_UNITS, shape=(n_samples,), dtype=h5py.vlen_dtype(np.uint16)
        )
        for index in range(n_samples):
            n_spikes = int(rng.integers(5, 40))
            times[index] = np.sort(rng.uniform(0.0, 1.0, n_spikes)).astype(np.float32)
            units[index] = rng.integers(0, constants.SHD_RAW_CHANNELS, n_spikes).astype(np.uint16)
        h5.create_dataset(constants.H5_LABELS, data=rng.integers(0, n_classes, n_samples).astype(np.uint16))
        h5.create_dataset(constants.H5_SPEAKER, data=rng.integers(0, 12, n_samples).astype(np.uint16))
        h5.create_dataset(constants.H5_KEYS, data=np.array([f"word-{k}".encode() for k in range(n_classes)]))
    return buffer.getvalue()


def zip_one(member_name: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr(member_name, content)
    return buffer.getvalue()


def wav_bytes(n_samples: int = 160) -> bytes:
    """A tiny 16 kHz mono 16-bit PCM clip."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as clip:
        clip.setnchannels(1)
        clip.setsampwidth(2)
        clip.setframerate(constants.GSC_SAMPLE_RATE)
        clip.writeframes(np.zeros(n_samples, dtype=np.int16).tobytes())
    return buffer.getvalue()


def tar_gz(entries: list[tuple[str, bytes | None]], links: list[tarfile.TarInfo] = ()) -> bytes:
    """A .tar.gz of ``(name, content)`` (``None`` = folder) plus raw link members."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(content)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(content))
        for link in links:
            tar.addfile(link)
    return buffer.getvalue()


def gsc_entries(with_testing_list: bool = True) -> list[tuple[str, bytes | None]]:
    """A GSC v0.02-shaped archive: './'-prefixed word folders and the official split lists."""
    entries: list[tuple[str, bytes | None]] = [("./", None)]
    for word in ("yes", "no"):
        entries.append((f"./{word}/", None))
        for clip in ("0a7c2a8d_nohash_0.wav", "0b09edd3_nohash_1.wav"):
            entries.append((f"./{word}/{clip}", wav_bytes()))
    entries.append(("./_background_noise_/", None))
    entries.append(("./_background_noise_/white_noise.wav", wav_bytes(1600)))
    entries.append(("./validation_list.txt", b"yes/0a7c2a8d_nohash_0.wav\n"))
    if with_testing_list:
        entries.append(("./testing_list.txt", b"no/0b09edd3_nohash_1.wav\n"))
    entries.append(("./LICENSE", b"CC BY 4.0\n"))
    entries.append(("./README.md", b"Speech Commands look-alike for tests\n"))
    return entries


def md5_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def corrupt(data: bytes) -> bytes:
    """Same length, a few bytes flipped in the middle: what a bad transfer or mirror serves."""
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 8]) + data[middle + 8 :]


def everything_under(folder: Path) -> set[str]:
    """Every file and folder below ``folder`` (hidden ones included), as relative POSIX paths."""
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*")}


def assert_one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert message, "DownloadError must say what went wrong"
    assert "\n" not in message and "\r" not in message, f"message is not one line: {message!r}"
    assert "Traceback" not in message
    return message


@pytest.fixture
def shd_archives(monkeypatch):
    """Official-looking SHD content: h5 bytes per split and their zip/gz archives, pins overridden."""
    h5_by_name = {
        "shd_train.h5": make_heidelberg_h5(n_samples=12, n_classes=constants.SHD_CLASSES, seed=1),
        "shd_test.h5": make_heidelberg_h5(n_samples=6, n_classes=constants.SHD_CLASSES, seed=2),
    }
    zips = {f"{name}.zip": zip_one(name, content) for name, content in h5_by_name.items()}
    gzs = {f"{name}.gz": gzip.compress(content) for name, content in h5_by_name.items()}
    for served_name, archive in zips.items():
        monkeypatch.setitem(download.PUBLISHED_CHECKSUMS, served_name, PublishedChecksum(md5=md5_of(archive)))
    return h5_by_name, zips, gzs


# --- Heidelberg: success and re-runs ------------------------------------------------------


def test_shd_zip_download_writes_the_h5_files_and_a_rerun_stays_offline(tmp_path, server, shd_archives):
    h5_by_name, zips, _ = shd_archives
    server.files.update(zips)
    data_dir = tmp_path / "data"

    ready = download.download_dataset("shd", data_dir, base_url=server.base_url, progress=False)

    assert ready == data_dir
    assert everything_under(data_dir) == {"shd_train.h5", "shd_test.h5"}  # no archives, no temp files
    for name, content in h5_by_name.items():
        assert (data_dir / name).read_bytes() == content
    with h5py.File(data_dir / "shd_train.h5", "r") as h5:
        assert h5[constants.H5_LABELS].shape == (12,)
        assert h5[constants.H5_TIMES][0].dtype == np.float32
    assert server.hits == {"shd_train.h5.zip": 1, "shd_test.h5.zip": 1}  # pinned: md5sums.txt unused

    mtimes = {name: (data_dir / name).stat().st_mtime_ns for name in h5_by_name}
    again = download.download_dataset("shd", data_dir, base_url=server.base_url, progress=False)

    assert again == data_dir
    assert server.hits == {"shd_train.h5.zip": 1, "shd_test.h5.zip": 1}
    assert {name: (data_dir / name).stat().st_mtime_ns for name in h5_by_name} == mtimes


def test_ssc_gz_download_is_verified_against_the_official_md5sums_file(tmp_path, server, monkeypatch):
    h5_by_name = {
        name: make_heidelberg_h5(n_samples=4, n_classes=constants.SSC_CLASSES, seed=seed)
        for seed, name in enumerate(constants.SSC_SPLIT_FILES.values())
    }
    gzs = {f"{name}.gz": gzip.compress(content) for name, content in h5_by_name.items()}
    assert not any(name in download.PUBLISHED_CHECKSUMS for name in gzs), "gz checksums are not pinned"
    # The three spellings md5sum writes: text mode, binary mode ('*') and a './' path.
    md5sums = (
        f"{md5_of(gzs['ssc_train.h5.gz'])}  ssc_train.h5.gz\n"
        f"{md5_of(gzs['ssc_valid.h5.gz'])} *ssc_valid.h5.gz\n"
        f"{md5_of(gzs['ssc_test.h5.gz'])}  ./ssc_test.h5.gz\n"
        "0123456789abcdef0123456789abcdef  shd_train.h5.gz\n"
    )
    server.files.update(gzs)
    server.files["md5sums.txt"] = md5sums.encode()
    monkeypatch.setenv(download.MIRROR_ENV_VAR, server.base_url)  # no base_url argument: the env var

    ready = download.download_dataset("SSC", tmp_path, heidelberg_format="gz", progress=False)

    assert ready == tmp_path
    assert everything_under(tmp_path) == set(h5_by_name)
    for name, content in h5_by_name.items():
        assert (tmp_path / name).read_bytes() == content
    assert server.hits["md5sums.txt"] == 1
    assert all(server.hits[name] == 1 for name in gzs)


def test_an_archive_the_user_fetched_is_verified_and_used_without_network(tmp_path, server, shd_archives):
    h5_by_name, zips, _ = shd_archives
    for served_name, archive in zips.items():
        (tmp_path / served_name).write_bytes(archive)

    download.download_dataset("shd", tmp_path, base_url=server.base_url, progress=False)

    assert sum(server.hits.values()) == 0
    assert everything_under(tmp_path) == set(h5_by_name) | set(zips)  # the user's archives stay
    for name, content in h5_by_name.items():
        assert (tmp_path / name).read_bytes() == content


def test_a_corrupted_archive_the_user_fetched_is_refused(tmp_path, server, shd_archives):
    _, zips, _ = shd_archives
    bad_copy = corrupt(zips["shd_train.h5.zip"])
    (tmp_path / "shd_train.h5.zip").write_bytes(bad_copy)

    with pytest.raises(DownloadError) as error:
        download.download_dataset("shd", tmp_path, base_url=server.base_url, progress=False)

    message = assert_one_line(error)
    assert str(tmp_path / "shd_train.h5.zip") in message
    assert "does not match the published checksum" in message
    assert everything_under(tmp_path) == {"shd_train.h5.zip"}
    assert (tmp_path / "shd_train.h5.zip").read_bytes() == bad_copy  # the user's file is not deleted
    assert sum(server.hits.values()) == 0


def test_user_supplied_checksums_replace_a_missing_md5sums_file(tmp_path, server, shd_archives):
    h5_by_name, _, gzs = shd_archives
    server.files.update(gzs)  # no md5sums.txt on this mirror

    with pytest.raises(DownloadError) as error:
        download.download_dataset("shd", tmp_path, base_url=server.base_url, heidelberg_format="gz", progress=False)
    message = assert_one_line(error)
    assert server.url("md5sums.txt") in message and "HTTP 404" in message
    assert everything_under(tmp_path) == set()

    download.download_dataset(
        "shd",
        tmp_path,
        base_url=server.base_url,
        heidelberg_format="gz",
        checksums={name: md5_of(archive) for name, archive in gzs.items()},
        progress=False,
    )
    assert everything_under(tmp_path) == set(h5_by_name)
    assert server.hits["md5sums.txt"] == 1  # only the first attempt asked for it


# --- Heidelberg: failures leave nothing behind ---------------------------------------------


def test_a_corrupted_download_raises_and_leaves_no_partial_file(tmp_path, server, shd_archives):
    h5_by_name, zips, _ = shd_archives
    server.files["shd_train.h5.zip"] = zips["shd_train.h5.zip"]
    served_bad = corrupt(zips["shd_test.h5.zip"])
    server.files["shd_test.h5.zip"] = served_bad

    with pytest.raises(DownloadError) as error:
        download.download_dataset("shd", tmp_path, base_url=server.base_url, progress=False)

    message = assert_one_line(error)
    assert message.startswith(f"checksum mismatch for {server.url('shd_test.h5.zip')}")
    assert f"expected md5 {md5_of(zips['shd_test.h5.zip'])}, got {md5_of(served_bad)}" in message
    assert "--data-dir" in message
    # The good split stays; the bad one left neither a final file nor any temp file.
    assert everything_under(tmp_path) == {"shd_train.h5"}
    assert (tmp_path / "shd_train.h5").read_bytes() == h5_by_name["shd_train.h5"]


def test_a_corrupted_forced_redownload_does_not_clobber_the_good_files(tmp_path, server, shd_archives):
    h5_by_name, zips, _ = shd_archives
    server.files.update(zips)
    download.download_dataset("shd", tmp_path, base_url=server.base_url, progress=False)
    server.files["shd_train.h5.zip"] = corrupt(zips["shd_train.h5.zip"])

    with pytest.raises(DownloadError) as error:
        download.download_dataset("shd", tmp_path, base_url=server.base_url, progress=False, force=True)

    assert "checksum mismatch" in assert_one_line(error)
    assert server.hits["shd_train.h5.zip"] == 2  # force really went to the network
    assert everything_under(tmp_path) == set(h5_by_name)
    for name, content in h5_by_name.items():
        assert (tmp_path / name).read_bytes() == content


def test_a_404_raises_one_line_naming_the_url(tmp_path, server, shd_archives):
    with pytest.raises(DownloadError) as error:
        download.download_dataset("shd", tmp_path, base_url=server.base_url, progress=False)

    message = assert_one_line(error)
    assert "HTTP 404" in message
    assert server.url("shd_train.h5.zip") in message
    assert "--data-dir" in message
    assert everything_under(tmp_path) == set()


def test_an_unreachable_server_raises_one_line(tmp_path, shd_archives):
    with socket.socket() as probe:  # a port that was free a moment ago: connection refused
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    base_url = f"http://127.0.0.1:{closed_port}/datasets"

    with pytest.raises(DownloadError) as error:
        download.download_dataset("shd", tmp_path, base_url=base_url, progress=False)

    message = assert_one_line(error)
    assert message.startswith(f"cannot reach {base_url}/shd_train.h5.zip")
    assert everything_under(tmp_path) == set()


def test_a_connection_that_ends_early_raises_and_leaves_nothing(tmp_path, server, shd_archives):
    _, zips, _ = shd_archives
    archive = zips["shd_train.h5.zip"]
    server.files["shd_train.h5.zip"] = Truncated(body=archive[: len(archive) // 2], announced_bytes=len(archive))

    with pytest.raises(DownloadError) as error:
        download.download_dataset("shd", tmp_path, base_url=server.base_url, progress=False)

    message = assert_one_line(error)
    assert server.url("shd_train.h5.zip") in message
    assert f"got {len(archive) // 2} of {len(archive)} bytes" in message
    assert everything_under(tmp_path) == set()


def test_an_archive_without_the_h5_member_is_refused(tmp_path, server, monkeypatch):
    wrong_archive = zip_one("something_else.h5", make_heidelberg_h5(2, 20, seed=3))
    monkeypatch.setitem(download.PUBLISHED_CHECKSUMS, "shd_train.h5.zip", PublishedChecksum(md5=md5_of(wrong_archive)))
    server.files["shd_train.h5.zip"] = wrong_archive

    with pytest.raises(DownloadError) as error:
        download.download_dataset("shd", tmp_path, base_url=server.base_url, progress=False)

    message = assert_one_line(error)
    assert "shd_train.h5" in message and "something_else.h5" in message
    assert everything_under(tmp_path) == set()


# --- GSC -----------------------------------------------------------------------------------


def pin_gsc(monkeypatch, archive: bytes) -> None:
    monkeypatch.setitem(
        download.PUBLISHED_CHECKSUMS,
        download.GSC_ARCHIVE_NAME,
        PublishedChecksum(md5=md5_of(archive), sha256=sha256_of(archive), size_bytes=len(archive)),
    )


def test_gsc_download_extracts_the_folder_and_a_rerun_stays_offline(tmp_path, server, monkeypatch):
    archive = tar_gz(gsc_entries())
    pin_gsc(monkeypatch, archive)
    server.files[download.GSC_ARCHIVE_NAME] = archive

    ready = download.download_dataset("gsc", tmp_path, base_url=server.base_url, progress=False)

    assert ready == tmp_path / download.GSC_FOLDER_NAME
    assert {path.split("/")[0] for path in everything_under(tmp_path)} == {download.GSC_FOLDER_NAME}
    assert (ready / "validation_list.txt").read_text() == "yes/0a7c2a8d_nohash_0.wav\n"
    assert (ready / "testing_list.txt").is_file()
    with wave.open(str(ready / "no" / "0b09edd3_nohash_1.wav"), "rb") as clip:
        assert clip.getframerate() == constants.GSC_SAMPLE_RATE
    assert sorted(p.name for p in ready.iterdir() if p.is_dir()) == ["_background_noise_", "no", "yes"]
    assert server.hits == {download.GSC_ARCHIVE_NAME: 1}

    assert download.download_dataset("gsc", tmp_path, base_url=server.base_url, progress=False) == ready
    assert server.hits == {download.GSC_ARCHIVE_NAME: 1}


def test_a_corrupted_gsc_download_keeps_the_existing_folder(tmp_path, server, monkeypatch):
    archive = tar_gz(gsc_entries())
    pin_gsc(monkeypatch, archive)
    server.files[download.GSC_ARCHIVE_NAME] = archive
    ready = download.download_dataset("gsc", tmp_path, base_url=server.base_url, progress=False)
    before = everything_under(tmp_path)
    server.files[download.GSC_ARCHIVE_NAME] = corrupt(archive)

    with pytest.raises(DownloadError) as error:
        download.download_dataset("gsc", tmp_path, base_url=server.base_url, progress=False, force=True)

    message = assert_one_line(error)
    assert f"checksum mismatch for {server.url(download.GSC_ARCHIVE_NAME)}: expected sha256" in message
    assert everything_under(tmp_path) == before
    assert (ready / "validation_list.txt").is_file()


def test_a_forced_gsc_redownload_replaces_the_folder(tmp_path, server, monkeypatch):
    archive = tar_gz(gsc_entries())
    pin_gsc(monkeypatch, archive)
    server.files[download.GSC_ARCHIVE_NAME] = archive
    ready = download.download_dataset("gsc", tmp_path, base_url=server.base_url, progress=False)
    (ready / "stray_file_from_before.txt").write_text("old")

    download.download_dataset("gsc", tmp_path, base_url=server.base_url, progress=False, force=True)

    assert not (ready / "stray_file_from_before.txt").exists()
    assert (ready / "validation_list.txt").is_file()
    assert {path.split("/")[0] for path in everything_under(tmp_path)} == {download.GSC_FOLDER_NAME}


def test_a_gsc_archive_without_the_split_lists_is_refused(tmp_path, server, monkeypatch):
    archive = tar_gz(gsc_entries(with_testing_list=False))
    pin_gsc(monkeypatch, archive)
    server.files[download.GSC_ARCHIVE_NAME] = archive

    with pytest.raises(DownloadError) as error:
        download.download_dataset("gsc", tmp_path, base_url=server.base_url, progress=False)

    message = assert_one_line(error)
    assert "missing testing_list.txt" in message and server.url(download.GSC_ARCHIVE_NAME) in message
    assert everything_under(tmp_path) == set()


def test_an_incomplete_existing_gsc_folder_is_reported_not_deleted(tmp_path, server):
    partial = tmp_path / download.GSC_FOLDER_NAME
    (partial / "yes").mkdir(parents=True)
    (partial / "yes" / "a.wav").write_bytes(wav_bytes())

    with pytest.raises(DownloadError) as error:
        download.download_dataset("gsc", tmp_path, base_url=server.base_url, progress=False)

    message = assert_one_line(error)
    assert str(partial) in message and "missing validation_list.txt" in message
    assert (partial / "yes" / "a.wav").is_file()
    assert sum(server.hits.values()) == 0


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize(
    "evil_entries, evil_links, reason",
    [
        ([("./../escaped.txt", b"gotcha")], [], "'..' in its path"),
        ([("./yes/../../escaped.txt", b"gotcha")], [], "'..' in its path"),
        ([("{absolute}", b"gotcha")], [], "absolute path"),
        ([], [_link("./yes/passwd", "/etc/passwd", tarfile.SYMTYPE)], "a link or special file"),
        ([], [_link("./yes/hard", "../../escaped.txt", tarfile.LNKTYPE)], "a link or special file"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink", "hardlink"],
)
def test_unsafe_tar_members_are_rejected(tmp_path, server, monkeypatch, evil_entries, evil_links, reason):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    absolute_target = tmp_path / "absolute_escape.txt"
    entries = gsc_entries() + [(name.format(absolute=absolute_target), content) for name, content in evil_entries]
    archive = tar_gz(entries, links=evil_links)
    pin_gsc(monkeypatch, archive)
    server.files[download.GSC_ARCHIVE_NAME] = archive

    with pytest.raises(DownloadError) as error:
        download.download_dataset("gsc", data_dir, base_url=server.base_url, progress=False)

    message = assert_one_line(error)
    assert message.startswith("refusing to extract") and reason in message
    assert not (tmp_path / "escaped.txt").exists()
    assert not absolute_target.exists()
    assert everything_under(data_dir) == set()  # no folder, no temp folder, no temp archive


def test_safe_extract_tar_writes_only_inside_the_destination(tmp_path):
    good = tmp_path / "good.tar.gz"
    good.write_bytes(tar_gz(gsc_entries()))
    destination = tmp_path / "out"
    destination.mkdir()

    files_written = download.safe_extract_tar(good, destination)

    assert files_written == 9  # 4 word clips, 1 noise clip, 2 lists, LICENSE, README.md
    assert (destination / "yes" / "0a7c2a8d_nohash_0.wav").is_file()

    evil = tmp_path / "evil.tar.gz"
    evil.write_bytes(tar_gz([("../outside.txt", b"x")]))
    with pytest.raises(DownloadError):
        download.safe_extract_tar(evil, destination)
    assert not (tmp_path / "outside.txt").exists()


def test_a_truncated_tarball_is_reported_as_damaged(tmp_path):
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(tar_gz(gsc_entries())[:200])

    with pytest.raises(DownloadError) as error:
        download.safe_extract_tar(truncated, tmp_path / "out")

    assert "damaged or truncated" in assert_one_line(error)


# --- Helpers and registry ------------------------------------------------------------------


def test_fetch_verified_replaces_only_after_verification(tmp_path, server):
    payload = b"official bytes" * 100
    server.files["blob.bin"] = payload
    dest = tmp_path / "blob.bin"

    assert download.fetch_verified(server.url("blob.bin"), dest, sha256=sha256_of(payload)) == dest
    assert dest.read_bytes() == payload
    download.fetch_verified(server.url("blob.bin"), dest, md5=md5_of(payload))
    assert server.hits["blob.bin"] == 1  # already present and valid: no second request

    server.files["blob.bin"] = corrupt(payload)
    newer = b"a newer release" * 100
    with pytest.raises(DownloadError) as error:
        download.fetch_verified(server.url("blob.bin"), dest, md5=md5_of(newer))
    assert "checksum mismatch" in assert_one_line(error)
    assert dest.read_bytes() == payload
    assert everything_under(tmp_path) == {"blob.bin"}


def test_parse_md5sums_reads_md5sum_output():
    text = (
        "d41d8cd98f00b204e9800998ecf8427e  shd_train.h5.gz\n"
        "D41D8CD98F00B204E9800998ECF8427F *shd_test.h5.gz\n"
        "\n# a comment\nnot-a-digest  file\n"
        "0123456789abcdef0123456789abcdef  ./ssc_test.h5.gz\n"
    )
    assert download.parse_md5sums(text) == {
        "shd_train.h5.gz": "d41d8cd98f00b204e9800998ecf8427e",
        "shd_test.h5.gz": "d41d8cd98f00b204e9800998ecf8427f",
        "ssc_test.h5.gz": "0123456789abcdef0123456789abcdef",
    }


def test_unknown_dataset_and_bad_checksum_are_one_line_errors(tmp_path):
    with pytest.raises(DownloadError) as error:
        download.download_dataset("mnist", tmp_path, progress=False)
    assert "mnist" in assert_one_line(error) and "shd" in str(error.value)

    with pytest.raises(DownloadError) as error:
        download.download_dataset("shd", tmp_path, checksums={"shd_train.h5.zip": "abc"}, progress=False)
    assert "shd_train.h5.zip" in assert_one_line(error)


def test_registry_lists_the_official_files_with_published_checksums():
    assert download.DATASETS["shd"].h5_names == ("shd_train.h5", "shd_test.h5")
    assert download.DATASETS["ssc"].h5_names == ("ssc_train.h5", "ssc_valid.h5", "ssc_test.h5")
    assert download.DATASETS["gsc"].archive_name == "speech_commands_v0.02.tar.gz"
    for h5_name in download.DATASETS["shd"].h5_names + download.DATASETS["ssc"].h5_names:
        pinned = download.PUBLISHED_CHECKSUMS[f"{h5_name}.zip"]
        assert pinned.md5 is not None and len(pinned.md5) == 32
    gsc = download.PUBLISHED_CHECKSUMS["speech_commands_v0.02.tar.gz"]
    assert gsc.sha256 is not None and len(gsc.sha256) == 64
    assert gsc.size_bytes == 2_428_923_189
