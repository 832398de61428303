"""Is data loading fast enough never to starve training?

Prints, in one run, the time to produce one batch with the project's DataLoader and the time of
one training step (forward, backward, Adam) of the SHD-preset network on the same batches, and
their ratio (training step / loading; above 1 means loading keeps up with a single worker, and
DataLoader workers overlap it with training anyway).

    python benchmarks/bench_data_loading.py [--batch 128] [--data-dir DIR] [--dataset shd|ssc|gsc]
"""


import argparse
import statistics
import time

import torch

from snn_toolchain.train.loop.config import preset_config
from snn_toolchain.train.data.loading import build_datasets, make_loader
from snn_toolchain.train.loop.trainer import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="shd")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    t0 = time.perf_counter()
    splits = build_datasets(args.dataset, args.data_dir, pad_steps=25)
    open_seconds = time.perf_counter() - t0
    loader = make_loader(splits.train, args.batch, shuffle=True, seed=0)

    load_times, batches = [], []
    iterator = iter(loader)
    for _ in range(args.batches):
        t0 = time.perf_counter()
        batch = next(iterator, None)
        if batch is None:
            iterator = iter(loader)
            batch = next(iterator)
        load_times.append(time.perf_counter() - t0)
        batches.append(batch)

    config = preset_config(args.dataset, device=args.device)
    model = build_model(config, splits.n_inputs, splits.n_classes).to(args.device)
    optimizer = torch.optim.Adam(model.parameter_groups(config.lr_weights, config.lr_delays))
    step_times = []
    for x, y in batches:
        x, y = x.to(args.device), y.to(args.device)
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.clamp_()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        step_times.append(time.perf_counter() - t0)

    load = statistics.median(load_times)
    step = statistics.median(step_times[1:] or step_times)
    print(f"dataset {splits.summary()}")
    print(f"opening and validating the files: {open_seconds:.2f} s")
    print(f"loading one batch of {args.batch}: {1e3 * load:.1f} ms (median of {len(load_times)}), "
          f"{args.batch / load:.0f} samples/s")
    print(f"one training step on {args.device}: {1e3 * step:.1f} ms (median)")
    print(f"ratio training step / loading: {step / load:.1f}x")


if __name__ == "__main__":
    main()
