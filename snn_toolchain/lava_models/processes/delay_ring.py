"""A fast, bit-identical ProcessModel for Lava's stock ``DelayDense`` process.

Lava's own fixed-point model (``lava.proc.dense.models.PyDelayDenseModelBitAcc``) rebuilds a
``(max_delay + 1) * n_out`` by ``n_in`` weight stack on every time step and multiplies all of it by
the input vector. For a 700-256-20 network with ``max_delay`` 62 that costs about 220 ms per step.
:class:`PyDelayDenseRingModel` does the same arithmetic in time proportional to the number of
synapses of the inputs that are active in the step.

Select it explicitly::

    Loihi2SimCfg(select_tag="fixed_pt",
                 exception_proc_model_map={DelayDense: PyDelayDenseRingModel})

Units: one time step is one Lava step; a delay ``d`` (in steps) makes a spike received in step
``t`` appear in ``a_out`` in step ``t + 1 + d``, exactly as in the stock model. Weights, ``a_buff``
and ``a_out`` are integers in Lava's fixed-point activation units (weight mantissa times
``2**weight_exp``).

This module is executed by Lava's model search when it scans this folder, so it imports with
absolute imports only and has no side effects.
"""

import typing as ty

import numpy as np

from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.dense.process import DelayDense
from lava.utils.weightutils import SignMode, clip_weights, determine_sign_mode, truncate_weights

# The stock DelayDense model's own bound (6-bit delays), mirrored so this model behaves like it.
# Our networks never reach it: the network description (snn_toolchain.quantized_network.FIELD_LIMITS) caps
# delays at 62, NetX's max_delay, before any Lava process is built.
STOCK_DELAYDENSE_MAX_DELAY = 63

# np.bincount sums in float64, which is exact while every partial sum stays below 2**53. A bin
# receives at most one product per input, and a product of 32 bits or fewer is below 2**31 in
# magnitude, so up to 2**22 inputs are always exact; wider products take the int64 path.
_FLOAT64_EXACT_INPUTS = 1 << 22


class DelayTables(ty.NamedTuple):
    """The synapses of a DelayDense weight matrix, grouped by input (compressed sparse columns).

    Entries ``column_start[i]:column_start[i + 1]`` belong to input ``i``. Synapses whose weight is
    zero, and synapses whose delay exceeds ``max_delay`` (the stock model drops those too: its
    weight stack only has the groups 0..max_delay), are left out.
    """

    entry_weight: np.ndarray      # weight of each synapse, in the dtype of the weight Var
    entry_slot: np.ndarray        # flat index out * (max_delay + 1) + delay into a_buff's layout
    column_start: np.ndarray      # (n_in + 1,) offsets of each input's entries
    n_out: int
    max_delay: int


def build_delay_tables(weights: np.ndarray, delays: np.ndarray, max_delay: int) -> DelayTables:
    """Groups the prepared integer ``weights`` (n_out, n_in) and ``delays`` (n_out, n_in, in
    steps) by input, for a buffer of ``max_delay + 1`` arrival slots."""
    weights = np.asarray(weights)
    delays = np.asarray(delays)
    n_out, n_in = weights.shape
    slots = max_delay + 1
    keep_by_input = ((weights != 0) & (delays <= max_delay)).T
    input_index, output_index = np.nonzero(keep_by_input)        # row-major: grouped by input
    entry_weight = weights.T[input_index, output_index]
    entry_slot = output_index.astype(np.int64) * slots + delays.T[input_index, output_index]
    column_start = np.zeros(n_in + 1, dtype=np.int64)
    np.cumsum(np.bincount(input_index, minlength=n_in), out=column_start[1:])
    return DelayTables(entry_weight=np.ascontiguousarray(entry_weight),
                       entry_slot=entry_slot.astype(np.int64),
                       column_start=column_start, n_out=n_out, max_delay=max_delay)


