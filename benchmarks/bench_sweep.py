"""How long the paper's whole Table 1 takes (5 variants x 10 seeds x 100 epochs) at the real SHD's
size, with ``sweep --parallel N`` against the sequential sweep, measured in the same run.

The data is synthetic, written in SHD's official HDF5 layout at SHD's size (8,156 training and 2,264
test samples by default, 700 channels, spikes spread over 1 s), so loading, binning and evaluation
cost what they cost on the real files. Accuracy is meaningless here; only time is measured.

1. Baseline: the sequential sweep (``--parallel 1``), one seed of each of the 5 variants, for
   ``--epochs`` epochs.
2. Parallel: ``--seeds`` seeds of each variant with ``--parallel N`` worker processes.

Both give a throughput in run-epochs per second (training plus the per-epoch validation and test
evaluation, process start and data loading included). The script prints the ratio and the
extrapolated time of the whole Table 1 (50 runs x 100 epochs) both ways.

    python benchmarks/bench_sweep.py --device cuda --parallel 10 --seeds 2 --epochs 3
    python benchmarks/bench_sweep.py --device cpu --train-samples 1024 --test-samples 256 --epochs 1 --parallel 2
"""


import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from official_layout import write_heidelberg  # noqa: E402  (the official-layout writer the tests use)

from snn_toolchain.train.loop.config import TABLE1_VARIANTS, preset_config  # noqa: E402
from snn_toolchain.train.sweeps.sweep import DataSource, run_sweep  # noqa: E402

TABLE1_RUNS, TABLE1_EPOCHS = 50, 100


def write_synthetic_shd(folder: Path, n_train: int, n_test: int, seed: int = 0) -> Path:
    """shd_train.h5 / shd_test.h5 with SHD's sizes: 20 classes, 12 train speakers, about 3,000
    spikes per sample (the real set's order of magnitude), times in [0, 1) s."""
    rng = np.random.default_rng(seed)
    for name, n in (("shd_train.h5", n_train), ("shd_test.h5", n_test)):
        samples = []
        for _ in range(n):
            k = int(rng.integers(1500, 4500))
            samples.append((np.sort(rng.uniform(0, 0.99, k)), rng.integers(0, 700, k)))
        write_heidelberg(folder / name, samples, rng.integers(0, 20, n), speakers=rng.integers(0, 12, n),
                         times_dtype=np.float32)
    return folder


def measure(folder: Path, out: Path, *, seeds: int, parallel: int, epochs: int, device: str) -> dict:
    config = preset_config("shd", epochs=epochs, device=device)
    start = time.perf_counter()
    run_sweep(config, out, seeds=seeds, data=DataSource("shd", folder), parallel=parallel, log=lambda *_: None)
    seconds = time.perf_counter() - start
    runs = seeds * len(TABLE1_VARIANTS)
    return {"runs": runs, "parallel": parallel, "epochs": epochs, "seconds": seconds,
            "run_epochs_per_second": runs * epochs / seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--train-samples", type=int, default=8156)
    parser.add_argument("--test-samples", type=int, default=2264)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=2, help="seeds per variant in the parallel sweep")
    parser.add_argument("--parallel", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "data"
        folder.mkdir()
        write_synthetic_shd(folder, args.train_samples, args.test_samples)
        baseline = measure(folder, Path(tmp) / "sequential", seeds=1, parallel=1, epochs=args.epochs, device=args.device)
        parallel = measure(folder, Path(tmp) / "parallel", seeds=args.seeds, parallel=args.parallel,
                           epochs=args.epochs, device=args.device)
    ratio = parallel["run_epochs_per_second"] / baseline["run_epochs_per_second"]
    table1_sequential = TABLE1_RUNS * TABLE1_EPOCHS / baseline["run_epochs_per_second"]
    table1_parallel = TABLE1_RUNS * TABLE1_EPOCHS / parallel["run_epochs_per_second"]
    print(f"data: {args.train_samples} train / {args.test_samples} test samples (synthetic, SHD layout), "
          f"device {args.device}, {args.epochs} epochs per run")
    for name, figures in (("sequential (baseline)", baseline), (f"--parallel {args.parallel}", parallel)):
        print(f"{name:>22}: {figures['runs']} runs in {figures['seconds']:.1f} s = "
              f"{figures['run_epochs_per_second']:.2f} run-epochs/s")
    print(f"throughput ratio, parallel / sequential: {ratio:.2f}x")
    print(f"Table 1 (50 runs x 100 epochs) extrapolated: sequential {table1_sequential / 60:.1f} min, "
          f"--parallel {args.parallel} {table1_parallel / 60:.1f} min")
    if args.json:
        args.json.write_text(json.dumps({"baseline": baseline, "parallel": parallel, "ratio": ratio,
                                         "table1_minutes_sequential": table1_sequential / 60,
                                         "table1_minutes_parallel": table1_parallel / 60, "args": vars(args)},
                                        indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
