"""The paper's Table 1 sweep: every (neuron, delays) variant x N seeds, aggregated to mean, spread
and max under both evaluation protocols, with the paper's analyses (``sweep_report.py``).

``parallel`` runs that many trainings at once as separate processes (each one pinned to its share
of the CPU threads; on a GPU they share the device, which short SHD-sized runs leave mostly idle).
A run whose ``result.json`` exists is taken as done, and one with a ``checkpoint.pt`` is resumed,
so an interrupted sweep is continued by running the same command again.

The workers never outlive the sweep (issue #22): each one asks the kernel to SIGKILL it when its
parent dies (``PR_SET_PDEATHSIG``, Linux), whatever ended the parent (SIGKILL included), and
ignores Ctrl-C (a terminal sends it to the whole process group: the parent decides). When the
parent stops early (Ctrl-C, SIGTERM, a failed run) it terminates the workers at once instead of
waiting for their runs; a run folder left unfinished holds its last (atomically written)
checkpoint and is resumed by the next sweep.

``cluster`` (a :class:`~snn_toolchain.cluster.ClusterSpec`, ``--cluster ADDRESS``) runs each training
as a task of a Ray cluster instead (``snn_toolchain/cluster/``, docs/scale.md): the run folders are
on storage every machine sees; a task whose machine dies is run again elsewhere and resumes from the
last checkpoint; a failed run is reported with its log while the others go on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing
import operator
import os
import signal
import statistics
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from snn_toolchain.atomic import claim_folder, write_json
from snn_toolchain.cluster import ClusterSpec
from snn_toolchain.errors import ToolchainError
from snn_toolchain.processes import die_with_parent, end_processes, held_signals
from snn_toolchain.train.loop.config import TABLE1_VARIANTS, TrainConfig
from snn_toolchain.train.loop.selection import headline_label
from snn_toolchain.train.data.loading import build_run_datasets
from snn_toolchain.train.sweeps.report import write_sweep_report
from snn_toolchain.train.loop.trainer import train


@dataclass(frozen=True)
class DataSource:
    """Where a run's data comes from; picklable, so a sweep's worker processes load it themselves."""

    dataset: str = "shd"
    data_dir: Path | None = None
    cache_dir: Path | None = None

    def load(self, config: TrainConfig):
        return build_run_datasets(dataclasses.replace(config, dataset=self.dataset), self.data_dir,
                                  cache_dir=self.cache_dir)


def _spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(results: dict[str, list[dict]]) -> dict[str, dict]:
    """Per variant, in percent: validation-selected test accuracy (mean, sample std, max), the
    test-selected figure of the paper's protocol (same), validation accuracy, and the averages
    of the per-run analyses (initial state, delay rounding, spikes per hidden neuron)."""
    table = {}
    for variant, runs in results.items():
        if not runs:
            continue
        valid = [100 * r["best_valid_acc"] for r in runs]
        test = [100 * r["test_acc"] for r in runs]
        paper = [100 * r["test_selected"]["test_acc"] for r in runs if r.get("test_selected")]
        row = {"seeds": len(runs), "parameters": runs[0].get("parameters"),
               "valid_mean": statistics.fmean(valid), "valid_max": max(valid),
               "test_mean": statistics.fmean(test), "test_std": _spread(test), "test_max": max(test),
               "test_per_seed": test}
        if paper:
            row.update(paper_mean=statistics.fmean(paper), paper_std=_spread(paper), paper_max=max(paper),
                       paper_per_seed=paper)
        analyses = [r["selected_model_analysis"] for r in runs if r.get("selected_model_analysis")]
        for key in ("test_acc_zero_init", "test_acc_uniform_init", "test_acc_fractional_delays"):
            values = [100 * a[key] for a in analyses if a.get(key) is not None]   # None: a --qat run
            if values:
                row[key] = statistics.fmean(values)
        if analyses:
            row["spikes_per_neuron"] = statistics.fmean(statistics.fmean(a["spikes_per_neuron_per_sample"])
                                                        for a in analyses)
        table[variant] = row
    return table


def _check_earlier(result_file: Path, config: TrainConfig) -> dict:
    earlier = json.loads(result_file.read_text())
    changed = config.differences(earlier["config"])
    if changed:
        raise ToolchainError(f"{result_file}: an earlier sweep with other settings ({', '.join(changed)}); "
                             "use another output folder")
    return earlier


# After SIGTERM, how long the workers get before SIGKILL; then how long reaping may take.
WORKER_TERMINATE_GRACE_S = 2.0
WORKER_REAP_TIMEOUT_S = 5.0


def _init_worker(parent: int) -> None:
    """Run first in every worker process: die with the parent, leave Ctrl-C to it."""
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C reaches the whole group: the parent decides
    die_with_parent(parent)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """End ``pool`` now: cancel what is queued, SIGTERM every worker (a run in progress stops where
    it is; its checkpoint is the last one written, atomically), SIGKILL those still alive after
    WORKER_TERMINATE_GRACE_S, and reap them. SIGINT/SIGTERM arriving meanwhile are held back and
    raised again afterwards, so that a second Ctrl-C cannot cut the stopping short."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    with held_signals(reraise=True):
        pool.shutdown(wait=False, cancel_futures=True)
        end_processes(processes, WORKER_TERMINATE_GRACE_S, WORKER_REAP_TIMEOUT_S)