def _gather_entries(tables: DelayTables, active_inputs: np.ndarray) -> ty.Tuple[np.ndarray,
                                                                                np.ndarray]:
    """Indices of the table entries of ``active_inputs``, and how many each input has."""
    starts = tables.column_start[active_inputs]
    counts = tables.column_start[active_inputs + 1] - starts
    # A ragged arange: each input's run starts at its column start.
    ends_in_output = np.cumsum(counts)
    run_offset = np.repeat(starts - (ends_in_output - counts), counts)
    return run_offset + np.arange(ends_in_output[-1] if counts.size else 0), counts


def delayed_accumulation(tables: DelayTables, s_in: np.ndarray) -> ty.Optional[np.ndarray]:
    """This step's synaptic input per (output, delay group), before the weight_exp shift.

    Equals the stock ``calc_act(s_in)``: an (n_out, max_delay + 1) int64 matrix whose entry
    ``[o, k]`` is ``sum_i W[o, i] * s_in[i]`` over the inputs whose synapse to ``o`` has delay
    ``k``. ``s_in`` is bool for binary spikes, or the graded integer payloads. Returns None when
    no synapse of an active input contributes (the stock matrix is then all zeros).
    """
    active_inputs = np.flatnonzero(s_in)
    if active_inputs.size == 0:
        return None
    entries, counts = _gather_entries(tables, active_inputs)
    if entries.size == 0:
        return None
    slot_of_entry = tables.entry_slot[entries]
    if s_in.dtype == np.bool_:
        products = tables.entry_weight[entries]
    else:
        # Same operand dtypes as the stock stack * s_in, so a product that wraps in 32 bits
        # there wraps identically here.
        products = tables.entry_weight[entries] * np.repeat(s_in[active_inputs], counts)
    if products.dtype.kind not in "iub":
        # The stock model fails too: its weight_exp shift is undefined for floats.
        raise TypeError(f"DelayDense graded input must be integer, got {s_in.dtype}")
    n_slots = tables.n_out * (tables.max_delay + 1)
    if products.dtype.itemsize <= 4 and s_in.size < _FLOAT64_EXACT_INPUTS:
        summed = np.bincount(slot_of_entry, weights=products, minlength=n_slots).astype(np.int64)
    else:
        summed = np.zeros(n_slots, dtype=np.int64)
        np.add.at(summed, slot_of_entry, products.astype(np.int64))
    return summed.reshape(tables.n_out, tables.max_delay + 1)


def apply_weight_exp(accumulated: np.ndarray, weight_exp: int) -> np.ndarray:
    """The stock model's shift: left for weight_exp > 0, else an arithmetic (floor) right shift."""
    return (np.left_shift(accumulated, weight_exp) if weight_exp > 0
            else np.right_shift(accumulated, -weight_exp))


