"""Lava DelayDense: the stock bit-accurate ProcessModel against PyDelayDenseRingModel.

Runs the same network, input and seed once with Lava's stock ``PyDelayDenseModelBitAcc`` and once
with ``PyDelayDenseRingModel`` (both under ``Loihi2SimCfg(select_tag='fixed_pt')``), and prints
milliseconds per time step of each, the speed-up, and whether every layer's spikes were identical.

Networks (every synapse layer is a DelayDense with random per-synapse delays, random mixed-sign
8-bit weights, weight_exp 0, followed by fixed-point LIF neurons; input: Bernoulli spikes, 5 % of
the inputs active per step by default):
- ``reference``: 700-256-20, delays 0..62 (the size of the issue's measurement);
- ``shd``: 140-128-128-20, delays 0..25 (the SHD preset's shape).

How the figures are taken: each (network, model, round) runs in its own subprocess under a
timeout (a failing Lava ProcessModel hangs instead of raising). In it, ``--warmup`` steps compile
and start the network; the next ``--steps`` steps are timed (wall clock) in one ``run`` call, so
compilation is not counted but Lava's per-step runtime overhead (every Process is an OS process)
is. The two models alternate within each round, the first one swapping between rounds; the
figure per model is the median over ``--rounds``. A second figure times only the synapse
arithmetic of one step (no Lava runtime) on the same recorded layer inputs.

    python benchmarks/bench_lava_delay.py [--networks reference,shd] [--steps 100] [--rounds 3]
                                          [--json PATH]
"""


import argparse
import hashlib
import importlib.metadata
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

NETWORKS = {
    # layer sizes, max_delay, LIF (du, dv, vth) giving a few % hidden activity at 5 % input
    "reference": dict(sizes=[700, 256, 20], max_delay=62, du=1024, dv=512, vth=600),
    "shd": dict(sizes=[140, 128, 128, 20], max_delay=25, du=1024, dv=512, vth=300),
}
MODELS = ("stock", "ring")


def network_arrays(name, total_steps, input_rate, seed):
    """Weights (out, in), delays (out, in, steps) per layer, and input spikes (n_in, steps)."""
    spec = NETWORKS[name]
    rng = np.random.default_rng(seed)
    layers = []
    for n_in, n_out in zip(spec["sizes"][:-1], spec["sizes"][1:]):
        weights = rng.integers(-128, 128, size=(n_out, n_in))
        delays = rng.integers(0, spec["max_delay"] + 1, size=(n_out, n_in))
        layers.append((weights, delays))
    spikes = (rng.random((spec["sizes"][0], total_steps)) < input_rate).astype(np.int32)
    return layers, spikes


