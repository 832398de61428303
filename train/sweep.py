"""The paper's Table 1 sweep: every (neuron, delays) variant x N seeds, aggregated to mean, spread
and max under both evaluation protocols, with the paper's analyses (``sweep_report.py``).

``parallel`` runs that many trainings at once as separate processes (each one pinned to its share
of the CPU threads; on a GPU they share the device, which short SHD-sized runs leave mostly idle).
A run whose ``result.json`` exists is taken as done, and one with a ``checkpoint.pt`` is resumed,
so an interrupted sweep is continued by running the same command again.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import statistics
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from snn_toolchain.atomic import write_json
from snn_toolchain.errors import ToolchainError
from snn_toolchain.train.config import TABLE1_VARIANTS, TrainConfig
from snn_toolchain.train.data import build_datasets
from snn_toolchain.train.sweep_report import write_sweep_report
from snn_toolchain.train.trainer import train


@dataclass(frozen=True)
class DataSource:
    """Where a run's data comes from; picklable, so a sweep's worker processes load it themselves."""

    dataset: str = "shd"
    data_dir: Path | None = None
    cache_dir: Path | None = None

    def load(self, config: TrainConfig):
        return build_datasets(self.dataset, self.data_dir, pad_steps=config.max_delay,
                              valid_fraction=config.valid_fraction, seed=config.seed, cache_dir=self.cache_dir,
                              input_bits=config.input_bits)


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


def _train_in_worker(config_dict: dict, run_dir: str, data: DataSource, threads: int) -> dict:
    """One sweep run in a worker process; its log goes to RUN_DIR/train.log."""
    import torch

    torch.set_num_threads(threads)
    config = TrainConfig(**config_dict)
    run_path = Path(run_dir)
    run_path.mkdir(parents=True, exist_ok=True)
    with open(run_path / "train.log", "a", encoding="utf-8") as log_file:
        def log(line: str) -> None:
            log_file.write(line + "\n")
            log_file.flush()

        train(config, run_path, splits=data.load(config), resume=(run_path / "checkpoint.pt").exists(),
              progress=False, log=log)
    return json.loads((run_path / "result.json").read_text())


def train_runs(jobs: list, data: DataSource, parallel: int = 1, log=print, done: int = 0, total: int | None = None,
               tag: str = "sweep") -> dict:
    """Train every ``(key, config, run_dir)`` of ``jobs`` (resuming a run folder that holds a
    checkpoint), ``parallel`` at a time as spawned processes (each logging to RUN_DIR/train.log);
    returns key -> the run's result.json. A failed run stops the queue. ``key`` is any hashable
    label; its last element is shown as the seed."""
    results: dict = {}
    total = total if total is not None else done + len(jobs)
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
        return results
    threads = max(1, (os.cpu_count() or 1) // parallel)
    context = multiprocessing.get_context("spawn")   # no forked torch or CUDA state in the workers
    with ProcessPoolExecutor(max_workers=parallel, mp_context=context) as pool:
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
                    pool.shutdown(wait=False, cancel_futures=True)   # do not train the rest of the queue first
                    if isinstance(err, ToolchainError):
                        raise
                    raise ToolchainError(f"{run_dir}: training failed ({err}); see its train.log") from err
                log(f"[{tag}] {done + len(results)}/{total} {_label(key)}: "
                    f"test {100 * results[key]['test_acc']:.2f}% (validation-selected)")
    return results


def _label(key) -> str:
    parts = key if isinstance(key, tuple) else (key,)
    return " ".join(str(p) for p in parts[:-1]) + f" seed {parts[-1]}"


def run_sweep(base: TrainConfig, out: Path, *, seeds: int, variants: list[str] | None = None,
              data: DataSource | None = None, parallel: int = 1, log=print) -> dict:
    """Train every chosen variant for seeds 0..seeds-1 into OUT/VARIANT/seedN, then write
    ``sweep.json``, ``sweep.md`` and the figures. Returns the aggregated table (:func:`aggregate`)."""
    out = Path(out)
    data = data or DataSource(base.dataset)
    chosen = variants or list(TABLE1_VARIANTS)
    unknown = [v for v in chosen if v not in TABLE1_VARIANTS]
    if unknown:
        raise ToolchainError(f"unknown variant(s) {', '.join(unknown)}: choose from {', '.join(TABLE1_VARIANTS)}")
    if parallel < 1:
        raise ToolchainError(f"--parallel {parallel}: must be at least 1")
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
                              data, parallel, log, done=len(results), total=len(chosen) * seeds))
    by_variant = {v: [results[v, s] for s in range(seeds) if (v, s) in results] for v in chosen}
    table = aggregate(by_variant)
    write_json(out / "sweep.json", {"table": table, "runs": by_variant})
    markdown = write_sweep_report(out, table, by_variant, data)
    log(markdown.split("\n## ")[1] if "\n## " in markdown else markdown)
    log(f"[sweep] wrote {out / 'sweep.md'}, {out / 'sweep.json'} and the figures")
    return table
