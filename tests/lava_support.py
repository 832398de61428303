"""Helpers for the tests that run Lava: a subprocess runner with a hard timeout, and generators of
small QuantizedNetworks (with extreme parameters, or one of each layer kind).

Why a subprocess: an exception inside a Lava ProcessModel hangs the run instead of raising, and
Lava starts one OS process per Lava process. Each test module therefore runs all its Lava work in
one worker (``python -c`` importing a function by name), in its own session, and kills the whole
process group if the worker overruns.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from snn_toolchain.quantized_network import QuantizedLayer, QuantizedNetwork
from snn_toolchain.neurons.dynamics import CubaFixedParams, FixedNeuronParams

TESTS_DIR = Path(__file__).resolve().parent

_CHILD = textwrap.dedent("""
    import importlib, pickle, sys
    sys.path.insert(0, {tests_dir!r})
    module, name = {function!r}.split(":")
    function = getattr(importlib.import_module(module), name)
    with open({args_path!r}, "rb") as f:
        args = pickle.load(f)
    result = function(*args)
    with open({result_path!r}, "wb") as f:
        pickle.dump(result, f)
""")


def run_killable(argv: list, timeout_s: float) -> tuple[int | None, str]:
    """Run ``argv`` in its own session; return (exit status, or None if it overran, output text).
    Lava runs each Process in a forked child, so the whole process group is killed afterwards:
    never leave one behind, whether the worker finished or hung."""
    worker = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                              text=True, errors="replace")
    try:
        output, _ = worker.communicate(timeout=timeout_s)
        returncode = worker.returncode
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        output, _ = worker.communicate()
        returncode = None
    finally:
        try:
            os.killpg(worker.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return returncode, output


def run_isolated(function: str, args: tuple, tmp_dir: Path, timeout_s: float):
    """Call ``function`` ("module:name", importable from tests/) with ``args`` in a fresh Python
    process; return its (pickled) result. Fails the test, after killing the worker and every
    process it started, if it takes longer than ``timeout_s`` or raises."""
    tmp_dir = Path(tmp_dir)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    args_path, result_path = tmp_dir / "worker_args.pkl", tmp_dir / "worker_result.pkl"
    with open(args_path, "wb") as f:
        pickle.dump(args, f)
    result_path.unlink(missing_ok=True)
    code = _CHILD.format(tests_dir=str(TESTS_DIR), function=function, args_path=str(args_path),
                         result_path=str(result_path))
    returncode, output = run_killable([sys.executable, "-c", code], timeout_s)
    if returncode is None:
        pytest.fail(f"Lava worker {function} did not finish within {timeout_s} s (a hung ProcessModel?); "
                    f"output tail:\n{output[-3000:]}")
    if returncode != 0 or not result_path.exists():
        pytest.fail(f"Lava worker {function} failed (exit {returncode}); output tail:\n{output[-3000:]}")
    with open(result_path, "rb") as f:
        return pickle.load(f)


# --------------------------------------------------------------------------- network generators

def extreme_neuron_params(rng, n: int, threshold: int, bias: np.ndarray) -> FixedNeuronParams:
    """Per-neuron AdLIF parameters cycling through the corners of their ranges.

    alpha in {1, 4095, 0, 4096, random}, beta in {0, 4096}, a in {0, 4096}, b in {0, 2 x threshold}:
    neuron i takes combination i (then random values), so every corner appears for n >= 10.
    """
    alphas = [1, 4095, 1, 4095, 0, 4096, 2048, 1, 4095, 3000]
    betas = [0, 4096, 4096, 0, 0, 4096, 0, 4096, 4096, 2000]
    a_values = [0, 0, 4096, 4096, 0, 4096, 4096, 4096, 0, 1000]
    b_values = [0, 2 * threshold, 0, 2 * threshold, 2 * threshold, 0, 2 * threshold, 2 * threshold, 0, threshold]
    columns = []
    for corners, low, high in ((alphas, 0, 4096), (betas, 0, 4096), (a_values, 0, 4096), (b_values, 0, 2 * threshold)):
        extra = rng.integers(low, high + 1, size=max(n - len(corners), 0))
        columns.append(np.concatenate([np.asarray(corners[:n]), extra]).astype(np.int64))
    return FixedNeuronParams(*columns, np.asarray(bias, dtype=np.int64), np.full(n, threshold, dtype=np.int64))


def random_weights(rng, n_out: int, n_in: int, low: int = -256, high: int = 254) -> np.ndarray:
    """Mixed-sign integer weights including both range ends (what the quantizer may produce)."""
    weight = rng.integers(low, high + 1, size=(n_out, n_in)).astype(np.int64)
    weight.flat[0], weight.flat[-1] = high, low
    return weight


def extreme_network(seed: int = 0, sizes=(12, 10, 9, 4), time_steps: int = 70, cuba: bool = False,
                    delay_kinds=("extreme", "zero", "extreme")) -> QuantizedNetwork:
    """A QuantizedNetwork with weights at the ends of [-256, 254], delays 0 and 62 (per
    ``delay_kinds``: 'extreme' mixes 0, 62 and random delays, 'zero' gives a Dense synapse),
    and per-neuron parameters at the corners of their ranges (or CUBA LIF layers if ``cuba``)."""
    rng = np.random.default_rng(seed)
    layers = []
    for index in range(len(sizes) - 1):
        n_in, n_out = sizes[index], sizes[index + 1]
        weight = random_weights(rng, n_out, n_in)
        if delay_kinds[index] == "zero":
            delay = np.zeros((n_out, n_in), dtype=np.int64)
        else:
            delay = rng.choice([0, 62, 1, 5, 30], size=(n_out, n_in)).astype(np.int64)
            delay.flat[0], delay.flat[1] = 0, 62
        scale = int(rng.integers(40, 300))                  # threshold mantissa, not a power of two
        bias = rng.integers(-3 * scale, 3 * scale, size=n_out).astype(np.int64) // 8
        hidden = index < len(sizes) - 2
        neuron, variant = None, None
        if hidden and cuba:
            neuron = CubaFixedParams(rng.integers(1, 4097, n_out), rng.integers(0, 4097, n_out), bias,
                                     np.full(n_out, scale << 6, dtype=np.int64))
            variant = "cuba"
        elif hidden:
            neuron, variant = extreme_neuron_params(rng, n_out, scale << 6, bias), "adlif+"
        layers.append(QuantizedLayer(str(index), weight, delay, bias, scale, neuron, variant))
    return QuantizedNetwork(layers, time_steps, "lif" if cuba else "adlif+")


def graded_samples(seed: int, n_samples: int, time_steps: int, n_inputs: int, max_count: int = 6) -> np.ndarray:
    """(K, T, inputs) int64 spike counts, sparse and graded (0..max_count), the last steps empty."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, max_count + 1, size=(n_samples, time_steps, n_inputs))
    active = rng.random((n_samples, time_steps, n_inputs)) < 0.3
    counts = np.where(active, counts, 0).astype(np.int64)
    counts[:, -3:] = 0
    return counts


