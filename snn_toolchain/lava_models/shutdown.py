"""Stopping Lava when a run is interrupted (Ctrl-C, SIGTERM) or fails: every Lava process ends,
nothing is printed by them, and the caller gets the exception back without a hang.

Why (Lava 0.10 on Linux, measured with ``train-export parity --net good.net --samples 60``: its 9 Lava
processes and the runtime service are 10 forked workers, plus Lava's SharedMemoryManager server
and a resource tracker):

- **Ctrl-C reaches every worker.** A terminal sends SIGINT to the whole foreground process group,
  and Lava's workers are ``fork``-ed ``multiprocessing`` children in that group, with Python's
  default SIGINT handler. Each raised KeyboardInterrupt inside its ProcessModel or runtime-service
  loop and printed a traceback (10 of them), and died in the middle of Lava's message protocol.
- **Then the parent never returned** (still running 30 s and 60 s later). ``Runtime.stop()`` sends
  STOP and blocks in a channel ``recv`` for the TERMINATED reply of runtime services that are
  dead; its ``finally`` then ``join()``s every worker without a timeout. Lava's channels wait on
  semaphores and conditions that nothing wakes, so no timeout or second Ctrl-C inside Lava helps.
  With live workers (SIGTERM to the parent alone, or the workers protected as below) ``stop()``
  returned in about 1 s in most runs and not at all in others: the interrupt can land half-way
  through a message exchange (a ``Var.set`` moves one value per message). Had ``stop()`` been
  skipped, ``Runtime.__del__`` calls it again at exit, and ``multiprocessing``'s atexit hook joins
  every non-daemon child: the same hang.
- **Orphans.** Killing the hung parent left Lava's SharedMemoryManager server (it ignores SIGINT
  and has no parent-death check) and the resource tracker it holds open running, adopted by init,
  for good (still there 49 minutes later); with
  SIGTERM sent to the process group, the workers (which inherit the CLI's SIGTERM handler over
  ``fork``) printed tracebacks too, and the resource tracker warned about 28 leaked shared-memory
  segments.

So, while :func:`lava_session` is active, every process forked from this one ignores SIGINT, takes
SIGTERM's default action (it dies, quietly) and is killed by the kernel if its parent dies
(``PR_SET_PDEATHSIG``); the signals are blocked across the ``fork`` so none lands before that. Only
the parent decides. On leaving the session the runtime is stopped in a helper thread under a time
bound (a hung ``stop()`` stays there, a daemon thread); past the bound, or on a second signal,
every process the session started is terminated, then killed, and waited for until it is gone
(a killed process lingers until the kernel has torn it down: ``snn_toolchain.processes.kill_pids``)
and reaped; the shared memory is released through the manager (or unlinked directly) so the
tracker has nothing left to warn about. The tracker itself is left alone: it ignores SIGINT and SIGTERM and exits as soon as the
last process holding its pipe (this one) exits, after unlinking anything left.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time

from snn_toolchain.processes import (
    SIGNALS,
    descendants,
    die_with_parent,
    end_processes,
    held_signals,
    is_alive,
    kill_pids,
)

try:
    import ctypes
except ImportError:   # Python built without it: no blocking across fork, no parent-death signal
    ctypes = None

log = logging.getLogger(__name__)

# How long Lava's own stop() may take before its processes are killed: after a normal run (joining
# ~10 processes on a loaded 2-core machine takes about a second) and after an exception or a signal.
STOP_TIMEOUT_S = 60.0
INTERRUPTED_STOP_TIMEOUT_S = 5.0
# After SIGTERM, how long the processes get before SIGKILL; then how long reaping may take.
TERMINATE_GRACE_S = 1.0
REAP_TIMEOUT_S = 2.0
# Lava's SharedMemoryManager.shutdown (multiprocessing waits up to 1 s + 1 s for its server).
SHARED_MEMORY_SHUTDOWN_S = 3.0


_state = threading.local()        # per forking thread: whether its fork is guarded, by which parent
_active = 0                       # sessions open (any thread); forks are guarded while > 0
_active_lock = threading.Lock()
_hooks_installed = False
_blocking = False                 # whether guarded forks block SIGINT/SIGTERM (needs the ctypes hook)
_prctl = None
# The forking thread's signal mask from before _before_fork blocked SIGINT/SIGTERM. The parent
# restores it with libc's pthread_sigmask called through ctypes straight from os.fork's hook
# runner. A signal that arrived during the fork is delivered on that unblocking: Python's
# signal.pthread_sigmask (or any Python hook) would run its handler right there, and os.fork's
# hook runner prints that KeyboardInterrupt and drops it (measured: the Ctrl-C was lost and the run
# went on). Through ctypes no Python code runs, so it is raised where fork() returned.
_saved_mask: list = []
_saved_sigset = None              # the same mask as a ctypes sigset_t, read by the parent's hook


# ------------------------------------------------------------------------------ fork guard

def _before_fork() -> None:
    guarded = _active > 0 and _blocking
    _saved_mask[:] = sorted(signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS if guarded else ()))
    _store_sigset(_saved_mask)
    _state.guarded = _active > 0
    _state.parent = os.getpid()


def _after_fork_in_child() -> None:
    if not getattr(_state, "guarded", False):
        return
    _state.guarded = False
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl-C is the parent's to handle
        signal.signal(signal.SIGTERM, signal.SIG_DFL)   # not the parent's handler: die, no traceback
    except (ValueError, OSError):
        pass
    if _prctl is not None:   # Linux; elsewhere nothing happens
        die_with_parent(getattr(_state, "parent", None), prctl=_prctl)
    signal.pthread_sigmask(signal.SIG_SETMASK, _saved_mask)   # a SIGINT sent meanwhile is dropped


def _store_sigset(mask) -> None:
    words = _saved_sigset
    if words is None:
        return
    bits = 8 * ctypes.sizeof(words._type_)
    for i in range(len(words)):
        words[i] = 0
    for signum in mask:
        index = int(signum) - 1
        words[index // bits] |= 1 << (index % bits)


def _libc_hooks():
    """(libc's prctl, the parent's after-fork hook) on Linux, else (None, None). The hook is
    ``pthread_sigmask(SIG_SETMASK, &saved, NULL)`` as a ctypes call, which os.fork makes without
    running Python code."""
    global _saved_sigset
    if not sys.platform.startswith("linux") or ctypes is None:
        return None, None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
        sigset_type = ctypes.c_ulong * (1024 // (8 * ctypes.sizeof(ctypes.c_ulong)))   # glibc's sigset_t
        function = libc.pthread_sigmask
        function.argtypes = [ctypes.c_int, ctypes.POINTER(sigset_type), ctypes.c_void_p]
        function.restype = ctypes.c_int
        _saved_sigset = sigset_type()
        return prctl, functools.partial(function, int(signal.SIG_SETMASK), _saved_sigset, None)
    except Exception:
        _saved_sigset = None
        return None, None


def _install_fork_hooks() -> None:
    """Registered at the first session, not at import: after-fork hooks run in registration order,
    and a Python hook registered after ours (logging's and filelock's are Python) would be where a
    signal unblocked by ours lands; by the first session those libraries are imported. Without
    the ctypes hook the parent does not block the signals (a child may then, rarely, see a Ctrl-C
    that arrives during its fork)."""
    global _hooks_installed, _prctl, _blocking
    if _hooks_installed:
        return
    _prctl, restore = _libc_hooks()
    _blocking = restore is not None
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child,
                        **({"after_in_parent": restore} if restore is not None else {}))
    _hooks_installed = True


# ------------------------------------------------------------------------------ processes

def _resource_tracker_pid() -> int | None:
    with contextlib.suppress(Exception):
        from multiprocessing import resource_tracker

        return resource_tracker._resource_tracker._pid
    return None


def _call_bounded(function, timeout_s: float, name: str, give_up=None) -> bool:
    """Run ``function()`` in a daemon thread; True if it returned (raising counts as returning)
    within ``timeout_s``, False once the time is up or ``give_up()`` is true. A call that hangs
    stays blocked in its thread, harmlessly."""
    finished = threading.Event()

    def target():
        try:
            function()
        except BaseException as err:   # noqa: BLE001 - a failed Lava stop is logged, never printed as a traceback
            log.debug("%s raised %s: %s", name, type(err).__name__, err)
        finally:
            finished.set()

    threading.Thread(target=target, name=name, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while not finished.wait(max(0.0, min(0.1, deadline - time.monotonic()))):
        if time.monotonic() >= deadline or (give_up is not None and give_up()):
            return finished.is_set()
    return True


def _actor_killed(runtime) -> bool:
    """True when a Lava process died of a signal: its runtime service will never answer STOP."""
    infrastructure = getattr(runtime, "_messaging_infrastructure", None)
    for actor in list(getattr(infrastructure, "actors", None) or []):
        try:
            code = actor.exitcode
        except Exception:   # closed: joined by Lava already
            continue
        if code is not None and code < 0:
            return True
    return False


def _end_processes(processes) -> None:
    """SIGTERM, then SIGKILL after TERMINATE_GRACE_S, then reap (multiprocessing Process objects)."""
    end_processes(processes, TERMINATE_GRACE_S, REAP_TIMEOUT_S)


def _release_shared_memory(infrastructure) -> None:
    """Shut Lava's SharedMemoryManager down (its server unlinks every segment); if that fails,
    unlink the segments from here so that the resource tracker has nothing to warn about."""
    smm = getattr(infrastructure, "_smm", None)
    if smm is None:
        return
    manager = getattr(smm, "_manager", None)
    handles = list(getattr(smm, "_shared_memory_handles", []) or [])

    def shutdown():
        try:
            smm.shutdown()             # closes the handles, then shuts the manager down
        finally:
            if getattr(smm, "_manager", None) is not None:   # a handle refused to close
                smm._manager.shutdown()
                smm._manager = None

    if manager is not None:
        _call_bounded(shutdown, SHARED_MEMORY_SHUTDOWN_S, "lava-shared-memory-shutdown")
        process = getattr(manager, "_process", None)
        if process is not None and is_alive(process):
            _end_processes([process])
    for handle in handles:
        with contextlib.suppress(Exception):
            handle.unlink()   # FileNotFoundError when the server unlinked it already


def _force_stop(runtime, known_before: set, children_before: set) -> None:
    """Terminate/kill every process started since the session began and release Lava's shared
    memory; leave ``runtime`` so that neither ``Runtime.__del__`` nor a later ``stop()`` blocks."""
    infrastructure = getattr(runtime, "_messaging_infrastructure", None) if runtime is not None else None
    started = descendants() - known_before        # recorded now: killed parents orphan their children
    actors = list(getattr(infrastructure, "actors", None) or [])
    _end_processes(actors)
    if infrastructure is not None:
        _release_shared_memory(infrastructure)
    new_children = [p for p in multiprocessing.active_children() if p not in children_before]
    _end_processes(new_children)                  # e.g. the watchdog's Manager and monitors
    survivors = kill_pids(started - {_resource_tracker_pid()}, REAP_TIMEOUT_S)
    if survivors:
        log.debug("%d processes were still alive %.1f s after SIGKILL", len(survivors), REAP_TIMEOUT_S)
    if runtime is not None:
        runtime._is_started = False               # Runtime.__del__ would call stop() again: a hang
        runtime._is_running = False
        if infrastructure is not None and getattr(infrastructure, "_smm", None) is not None:
            with contextlib.suppress(Exception):
                infrastructure._smm._manager = None


# ------------------------------------------------------------------------------ the session

def stop_lava(process, *, timeout_s: float, known_before: set | None = None,
              children_before: set | None = None) -> bool:
    """Stop the Lava runtime of ``process`` (any process of the network) within ``timeout_s``;
    past it, or on a signal while waiting, end every process started since ``known_before``
    (pids) / ``children_before`` (multiprocessing children) by force.

    Returns True when Lava's own ``stop()`` finished in time. A signal that arrived while stopping
    is raised again afterwards (as KeyboardInterrupt, or the handler's exception)."""
    known_before = set() if known_before is None else known_before
    children_before = set() if children_before is None else children_before
    runtime = getattr(process, "runtime", None)
    graceful, pending = True, None
    if runtime is not None and not getattr(runtime, "_is_started", True):
        graceful = False   # interrupted while starting: Lava's stop() would join workers that wait for a command
    elif runtime is not None:
        try:
            graceful = _call_bounded(process.stop, timeout_s, "lava-runtime-stop",
                                     give_up=lambda: _actor_killed(runtime))
        except KeyboardInterrupt as err:   # a second Ctrl-C or SIGTERM while waiting: stop waiting
            graceful, pending = False, err
    if not graceful:
        log.debug("Lava's runtime did not stop within %.1f s; its processes are killed", timeout_s)
    with held_signals() as arrived:
        if graceful:   # Lava stopped; kill only what it left (normally nothing)
            leftover = descendants() - known_before - {_resource_tracker_pid()}
            if leftover:
                _force_stop(runtime, known_before, children_before)
        else:
            _force_stop(runtime, known_before, children_before)
    if pending is not None:
        raise pending
    for signum in arrived:
        signal.raise_signal(signum)
    return graceful


@contextlib.contextmanager
def lava_session(process, *, stop_timeout_s: float = STOP_TIMEOUT_S,
                 interrupted_stop_timeout_s: float = INTERRUPTED_STOP_TIMEOUT_S):
    """Run Lava (``process.run(...)``, ``Var.get``/``set``) inside; on leaving, normally or by an
    exception (KeyboardInterrupt included), the runtime of ``process`` is stopped and every process
    it started is gone. The exception, if any, propagates unchanged.

    Lava forks its processes inside this block (at the first ``run``): only those forked here
    ignore Ctrl-C. ``process`` is any Lava process of the network (they share one runtime).
    """
    global _active
    _install_fork_hooks()
    known_before = descendants()
    children_before = set(multiprocessing.active_children())
    with _active_lock:
        _active += 1
    try:
        try:
            yield
        except BaseException as err:
            try:
                stop_lava(process, timeout_s=interrupted_stop_timeout_s, known_before=known_before,
                          children_before=children_before)
            except KeyboardInterrupt:
                if not isinstance(err, KeyboardInterrupt):
                    raise
            raise
        else:
            stop_lava(process, timeout_s=stop_timeout_s, known_before=known_before,
                      children_before=children_before)
    finally:
        with _active_lock:
            _active -= 1