def lava_worker(args):
    """Builds, warms up and times one network with one model; prints one JSON line."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import DelayDense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF

    from snn_toolchain.lava_models.processes.delay_ring import PyDelayDenseRingModel

    spec = NETWORKS[args.network]
    total_steps = args.warmup + args.steps
    layers, spikes = network_arrays(args.network, total_steps, args.input_rate, args.seed)

    source = Source(data=spikes)
    upstream, sinks = source.s_out, []
    for weights, delays in layers:
        synapse = DelayDense(weights=weights, delays=delays, max_delay=spec["max_delay"])
        neurons = LIF(shape=(weights.shape[0],), du=spec["du"], dv=spec["dv"], vth=spec["vth"])
        sink = Sink(shape=(weights.shape[0],), buffer=total_steps)
        upstream.connect(synapse.s_in)
        synapse.a_out.connect(neurons.a_in)
        neurons.s_out.connect(sink.a_in)
        upstream = neurons.s_out
        sinks.append(sink)

    model_map = {DelayDense: PyDelayDenseRingModel} if args.model == "ring" else {}
    config = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=model_map)
    try:
        start = time.perf_counter()
        source.run(condition=RunSteps(num_steps=args.warmup), run_cfg=config)
        warmup_s = time.perf_counter() - start
        start = time.perf_counter()
        source.run(condition=RunSteps(num_steps=args.steps), run_cfg=config)
        timed_s = time.perf_counter() - start
        layer_spikes = [sink.data.get().astype(np.int64) for sink in sinks]
    finally:
        source.stop()

    digest = hashlib.sha256(b"".join(np.ascontiguousarray(s).tobytes() for s in layer_spikes))
    if args.record:
        np.savez(args.record, *layer_spikes)
    print(json.dumps(dict(ms_per_step=1000 * timed_s / args.steps, warmup_s=warmup_s,
                          spikes_per_layer=[int(s.sum()) for s in layer_spikes],
                          spike_digest=digest.hexdigest())), flush=True)


def run_worker(network, model, args, record=None):
    """One worker subprocess under a timeout; returns its JSON result, or None if it hung."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--network", network,
               "--model", model, "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--input-rate", str(args.input_rate), "--seed", str(args.seed)]
    if record:
        command += ["--record", str(record)]
    worker = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              start_new_session=True)
    try:
        out, err = worker.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        # Lava forks one OS process per Process: end the worker's whole group.
        os.killpg(worker.pid, signal.SIGKILL)
        worker.communicate()
        print(f"[bench] {network}/{model}: killed after {args.timeout} s", flush=True)
        return None
    lines = out.decode().strip().splitlines()
    if worker.returncode != 0 or not lines:
        print(f"[bench] {network}/{model}: worker failed (exit {worker.returncode})\n"
              f"{err.decode()[-3000:]}", flush=True)
        return None
    return json.loads(lines[-1])


def synapse_only_ms(network, layer_inputs, args, stock_steps):
    """Median ms of one step of the synapse arithmetic alone (all layers), per model."""
    from lava.proc.dense.models import AbstractPyDelayDenseModel
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

    from snn_toolchain.lava_models.processes.delay_ring import (
        apply_weight_exp,
        build_delay_tables,
        delayed_accumulation,
    )

    max_delay = NETWORKS[network]["max_delay"]
    layers, _ = network_arrays(network, args.warmup + args.steps, args.input_rate, args.seed)
    prepared = []
    for weights, delays in layers:
        mode = determine_sign_mode(weights)
        weights = truncate_weights(clip_weights(weights, mode, num_bits=8), mode, 8)
        stand_in = types.SimpleNamespace(
            weights=weights, delays=delays.astype(np.int32),
            a_buff=np.zeros((weights.shape[0], max_delay + 1), np.int32),
            get_delay_wgts_mat=AbstractPyDelayDenseModel.get_delay_wgts_mat)
        prepared.append((stand_in, build_delay_tables(weights, delays, max_delay)))

    def stock_step(step):
        for (stand_in, _), inputs in zip(prepared, layer_inputs):
            accumulated = AbstractPyDelayDenseModel.calc_act(stand_in, inputs[:, step] != 0)
            stand_in.a_buff[:, 0] = 0
            stand_in.a_buff = np.roll(stand_in.a_buff, -1)
            stand_in.a_buff += apply_weight_exp(accumulated, 0)

    def ring_step(step):
        for (stand_in, tables), inputs in zip(prepared, layer_inputs):
            buffer = stand_in.a_buff
            accumulated = delayed_accumulation(tables, inputs[:, step] != 0)
            buffer[:, :-1] = buffer[:, 1:]
            buffer[:, -1] = 0
            if accumulated is not None:
                buffer += apply_weight_exp(accumulated, 0)

    figures = {}
    total = layer_inputs[0].shape[1]
    for model, step_fn, count in (("stock", stock_step, stock_steps), ("ring", ring_step, total)):
        times = []
        for step in range(min(count, total)):
            start = time.perf_counter()
            step_fn(step)
            times.append(time.perf_counter() - start)
        figures[model] = 1000 * statistics.median(times)
    return figures


