"""Where does the event-driven CPU delay path beat the dense convolution?

For each share of nonzero inputs, times one delayed dense layer's forward + backward (weight,
delay, bias and, for the hidden layer, input gradients) with ``method="events"`` and with
``method="conv"`` in the same run, on the same tensors, and prints conv / events (above 1: events
win). Two layers of the SHD preset: 140 data channels -> 128 (no input gradient) and 128 hidden
spikes -> 128 (input gradient), delays uniform in [0, 25] steps, batch 32, 125 steps.

The crossover it prints is what ``event_delay.EVENT_DENSITY_LIMIT`` is set from (the ``auto``
method's choice). Times are medians of ``--repeats`` calls after one warm-up, in milliseconds.

    python benchmarks/bench_event_delay.py [--batch 32] [--repeats 5] [--threads 2]
"""


import argparse
import statistics
import time

import numba
import torch

from snn_toolchain.train.model.synapse import delayed_dense

DENSITIES = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)
LAYERS = (("data 140 -> 128", 140, False), ("hidden 128 -> 128", 128, True))


def time_method(x, weight, delay, bias, upstream, method, repeats):
    def once():
        out = delayed_dense(x, weight, delay, bias, method=method)
        wanted = [v for v in (x, weight, delay, bias) if v.requires_grad]
        torch.autograd.grad(out, wanted, upstream)

    once()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=125)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--max-delay", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch and numba threads (default: their own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        numba.set_num_threads(args.threads)
    print(f"[bench] torch threads {torch.get_num_threads()}, numba threads {numba.get_num_threads()}; "
          f"batch {args.batch}, {args.steps} steps, delays U[0, {args.max_delay}]")
    generator = torch.Generator().manual_seed(0)
    print(f"{'layer':<20}{'nonzero':>8}{'events ms':>11}{'conv ms':>9}{'conv/events':>13}")
    for name, n_in, input_grad in LAYERS:
        weight = torch.randn(args.hidden, n_in, generator=generator).mul_(0.1).requires_grad_()
        delay = (torch.rand(args.hidden, n_in, generator=generator) * args.max_delay).requires_grad_()
        bias = torch.zeros(args.hidden, requires_grad=True)
        upstream = torch.randn(args.batch, args.steps, args.hidden, generator=generator)
        crossover = None
        for density in DENSITIES:
            x = (torch.rand(args.batch, args.steps, n_in, generator=generator) < density).float()
            x.requires_grad_(input_grad)
            events = time_method(x, weight, delay, bias, upstream, "events", args.repeats)
            conv = time_method(x, weight, delay, bias, upstream, "conv", args.repeats)
            if conv < events and crossover is None:
                crossover = density
            print(f"{name:<20}{density:>8.0%}{events:>11.1f}{conv:>9.1f}{conv / events:>12.2f}x")
        print(f"[bench] {name}: the convolution wins from "
              f"{'%.0f%%' % (100 * crossover) if crossover else 'no measured density'} nonzero inputs on")


if __name__ == "__main__":
    main()