def _run_line(result: dict) -> str:
    """A finished run on one line: its headline test accuracy, labelled, and the batch it trained at."""
    return (f"test {100 * result['test_acc']:.2f}% ({headline_label(result)}), "
            f"batch {result.get('config', {}).get('batch_size', '?')}")


def _train_in_worker(config_dict: dict, run_dir: str, data: DataSource, threads: int) -> dict:
    """One sweep run in a worker process; its log goes to RUN_DIR/train.log."""
    import torch

    torch.set_num_threads(threads)
    config = TrainConfig(**config_dict)
    run_path = Path(run_dir)
    # the folder is claimed as train() claims it, before train.log (a file of ours) goes in
    claim_folder(run_path, "training run", "--run-dir", legacy=(run_path / "checkpoint.pt").is_file())
    with open(run_path / "train.log", "a", encoding="utf-8") as log_file:
        def log(line: str) -> None:
            log_file.write(line + "\n")
            log_file.flush()

        train(config, run_path, splits=data.load(config), resume=(run_path / "checkpoint.pt").exists(),
              progress=False, log=log)
    return json.loads((run_path / "result.json").read_text())


def train_runs(jobs: list, data: DataSource, parallel: int = 1, log=print, done: int = 0, total: int | None = None,
               tag: str = "sweep", cluster: ClusterSpec | None = None) -> dict:
    """Train every ``(key, config, run_dir)`` of ``jobs`` (resuming a run folder that holds a
    checkpoint), ``parallel`` at a time as spawned processes (each logging to RUN_DIR/train.log);
    returns key -> the run's result.json. A failed run stops the queue. ``key`` is any hashable
    label; its last element is shown as the seed. With ``cluster``, each run is a task of that Ray
    cluster instead (:func:`_train_on_cluster`)."""
    results: dict = {}
    total = total if total is not None else done + len(jobs)
    if cluster is not None:
        return _train_on_cluster(jobs, data, cluster, log, done, total, tag)
    if jobs:
        log(f"[{tag}] {len(jobs)} runs to train, {min(parallel, len(jobs))} at a time")
    if parallel == 1:
        loaded: dict[int, object] = {}   # the SHD validation hold-out depends on the seed
        for number, (key, config, run_dir) in enumerate(jobs, 1):
            log(f"[{tag}] {number}/{len(jobs)} {_label(key)} -> {run_dir}")
            if config.seed not in loaded:
                loaded[config.seed] = data.load(config)
            splits = loaded[config.seed]
            train(config, run_dir, splits=splits, resume=(run_dir / "checkpoint.pt").exists(), log=log)
            results[key] = json.loads((run_dir / "result.json").read_text())
            log(f"[{tag}] {done + len(results)}/{total} {_label(key)}: {_run_line(results[key])}")
        return results
    threads = max(1, (os.cpu_count() or 1) // parallel)
    context = multiprocessing.get_context("spawn")   # no forked torch or CUDA state in the workers
    # The workers are started by this thread (in submit) and their parent-death signal is tied to it:
    # it waits here until they are done or stopped, so it outlives them.
    pool = ProcessPoolExecutor(max_workers=parallel, mp_context=context, initializer=_init_worker,
                               initargs=(os.getpid(),))
    try:
        futures = {pool.submit(_train_in_worker, config.to_dict(), str(run_dir), data, threads): (key, run_dir)
                   for key, config, run_dir in jobs}
        remaining = set(futures)
        while remaining:
            finished, remaining = wait(remaining, return_when=FIRST_COMPLETED)
            for future in finished:
                key, run_dir = futures[future]
                try:
                    results[key] = future.result()
                except Exception as err:
                    if isinstance(err, ToolchainError):
                        raise
                    raise ToolchainError(f"{run_dir}: training failed ({err}); see its train.log") from err
                log(f"[{tag}] {done + len(results)}/{total} {_label(key)}: {_run_line(results[key])}")
    except BaseException:
        # Ctrl-C, SIGTERM (the CLI raises it as Interrupted) or a failed run: stop every worker now
        # rather than after its run (the runs of the queue and those in progress alike)
        _stop_workers(pool)
        raise
    pool.shutdown(wait=True)
    return results


def _train_on_cluster(jobs: list, data: DataSource, cluster: ClusterSpec, log, done: int, total: int,
                      tag: str) -> dict:
    """Every run of ``jobs`` as one task of the Ray cluster (``snn_toolchain/cluster/engine.py``),
    with ``cluster.task_cpus`` torch threads: the same function and threads as a worker of
    ``--parallel`` on as many cores, so a run's result depends only on its config and seed.

    The paths go out absolute (a worker's working folder is not ours). A task whose machine dies
    is run again elsewhere and resumes from its checkpoint; its run folder's lease
    (``run_folder.claim_run_folder``) keeps two attempts from running at once. A failed run is
    reported with its train.log when it fails, the others go on, and one line at the end names
    every failed run: the same command run again continues from where they stopped."""
    from snn_toolchain.cluster.engine import Task, absolute, run_tasks  # Ray: only when --cluster is given

    if not jobs:
        return {}
    data = dataclasses.replace(data, data_dir=absolute(data.data_dir), cache_dir=absolute(data.cache_dir))
    tasks = []
    for key, config, run_dir in jobs:
        run_dir = absolute(run_dir)
        if config.init_checkpoint:      # a weights file to start from, read by the worker
            config = dataclasses.replace(config, init_checkpoint=str(absolute(config.init_checkpoint)))
        tasks.append(Task(key, f"{_label(key)} ({run_dir})", _train_in_worker,
                          (config.to_dict(), str(run_dir), data, cluster.task_cpus),
                          log_file=run_dir / "train.log", folder=run_dir))
    results, failures = run_tasks(tasks, cluster, tag=tag, log=log, done_before=done, total=total,
                                  describe=_run_line)
    if failures:
        named = ", ".join(f.label for f in failures)
        raise ToolchainError(f"{len(failures)} of {len(tasks)} runs failed ({named}): their errors and train.log "
                             "lines are above; the other runs finished; run the same command again to retry the "
                             "failed ones")
    return results


def _label(key) -> str:
    parts = key if isinstance(key, tuple) else (key,)
    return " ".join(str(p) for p in parts[:-1]) + f" seed {parts[-1]}"


def check_variants(variants: list[str] | None) -> list[str]:
    """The variants a sweep trains: all of them for None; otherwise the names given (surrounding
    spaces dropped), refused in one line when the list is empty or holds a blank, an unknown or a
    repeated name (two runs of one variant would share, and fight over, one run folder)."""
    if variants is None:
        return list(TABLE1_VARIANTS)
    if isinstance(variants, str):
        variants = variants.split(",")
    chosen = [str(v).strip() for v in variants]
    choices = ", ".join(TABLE1_VARIANTS)
    if not chosen or not any(chosen):
        raise ToolchainError(f"--variants {','.join(map(str, variants))!r}: no variant given; name one or more of "
                             f"{choices} (or leave the option out for all)")
    if not all(chosen):
        raise ToolchainError(f"--variants {','.join(map(str, variants))!r}: an empty name in the list; "
                             f"give names separated by single commas, from {choices}")
    unknown = [v for v in chosen if v not in TABLE1_VARIANTS]
    if unknown:
        raise ToolchainError(f"unknown variant(s) {', '.join(unknown)}: choose from {choices}")
    repeated = list(dict.fromkeys(v for v in chosen if chosen.count(v) > 1))
    if repeated:
        raise ToolchainError(f"--variants {','.join(chosen)}: {', '.join(repeated)} given more than once; "
                             "name each variant once")
    return chosen


def check_seeds(seeds) -> int:
    """Refuse a seed count below 1 (or not a whole number) in one line, before anything is written:
    no seeds would train nothing and rewrite the summary as an empty table."""
    try:
        count = operator.index(seeds)
    except TypeError:
        count = None
    if count is None or isinstance(seeds, bool) or count < 1:
        raise ToolchainError(f"--seeds {seeds}: must be a whole number, at least 1")
    return count


def run_sweep(base: TrainConfig, out: Path, *, seeds: int, variants: list[str] | None = None,
              data: DataSource | None = None, parallel: int = 1, log=print, cluster: ClusterSpec | None = None) -> dict:
    """Train every chosen variant for seeds 0..seeds-1 into OUT/VARIANT/seedN, then write
    ``sweep.json``, ``sweep.md`` and the figures. Returns the aggregated table (:func:`aggregate`).
    ``cluster``: train on that Ray cluster (:func:`train_runs`) instead of this machine."""
    out = Path(out)
    data = data or DataSource(base.dataset)
    chosen = check_variants(variants)
    seeds = check_seeds(seeds)
    if parallel < 1:
        raise ToolchainError(f"--parallel {parallel}: must be at least 1")
    log(f"[sweep] preset {base.preset}; batch {base.batch_size}"
        + (f", halved per run until an epoch has {base.min_updates} updates (each run's line gives its batch)"
           if base.min_updates else "")
        + f"; protocol {base.protocol}"
        + ("; no validation split: the test split stands in, every figure is test-selected"
           if base.valid_fraction == 0 else ""))
    results: dict[tuple[str, int], dict] = {}
    pending: list[tuple[str, int, TrainConfig, Path]] = []
    for seed in range(seeds):
        for variant in chosen:
            neuron, delays = TABLE1_VARIANTS[variant]
            config = dataclasses.replace(base, neuron=neuron, delays=delays, seed=seed).validate()
            run_dir = out / variant / f"seed{seed}"
            if (run_dir / "result.json").exists():
                results[variant, seed] = _check_earlier(run_dir / "result.json", config)
                log(f"[sweep] {variant} seed {seed}: done earlier")
            else:
                pending.append((variant, seed, config, run_dir))
    results.update(train_runs([((variant, seed), config, run_dir) for variant, seed, config, run_dir in pending],
                              data, parallel, log, done=len(results), total=len(chosen) * seeds, cluster=cluster))
    by_variant = {v: [results[v, s] for s in range(seeds) if (v, s) in results] for v in chosen}
    table = aggregate(by_variant)
    write_json(out / "sweep.json", {"table": table, "runs": by_variant})
    markdown = write_sweep_report(out, table, by_variant, data)
    log(markdown.split("\n## ")[1] if "\n## " in markdown else markdown)
    log(f"[sweep] wrote {out / 'sweep.md'}, {out / 'sweep.json'} and the figures")
    return table
