"""Build a QuantizedNetwork as Lava processes and run samples on ``Loihi2SimCfg`` (fixed_pt).

Datasets, the evaluation backend and ``run_lava`` (the ``run --backend lava-sim`` command) build on
this in :mod:`snn_toolchain.lava_models.lava_backend`.

The graph, per connection layer ``l`` (``L`` layers, the last one is the readout synapse)::

    RingBuffer source ──> synapse 0 ──> neurons 0 ──> synapse 1 ──> ... ──> synapse L-1 ──> readout sink
    (graded counts)       DelayDense     AdLIF | LIF    (binary)                 (a_out = readout input)
                                           └──> spike sink 0          └──> spike sink L-2
                                                (PackedSpikeSink)                          (RingBuffer)

- **Synapses** are ``DelayDense`` (``Dense`` when every delay of the layer is 0), built the way NetX
  builds them: ``lava.lib.dl.netx.utils.optimize_weight_bits`` gives the shifted weight, the weight
  bits and the weight exponent. The builder re-applies Lava's clip and truncation to that result and
  refuses a matrix Lava would not hold exactly (mixed-sign integers in [-256, 254] always pass).
  ``max_delay`` is the layer's largest delay, not NetX's fixed 62: the arithmetic is the same and
  the delay buffer (and its reset between samples) is smaller.
- **Neurons** are the process registered for the layer's neuron kind in
  :mod:`snn_toolchain.lava_models.neuron_processes`: our ``AdLIF`` process for AdLIF layers, Lava's
  stock ``LIF`` for CUBA layers (NetX's mapping of lava-dl's keys).
- **Timing** (measured, see export/emulator.py): a spike sent at step ``r`` through a delay ``d``
  arrives at step ``r + 1 + d``, so one sample of ``T`` input steps runs for ``T + L`` steps.
- **Samples** run one after the other on one compiled network: all ``K`` samples, each zero-padded
  to ``run_steps``, are preloaded into the source; between samples the neuron state (u, w, s or
  u, v: the kind's ``state_names``) and every synapse's ``a_buff`` are reset with ``Var.set`` (without the ``a_buff`` reset,
  spikes still in flight leak into the next sample).
- **Synapse models:** ``synapse='stock'`` runs Lava's own ``PyDelayDenseModelBitAcc``;
  ``synapse='ring'`` swaps in ``PyDelayDenseRingModel`` (same integers, faster) from
  :mod:`snn_toolchain.lava_models.processes.delay_ring` through ``exception_proc_model_map``.

Lava traps this module works around (archived upstream, no fixes): ``Var.get``/``Var.set`` move one
element per message (about 18 us each on a 2-core machine), so spikes are recorded 48 to an int64
word (``PackedSpikeSink``) and the sinks are read once per chunk of samples; an exception inside a ProcessModel hangs the run, so everything that could
raise is checked here, before compiling; Lava's runtime refuses to import after a tqdm bar fixed
the multiprocessing start method (:func:`import_lava_runtime`); Ctrl-C reaches every worker and
``Runtime.stop()`` then hangs, so runs go through :func:`snn_toolchain.lava_models.shutdown.lava_session`.
"""

from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass

import numpy as np

from snn_toolchain.lava_models.neuron_processes import LavaBuildError, build_neuron_process
from snn_toolchain.lava_models.shutdown import lava_session
from snn_toolchain.quantized_network import check_range
from snn_toolchain.samples import class_scores, whole_samples, zero_padded

SYNAPSE_MODELS = ("stock", "ring")
# Sinks are read in one go when their buffers hold at most this many elements in all; beyond it
# they are read every few samples (Var.get moves one element per message either way, but huge
# buffers cost memory in every sink process).
READ_ELEMENTS_BUDGET = 8_000_000


@dataclass
class SampleResult:
    """What Lava computed for one sample.

    spikes: per spiking layer (hidden, and a spiking output), uint8 (run_steps, neurons), Lava step
    r+1 at row r.
    readout_input: int64 (run_steps, classes), the last synapse's a_out at each step.
    scores: int64 (classes,), readout_input summed over the run + time_steps * readout bias (the
    summing readout), or the output layer's spike counts.
    """

    spikes: list
    readout_input: np.ndarray
    scores: np.ndarray

    @property
    def prediction(self) -> int:
        return int(np.argmax(self.scores))


