"""What running the toolchain's work through Ray costs against running it here, measured in one run.

1. The engine's overhead per task, directly: ``--tasks`` empty tasks, and as many tasks that load
   the embedded dataset (what every training task does first), each run through the engine
   (``snn_toolchain/cluster/engine.py: run_tasks``, one task at a time: each takes all the
   cluster's CPUs) and the same function called here in a loop. Seconds per task both ways, their
   difference (the overhead) and their ratio.
2. A fresh worker's start: a task in a new Ray worker process (Ray starts one for every task that
   has a GPU) that imports the training's modules, less a warm worker's round trip.
3. The sweep: ``--variants`` x ``--seeds`` short runs on the embedded set, ``sweep --parallel N``
   here (before and after: the machine's load drifts; the baseline is their mean) against
   ``--cluster`` on a one-node Ray cluster of N CPUs, one CPU and one torch thread per task; the
   wall times, their ratio, and whether the two tables are equal.
4. A PROJECTION, not a measurement, for the paper's Table 1 (50 runs) on 8 GPUs: from a run's
   duration (``--run-minutes``), the worker start, a data-loading task's time and the engine's
   overhead per task measured here.

The cluster's start (seconds, once per cluster) is printed apart: a cluster user starts it once
for many commands. The cluster is tests/ray_support.py's: real Ray processes on this machine.

    .venv/bin/python benchmarks/cluster_overhead.py                 # 50+50 tasks; 8 runs, 2 at a time
    .venv/bin/python benchmarks/cluster_overhead.py --tasks 20 --epochs 3 --hidden 64
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from ray_support import local_ray_cluster  # noqa: E402  (the tests' real local Ray cluster)

from snn_toolchain.cluster import ClusterSpec  # noqa: E402
from snn_toolchain.cluster.engine import Task, run_tasks  # noqa: E402
from snn_toolchain.train.loop.config import TrainConfig  # noqa: E402
from snn_toolchain.train.sweeps.sweep import DataSource, run_sweep  # noqa: E402

PROJECTED_RUNS, PROJECTED_GPUS = 50, 8
FRESH_WORKERS = 5                # fresh worker starts timed (each a new process: seconds apiece)


def empty_task() -> None:
    return None


def load_embedded(config: dict) -> int:
    """What a training task does before its first epoch: load its data (the embedded set);
    returns its training samples (a small result: a training returns only its result.json)."""
    return len(DataSource("shd").load(TrainConfig(**config)).train)


def import_training() -> None:
    """A fresh worker's first work: the training's imports (torch, the toolchain)."""
    import snn_toolchain.train.sweeps.sweep  # noqa: F401


def per_task_seconds(function, args: tuple, count: int, spec: ClusterSpec | None) -> float:
    """Seconds per call of ``function(*args)``, ``count`` calls after one not timed (a warm worker
    or this process's imports): through the engine, one task at a time, with ``spec``; else here in
    a loop."""
    if spec is None:
        function(*args)
        started = time.perf_counter()
        for _ in range(count):
            function(*args)
        return (time.perf_counter() - started) / count
    run_tasks([Task("warm", "warm", function, args)], spec, log=lambda line: None)
    tasks = [Task(number, f"task {number}", function, args) for number in range(count)]
    started = time.perf_counter()
    results, failures = run_tasks(tasks, spec, log=lambda line: None)
    seconds = time.perf_counter() - started
    if failures or len(results) != count:
        raise RuntimeError(f"{len(failures)} of {count} tasks failed: {failures[:1]}")
    return seconds / count


def fresh_worker_start(cpus: int) -> float:
    """Seconds a task in a new worker process takes more than in a warm one, the training's
    imports included (the median of FRESH_WORKERS; ``max_calls=1``: each worker exits after its task)."""
    import ray

    warm = ray.remote(num_cpus=cpus)(empty_task)
    fresh = ray.remote(num_cpus=cpus, max_calls=1)(import_training)
    ray.get(warm.remote())
    round_trips = []
    for _ in range(20):
        started = time.perf_counter()
        ray.get(warm.remote())
        round_trips.append(time.perf_counter() - started)
    starts = []
    for _ in range(FRESH_WORKERS):
        started = time.perf_counter()
        ray.get(fresh.remote())
        starts.append(time.perf_counter() - started)
    return statistics.median(starts) - statistics.median(round_trips)


def sweep_seconds(config: TrainConfig, out: Path, variants: list, seeds: int, **how) -> tuple[float, dict]:
    """The sweep's wall time (seconds) and its sweep.json."""
    started = time.perf_counter()
    run_sweep(config, out, seeds=seeds, variants=variants, data=DataSource("shd"), log=lambda line: None, **how)
    return time.perf_counter() - started, json.loads((out / "sweep.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=50, help="empty and data-loading tasks timed, each (default 50)")
    parser.add_argument("--variants", default="LIF,AdLIF")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--parallel", type=int, default=2, help="runs at once, both ways (default 2: this machine's cores)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--run-minutes", type=float, default=1.0,
                        help="a run's duration for the projection (default 1: the issue's 1-minute training)")
    args = parser.parse_args()
    variants = args.variants.split(",")
    runs = len(variants) * args.seeds
    config = TrainConfig(hidden=args.hidden, batch_size=32, max_delay=5, epochs=args.epochs, dropout=0.0, device="cpu")
    folder = Path(tempfile.mkdtemp(prefix="cluster-overhead-"))
    try:
        print(f"[bench] {os.cpu_count()} CPU cores here, load average {os.getloadavg()[0]:.1f} at the start")
        local_s, local = sweep_seconds(config, folder / "local", variants, args.seeds, parallel=args.parallel)
        started = time.perf_counter()
        with local_ray_cluster(workers=0, head_cpus=args.parallel) as cluster:
            start_s = time.perf_counter() - started
            print(f"[bench] Ray cluster ({args.parallel} CPUs, one node) started in {start_s:.1f} s "
                  "(once per cluster, not per command)")
            # one task at a time, as the loop here: each task takes every CPU of the cluster
            serial = ClusterSpec(cluster.address, task_cpus=args.parallel)
            measured = {}
            for name, function, call_args in (("empty", empty_task, ()),
                                              ("loading the embedded set", load_embedded, (config.to_dict(),))):
                here = per_task_seconds(function, call_args, args.tasks, None)
                engine = per_task_seconds(function, call_args, args.tasks, serial)
                measured[name] = here, engine
                ratio = engine / max(here, 1e-9)
                print(f"[bench] {args.tasks} tasks {name}: here in a loop {here:.4f} s a task, through the engine "
                      f"{engine:.4f} s a task; overhead {engine - here:+.4f} s a task, ratio {ratio:,.1f}")
            worker_start = fresh_worker_start(args.parallel)
            print(f"[bench] a fresh worker's start, the training's imports included: {worker_start:.2f} s "
                  f"(median of {FRESH_WORKERS}; Ray starts one for every task with a GPU)")
            ray_s, remote = sweep_seconds(config, folder / "ray", variants, args.seeds,
                                          cluster=ClusterSpec(cluster.address, task_cpus=1))
        # the baseline again: the machine's load (other trainings share it) drifts; the two local
        # figures show by how much, and their mean is the baseline
        again_s, _ = sweep_seconds(config, folder / "local-again", variants, args.seeds, parallel=args.parallel)
        baseline = (local_s + again_s) / 2
        print(f"[bench] sweep of {runs} runs ({'+'.join(variants)} x {args.seeds} seeds, hidden {args.hidden}, "
              f"{args.epochs} epochs, embedded set), {args.parallel} at a time: local --parallel {args.parallel} "
              f"{local_s:.1f} s and again {again_s:.1f} s; Ray --cluster ({args.parallel} CPUs, 1 per task) "
              f"{ray_s:.1f} s; ratio Ray / local (their mean) {ray_s / baseline:.2f}; "
              f"the tables are equal: {remote['table'] == local['table']}")
        run_s = 60 * args.run_minutes
        waves = math.ceil(PROJECTED_RUNS / PROJECTED_GPUS)
        # the engine's overhead: the larger of the two differences (the data-loading one carries
        # the machine's load noise, and can come out below the empty tasks' or negative)
        overhead = max(engine - here for here, engine in measured.values())
        loading = measured["loading the embedded set"][0]
        per_task = worker_start + loading + overhead
        projected = waves * (run_s + per_task)
        print(f"[bench] PROJECTION (not measured): {PROJECTED_RUNS} runs of {args.run_minutes:g} min on "
              f"{PROJECTED_GPUS} GPUs (--task-gpus 1): {waves} waves x ({run_s:.0f} s + {worker_start:.2f} s worker "
              f"start + {loading:.2f} s data loading + {overhead:.3f} s engine overhead) = {projected / 60:.1f} min, "
              f"against {PROJECTED_RUNS * run_s / 60:.0f} min one after another on one GPU; a task's cost outside "
              f"its run is {100 * per_task / run_s:.1f}% of a run")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
