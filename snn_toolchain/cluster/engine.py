"""Run independent tasks on a Ray cluster: the one place the toolchain talks to Ray.

- :func:`connect` joins the cluster (Ray imported here only: it is an optional dependency).
- :func:`run_tasks` runs each :class:`Task` as one Ray task with the resources of a
  :class:`~snn_toolchain.cluster.ClusterSpec`. A task whose worker process or machine is lost is
  run again by Ray (``retries`` times) on another worker: a training resumes there from the last
  checkpoint in its run folder. A task that fails is reported at once, with the last lines of its
  log, and the others go on; the caller gets the results and the failures. Progress lines say how
  many tasks are done, running, failed and waiting, and the time left. Ctrl-C cancels the tasks
  (each gets a KeyboardInterrupt, so its clean-up runs: a training's lease is released).
- A task no machine of the cluster can hold (``--task-gpus 1`` on CPU machines, ``--task-cpus``
  above any machine's cores) would wait forever: on a fixed cluster it is refused at once, in one
  line naming the cluster's resources and the option to change; on an autoscaling cluster, or one
  that cannot be told fixed, a warning says so and the tasks wait a bounded time for such a machine
  to join (:data:`AUTOSCALING_WAIT_S`, :data:`NO_SLOT_WAIT_S`), then stop with that line.

Ray's tasks are at-least-once: a task whose machine was cut off, not dead, may still be running
when Ray starts it again elsewhere. What makes "never twice at once" hold is the run folder's lease
(``lease.py``), which the training takes itself.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import statistics
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path

from snn_toolchain.cluster import ClusterSpec
from snn_toolchain.cluster.lease import lease_looks_live
from snn_toolchain.errors import ToolchainError

RAY_PIN = "ray==2.60.0"
INSTALL_HINT = "pip install 'snn-toolchain[cluster]'"
PROGRESS_EVERY_S = 60.0          # a progress line at least this often (seconds) while tasks run
LOG_TAIL_LINES = 12              # lines of a failed task's log shown
CONNECT_TIMEOUT_S = 5.0          # a HOST:PORT that does not answer within this is refused at once
SLOT_CHECK_S = 10.0              # how often (seconds) the cluster's machines are checked while tasks run
# With no live machine that can hold a task, the tasks wait this long (seconds) for one to join,
# then stop: on an autoscaling cluster, long enough for a cloud GPU machine to boot; on a cluster
# that cannot be told fixed (no autoscaler status, Ray Client), long enough for a restarted node.
AUTOSCALING_WAIT_S = 900.0
NO_SLOT_WAIT_S = 120.0


def import_ray():
    """The ``ray`` module, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ToolchainError(f"--cluster needs Ray ({RAY_PIN}), which is not installed here: {INSTALL_HINT}") from None
    return ray


def _check_reachable(address: str) -> None:
    """Refuse a ``HOST:PORT`` nothing listens on in one line at once (Ray itself retries for minutes)."""
    if address == "auto" or address.startswith("ray://") or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except (OSError, ValueError) as err:
        raise ToolchainError(f"--cluster {address}: no Ray cluster answers there ({err}); start one with "
                             "`ray start --head` (docs/scale.md), or leave --cluster out to run on this machine") from None


