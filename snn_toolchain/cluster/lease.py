"""A folder's lease across machines: at most one process works in a run folder at a time, also when
the folder is on storage that several machines share (a cluster's NFS, Lustre or GPFS), and a holder
that died, its whole machine included, is replaced.

Why the flock alone (``atomic.exclusive_folder_lock``) is not enough there: the kernel drops it when
its process dies, but on a shared file system the *server* holds a lock for a client machine, and
keeps a dead machine's lock until its own lease runs out (NFSv4: 90 s by default) or, on NFSv3,
until that machine boots again. A lock file naming a host and a pid does not help either: no other
machine can check that pid.

The lease is ``FOLDER/.lease``: JSON, padded to a fixed size, naming its holder (host, boot id, pid
namespace, pid, the process's start time, a random token) and a heartbeat count that a thread of the
holder rewrites in place every ``heartbeat_s`` seconds (in place, not by rename: an NFS client may
serve a renamed-over name from its cache for a minute, but it revalidates an open file).

A claimant:

- creates the file exclusively (``O_EXCL``, atomic on local file systems and NFSv3 or later): then
  there was no holder;
- else, a holder on *this* machine (same host name, boot and pid namespace) is checked directly:
  alive (its pid, with the start time recorded) -> refused at once; dead -> replaced at once;
- a holder of this host name but of an earlier boot of it (another boot id, its last heartbeat
  written before this machine booted) died when the machine went down -> replaced at once. Both
  conditions, because a host name alone does not name one machine (cluster nodes left with the
  same default name, containers): another machine of the same name has a live holder's heartbeat
  written seconds ago, after this machine's boot, and is watched as below;
- a holder on *another* machine is watched on the claimant's own monotonic clock (no two machines'
  clocks are ever compared): the file changes (a heartbeat) -> refused; no change for
  ``timeout_s`` seconds -> the holder is dead, or cut off for that long, and is replaced;
- replacing renames the stale file to a name of the claimant's own (of two claimants, one rename
  succeeds), checks that the stale content is what moved (else the holder beat just then: its file
  is put back and the claim refused), and creates the file anew exclusively.

The holder's heartbeat also checks that the lease is still its own. When it is not (the holder was
cut off, or stopped, for longer than ``timeout_s`` and was taken for dead), the process is stopped
(``on_lost``; by default SIGTERM to itself): two writers in one folder are what the lease prevents.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

from snn_toolchain.errors import ToolchainError

LEASE_NAME = ".lease"
LEASE_BYTES = 1024               # the file's fixed size: a heartbeat overwrites it in place, whole
HEARTBEAT_S = 10.0               # how often the holder renews its lease (seconds)
# A holder on another machine whose lease has not changed for this long (seconds, on the
# claimant's clock) is taken for dead: six missed heartbeats, so a slow shared disk is no death.
LEASE_TIMEOUT_S = 60.0
WATCH_POLL_S = 1.0               # how often a claimant looks at a lease it is watching (seconds)


def machine_identity() -> dict:
    """What makes two processes' pids comparable: the same host name, the same boot of it and the
    same pid namespace (two containers on one machine have pid namespaces of their own)."""
    identity = {"host": socket.gethostname(), "boot_id": None, "pid_namespace": None}
    with contextlib.suppress(OSError):
        identity["boot_id"] = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    with contextlib.suppress(OSError):
        identity["pid_namespace"] = os.stat("/proc/self/ns/pid").st_ino
    return identity


def process_start(pid: int) -> int | None:
    """The process's start time (clock ticks since boot, /proc/PID/stat), None when it is gone, a
    zombie, or there is no /proc: with the pid it names one process, never a later one given the
    same pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if not fields or fields[0] == b"Z":
        return None
    return int(fields[19])


