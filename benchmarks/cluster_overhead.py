"""What running a sweep's trainings through Ray costs against running them here, in the same run.

1. Local baseline: a sweep of ``--variants`` x ``--seeds`` short runs on the embedded set with
   ``sweep --parallel N`` (N processes, each with cores/N torch threads).
2. The engine: the same sweep with ``--cluster`` on a Ray cluster started on this machine (one head
   node with N CPUs, tests/ray_support.py), one CPU and one torch thread per task: the same
   threads as the baseline on a machine of 2N cores.
3. Ray alone: the round trip of an empty task on the warm cluster.
4. The local baseline again: the machine's load drifts; the baseline is the mean of both.

It prints the wall times, their ratio, the engine's overhead per task in seconds (how much longer a
slot spends outside the runs themselves per task than with ``--parallel``: process start, imports,
dispatch; the runs' own times come from their folders' files, so the drift of the machine's load,
which lengthens the runs, does not count), whether the two tables are equal, and a PROJECTION for the
paper's Table 1 (50 runs) on 8 GPUs from a run's duration (``--run-minutes``) and the overhead
measured here. The cluster's start (seconds, once per cluster) is printed apart: a cluster user
starts it once for many commands.

    .venv/bin/python benchmarks/cluster_overhead.py                 # 8 runs: 2 variants x 4 seeds, 2 at a time
    .venv/bin/python benchmarks/cluster_overhead.py --epochs 3 --hidden 64
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

from snn_toolchain.atomic import OWNER_MARK  # noqa: E402
from snn_toolchain.cluster import ClusterSpec  # noqa: E402
from snn_toolchain.train.loop.config import TrainConfig  # noqa: E402
from snn_toolchain.train.sweeps.sweep import DataSource, run_sweep  # noqa: E402

PROJECTED_RUNS, PROJECTED_GPUS = 50, 8


def sweep_seconds(config: TrainConfig, out: Path, variants: list, seeds: int, **how) -> tuple[float, float, dict]:
    """The sweep's wall time, the sum of its runs' own times (seconds: from the claim of each run
    folder, its first file, to its result.json, read from the files' times) and its sweep.json."""
    lines = []
    started = time.perf_counter()
    run_sweep(config, out, seeds=seeds, variants=variants, data=DataSource("shd"), log=lines.append, **how)
    seconds = time.perf_counter() - started
    runs = [result.parent for result in out.glob("*/seed*/result.json")]
    busy = sum((run / "result.json").stat().st_mtime - (run / OWNER_MARK).stat().st_mtime for run in runs)
    return seconds, busy, json.loads((out / "sweep.json").read_text())


def empty_task_round_trip(repeats: int = 20) -> float:
    """Seconds for one empty task on the warm cluster (submit, schedule, run, fetch), the median."""
    import ray

    @ray.remote(num_cpus=1)
    def nothing():
        return None

    ray.get(nothing.remote())            # a worker process started and warm
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        ray.get(nothing.remote())
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
        print(f"[bench] {runs} runs ({'+'.join(variants)} x {args.seeds} seeds, hidden {args.hidden}, {args.epochs} "
              f"epochs, embedded set), {args.parallel} at a time; {os.cpu_count()} CPU cores here")
        local_s, local_busy, local = sweep_seconds(config, folder / "local", variants, args.seeds,
                                                   parallel=args.parallel)
        print(f"[bench] local  --parallel {args.parallel}: {local_s:.1f} s")
        started = time.perf_counter()
        with local_ray_cluster(workers=0, head_cpus=args.parallel) as cluster:
            start_s = time.perf_counter() - started
            print(f"[bench] Ray cluster started in {start_s:.1f} s (once per cluster, not per command)")
            ray_s, ray_busy, remote = sweep_seconds(config, folder / "ray", variants, args.seeds,
                                                    cluster=ClusterSpec(cluster.address, task_cpus=1))
            round_trip = empty_task_round_trip()
        print(f"[bench] Ray    --cluster ({args.parallel} CPUs, 1 per task): {ray_s:.1f} s")
        # the baseline again: the machine's load (other trainings share it) drifts; the two local
        # figures show by how much, and their mean is the baseline
        again_s, again_busy, _ = sweep_seconds(config, folder / "local-again", variants, args.seeds,
                                               parallel=args.parallel)
        print(f"[bench] local  --parallel {args.parallel}, again: {again_s:.1f} s")
        slots = args.parallel
        local_s, local_busy = (local_s + again_s) / 2, (local_busy + again_busy) / 2
        print(f"[bench] ratio Ray / local (the mean of both): {ray_s / local_s:.2f}")
        # a slot's time outside its runs (process start, imports, dispatch, the queue's tail), per
        # task; the load's drift shows in the runs' own times, not in this gap
        gap_local = (local_s * slots - local_busy) / runs
        gap_ray = (ray_s * slots - ray_busy) / runs
        overhead = gap_ray - gap_local
        print(f"[bench] a slot's time outside its runs, per task: local {gap_local:.2f} s, Ray {gap_ray:.2f} s; "
              f"the engine's overhead per task: {overhead:+.2f} s; an empty task's round trip on the warm "
              f"cluster: {1000 * round_trip:.1f} ms")
        print(f"[bench] the runs' own time, summed: local {local_busy:.1f} s, Ray {ray_busy:.1f} s")
        print(f"[bench] the tables are equal: {remote['table'] == local['table']}")
        run_s = 60 * args.run_minutes
        waves = math.ceil(PROJECTED_RUNS / PROJECTED_GPUS)
        # a measured overhead below the empty task's round trip is noise: the round trip is the floor
        per_task = max(overhead, round_trip)
        projected = waves * (run_s + per_task)
        print(f"[bench] PROJECTION (not measured): {PROJECTED_RUNS} runs of {args.run_minutes:g} min on "
              f"{PROJECTED_GPUS} GPUs (one task per GPU, --task-gpus 1): {waves} waves x ({run_s:.0f} s + "
              f"{per_task:.3f} s overhead) = {projected / 60:.1f} min, against {PROJECTED_RUNS * run_s / 60:.0f} "
              f"min one after another on one GPU; the overhead is {100 * per_task / run_s:.2f}% of a run")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
