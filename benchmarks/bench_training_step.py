"""Time one training step of the SHD-sized delay network: reference vs. our fast path (vs. SLAYER).

One training step = forward + cross-entropy + backward + Adam step + clamp of delays and neuron
parameters + reading the loss (as ``train/loop/trainer.py`` does every step). The network is the SHD
preset: 140 inputs -> 128 AdLIF+ -> 128 AdLIF+ -> 20 sum readout, every synapse with a weight and a
trained delay, ``--steps`` time steps (default 125 = 100 bins + the maximum delay of 25 as padding).

Implementations, each timed in the same run on the same inputs:

- reference: the per-step Python loop ``run_neurons_reference`` (autograd through every step) and
  delays by explicit time shifts (``reference_delayed_dense``, one matmul per integer shift);
- fast: ``DelaySNN`` exactly as the trainer uses it (on the CPU: event-driven delays up to 20% nonzero
  inputs, else conv1d, and the recurrence as numpy loops; on CUDA: GEMM delays and Triton kernels);
- slayer (``--slayer``, CPU only): lava-dl SLAYER CUBA ``Dense`` blocks with axonal delays
  (``delay=True``), same 140-128-128-20 shape, spike counts summed over time as the scores.

By default the delays are drawn uniformly in [0, max_delay] (``--delays random``), as in a trained
network: that is the expensive case for every implementation (``--delays zero`` gives the first
epoch's cost). Times are wall-clock seconds per training step; the median over ``--repeats`` steps
after ``--warmup`` untimed ones.

Memory per step:
- CUDA: ``torch.cuda.max_memory_allocated`` during one step, minus what was allocated before it
  (model, optimizer state, inputs); the absolute peak is reported too.
- CPU: peak resident set size (VmHWM) during one step minus the RSS before it, after returning freed
  heap to the OS (``malloc_trim``) and resetting the high-water mark (``/proc/self/clear_refs``).
  This counts every allocation (torch, numpy, SLAYER), not only torch's. Linux only.

Run from the repository root (no installation needed):
    python benchmarks/bench_training_step.py --device cuda --batch 128
    python benchmarks/bench_training_step.py --device cpu --batch 32 --slayer --json cpu.json
"""


import argparse
import copy
import ctypes
import gc
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from snn_toolchain.input_encoding import GradedInputEncoding
from snn_toolchain.train.model import gpu_recurrence
from snn_toolchain.train.model.delay_snn import DelaySNN
from snn_toolchain.train.model.recurrence import initial_state, run_neurons_reference
from snn_toolchain.train.loop.step import TrainingStep, make_optimizer
from snn_toolchain.train.model.synapse import DelayedDense, reference_delayed_dense

# --preset: (inputs, hidden, classes, batch, learning rates) of the paper's presets (Table 3).
PRESETS = {"shd": (140, 128, 20, 128, 0.01, 0.1), "ssc": (140, 512, 35, 32, 0.001, 0.01),
           "gsc": (40, 512, 35, 32, 0.001, 0.01)}


def GRADED_ENCODING(channels: int) -> GradedInputEncoding:
    """8-bit payloads of features already in [0, 1] (the benchmark's inputs are payloads)."""
    import numpy as np

    return GradedInputEncoding(8, np.zeros(channels), np.ones(channels))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preset", choices=tuple(PRESETS), default="shd",
                        help="network and batch of a dataset's preset: shd 140-128-128-20 batch 128 (default); "
                             "ssc 140-512-512-35 batch 32; gsc 40-512-512-35 batch 32 on 8-bit graded inputs")
    parser.add_argument("--batch", type=int, default=None, help="samples per training step (default: the preset's)")
    parser.add_argument("--steps", type=int, default=125, help="time steps per sample (default 125)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed training steps per implementation (default 20 on CUDA, 3 on CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 5 on CUDA, 1 on CPU)")
    parser.add_argument("--max-delay", type=int, default=25, help="delay cap in time steps (default 25)")
    parser.add_argument("--delays", choices=["random", "zero"], default="random",
                        help="initial delays: uniform in [0, max-delay] (default) or all 0")
    parser.add_argument("--variant", default="adlif+", choices=["lif", "adlif", "adlif+"])
    parser.add_argument("--norm", default="batchnorm", choices=["batchnorm", "none"],
                        help="hidden-layer normalisation of the fast model (default: the preset's batchnorm)")
    parser.add_argument("--input-density", type=float, default=0.1,
                        help="share of input entries that hold a spike (default 0.1; the embedded set's binned "
                             "inputs have 0.02; above 0.2 the CPU delay path falls back to the convolution)")
    parser.add_argument("--slayer", action="store_true",
                        help="CPU only: also time lava-dl SLAYER CUBA Dense blocks with axonal delays")
    parser.add_argument("--no-reference", action="store_true", help="skip the (slow) reference")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--profile", action="store_true",
                        help="after timing, print torch.profiler's top operations of one fast step")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.n_inputs, args.hidden, args.n_classes, preset_batch, args.lr_weights, args.lr_delays = PRESETS[args.preset]
    args.batch = args.batch or preset_batch
    on_cuda = args.device == "cuda"
    args.repeats = args.repeats or (20 if on_cuda else 3)
    args.warmup = args.warmup if args.warmup is not None else (5 if on_cuda else 1)
    return args