def boot_time() -> float | None:
    """When this machine booted (seconds since the epoch: /proc/stat's btime), None without /proc."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    return None


def _pid_alive(pid: int, start: int | None) -> bool:
    if Path("/proc/self/stat").exists():
        return process_start(pid) is not None and (start is None or process_start(pid) == start)
    try:                                   # no /proc: the pid alone
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parse(raw: bytes) -> dict | None:
    """The lease's holder, None for a file being written or not a lease."""
    try:
        holder = json.loads(raw.rstrip(b"\0 \n").decode())
    except (UnicodeDecodeError, ValueError):
        return None
    return holder if isinstance(holder, dict) and "token" in holder else None


def _describe(holder: dict | None) -> str:
    if holder is None:
        return "a holder whose lease cannot be read"
    return f"pid {holder.get('pid')} on {holder.get('host')}"


def lease_looks_live(folder: Path | str, timeout_s: float = LEASE_TIMEOUT_S) -> bool:
    """Whether ``folder`` has a lease renewed within ``timeout_s`` by its file time: for progress
    displays only (it compares the file server's clock with this machine's), never for exclusion."""
    try:
        return time.time() - os.stat(Path(folder) / LEASE_NAME).st_mtime < timeout_s
    except OSError:
        return False


def _stop_this_process(message: str) -> None:
    print(f"[lease] {message}; stopping this run", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGTERM)


