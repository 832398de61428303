"""Past one machine: the independent work of ``sweep``, ``frontier`` and ``parity`` as tasks of a Ray
cluster (docs/scale.md says why Ray, and how a Slurm or a cloud user starts one).

- ``engine.py``: joining the cluster, running tasks (resources, retries after a lost worker,
  cancelling on Ctrl-C), progress (done, running, failed, the time left) and failures with their
  logs, the others going on;
- ``lease.py``: a run folder's lease across machines, so that no training runs twice at once in
  one folder on shared storage, and one whose machine died is taken over.

This package is the core layer's (it imports no training, export or Lava code): the callers hand
it module-level functions to run. Ray is optional (``pip install 'snn-toolchain[cluster]'``) and
imported only when a command is given ``--cluster``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from snn_toolchain.errors import ToolchainError

# How many times Ray runs a task again after its worker process or machine was lost (not after an
# error of the task itself: that is reported, and the same command run again retries it).
TASK_RETRIES = 3


@dataclass(frozen=True)
class ClusterSpec:
    """Where and how the tasks run. address: the Ray cluster (its head's ``HOST:PORT``, or
    ``auto`` on one of its machines); task_cpus: CPU cores per task (a training's torch threads);
    task_gpus: GPUs per task (0.5: two tasks share one); retries: after a lost worker."""

    address: str
    task_cpus: int = 1
    task_gpus: float = 0.0
    retries: int = TASK_RETRIES

    def __post_init__(self):
        if not self.address.strip():
            raise ToolchainError("--cluster '': give the Ray cluster's address (HOST:PORT of its head, or auto)")
        if self.task_cpus < 1:
            raise ToolchainError(f"--task-cpus {self.task_cpus}: must be at least 1")
        if not 0 <= self.task_gpus <= 64:
            raise ToolchainError(f"--task-gpus {self.task_gpus:g}: must be between 0 and the GPUs of one machine")


def add_cluster_arguments(parser: argparse.ArgumentParser, work: str = "training") -> None:
    """The options every command that spreads its work takes (``sweep``, ``frontier``, ``parity``);
    ``work`` names one task in the help ("training", "shard")."""
    group = parser.add_argument_group("cluster (docs/scale.md)")
    group.add_argument("--cluster", default=None, metavar="ADDRESS",
                       help=f"run each {work} as a task of the Ray cluster at ADDRESS (HOST:PORT of its head, or "
                            "'auto' on one of its machines); the files must be on storage every machine sees. "
                            "Default: on this machine")
    group.add_argument("--task-cpus", type=int, default=None, metavar="N",
                       help=f"with --cluster: CPU cores per {work} (default 1)")
    group.add_argument("--task-gpus", type=float, default=None, metavar="G",
                       help=f"with --cluster: GPUs per {work} (default 0; 1: a GPU each; 0.5: two share one)")


def cluster_from_args(args) -> ClusterSpec | None:
    """The ClusterSpec the options describe, None without ``--cluster``; the task options without
    it, and ``--parallel`` with it, are refused in one line."""
    address = getattr(args, "cluster", None)
    cpus, gpus = getattr(args, "task_cpus", None), getattr(args, "task_gpus", None)
    if address is None:
        given = [flag for flag, value in (("--task-cpus", cpus), ("--task-gpus", gpus)) if value is not None]
        if given:
            raise ToolchainError(f"{' and '.join(given)}: size the tasks of a cluster; give --cluster ADDRESS too")
        return None
    if getattr(args, "parallel", 1) not in (None, 1):
        raise ToolchainError(f"--parallel {args.parallel} with --cluster: on a cluster --task-cpus and --task-gpus "
                             "size each task and the cluster's machines decide how many run at once; drop --parallel")
    return ClusterSpec(address, task_cpus=1 if cpus is None else cpus, task_gpus=0.0 if gpus is None else gpus)
