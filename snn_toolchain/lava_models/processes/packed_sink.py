"""``PackedSpikeSink``: a spike recorder whose buffer reads back 48x faster than Lava's RingBuffer sink.

Lava's ``Var.get`` moves one element per message (about 18 us each on a 2-core machine), so
reading a stock ``RingBuffer`` sink of 128 neurons x 128 steps takes about 0.3 s per sample, more
than running the sample. This sink stores each step's binary spike vector packed into int64 words
of ``BITS_PER_WORD`` spikes; :func:`unpack_spikes` restores the (neurons, steps) 0/1 array.

``BITS_PER_WORD`` is 48 because ``Var.get`` sends every value as a float64, which holds integers
exactly only below 2^53.

Like the stock sink, column ``(time_step - 1) % buffer`` receives the spikes of Lava step
``time_step`` (a ring buffer of ``buffer`` steps). Anything nonzero counts as a spike.

This file is exec'd standalone by Lava's ProcessModel search, so it uses absolute imports only.
"""

from __future__ import annotations

import typing as ty

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

BITS_PER_WORD = 48


def packed_words(n_neurons: int) -> int:
    """int64 words per step for ``n_neurons`` spikes."""
    return -(-int(n_neurons) // BITS_PER_WORD)


def pack_spikes(spikes: np.ndarray) -> np.ndarray:
    """(n,) 0/1 (or bool) -> (packed_words(n),) int64; neuron i is bit i % 48 of word i // 48."""
    flags = np.asarray(spikes) != 0
    padded = np.zeros(packed_words(flags.shape[0]) * BITS_PER_WORD, dtype=np.int64)
    padded[:flags.shape[0]] = flags
    return (padded.reshape(-1, BITS_PER_WORD) << np.arange(BITS_PER_WORD, dtype=np.int64)).sum(axis=1)


def unpack_spikes(data: np.ndarray, n_neurons: int) -> np.ndarray:
    """(words, steps) packed data (any numeric dtype holding the exact integers) -> uint8 (n_neurons, steps)."""
    words = np.asarray(np.round(np.asarray(data, dtype=np.float64)), dtype=np.int64)
    bits = (words[:, None, :] >> np.arange(BITS_PER_WORD, dtype=np.int64)[None, :, None]) & 1
    return bits.reshape(-1, words.shape[-1])[:n_neurons].astype(np.uint8)


class PackedSpikeSink(AbstractProcess):
    """Records the binary spikes arriving at ``a_in`` (shape (n,)) for the last ``buffer`` steps.

    ``data`` has shape (packed_words(n), buffer); decode it with :func:`unpack_spikes`.
    """

    def __init__(self, *, shape: ty.Tuple[int], buffer: int, name: ty.Optional[str] = None) -> None:
        shape = tuple(int(d) for d in shape)
        super().__init__(shape=shape, buffer=buffer, name=name)     # before raising: Lava's __del__ needs it
        if len(shape) != 1 or buffer < 1:
            raise ValueError(f"PackedSpikeSink takes a 1-D shape and a buffer >= 1, got {shape}, {buffer}")
        self.a_in = InPort(shape=shape)
        self.data = Var(shape=(packed_words(shape[0]), int(buffer)), init=0)


@implements(proc=PackedSpikeSink, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "floating_pt")
class PyPackedSpikeSinkModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)
    data: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def run_spk(self) -> None:
        spikes = self.a_in.recv()
        self.data[:, (self.time_step - 1) % self.data.shape[-1]] = pack_spikes(spikes)