class FolderLease:
    """Hold ``FOLDER/.lease`` (the module docstring says how) while the ``with`` block runs.

    what: how refusals name the holder's work ("training run"). heartbeat_s, timeout_s, poll_s:
    seconds (defaults HEARTBEAT_S, LEASE_TIMEOUT_S, WATCH_POLL_S). say: where a claimant says that
    it is watching another machine's lease (default: standard error). on_lost(message): called by
    the heartbeat thread when the lease is no longer this process's (default: SIGTERM to itself).

    After entering, ``replaced`` is the holder this claim replaced (a dict, or None), and
    ``replaced_elsewhere`` whether that holder was on another machine, or on an earlier boot of this
    one (either way its flock may linger on a shared file system's server)."""

    def __init__(self, folder: Path | str, what: str = "run", *, heartbeat_s: float = HEARTBEAT_S,
                 timeout_s: float = LEASE_TIMEOUT_S, poll_s: float = WATCH_POLL_S, say=None, on_lost=None):
        if heartbeat_s * 2 > timeout_s:
            raise ValueError(f"a lease timeout of {timeout_s} s needs heartbeats at most every {timeout_s / 2} s")
        self.folder = Path(folder)
        self.path = self.folder / LEASE_NAME
        self.what = what
        self.heartbeat_s, self.timeout_s, self.poll_s = heartbeat_s, timeout_s, poll_s
        self.say = say or (lambda line: print(line, file=sys.stderr, flush=True))
        self.on_lost = on_lost or _stop_this_process
        self.token = uuid.uuid4().hex
        self.identity = {**machine_identity(), "pid": os.getpid(), "start": process_start(os.getpid())}
        self.beats = 0
        self.replaced: dict | None = None
        self.replaced_elsewhere = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------- claim

    def __enter__(self) -> "FolderLease":
        self._acquire()
        self._thread = threading.Thread(target=self._heartbeat, name=f"lease {self.folder}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _content(self) -> bytes:
        data = json.dumps({"token": self.token, **self.identity, "what": self.what, "beats": self.beats,
                           "heartbeat_s": self.heartbeat_s, "written": time.time()}).encode()
        if len(data) > LEASE_BYTES:
            raise ToolchainError(f"{self.path}: the lease does not fit {LEASE_BYTES} bytes (host name too long?)")
        return data.ljust(LEASE_BYTES)

    def _refuse(self, holder: dict | None, how: str = "") -> ToolchainError:
        return ToolchainError(f"{self.folder}: in use by another {self.what} ({_describe(holder)}{how}); "
                              "wait for it to finish, or choose another --run-dir")

    def _same_machine(self, holder: dict) -> bool:
        return all(holder.get(key) == self.identity[key] for key in ("host", "boot_id", "pid_namespace"))

    def _earlier_boot_of_this_machine(self, holder: dict) -> bool:
        """Whether ``holder`` ran on this machine before it last booted: the same host name, another
        boot id, and its last heartbeat written (its own clock: this machine's, then) before this
        boot. Another machine that merely shares the host name wrote its live heartbeat seconds ago."""
        booted, written = boot_time(), holder.get("written")
        boots = holder.get("boot_id"), self.identity["boot_id"]
        return (holder.get("host") == self.identity["host"] and None not in boots and boots[0] != boots[1]
                and booted is not None and isinstance(written, (int, float)) and written < booted)

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, self._content())
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def _read(self) -> bytes | None:
        try:
            with open(self.path, "rb") as handle:
                return handle.read(LEASE_BYTES)
        except FileNotFoundError:
            return None

    def _acquire(self) -> None:
        """Take the lease, replacing a dead holder; raise ToolchainError while a live one has it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        watched: tuple[bytes, float] | None = None      # (the lease as first seen, when: monotonic s)
        while True:
            if self._create():
                return
            raw = self._read()
            if raw is None:                                # its holder just let it go: try again
                continue
            holder = _parse(raw)
            if holder is not None and self._same_machine(holder):
                if holder.get("pid") == os.getpid() or _pid_alive(int(holder.get("pid", -1)), holder.get("start")):
                    raise self._refuse(holder)
                self._replace(raw, holder)                 # a dead process of this machine
                continue
            if holder is not None and self._earlier_boot_of_this_machine(holder):
                self._replace(raw, holder, "ran before this machine last booted")   # died with that boot
                continue
            now = time.monotonic()
            if watched is None:
                where = " (another machine)" if holder is not None else ""
                self.say(f"[lease] {self.folder}: held by {_describe(holder)}{where}; watching its heartbeat for up "
                         f"to {self.timeout_s:.0f} s to tell whether it is alive")
                watched = (raw, now)
            elif raw != watched[0]:
                raise self._refuse(holder, ", its heartbeat is live")
            elif now - watched[1] >= self.timeout_s:
                self._replace(raw, holder)
                watched = None
                continue
            time.sleep(self.poll_s)

    def _replace(self, raw: bytes, holder: dict | None, why: str = "") -> None:
        """Move the stale lease ``raw`` aside (one claimant's rename wins) and check that it was
        that content which moved; the caller then creates the lease anew."""
        aside = self.folder / f"{LEASE_NAME}.stale-{self.token}"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:                          # another claimant moved it first
            return
        moved = aside.read_bytes()[:LEASE_BYTES]
        if moved != raw:                                   # its holder beat just now: alive after all
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)
            aside.unlink()
            raise self._refuse(_parse(moved), ", its heartbeat is live")
        aside.unlink()
        self.replaced = holder
        self.replaced_elsewhere = holder is None or not self._same_machine(holder)
        if self.replaced_elsewhere:
            why = why or f"sent no heartbeat for {self.timeout_s:.0f} s"
            self.say(f"[lease] {self.folder}: {_describe(holder)} {why}: taken for dead, its lease replaced")

    # ------------------------------------------------------------------------------------- hold

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                fd = os.open(self.path, os.O_RDWR)
            except FileNotFoundError:
                self._lost("its lease file was removed")
                return
            except OSError as err:         # a shared disk's hiccup: the next beat tries again
                if err.errno == errno.ESTALE:
                    self._lost("its lease file was replaced")
                    return
                continue
            try:
                holder = _parse(os.pread(fd, LEASE_BYTES, 0))
                if holder is None or holder.get("token") != self.token:
                    self._lost(f"its lease was taken over by {_describe(holder)}")
                    return
                self.beats += 1
                os.pwrite(fd, self._content(), 0)
                os.fsync(fd)
            except OSError:
                continue
            finally:
                os.close(fd)

    def _lost(self, why: str) -> None:
        if not self._stop.is_set():
            self.on_lost(f"{self.folder}: this {self.what} no longer holds the folder ({why})")

    def release(self) -> None:
        """Stop the heartbeat and remove the lease if it is still this process's."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        raw = self._read()
        holder = _parse(raw) if raw is not None else None
        if holder is not None and holder.get("token") == self.token:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
