"""Samples per second: Lava's CPU simulator (fixed_pt) against the batched emulator, same .net file.

Both compute the same integers (the parity check proves it); the emulator runs a whole batch at
once in torch, Lava steps every process in its own OS process. Prints both rates and the ratio,
measured in one run.

    python benchmarks/bench_lava_vs_emulator.py [--net FILE] [--samples 20] [--synapse ring|stock]
        [--shape shd|ssc|gsc]

Without --net it trains nothing: it builds a network of the preset's shape with random weights
scaled so that the hidden layers fire, delays 0..25:
- shd: 140-128-128-20 on the embedded test samples;
- ssc: 140-512-512-35 on the embedded test samples (SSC's inputs have SHD's 140 channels);
- gsc: 40-512-512-35 on 8-bit graded payloads (random, as dense as speech features: every bin).
"""


import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from snn_toolchain.export.emulator import Emulator
from snn_toolchain.input_encoding import GradedInputEncoding
from snn_toolchain.export.netfile import read_net, write_net
from snn_toolchain.train.model.quantize import quantize_model
from snn_toolchain.lava_models.build import build_lava_network
from snn_toolchain.lava_models.lava_backend import dataset_samples
from snn_toolchain.train.model.delay_snn import DelaySNN
from snn_toolchain.train.data.loading import build_datasets


SHAPES = {"shd": (140, 128, 20), "ssc": (140, 512, 35), "gsc": (40, 512, 35)}


def random_network(path: Path, time_steps: int, shape: str = "shd") -> Path:
    torch.manual_seed(0)
    n_inputs, hidden, classes = SHAPES[shape]
    encoding = GradedInputEncoding(8, np.zeros(n_inputs), np.ones(n_inputs)) if shape == "gsc" else None
    model = DelaySNN(n_inputs, classes, hidden, max_delay=25, dropout=0.0,
                     input_encoding=encoding.to_dict() if encoding else None).eval()
    with torch.no_grad():
        for block in model.blocks:
            block.synapse.weight.mul_(3 if hidden <= 128 else 5)
        for synapse in [b.synapse for b in model.blocks] + [model.readout.synapse]:
            synapse.delay.uniform_(0, 25)
    return write_net(quantize_model(model, time_steps), path)


def bench_samples(shape: str, count: int, time_steps: int):
    if shape == "gsc":
        generator = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (count, 100, 40), generator=generator)
        x = torch.nn.functional.pad(x, (0, 0, 0, time_steps - 100))
        return x.numpy().astype(np.int64), np.zeros(count, dtype=np.int64)
    return dataset_samples(build_datasets("shd", None, pad_steps=25), count, time_steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--net", type=Path, default=None)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--synapse", choices=("ring", "stock"), default="ring")
    parser.add_argument("--shape", choices=tuple(SHAPES), default="shd")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    net_path = args.net or random_network(Path(tempfile.mkdtemp()) / "bench.net", 125, args.shape)
    network = read_net(net_path)
    samples, _ = bench_samples(args.shape, args.samples, network.time_steps)

    emulator = Emulator(network)
    emulator(torch.as_tensor(samples[:2]))  # warm-up
    start = time.perf_counter()
    emulated = emulator(torch.as_tensor(samples))
    emulator_seconds = time.perf_counter() - start

    start = time.perf_counter()
    runner = build_lava_network(network, samples=samples, synapse=args.synapse)
    results = runner.run(progress=False)
    lava_seconds = time.perf_counter() - start
    agree = all(int(r.prediction) == int(p) for r, p in zip(results, emulated.predictions()))

    emulator_rate, lava_rate = args.samples / emulator_seconds, args.samples / lava_seconds
    sizes = "-".join(str(n) for n in [network.n_inputs] + [layer.weight.shape[0] for layer in network.layers])
    print(f"network {net_path}: {sizes}, {network.run_steps} steps per sample")
    print(f"emulator (batch of {args.samples}, torch CPU): {emulator_rate:.1f} samples/s")
    print(f"Lava fixed_pt ({args.synapse} delay synapses, build and compile included): {lava_rate:.2f} samples/s "
          f"({1e3 * lava_seconds / args.samples / network.run_steps:.2f} ms per step)")
    print(f"ratio emulator / Lava: {emulator_rate / lava_rate:.0f}x; predictions agree: {agree}")
    if args.json:
        args.json.write_text(json.dumps({"emulator_samples_per_s": emulator_rate, "lava_samples_per_s": lava_rate,
                                         "synapse": args.synapse, "samples": args.samples, "agree": agree,
                                         "shape": sizes, "lava_seconds_per_sample": lava_seconds / args.samples},
                                        indent=2))


if __name__ == "__main__":
    main()