def small_network(bias: int = 0, vdecay: int = 100):
    """A hand-made 4-3-3-2 QuantizedNetwork: an AdLIF+ layer (``bias``), a CUBA layer (``vdecay``)
    and the summing readout, every weight 64 and every delay 0."""
    import numpy as np

    from snn_toolchain.quantized_network import QuantizedLayer, QuantizedNetwork
    from snn_toolchain.neurons.dynamics import CubaFixedParams, FixedNeuronParams

    hidden = QuantizedLayer("0", np.full((3, 4), 64), np.zeros((3, 4), dtype=np.int64), np.full(3, bias), 64)
    zeros = np.zeros(3, dtype=np.int64)
    hidden.neuron = FixedNeuronParams(zeros + 2048, zeros, zeros, zeros, hidden.bias, zeros + (64 << 6))
    hidden.neuron_variant = "adlif+"
    cuba = QuantizedLayer("1", np.full((3, 3), 64), np.zeros((3, 3), dtype=np.int64), np.zeros(3, dtype=np.int64), 64)
    cuba.neuron = CubaFixedParams(zeros + 4096, zeros + vdecay, cuba.bias, zeros + (64 << 6))
    cuba.neuron_variant = "cuba"
    readout = QuantizedLayer("2", np.full((2, 3), 64), np.zeros((2, 3), dtype=np.int64), np.zeros(2, dtype=np.int64), 64)
    return QuantizedNetwork([hidden, cuba, readout], time_steps=5, variant="adlif+")


