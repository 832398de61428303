"""Child processes that never outlive their parent, and stopping them at once: the one home of what
the Lava session (``lava_models/shutdown.py``) and the sweep's worker pool (``train/sweeps/sweep.py``) both
need, and of the process tree read from ``/proc`` (which processes descend from this one, which are
still alive, killing them and waiting until they are gone). Core module: the standard library only
(Linux's ``prctl`` through ctypes where it exists).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from typing import Iterator

PR_SET_PDEATHSIG = 1                  # <linux/prctl.h>
SIGNALS = (signal.SIGINT, signal.SIGTERM)
# How often kill_pids looks again, in seconds: the kernel tears a killed process down within
# milliseconds, and a caller (the Lava session leaving) waits on it.
KILL_POLL_S = 0.005


def die_with_parent(parent: int | None, prctl=None) -> bool:
    """Ask the kernel to SIGKILL this process when the thread that started it ends (Linux's
    ``PR_SET_PDEATHSIG``: it covers a parent killed with SIGKILL, which cannot clean up); then exit
    at once if ``parent`` (the pid that started it) is gone already, since the request came too
    late for it. ``prctl``: libc's, looked up before a fork (a forked child should not load
    libraries); by default looked up here. Returns whether the request was made (False off Linux
    or without ctypes)."""
    requested = False
    if prctl is None and sys.platform.startswith("linux"):
        try:
            import ctypes

            prctl = ctypes.CDLL(None, use_errno=True).prctl
        except Exception:   # noqa: BLE001 - no ctypes or no prctl: the parent's own clean-up still applies
            prctl = None
    if prctl is not None:
        try:
            prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
            requested = True
        except Exception:   # noqa: BLE001 - as above
            pass
    if parent is not None and os.getppid() != parent:
        os._exit(1)
    return requested


def is_alive(process) -> bool:
    """``process.is_alive()`` of a multiprocessing process, False where it is closed or never started."""
    try:
        return process.is_alive()
    except Exception:   # noqa: BLE001
        return False


def wait_dead(processes, timeout_s: float) -> list:
    """Wait (at most ``timeout_s``) until the multiprocessing ``processes`` have exited; return
    those still alive."""
    deadline = time.monotonic() + timeout_s
    alive = [p for p in processes if is_alive(p)]
    while alive and time.monotonic() < deadline:
        sentinels = []
        for p in alive:
            with contextlib.suppress(Exception):
                sentinels.append(p.sentinel)
        if sentinels:
            multiprocessing.connection.wait(sentinels, timeout=max(0.0, min(0.2, deadline - time.monotonic())))
        else:
            time.sleep(0.05)
        alive = [p for p in alive if is_alive(p)]
    return alive


def end_processes(processes, grace_s: float, reap_s: float) -> None:
    """SIGTERM the multiprocessing ``processes``, SIGKILL those alive after ``grace_s``, and reap
    them (``multiprocessing.Process.join`` with a timeout: it also works on Lava's processes, whose
    own ``join`` has none)."""
    processes = [p for p in processes if is_alive(p)]
    for p in processes:
        with contextlib.suppress(Exception):
            p.terminate()
    for p in wait_dead(processes, grace_s):
        with contextlib.suppress(Exception):
            p.kill()
    wait_dead(processes, reap_s)
    for p in processes:
        with contextlib.suppress(Exception):
            multiprocessing.Process.join(p, 0)


def _living_stat(pid) -> list | None:
    """The fields of ``/proc/PID/stat`` after the command name (the state, then the parent pid);
    None when the process is gone or a zombie (it has exited; only its exit status is left), or
    where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields if len(fields) > 1 and fields[0] != b"Z" else None


def alive_pids(pids) -> set:
    """Those of ``pids`` still alive, orphans included (a dead parent does not end its children)."""
    return {pid for pid in pids if _living_stat(pid) is not None}


def descendants(pid: int | None = None) -> set:
    """The pids of the living descendants of ``pid`` (default: this process), from /proc (empty
    where there is none)."""
    pid = os.getpid() if pid is None else pid
    try:
        names = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        names = []
    children: dict = {}
    for name in names:
        fields = _living_stat(name)
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def kill_pids(pids, timeout_s: float) -> set:
    """SIGKILL ``pids`` and wait (at most ``timeout_s`` seconds) until each is gone; return those
    still alive then.

    A killed process lives on until the kernel has torn it down (under load a just-killed child
    was still there, not yet a zombie, in about 1 of 6 tries), so a caller that promises that
    what it started is gone must wait. Children of this process are reaped as they die: those
    multiprocessing started through their Process object (a ``waitpid`` from here would take
    their exit status, and multiprocessing would think them alive for good), others with
    ``waitpid``. Other processes (grandchildren, orphans) count as gone once they are zombies:
    reaping them is their parent's (or init's) business."""
    pids = set(pids)
    started_here = {p.pid: p for p in multiprocessing.active_children() if p.pid in pids}
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    remaining = pids
    while True:
        for pid in remaining:
            if pid in started_here:
                is_alive(started_here[pid])       # multiprocessing's poll reaps it
            else:
                with contextlib.suppress(OSError):   # ChildProcessError: not a child of ours
                    os.waitpid(pid, os.WNOHANG)
        remaining = alive_pids(remaining)
        if not remaining or time.monotonic() >= deadline:
            return remaining
        time.sleep(KILL_POLL_S)


@contextlib.contextmanager
def held_signals(reraise: bool = False) -> Iterator[list]:
    """SIGINT/SIGTERM arriving inside are held back (so that a second Ctrl-C cannot cut a clean-up
    short); yields the list of those that arrived; with ``reraise`` they are raised again when the
    block ends. Only in the main thread, where handlers run."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    arrived: list = []
    previous = {}
    for signum in SIGNALS:
        with contextlib.suppress(ValueError, OSError):
            previous[signum] = signal.signal(signum, lambda number, frame: arrived.append(number))
    try:
        yield arrived
    finally:
        for signum, handler in previous.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        if reraise:
            for signum in dict.fromkeys(arrived):
                signal.raise_signal(signum)
