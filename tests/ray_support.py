"""A real Ray cluster on this machine for the cluster tests (tests/test_cluster.py) and the overhead
benchmark (benchmarks/cluster_overhead.py): a head and a worker node, each ``ray start --block`` in
a session of its own, so that each node is one process group that can be killed whole, as a
machine dies.

Lean, for a 2-core machine: one CPU per node, no dashboard, a small object store, usage stats off,
the session files under a short folder in /tmp (Ray's socket paths must stay under 108
characters). The head listens on 127.0.0.1 and the worker node on 127.0.0.2, so the driver (this
process) attaches to the head's raylet and survives the worker node's death.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from process_support import descendants, start_time

RAY_CLI = Path(sys.executable).parent / "ray"
OBJECT_STORE_BYTES = 100 * 1024 * 1024
START_TIMEOUT_S = 90.0
STOP_GRACE_S = 5.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_node(args: list, log: Path, env: dict) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([str(RAY_CLI), "start", "--block", *args], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env)


def kill_group(pid: int, sig=signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def node_processes(node: subprocess.Popen) -> dict:
    """Every living process of a node, pid -> start time: the ``ray start`` process and its
    descendants (Ray's task workers put themselves in process groups of their own, so the group
    alone misses them)."""
    return {pid: start_time(pid) for pid in {node.pid} | descendants(node.pid)}


def kill_processes(processes: dict, sig=signal.SIGKILL) -> None:
    """Signal the processes of ``processes`` (pid -> start time) that are still those very ones."""
    for pid, started in processes.items():
        if started is not None and start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)


def kill_node_processes(node: subprocess.Popen, sig=signal.SIGKILL) -> None:
    kill_processes(node_processes(node), sig)
    kill_group(node.pid, sig)


@dataclass
class LocalRayCluster:
    """A head and worker nodes started by :func:`local_ray_cluster`; ``address`` is the head's."""

    address: str
    folder: Path
    env: dict
    nodes: list = field(default_factory=list)      # the `ray start --block` processes, head first

    @property
    def head(self) -> subprocess.Popen:
        return self.nodes[0]

    def add_worker(self, cpus: int = 1, ip: str = "127.0.0.2") -> subprocess.Popen:
        node = _start_node(["--address", self.address, "--node-ip-address", ip, "--num-cpus", str(cpus),
                            "--object-store-memory", str(OBJECT_STORE_BYTES), "--disable-usage-stats"],
                           self.folder / f"node{len(self.nodes)}.log", self.env)
        self.nodes.append(node)
        return node

    def alive_nodes(self) -> int:
        import ray

        return sum(1 for node in ray.nodes() if node["Alive"])

    def wait_for_nodes(self, count: int, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while self.alive_nodes() != count:
            for node in self.nodes:
                if node.poll() is not None:
                    raise RuntimeError(f"a Ray node exited ({node.returncode}): {self.logs()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.alive_nodes()} Ray nodes alive, not {count}: {self.logs()}")
            time.sleep(0.2)

    def kill_node(self, node: subprocess.Popen) -> None:
        """SIGKILL every process of the node at once (its raylet and the workers running its
        tasks): what a machine's death looks like to the rest of the cluster."""
        kill_node_processes(node)
        node.wait()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}"
                         for p in sorted(self.folder.glob("node*.log")))

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            import ray

            ray.shutdown()
        started = [node_processes(node) for node in self.nodes]   # before the tree comes apart
        for node in reversed(self.nodes):
            kill_group(node.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for node in reversed(self.nodes):
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.wait(timeout=max(0.1, deadline - time.monotonic()))
        for node, processes in zip(self.nodes, started):   # whatever Ray left (raylet, agents, task workers)
            kill_processes(processes)
            kill_group(node.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.wait(timeout=STOP_GRACE_S)


@contextlib.contextmanager
def local_ray_cluster(workers: int = 1, head_cpus: int = 1, worker_cpus: int = 1):
    """A Ray head (``head_cpus`` CPUs) and ``workers`` worker nodes on this machine, joined by this
    process as the driver; every process of theirs is killed on leaving, and their folder removed."""
    import ray

    folder = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
    port = free_port()
    cluster = LocalRayCluster(f"127.0.0.1:{port}", folder, env)
    try:
        cluster.nodes.append(_start_node(
            ["--head", "--port", str(port), "--node-ip-address", "127.0.0.1", "--num-cpus", str(head_cpus),
             "--include-dashboard=false", "--temp-dir", str(folder), "--object-store-memory", str(OBJECT_STORE_BYTES),
             "--disable-usage-stats"], folder / "node0.log", env))
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if cluster.head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Ray head did not start: {cluster.logs()}")
            time.sleep(0.2)
        for number in range(workers):
            cluster.add_worker(worker_cpus, f"127.0.0.{2 + number}")
        ray.init(address=cluster.address, log_to_driver=False, logging_level="WARNING")
        cluster.wait_for_nodes(1 + workers)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