class EmulatorAsLava:
    """Stands in for Lava's runner (no Lava): the emulator's integers, per sample, in the shape of
    ``build.SampleResult``; for tests of what the parity check does with a Lava run's results."""

    def __init__(self, network, samples):
        from snn_toolchain.lava_models.build import LavaTimings

        self.network, self.samples, self.timings = network, samples, LavaTimings(samples=len(samples))

    def run(self, progress=True):
        import torch

        from snn_toolchain.export.emulator import Emulator
        from snn_toolchain.lava_models.build import SampleResult

        result = Emulator(self.network)(torch.as_tensor(self.samples))
        return [SampleResult([s[k].numpy() for s in result.spikes], result.readout_input[k].numpy(),
                             result.scores[k].numpy()) for k in range(len(self.samples))]


def replace_lava_by_the_emulator(monkeypatch) -> None:
    """The parity check's Lava runs become :class:`EmulatorAsLava` for the rest of the test."""
    from snn_toolchain.lava_models import parity

    monkeypatch.setattr(parity, "build_lava_network",
                        lambda network, *, samples, synapse: EmulatorAsLava(network, samples))


def reset_netx_layers(net) -> None:
    """Stock NetX's layers back to rest between two samples: every neuron's current and voltage, and
    every synapse's delay buffer (NetX has no reset of its own between samples)."""
    for layer in net.layers:
        state = [layer.neuron.u, layer.neuron.v] + ([layer.synapse.a_buff] if hasattr(layer, "synapse") else [])
        for var in state:
            var.set(np.zeros(var.shape))


def run_stock_netx(path: str, inputs: np.ndarray, run_steps: int, *, input_message_bits: int = 0,
                   readout_synapse: bool = True) -> dict:
    """Stock ``lava.lib.dl.netx.hdf5.Network`` on Lava's fixed_pt CPU simulation, the samples
    ``inputs`` (K, steps, n) run back to back (zero-padded to ``run_steps``), the layers reset in
    between. Returns the spikes (K, run_steps, n) of every layer but the last, and the last's too
    (``readout_synapse=False``) or its synapse's output, the readout input (K, run_steps, classes);
    and the blocks NetX built. ``input_message_bits``: 0, binary input as NetX's default (lava-dl's
    files); 8 for graded counts (ours)."""
    import contextlib
    import io

    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    with contextlib.redirect_stdout(io.StringIO()):
        from lava.lib.dl import netx

    count = len(inputs)
    options = {"input_message_bits": input_message_bits} if input_message_bits else {}
    net = netx.hdf5.Network(net_config=path, **options)
    padded = np.zeros((count, run_steps, inputs.shape[2]), dtype=np.int32)
    padded[:, :inputs.shape[1]] = inputs
    source = Source(data=padded.reshape(-1, inputs.shape[2]).T.copy())
    source.s_out.connect(net.inp)
    sinks = []
    for layer in net.layers[:-1] if readout_synapse else net.layers:
        sink = Sink(shape=layer.neuron.s_out.shape, buffer=count * run_steps)
        layer.neuron.s_out.connect(sink.a_in)
        sinks.append(sink)
    readout = None
    if readout_synapse:
        readout = Sink(shape=net.layers[-1].synapse.a_out.shape, buffer=count * run_steps)
        net.layers[-1].synapse.a_out.connect(readout.a_in)
    info = {"synapses": [type(layer.synapse).__name__ for layer in net.layers],
            "neurons": [type(layer.neuron).__name__ for layer in net.layers],
            "first_message_bits": int(np.asarray(net.layers[0].synapse.num_message_bits.init).item())}
    try:
        for k in range(count):
            if k:
                reset_netx_layers(net)
            net.run(condition=RunSteps(num_steps=run_steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        info["spikes"] = [s.data.get().T.reshape(count, run_steps, -1).astype(np.uint8) for s in sinks]
        if readout is not None:
            info["readout_input"] = readout.data.get().T.reshape(count, run_steps, -1).astype(np.int64)
    finally:
        net.stop()
    return info
