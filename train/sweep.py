"""The paper's Table 1 sweep: every (neuron, delays) variant x N seeds, aggregated to mean and max.

Runs are sequential in this process (each one data-parallel when started under torchrun). A run
whose ``result.json`` exists is skipped, and one with a ``checkpoint.pt`` is resumed, so an
interrupted sweep is continued by running the same command again.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path
from typing import Callable

from snn_toolchain.atomic import write_json, write_text
from snn_toolchain.train.config import TABLE1_VARIANTS, TrainConfig


def aggregate(results: dict[str, list[dict]]) -> dict[str, dict]:
    """Per variant: number of seeds, mean and max of validation and test accuracy (percent)."""
    table = {}
    for variant, runs in results.items():
        if not runs:
            continue
        valid = [100 * r["best_valid_acc"] for r in runs]
        test = [100 * r["test_acc"] for r in runs]
        table[variant] = {"seeds": len(runs), "valid_mean": statistics.fmean(valid), "valid_max": max(valid),
                          "test_mean": statistics.fmean(test), "test_max": max(test)}
    return table


def markdown_table(table: dict[str, dict]) -> str:
    lines = ["| model | seeds | valid mean | valid max | test mean | test max |", "|---|---|---|---|---|---|"]
    for variant, row in table.items():
        lines.append(f"| {variant} | {row['seeds']} | {row['valid_mean']:.2f} | {row['valid_max']:.2f} | "
                     f"{row['test_mean']:.2f} | {row['test_max']:.2f} |")
    return "\n".join(lines) + "\n"


def run_sweep(base: TrainConfig, out: Path, *, seeds: int, variants: list[str] | None = None,
              splits_loader: Callable[[TrainConfig], object], log=print) -> dict:
    from snn_toolchain.train.trainer import train

    out = Path(out)
    chosen = variants or list(TABLE1_VARIANTS)
    unknown = [v for v in chosen if v not in TABLE1_VARIANTS]
    if unknown:
        from snn_toolchain.errors import ToolchainError

        raise ToolchainError(f"unknown variant(s) {', '.join(unknown)}: choose from {', '.join(TABLE1_VARIANTS)}")
    results: dict[str, list[dict]] = {v: [] for v in chosen}
    for seed in range(seeds):
        splits = None  # loaded once per seed: the SHD validation hold-out depends on the seed
        for variant in chosen:
            neuron, delays = TABLE1_VARIANTS[variant]
            config = dataclasses.replace(base, neuron=neuron, delays=delays, seed=seed)
            run_dir = out / variant / f"seed{seed}"
            result_file = run_dir / "result.json"
            if result_file.exists():
                earlier = json.loads(result_file.read_text())
                changed = sorted(k for k, v in config.to_dict().items() if earlier["config"].get(k) != v)
                if changed:
                    from snn_toolchain.errors import ToolchainError

                    raise ToolchainError(f"{result_file}: an earlier sweep with other settings ({', '.join(changed)}); "
                                         "use another output folder")
                results[variant].append(earlier)
                log(f"[sweep] {variant} seed {seed}: done earlier")
                continue
            splits = splits or splits_loader(config)
            log(f"[sweep] {variant} seed {seed} -> {run_dir}")
            train(config, run_dir, splits=splits, resume=(run_dir / "checkpoint.pt").exists(), log=log)
            results[variant].append(json.loads(result_file.read_text()))
    table = aggregate(results)
    write_json(out / "sweep.json", {"table": table, "runs": results})
    write_text(out / "sweep.md", markdown_table(table))
    log(markdown_table(table))
    log(f"[sweep] wrote {out / 'sweep.md'} and {out / 'sweep.json'}")
    return table
