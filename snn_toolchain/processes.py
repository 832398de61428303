"""Child processes that never outlive their parent, and stopping them at once: the one home of what
the Lava session (``lava_models/shutdown.py``) and the sweep's worker pool (``train/sweeps/sweep.py``) both
need. Core module: the standard library only (Linux's ``prctl`` through ctypes where it exists).
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