# ------------------------------------------------------------------------------------------------
# The three implementations, each as (model, forward function)
# ------------------------------------------------------------------------------------------------

def build_fast_model(args, device) -> DelaySNN:
    torch.manual_seed(args.seed)
    encoding = GRADED_ENCODING(args.n_inputs).to_dict() if args.preset == "gsc" else None
    model = DelaySNN(args.n_inputs, args.n_classes, args.hidden, variant=args.variant, delays=True,
                     max_delay=args.max_delay, dropout=0.5, norm=args.norm, input_encoding=encoding)
    if args.delays == "random":
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, DelayedDense):
                    module.delay.uniform_(0, args.max_delay)
    return model.to(device).train()


def reference_forward(model: DelaySNN):
    """The same network and parameters as ``model``, computed by the two reference oracles."""

    def forward(x):
        for block in model.blocks:
            synapse, neuron = block.synapse, block.neuron
            current = reference_delayed_dense(x, synapse.weight, synapse.effective_delays(), synapse.bias)
            state = initial_state(x.shape[0], neuron.n, neuron.train_init_state, device=x.device, dtype=x.dtype)
            x = block.dropout(run_neurons_reference(current, neuron.params(), state))
        synapse = model.readout.synapse
        return reference_delayed_dense(x, synapse.weight, synapse.effective_delays(), synapse.bias).sum(dim=1)

    return forward


def without_triton(model):
    """``model``'s forward with the Triton recurrence switched off (run_neurons reads the variable
    when it picks the implementation, i.e. in the forward; the backward follows that choice)."""

    def forward(x):
        previous = os.environ.get(gpu_recurrence.DISABLE_ENV_VAR)
        os.environ[gpu_recurrence.DISABLE_ENV_VAR] = "1"
        try:
            return model(x)
        finally:
            if previous is None:
                del os.environ[gpu_recurrence.DISABLE_ENV_VAR]
            else:
                os.environ[gpu_recurrence.DISABLE_ENV_VAR] = previous

    return forward


def build_slayer(args):
    """SLAYER CUBA Dense blocks with axonal delays, 140-128-128-20 (neuron settings of lava-dl's
    NMNIST tutorial, decays learnable like our neuron parameters). Input and output (batch, C, time)."""
    import lava.lib.dl.slayer as slayer

    neuron_params = {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03, "tau_grad": 0.03,
                     "scale_grad": 3, "requires_grad": True}
    torch.manual_seed(args.seed)
    blocks = torch.nn.ModuleList([
        slayer.block.cuba.Dense(neuron_params, args.n_inputs, args.hidden, delay=True),
        slayer.block.cuba.Dense(neuron_params, args.hidden, args.hidden, delay=True),
        slayer.block.cuba.Dense(neuron_params, args.hidden, args.n_classes, delay=True),
    ])

    def forward(x):
        x = x.transpose(1, 2)  # SLAYER's layout: (batch, channels, time)
        for block in blocks:
            x = block(x)
        return x.sum(dim=-1)

    # Delays are created lazily on the first forward; run one so the optimizer sees them, and
    # spread them like ours.
    with torch.no_grad():
        forward(torch.zeros(1, args.steps, args.n_inputs))
        if args.delays == "random":
            for block in blocks:
                block.delay.delay.uniform_(0, args.max_delay)

    class Clamp(torch.nn.Module):
        def clamp_(self):
            for block in blocks:
                block.delay.clamp()

    holder = Clamp()
    holder.blocks = blocks
    return holder, forward


# ------------------------------------------------------------------------------------------------
# Timing and memory
# ------------------------------------------------------------------------------------------------

def make_step(model, forward, x, y, device, cuda_graphs=False, lrs=PRESETS["shd"][4:]):
    """One training step as the trainer runs it (``train/loop/step.py``), reading the loss at the end
    as the trainer does (on CUDA that waits for the GPU). ``lrs``: (weights, delays) learning rates."""
    if isinstance(model, DelaySNN):
        optimizer = make_optimizer(model, *lrs, device, cuda_graphs=cuda_graphs)
    else:
        optimizer = torch.optim.Adam([{"params": list(model.parameters()), "lr": lrs[0]}])
    training_step = TrainingStep(model, optimizer, forward=forward, cuda_graphs=cuda_graphs)

    def step():
        loss, _ = training_step(x, y)
        value = loss.item()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return value

    return step