def connect(address: str):
    """Join the Ray cluster at ``address`` (once per process) and return the ``ray`` module."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    _check_reachable(address)
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ToolchainError(f"--cluster {address}: could not join the Ray cluster ({first}); start one with "
                             "`ray start --head` (docs/scale.md), or leave --cluster out") from None
    return ray


@dataclass(frozen=True)
class Task:
    """One piece of work. function: a module-level function (workers import it by name; the
    toolchain must be installed on every machine), called as ``function(*args)``; its arguments
    and result must pickle. label: how progress and failures name it. log_file: the task's own log,
    whose last lines are shown when it fails. folder: its run folder, whose lease tells that it is
    running (tasks without one are counted as running as the cluster's free slots allow)."""

    key: Hashable
    label: str
    function: Callable
    args: tuple = ()
    log_file: Path | None = None
    folder: Path | None = None


@dataclass
class TaskFailure:
    key: Hashable
    label: str
    error: str                    # one line
    log_tail: str = ""


def timed_call(function: Callable, args: tuple) -> tuple:
    """What a Ray worker runs: ``function(*args)``, its wall time (seconds) and the worker's host."""
    started = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - started, socket.gethostname()


def _live_machines(ray) -> list[dict]:
    """Each live machine's resources (``{"CPU": 16.0, "GPU": 2.0, ...}``)."""
    return [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]


def _fits(resources: dict, spec: ClusterSpec) -> int:
    """How many tasks of ``spec`` one machine of ``resources`` runs at once (a fraction of a hair
    added: 0.7 GPU / 0.1 is 6.999... in floating point)."""
    fits = math.floor(resources.get("CPU", 0) / spec.task_cpus + 1e-6)
    if spec.task_gpus:
        fits = min(fits, math.floor(resources.get("GPU", 0) / spec.task_gpus + 1e-6))
    return fits


def _slots(ray, spec: ClusterSpec) -> int:
    """How many tasks the cluster's live machines run at once, each machine by its own resources: a
    task runs on one machine (two machines of one GPU each hold no task of ``--task-gpus 2``)."""
    return sum(_fits(resources, spec) for resources in _live_machines(ray))


def autoscaling(ray) -> bool | None:
    """Whether the cluster's autoscaler may add machines. False: a fixed cluster (machines started
    with ``ray start``, by hand or in a Slurm job: Ray's read-only node provider, which names each
    machine's node type after its node id); True: machines of node types from a cluster config
    (``ray up``, KubeRay) or launches pending; None: it cannot be told (no autoscaler status, Ray
    Client). Ray's autoscaler SDK is internal API: anything unexpected from it is None."""
    try:
        from ray.autoscaler.v2.sdk import get_cluster_status

        status = get_cluster_status(ray.get_runtime_context().gcs_address)
        if status.pending_launches or status.pending_nodes:
            return True
        types = {(node.node_id, node.ray_node_type_name) for node in [*status.active_nodes, *status.idle_nodes]}
    except Exception:   # noqa: BLE001 - an older or newer Ray, Ray Client: cannot be told
        return None
    if not types or not all(name for _, name in types):
        return None
    return any(name != f"node_{node_id}" for node_id, name in types)


def no_machine_fits(ray, spec: ClusterSpec, cluster: str = "") -> str:
    """One line: no live machine can hold a task of ``spec``; the cluster's resources (after
    ``cluster``, e.g. "a fixed cluster, "), and the option to change."""
    machines = _live_machines(ray)
    most = {key: max((m.get(key, 0) for m in machines), default=0) for key in ("CPU", "GPU")}
    total = {key: sum(m.get(key, 0) for m in machines) for key in ("CPU", "GPU")}
    asked = f"--task-cpus {spec.task_cpus}" + (f" --task-gpus {spec.task_gpus:g}" if spec.task_gpus else "")
    asks = (("--task-cpus", "CPU", spec.task_cpus), ("--task-gpus", "GPU", spec.task_gpus))
    options = ([flag for flag, key, value in asks if value > most[key]]
               or ["--task-cpus", "--task-gpus"])        # each fits some machine, but no machine both
    return (f"--cluster {spec.address}: no machine of the cluster can hold a task of {asked} "
            f"({cluster}{len(machines)} machine{'s' if len(machines) != 1 else ''}: CPU {total['CPU']:g}, "
            f"GPU {total['GPU']:g} in all; at most CPU {most['CPU']:g}, GPU {most['GPU']:g} on one); "
            f"lower {' or '.join(options)}, or add a machine that has them")


def _log_tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    if path is None:
        return ""
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return f"    (no log at {path})"
    return "\n".join(f"    | {line}" for line in text[-lines:])


def _error_line(err: BaseException) -> str:
    """One line for a task's failure: the task's own exception (a ToolchainError's message as it
    is), or what Ray says happened to its worker."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, ToolchainError):
        return str(cause)
    if isinstance(cause, BaseException):
        text = str(cause).strip().splitlines()
        return f"{type(cause).__name__}: {text[-1] if text else ''}".rstrip(": ")
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def format_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def time_left(durations: list, waiting: int, running: int, slots: int) -> str:
    """The time left, from the mean duration of the tasks finished so far (seconds each): the
    waiting tasks and half of each running one, spread over the slots the cluster has."""
    if not waiting + running:
        return "none left"
    if not durations:
        return "time left: known once a task has finished"
    mean = statistics.fmean(durations)
    parallel = max(1, min(slots, waiting + running))
    left = mean * (waiting + 0.5 * running) / parallel
    return f"about {format_seconds(left)} left ({format_seconds(mean)} a task, {parallel} at a time)"


def run_tasks(tasks: list, spec: ClusterSpec, *, tag: str = "cluster", log=print, done_before: int = 0,
              total: int | None = None, describe: Callable | None = None) -> tuple[dict, list]:
    """Run ``tasks`` on the cluster ``spec`` names; return (key -> result, [TaskFailure]).

    done_before, total: tasks finished before this call, and all of them, for the progress lines.
    describe(result) -> str: what a finished task's line adds (e.g. its accuracy)."""
    ray = connect(spec.address)
    total = done_before + len(tasks) if total is None else total
    # a task with GPUs gets a worker process of its own (Ray's default for GPU functions, which
    # .options() does not apply): a reused worker keeps its CUDA context on the GPU of its last
    # task, whatever GPU Ray gives the next one, and the memory torch cached there (0: no limit)
    remote = ray.remote(max_calls=1 if spec.task_gpus else 0)(timed_call)
    remote = remote.options(num_cpus=spec.task_cpus, num_gpus=spec.task_gpus, max_retries=spec.retries,
                            retry_exceptions=False, scheduling_strategy="SPREAD")
    slots = _slots(ray, spec)
    scaling = autoscaling(ray) if slots == 0 else None
    if slots == 0 and scaling is False:        # nothing will ever run: say so now, not never
        raise ToolchainError(no_machine_fits(ray, spec, "a fixed cluster, no autoscaler to add machines; "))
    log(f"[{tag}] {len(tasks)} tasks to the Ray cluster at {spec.address} ({slots} at a time: "
        f"{spec.task_cpus} CPU{'s' if spec.task_cpus != 1 else ''}"
        + (f", {spec.task_gpus:g} GPU" if spec.task_gpus else "") + " each)")
    # submitted even with no machine for them: an autoscaler adds machines for the tasks waiting
    by_ref = {remote.remote(task.function, task.args): task for task in tasks}
    pending = list(by_ref)
    results: dict = {}
    failures: list[TaskFailure] = []
    durations: list[float] = []
    no_slot_since = None                       # monotonic s since when no live machine can hold a task
    last_progress = time.monotonic()
    try:
        while pending:
            if slots == 0:
                now = time.monotonic()
                if no_slot_since is None:
                    no_slot_since = now
                    scaling = autoscaling(ray) if scaling is None else scaling
                    waited_s = AUTOSCALING_WAIT_S if scaling else NO_SLOT_WAIT_S
                    how = {True: "the cluster autoscales", False: "its machines that could were lost",
                           None: "whether this cluster adds machines cannot be told"}[scaling]
                    log(f"[{tag}] warning: {no_machine_fits(ray, spec)}; {how}: waiting up to "
                        f"{format_seconds(waited_s)} for such a machine to join")
                elif now - no_slot_since >= waited_s:
                    raise ToolchainError(no_machine_fits(ray, spec, f"none joined in {format_seconds(waited_s)}; "))
            else:
                no_slot_since = None
            ready, pending = ray.wait(pending, num_returns=1, timeout=SLOT_CHECK_S)
            for ref in ready:
                task = by_ref[ref]
                try:
                    value, seconds, host = ray.get(ref)
                except ray.exceptions.RayError as err:
                    failure = TaskFailure(task.key, task.label, _error_line(err), _log_tail(task.log_file))
                    failures.append(failure)
                    log(f"[{tag}] FAILED {task.label}: {failure.error}"
                        + (f"\n    last lines of {task.log_file}:\n{failure.log_tail}" if task.log_file else ""))
                    continue
                results[task.key] = value
                durations.append(seconds)
                extra = f": {describe(value)}" if describe is not None else ""
                log(f"[{tag}] {task.label} done on {host} in {format_seconds(seconds)}{extra}")
            slots = _slots(ray, spec)
            if ready or time.monotonic() - last_progress >= PROGRESS_EVERY_S:
                last_progress = time.monotonic()
                log(f"[{tag}] " + _progress(slots, [by_ref[r] for r in pending], done_before + len(results),
                                            len(failures), total, durations))
    except BaseException:
        # Ctrl-C, SIGTERM (the CLI raises it as Interrupted), no machine for the tasks: stop them
        # rather than leave them for nobody; each gets a KeyboardInterrupt, so its own clean-up runs
        for ref in pending:
            try:
                ray.cancel(ref)
            except Exception:   # noqa: BLE001 - a task that just ended cannot be cancelled: nothing to stop
                pass
        raise
    return results, failures


def _progress(slots: int, unfinished: list, done: int, failed: int, total: int, durations: list) -> str:
    with_folders = [t for t in unfinished if t.folder is not None]
    if with_folders:
        running = sum(lease_looks_live(t.folder) for t in with_folders)
        running += min(len(unfinished) - len(with_folders), max(0, slots - running))
    else:
        running = min(len(unfinished), slots)
    waiting = len(unfinished) - running
    return (f"{done}/{total} done, {running} running, {failed} failed, {waiting} waiting; "
            + time_left(durations, waiting, running, slots))


def absolute(path: Path | str | None) -> Path | None:
    """``path`` as every machine must see it: absolute (a worker's working folder is not the caller's)."""
    return None if path is None else Path(os.path.abspath(path))