@dataclass
class LavaTimings:
    """Wall-clock seconds of the phases of one ``LavaRunner.run``."""

    build: float = 0.0
    first_run: float = 0.0          # includes compiling and starting the runtime
    runs: float = 0.0               # all samples, first included
    resets: float = 0.0
    reads: float = 0.0
    samples: int = 0

    @property
    def seconds_per_sample(self) -> float:
        return (self.runs + self.resets + self.reads) / max(self.samples, 1)

    def to_dict(self) -> dict:
        return {"build_s": self.build, "first_run_s": self.first_run, "runs_s": self.runs,
                "resets_s": self.resets, "reads_s": self.reads, "samples": self.samples,
                "seconds_per_sample": self.seconds_per_sample}


def import_lava_runtime() -> None:
    """Import Lava's runtime so that it works after a tqdm bar or anything else fixed the
    multiprocessing start method.

    Lava's message infrastructure calls ``multiprocessing.set_start_method('fork')`` when first
    imported, which raises "context has already been set" once anything has created a
    multiprocessing object: the first tqdm bar does (its write lock), so training and then running
    Lava in one process fails. The start method is reset first; Lava then sets 'fork' itself.
    """
    import importlib
    import multiprocessing
    import sys

    name = "lava.magma.runtime.message_infrastructure.multiprocessing"
    if name not in sys.modules and multiprocessing.get_start_method(allow_none=True) is not None:
        multiprocessing.set_start_method(None, force=True)
    importlib.import_module(name)


def _quiet_import_optimize_weight_bits():
    # lava.lib.dl imports slayer, which prints a "Prophesee" notice on stdout and, through torch's
    # cpp_extension, "No CUDA runtime is found" on stderr on every machine without CUDA: both are
    # harmless for a Lava run, and a user reads them as a fault, so both are silenced.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        from lava.lib.dl.netx.utils import optimize_weight_bits
    return optimize_weight_bits


@dataclass
class SynapseWeights:
    """The arguments NetX passes to Lava's Dense/DelayDense for one weight matrix."""

    weights: np.ndarray          # int (out, in), shifted left by -weight_exp
    num_weight_bits: int
    weight_exp: int


def netx_synapse_weights(weight: np.ndarray, layer_name: str = "?") -> SynapseWeights:
    """Optimise ``weight`` (integers, synaptic units) as NetX does, and check that Lava's
    clip + truncate + exponent shift gives back exactly ``weight``."""
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

    weight = np.asarray(weight, dtype=np.int64)
    check_range(layer_name, "weight", weight, "weight")
    if not weight.any():
        raise LavaBuildError(f"layer {layer_name}: every weight is 0; NetX's weight optimisation divides by the "
                             "largest weight and cannot build such a synapse")
    optimize_weight_bits = _quiet_import_optimize_weight_bits()
    with contextlib.redirect_stdout(io.StringIO()):
        shifted, num_weight_bits, weight_exp, _ = optimize_weight_bits(weight.copy())
    # Lava re-derives the sign mode from the shifted matrix (NetX's own mode is not passed on).
    sign_mode = determine_sign_mode(shifted)
    held = truncate_weights(clip_weights(shifted, sign_mode, num_bits=8), sign_mode, num_weight_bits).astype(np.int64)
    effective = held << weight_exp if weight_exp > 0 else held >> -weight_exp
    if not np.array_equal(effective, weight) or not np.array_equal(held, np.asarray(shifted, dtype=np.int64)):
        bad = tuple(int(i) for i in np.argwhere(effective != weight)[0]) if not np.array_equal(effective, weight) \
            else tuple(int(i) for i in np.argwhere(held != shifted)[0])
        raise LavaBuildError(f"layer {layer_name}: Lava's synapse would not hold weight{list(bad)} = {weight[bad]} "
                             f"exactly (it becomes {effective[bad]}); requantize the layer")
    return SynapseWeights(np.asarray(shifted, dtype=np.int64), int(num_weight_bits), int(weight_exp))


def _lava_samples(samples, network) -> np.ndarray:
    """The samples as the sample contract's whole numbers (``snn_toolchain/samples.py``), and what
    Lava's source adds: at least one sample, every count within its int32 messages."""
    counts = whole_samples(np.asarray(samples), network)
    if counts.shape[0] == 0:
        raise LavaBuildError("no samples to run")
    if counts.max() > np.iinfo(np.int32).max:
        raise LavaBuildError("a spike count does not fit the source's int32 messages")
    return counts