def _proc_status_kib(key):
    match = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    return int(match.group(1)) if match else None


def measure_memory(step, device):
    """Memory one training step needs beyond what is allocated before it, in bytes, with the method."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        peak = torch.cuda.max_memory_allocated(device)
        return {"method": "torch.cuda.max_memory_allocated during one step minus memory_allocated before it",
                "step_bytes": peak - before, "peak_allocated_bytes": peak, "before_bytes": before}
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)   # hand freed heap back, so the step's growth shows in RSS
        before = _proc_status_kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")   # reset the high-water mark VmHWM to the current RSS
    except OSError as error:
        return {"method": f"unavailable ({error.__class__.__name__}: {error})", "step_bytes": None}
    step()
    peak = _proc_status_kib("VmHWM")
    return {"method": "peak RSS (VmHWM) during one step minus RSS before it, after malloc_trim; all allocations",
            "step_bytes": (peak - before) * 1024, "peak_rss_bytes": peak * 1024, "before_bytes": before * 1024}


def run_all(implementations, x, y, device, args):
    """Time every implementation round-robin: after the warm-up, each round times one step of each,
    so a change of machine load (a shared CPU) hits all of them alike and the ratios stay fair."""
    steps = {name: make_step(model, forward, x, y, device, cuda_graphs=name == "fast_graphs",
                             lrs=(args.lr_weights, args.lr_delays))
             for name, (model, forward) in implementations.items()}
    for name, step in steps.items():
        print(f"[bench] warm-up {name}: {args.warmup} step(s)", flush=True)
        for _ in range(args.warmup):
            step()
    times = {name: [] for name in steps}
    for round_index in range(args.repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
        print(f"[bench] round {round_index + 1}/{args.repeats}: " +
              ", ".join(f"{name} {1e3 * t[-1]:.1f} ms" for name, t in times.items()), flush=True)
    results = {}
    for name, step in steps.items():
        memory = measure_memory(step, device)
        results[name] = {"median_s": statistics.median(times[name]), "min_s": min(times[name]),
                         "times_s": times[name], "memory": memory}
    return results


def profile_step(model, x, y, device, rows=20):
    """Print where one training step of ``model`` spends its time (the heaviest operations first)."""
    from torch.profiler import ProfilerActivity, profile

    step = make_step(model, model, x, y, device)
    step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as profiler:
        step()
    averages = profiler.key_averages()
    print(f"[bench] profile of one fast step on {device} (self times; the step also includes launch overhead):")
    sort_keys = (["self_device_time_total", "self_cuda_time_total"] if device.type == "cuda" else []) + \
        ["self_cpu_time_total"]
    for key in sort_keys:
        try:
            print(averages.table(sort_by=key, row_limit=rows))
            break
        except (AttributeError, KeyError, RuntimeError):
            continue


def _mib(value):
    return "n/a" if value is None else f"{value / 2**20:.1f} MiB"


def recurrence_backend(device):
    if device.type == "cpu":
        return "numpy loops (train/model/recurrence.py)"
    if gpu_recurrence.available(device):
        return "triton kernels (train/model/gpu_recurrence.py)"
    return "torch loops on CUDA (Triton unavailable or disabled)"


def environment(device, args):
    info = {"python": platform.python_version(), "torch": torch.__version__, "device": str(device),
            "torch_threads": torch.get_num_threads(), "platform": platform.platform()}
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["capability"] = list(torch.cuda.get_device_capability(device))
    else:
        info["cpu"] = platform.processor() or platform.machine()
    info["recurrence_backend"] = recurrence_backend(device)
    info["cpu_count"] = os.cpu_count()
    return info


class OtherProcessesMeter:
    """Share of the machine's CPU time that other processes used while the benchmark ran (Linux):
    all busy time in /proc/stat minus this process's own. On a shared machine it says how far the
    times are inflated; contention hurts the implementations with many small operations most."""

    def __init__(self):
        self.start = self._sample()

    @staticmethod
    def _sample():
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        busy_ticks = sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)   # minus idle, iowait
        own = os.times()
        return busy_ticks / os.sysconf("SC_CLK_TCK"), own.user + own.system, time.perf_counter()

    def share(self):
        end = self._sample()
        if self.start is None or end is None:
            return None
        busy, own, wall = (e - s for e, s in zip(end, self.start))
        return max(0.0, busy - own) / (wall * (os.cpu_count() or 1))


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("[bench] --device cuda: no CUDA device visible to torch", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(args.seed)
    if args.preset == "gsc":   # unrounded 8-bit payloads, nonzero in every bin as speech features are
        x = (255 * torch.rand(args.batch, args.steps, args.n_inputs, generator=generator)).to(device)
    else:
        x = (torch.rand(args.batch, args.steps, args.n_inputs, generator=generator) < args.input_density).float().to(device)
    y = torch.randint(0, args.n_classes, (args.batch,), generator=generator).to(device)

    info = environment(device, args)
    config = {"preset": args.preset, "batch": args.batch, "time_steps": args.steps,
              "shape": f"{args.n_inputs}-{args.hidden}-{args.hidden}-{args.n_classes}",
              "variant": args.variant, "max_delay": args.max_delay, "delays": args.delays,
              "warmup": args.warmup, "repeats": args.repeats}
    print(f"[bench] {json.dumps(info)}")
    print(f"[bench] {json.dumps(config)}", flush=True)

    fast_model = build_fast_model(args, device)
    reference_model = copy.deepcopy(fast_model)   # same start, its own optimizer state
    implementations = {"fast": (fast_model, fast_model)}
    if device.type == "cuda":
        graphs_model = copy.deepcopy(fast_model)
        implementations["fast_graphs"] = (graphs_model, graphs_model)
    if device.type == "cuda" and gpu_recurrence.available(device):
        # what the kernels buy: the same model with the recurrence on torch's per-step ops
        torch_loop_model = copy.deepcopy(fast_model)
        implementations["fast_torch_loop"] = (torch_loop_model, without_triton(torch_loop_model))
    if not args.no_reference:
        implementations["reference"] = (reference_model, reference_forward(reference_model))
    slayer_note = None
    if args.slayer:
        if device.type != "cpu":
            slayer_note = "skipped: the SLAYER comparison is CPU only (its CUDA kernels do not build for Hopper)"
        else:
            try:
                implementations["slayer"] = build_slayer(args)
            except ImportError as error:
                slayer_note = f"skipped: lava-dl is not installed ({error})"
        if slayer_note:
            print(f"[bench] SLAYER {slayer_note}")
    legend = {"fast": "DelaySNN as the trainer runs it", "fast_graphs": "the same replayed as a CUDA graph (--cuda-graphs)",
              "fast_torch_loop": "the same with SNN_TOOLCHAIN_NO_TRITON=1",
              "reference": "per-step loop + explicit shifts", "slayer": "lava-dl SLAYER CUBA Dense, axonal delays"}
    print("[bench] " + "; ".join(f"{name} = {legend[name]}" for name in implementations))
    meter = OtherProcessesMeter()
    results = run_all(implementations, x, y, device, args)

    if args.profile:
        try:
            profile_step(fast_model, x, y, device)
        except Exception as error:   # e.g. no CUPTI; the timings above stand on their own
            print(f"[bench] profiling failed ({error.__class__.__name__}: {error}); figures are unaffected")

    speedups = {}
    fast = results["fast"]["median_s"]
    for other in ("reference", "slayer", "fast_torch_loop"):
        if other in results:
            speedups[f"fast_vs_{other}"] = results[other]["median_s"] / fast
    if "fast_graphs" in results and "reference" in results:
        speedups["fast_graphs_vs_reference"] = results["reference"]["median_s"] / results["fast_graphs"]["median_s"]

    print()
    print(f"{'implementation':<16} {'median ms/step':>15} {'min ms/step':>12} {'memory/step':>12}")
    for name, result in results.items():
        print(f"{name:<16} {1e3 * result['median_s']:>15.2f} {1e3 * result['min_s']:>12.2f} "
              f"{_mib(result['memory'].get('step_bytes')):>12}")
    for key, value in speedups.items():
        print(f"speed-up {key.replace('_', ' ')}: {value:.1f}x")
    print(f"recurrence backend: {info['recurrence_backend']}; memory: {results['fast']['memory']['method']}")
    others = meter.share()
    info["cpu_share_used_by_other_processes"] = None if others is None else round(others, 3)
    if others is not None:
        print(f"[bench] other processes used {100 * others:.0f}% of the machine's CPU time during the run")
        if device.type == "cpu" and others > 0.1:
            print("[bench] WARNING: the CPU was shared, so times are inflated; the reference, with its many "
                  "small operations, suffers most. Rerun on an idle machine for clean figures.")

    if args.json:
        payload = {"environment": info, "config": config, "results": results, "speedups": speedups,
                   "slayer": slayer_note}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2))
        print(f"[bench] wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
