"""The process tree, read from /proc, for the tests that check that no process outlives its parent
(tests/test_shutdown.py, tests/test_sweep.py; zombies count as gone), and waiting on a process that
runs in the background."""

from __future__ import annotations

import os
import time


def parents() -> dict:
    """pid -> parent pid of every living (not zombie) process."""
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] != b"Z":
                found[int(name)] = int(fields[1])
    return found


def descendants(pid: int) -> set:
    """The pids of the living descendants of ``pid``, walked down the kernel's own child lists
    (/proc/PID/task/TID/children), not the parent map the product walks: the check stays independent."""
    living = parents()
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    children = [int(c) for c in handle.read().split()]
            except OSError:
                continue
            for child in children:
                if child in living and child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def start_time(pid: int):
    """The process's start time (clock ticks since boot), None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def alive(pids) -> set:
    """Those of ``pids`` still alive: of a dict pid -> start time, only the very processes recorded
    (a pid the system has given to a new process since does not count)."""
    living = parents()
    if isinstance(pids, dict):
        return {pid for pid, start in pids.items() if pid in living and start_time(pid) == start}
    return {pid for pid in pids if pid in living}


def wait_for(condition, seconds=120.0, process=None):
    """Wait until ``condition()`` holds; fail if ``seconds`` pass first or ``process`` (a Popen) ends."""
    deadline = time.monotonic() + seconds
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the run ended early: {process.communicate()}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