@implements(proc=DelayDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyDelayDenseRingModel(PyLoihiProcessModel):
    """Bit-identical, sparse-input replacement for ``PyDelayDenseModelBitAcc``.

    Per step, like the stock model: send ``a_buff[:, 0]``; receive ``s_in`` (cast to bool unless
    ``num_message_bits > 0``); compute the group sums ``acc[o, k]`` of this step's input for each
    output ``o`` and delay ``k``; shift them by ``weight_exp``; advance ``a_buff`` by one slot and
    add the shifted sums. The Vars have the stock names, shapes, dtypes and meaning, so
    ``a_buff.set(np.zeros(...))`` between samples resets pending activations exactly as with the
    stock model, and ``weights.get()`` returns the same prepared weights.

    Why it is bit-identical:

    * **Weights** are prepared on the first step by the same calls as the stock model
      (``clip_weights`` to 8 bits, then ``truncate_weights`` to ``num_weight_bits``, with the sign
      mode from ``proc_params`` or ``determine_sign_mode``), so the integers are identical.
    * **Group sums.** The stock ``acc[o, k]`` sums ``W[o, i] * (D[o, i] == k) * s[i]`` over all
      inputs. Terms with ``s[i] == 0``, ``W[o, i] == 0`` or ``D[o, i] > max_delay`` are zero or
      absent there, so dropping them changes nothing. The remaining products are formed with the
      same operand dtypes (int32 weights times bool or the received payload dtype), so they are
      the same integers, including any 32-bit wrap of a graded product. The stock ``np.sum``
      accumulates them in int64; integer addition is exact and order-free, and ``np.bincount``
      (float64) reproduces it exactly because every partial sum is an integer below 2**53 (at
      most one product per input per bin, each below 2**31, fewer than 2**22 inputs).
      Wider products (int64 payloads) are summed with ``np.add.at`` in int64 instead.
    * **The shift** is applied to the whole group-sum matrix of the step, as in the stock model:
      once per (source step, output, delay group), never per synapse and never after groups or
      steps are merged. Entries with no contribution are 0 and shift to 0, so skipping a step
      without active inputs is exact.
    * **The buffer.** The stock model zeroes column 0 and rolls the flattened buffer by -1; with
      column 0 zeroed this is a per-row shift towards column 0 with a zero last column, which is
      what the in-place copy here does. Adding the int64 shifted sums into the int32 buffer wraps
      the same way in both (numpy ``same_kind`` in-place add).

    ``a_buff`` is the ring of arrival slots (column ``k`` arrives ``k + 1`` steps after the step
    that filled it). It is advanced by copying ``n_out * max_delay`` int32 values (about 64 kB
    for 256 outputs, microseconds) rather than by rotating a head index, because a rotating head
    would make the ``a_buff`` Var's layout differ from the stock model's for ``get``/``set``.

    Weights and delays are treated as static, like in the stock model, except that a ``Var.set``
    of either one rebuilds the synapse tables, so a changed delay takes effect as it does there.
    """

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, bool, precision=1)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=16)
    a_buff: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)
    # (num_flat_output_neurons, num_flat_input_neurons), C order, as in the stock model.
    weights: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)
    delays: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=6)
    num_message_bits: np.ndarray = LavaPyType(np.ndarray, int, precision=5)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.weights_set = False
        self._tables: ty.Optional[DelayTables] = None
        self._tables_built_from: ty.Optional[ty.Tuple[np.ndarray, np.ndarray]] = None

    def _prepare_weights(self) -> None:
        num_weight_bits: int = self.proc_params.get("num_weight_bits", 8)
        sign_mode: SignMode = (self.proc_params.get("sign_mode")
                               or determine_sign_mode(self.weights))
        self.weights = clip_weights(self.weights, sign_mode, num_bits=8)
        self.weights = truncate_weights(self.weights, sign_mode, num_weight_bits)
        self.weights_set = True
        if np.max(self.delays) > STOCK_DELAYDENSE_MAX_DELAY:
            raise ValueError("DelayDense Process 'delays' expects values between 0 and "
                             f"{STOCK_DELAYDENSE_MAX_DELAY} for Loihi, got max {np.max(self.delays)}.")

    def _build_tables(self) -> None:
        max_delay = self.a_buff.shape[-1] - 1
        self._tables = build_delay_tables(self.weights, self.delays, max_delay)
        self._tables_built_from = (self.weights.copy(), np.array(self.delays, copy=True))

    def _set_var(self):
        """Var.set writes into the arrays in place; rebuild the tables if it changed them."""
        super()._set_var()
        if self._tables_built_from is not None:
            weights_then, delays_then = self._tables_built_from
            if not (np.array_equal(weights_then, self.weights)
                    and np.array_equal(delays_then, self.delays)):
                self._tables = None

    def run_spk(self):
        weight_exp: int = self.proc_params.get("weight_exp", 0)
        if not self.weights_set:
            self._prepare_weights()
        if self._tables is None:
            self._build_tables()

        self.a_out.send(self.a_buff[:, 0])
        if self.num_message_bits.item() > 0:
            s_in = self.s_in.recv()
        else:
            s_in = self.s_in.recv().astype(bool)
        accumulated = delayed_accumulation(self._tables, s_in)

        buffer = self.a_buff
        buffer[:, :-1] = buffer[:, 1:]
        buffer[:, -1] = 0
        if accumulated is not None:
            buffer += apply_weight_exp(accumulated, weight_exp)