def _ring_model():
    try:
        from snn_toolchain.lava_models.processes.delay_ring import PyDelayDenseRingModel  # imports Lava
    except ImportError as err:
        raise LavaBuildError("synapse='ring' needs snn_toolchain.lava_models.processes.delay_ring "
                             f"({err}); use synapse='stock'") from None
    return PyDelayDenseRingModel


class LavaRunner:
    """A QuantizedNetwork built as Lava processes, with ``K`` samples preloaded.

    Use :func:`build_lava_network` to make one, then call :meth:`run` once: it runs every sample
    on the same compiled network and always stops the runtime afterwards.

    Attributes after building: ``source``, ``synapses`` (per connection layer), ``neurons`` (per
    hidden layer, AdLIF or LIF), ``spike_sinks`` (per hidden layer), ``readout_sink``,
    ``run_steps`` (Lava steps per sample), ``timings``.
    """

    def __init__(self, network, samples, *, synapse: str = "ring"):
        import_lava_runtime()
        from lava.magma.core.run_configs import Loihi2SimCfg
        from lava.proc.dense.process import DelayDense, Dense
        from lava.proc.io.sink import RingBuffer as Sink
        from lava.proc.io.source import RingBuffer as Source

        from snn_toolchain.lava_models.processes.packed_sink import PackedSpikeSink  # imports Lava

        started = time.perf_counter()
        if synapse not in SYNAPSE_MODELS:
            raise LavaBuildError(f"synapse must be one of {', '.join(SYNAPSE_MODELS)}, got {synapse!r}")
        self.network = network.validate()
        self.synapse_model = synapse
        self.samples = _lava_samples(samples, network)
        self.n_samples = len(self.samples)
        self.run_steps = network.run_steps
        exceptions = {DelayDense: _ring_model()} if synapse == "ring" else {}
        self.run_cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=exceptions)

        # (inputs, K * run_steps): sample k occupies Lava steps k*R+1 .. (k+1)*R, zero-padded.
        padded = zero_padded(self.samples, self.run_steps).astype(np.int32)
        self.source = Source(data=padded.reshape(-1, network.n_inputs).T.copy())
        # Lava's simulator only asks "> 0" (graded) or "== 0" (binary); the chip takes the width
        input_message_bits = network.input_message_bits(int(self.samples.max()))
        self.input_message_bits = input_message_bits

        self.synapses, self.neurons, self.neuron_state_names = [], [], []
        previous_out = self.source.s_out
        for index, layer in enumerate(network.layers):
            weights = netx_synapse_weights(layer.weight, layer.name)
            # the input shift is a further negative weight exponent: Lava shifts each step's sum
            # of each delay group right by it, as the emulator does
            weight_exp = weights.weight_exp - int(layer.input_shift)
            message_bits = input_message_bits if index == 0 else 0
            delay = np.asarray(layer.delay, dtype=np.int64)
            if delay.any():
                syn = DelayDense(weights=weights.weights, delays=delay, max_delay=int(delay.max()),
                                 weight_exp=weight_exp, num_weight_bits=weights.num_weight_bits,
                                 num_message_bits=message_bits, name=f"synapse{index}")
            else:
                syn = Dense(weights=weights.weights, weight_exp=weight_exp,
                            num_weight_bits=weights.num_weight_bits, num_message_bits=message_bits,
                            name=f"synapse{index}")
            previous_out.connect(syn.s_in)
            self.synapses.append(syn)
            if layer.neuron is None:   # the summing readout, last (validate() says so)
                break
            neuron = build_neuron_process(layer, index)
            syn.a_out.connect(neuron.a_in)
            self.neurons.append(neuron)
            self.neuron_state_names.append(layer.neuron_kind.state_names)
            previous_out = neuron.s_out
        self.chunk_samples = self._chunk_size()
        buffer = self.chunk_samples * self.run_steps
        self.spike_sinks = []
        for neuron in self.neurons:
            sink = PackedSpikeSink(shape=neuron.s_out.shape, buffer=buffer)
            neuron.s_out.connect(sink.a_in)
            self.spike_sinks.append(sink)
        self.readout_sink = Sink(shape=self.synapses[-1].a_out.shape, buffer=buffer)
        self.synapses[-1].a_out.connect(self.readout_sink.a_in)
        self.timings = LavaTimings(build=time.perf_counter() - started)
        self._ran = False

    def _chunk_size(self) -> int:
        from snn_toolchain.lava_models.processes.packed_sink import packed_words  # imports Lava

        per_sample = self.run_steps * (sum(packed_words(np.prod(n.s_out.shape)) for n in self.neurons)
                                       + int(np.prod(self.synapses[-1].a_out.shape)))
        return int(max(1, min(self.n_samples, READ_ELEMENTS_BUDGET // max(per_sample, 1))))

    def _reset_state(self) -> None:
        for neuron, names in zip(self.neurons, self.neuron_state_names):
            for name in names:
                var = getattr(neuron, name)
                var.set(np.zeros(var.shape))
        for syn in self.synapses:
            syn.a_buff.set(np.zeros(syn.a_buff.shape))

    def _read_chunk(self, first: int, count: int, results: list) -> None:
        """Read the sinks after samples first..first+count-1 ran (they fill columns 0..count*R-1)."""
        from snn_toolchain.lava_models.processes.packed_sink import unpack_spikes  # imports Lava

        width = count * self.run_steps
        spikes = [unpack_spikes(sink.data.get()[:, :width], int(np.prod(neuron.s_out.shape)))
                  for sink, neuron in zip(self.spike_sinks, self.neurons)]
        readout = np.round(self.readout_sink.data.get()[:, :width]).astype(np.int64)
        for j in range(count):
            columns = slice(j * self.run_steps, (j + 1) * self.run_steps)
            layer_spikes = [np.ascontiguousarray(s[:, columns].T) for s in spikes]
            readout_input = np.ascontiguousarray(readout[:, columns].T)
            scores = class_scores(self.network, readout_input, layer_spikes[-1] if layer_spikes else None)
            results.append(SampleResult(layer_spikes, readout_input, scores))

    def run(self, progress: bool = True) -> list:
        """Run every preloaded sample; returns one :class:`SampleResult` per sample, in order.

        The runtime is stopped afterwards whatever happens (an exception or Ctrl-C included: then
        its processes are killed if it does not stop within a few seconds), so a runner runs once.
        """
        from lava.magma.core.run_conditions import RunSteps
        from tqdm import tqdm

        if self._ran:
            raise RuntimeError("a LavaRunner runs once (its runtime is stopped afterwards); build a new one")
        self._ran = True
        results: list = []
        condition = RunSteps(num_steps=self.run_steps)
        bar = tqdm(total=self.n_samples, desc=f"Lava fixed_pt ({self.synapse_model})", unit="sample",
                   disable=None if progress else True, leave=False)  # None: bars on a terminal only
        try:
            # Lava forks its processes at the first run; the session stops all of them on the way
            # out, within a time bound, on Ctrl-C/SIGTERM or an exception too (lava_models/shutdown.py)
            with lava_session(self.source):
                chunk_start = 0
                for k in range(self.n_samples):
                    if k > 0:
                        t0 = time.perf_counter()
                        self._reset_state()
                        self.timings.resets += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    self.source.run(condition=condition, run_cfg=self.run_cfg)
                    elapsed = time.perf_counter() - t0
                    self.timings.runs += elapsed
                    if k == 0:
                        self.timings.first_run = elapsed
                    if k + 1 - chunk_start == self.chunk_samples or k + 1 == self.n_samples:
                        t0 = time.perf_counter()
                        self._read_chunk(chunk_start, k + 1 - chunk_start, results)
                        self.timings.reads += time.perf_counter() - t0
                        chunk_start = k + 1
                    self.timings.samples = k + 1
                    bar.update()
        finally:
            bar.close()
        return results


def build_lava_network(network, *, samples: np.ndarray, synapse: str = "ring") -> LavaRunner:
    """Build ``network`` (a QuantizedNetwork) as Lava processes with ``samples`` preloaded.

    samples: (K, T, n_inputs) whole spike counts, T <= network.time_steps (zero-padded to
    ``network.run_steps`` Lava steps per sample). synapse: 'ring' (fast delay synapse model) or
    'stock' (Lava's own ``PyDelayDenseModelBitAcc``). Returns a :class:`LavaRunner`; call ``run()``.
    """
    return LavaRunner(network, samples, synapse=synapse)