def benchmark_network(network, args, workdir):
    spec = NETWORKS[network]
    sizes = "-".join(map(str, spec["sizes"]))
    print(f"[bench] {network}: {sizes}, delays 0..{spec['max_delay']}, "
          f"{args.steps} timed steps after {args.warmup} warm-up steps, {args.rounds} rounds",
          flush=True)
    runs = {model: [] for model in MODELS}
    record = workdir / f"{network}_spikes.npz"
    for round_index in range(args.rounds):
        order = MODELS if round_index % 2 == 0 else MODELS[::-1]
        for model in order:
            result = run_worker(network, model, args,
                                record=record if (round_index, model) == (0, "ring") else None)
            if result is not None:
                runs[model].append(result)
                print(f"[bench]   round {round_index} {model:5s}: "
                      f"{result['ms_per_step']:8.2f} ms/step "
                      f"(warm-up incl. compile {result['warmup_s']:.1f} s, "
                      f"spikes per layer {result['spikes_per_layer']})", flush=True)

    if not runs["stock"] or not runs["ring"]:
        return dict(network=network, error="a worker failed or hung")
    stock_ms = statistics.median(r["ms_per_step"] for r in runs["stock"])
    ring_ms = statistics.median(r["ms_per_step"] for r in runs["ring"])
    identical = len({r["spike_digest"] for r in runs["stock"] + runs["ring"]}) == 1

    recorded = np.load(record)
    layer_outputs = [recorded[f"arr_{i}"] for i in range(len(recorded.files))]
    _, spikes = network_arrays(network, args.warmup + args.steps, args.input_rate, args.seed)
    # Synapse layer k receives the input spikes (k = 0) or layer k-1's spikes.
    layer_inputs = [spikes] + layer_outputs[:-1]
    arithmetic = synapse_only_ms(network, layer_inputs, args, stock_steps=args.arithmetic_steps)

    faster, slower = ("ring", "stock") if ring_ms < stock_ms else ("stock", "ring")
    speedup = max(stock_ms, ring_ms) / min(stock_ms, ring_ms)
    hidden_rate = [round(float(out.mean()), 4) for out in layer_outputs]
    print(f"[bench] {network}: stock {stock_ms:.2f} ms/step ({1000 / stock_ms:.1f} steps/s), "
          f"ring {ring_ms:.2f} ms/step ({1000 / ring_ms:.1f} steps/s)")
    print(f"[bench] {network}: {faster} is {speedup:.1f}x faster than {slower} in Lava "
          f"(whole network, runtime overhead included); spikes identical in every run: "
          f"{identical}; spike rate per layer {hidden_rate}")
    print(f"[bench] {network}: synapse arithmetic alone: stock {arithmetic['stock']:.3f} ms/step, "
          f"ring {arithmetic['ring']:.3f} ms/step, "
          f"{arithmetic['stock'] / arithmetic['ring']:.0f}x", flush=True)
    return dict(network=network, sizes=spec["sizes"], max_delay=spec["max_delay"],
                stock_ms_per_step=stock_ms, ring_ms_per_step=ring_ms,
                speedup_ring_over_stock=stock_ms / ring_ms, spikes_identical=identical,
                spike_rate_per_layer=hidden_rate, synapse_arithmetic_ms_per_step=arithmetic,
                runs=runs)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", default="reference,shd",
                        help=f"comma-separated, from {sorted(NETWORKS)}")
    parser.add_argument("--steps", type=int, default=100, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps (compile, start)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--input-rate", type=float, default=0.05,
                        help="fraction of inputs spiking per step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arithmetic-steps", type=int, default=20,
                        help="steps of the stock arithmetic timed outside Lava")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per worker run")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--network", help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--record", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        lava_worker(args)
        return

    config = {k: v for k, v in vars(args).items()
              if k not in ("worker", "network", "model", "record", "json")}
    environment = dict(versions={name: importlib.metadata.version(name)
                                 for name in ("lava-nc", "lava-dl", "numpy")},
                       cpus=os.cpu_count(), load_average=os.getloadavg())
    print(f"[bench] {json.dumps(config)}", flush=True)
    print(f"[bench] {json.dumps(environment)}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        results = [benchmark_network(name.strip(), args, Path(tmp))
                   for name in args.networks.split(",")]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(config=config, environment=environment,
                                             results=results), indent=2))
        print(f"[bench] wrote {args.json}")


if __name__ == "__main__":
    main()
