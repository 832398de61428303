"""Lava Process ``AdLIF`` and its two ProcessModels (fixed_pt and floating_pt).

The ProcessModels do not restate the neuron equations: they call the step functions of
:mod:`snn_toolchain.neurons.dynamics` on numpy arrays, the very functions the training model
(float) and the batched emulator (fixed point) call. LIF is the special case a = b = beta = 0.

Parameters are given once, as the fixed-point integers of the quantizer (``FixedNeuronParams``):

============  =====================================  =====================================
Var           fixed_pt (``PyAdLIFModelFixed``)        floating_pt (``PyAdLIFModelFloat``)
============  =====================================  =====================================
alpha, beta   12-bit fractions 0..4096                used as alpha / 4096, beta / 4096
a             12-bit fraction (4096 = 1.0)            used as a / 4096
b             membrane units                          used as b / threshold
bias          synaptic units (weight units)           used as bias / vThMant
threshold     membrane units (``vThMant << 6``)       the float threshold is 1.0
u, w          membrane units, 24-bit saturating       threshold units (1.0 = threshold)
s             0/1 spike of the last step              0/1 spike of the last step
============  =====================================  =====================================

In floating_pt the synaptic input ``a_in`` (weight units, as a float Dense sends it) becomes
the current ``I = (a_in + bias) * 64 / threshold`` in threshold units, which is what the
fixed-point step computes before its truncations. u, w and s are Vars so that a runner can
reset them between samples with ``Var.set``.

This file is exec'd standalone by Lava's ProcessModel search (it imports every module in this
folder), so it uses absolute imports only.
"""

from __future__ import annotations

import typing as ty

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess, LogConfig
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from snn_toolchain.constants import ACTIVATION_SHIFT, DECAY_UNITY
from snn_toolchain.neurons.adlif import ADLIF_KIND
from snn_toolchain.neurons.dynamics import (
    FixedNeuronParams,
    NeuronParams,
    NeuronState,
    adlif_fixed_step,
    adlif_float_step,
    numpy_heaviside,
)
from snn_toolchain.quantized_network import check_range

ArrayLike = ty.Union[int, float, list, np.ndarray]


class AdLIF(AbstractProcess):
    """A layer of AdLIF neurons (SparCH's adLIF update, Loihi 2 fixed point).

    Every parameter is per neuron, shape ``(n,)`` (a scalar is broadcast). See the module
    docstring for units; :meth:`from_fixed_params` builds one from a ``FixedNeuronParams``.

    Ports: ``a_in`` (synaptic input, weight units, one value per neuron and step) and
    ``s_out`` (0/1 spikes).
    """

    def __init__(self, *, shape: ty.Tuple[int], alpha: ArrayLike, beta: ArrayLike = 0, a: ArrayLike = 0,
                 b: ArrayLike = 0, bias: ArrayLike = 0, threshold: ArrayLike = 64 << ACTIVATION_SHIFT,
                 u: ArrayLike = 0, w: ArrayLike = 0, s: ArrayLike = 0, name: ty.Optional[str] = None,
                 log_config: ty.Optional[LogConfig] = None) -> None:
        shape = tuple(int(d) for d in shape)
        # Lava's __del__ expects a fully initialised process, so validate after super().__init__.
        super().__init__(shape=shape, name=name, log_config=log_config)
        if len(shape) != 1:
            raise ValueError(f"AdLIF takes a 1-D shape (n,), got {shape}")
        values = {key: np.broadcast_to(np.asarray(value, dtype=np.int64), shape).copy()
                  for key, value in dict(alpha=alpha, beta=beta, a=a, b=b, bias=bias, threshold=threshold,
                                         u=u, w=w, s=s).items()}
        # Checked here because a ValueError inside a running ProcessModel hangs Lava instead of raising.
        _check_ranges(self.name, values)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        for key, value in values.items():
            setattr(self, key, Var(shape=shape, init=value))

    @classmethod
    def from_fixed_params(cls, params: FixedNeuronParams, name: ty.Optional[str] = None) -> "AdLIF":
        """An AdLIF process holding the quantizer's integers (int64 arrays of shape (n,))."""
        n = int(np.asarray(params.alpha).shape[0])
        return cls(shape=(n,), **{key: np.asarray(getattr(params, key)) for key in FixedNeuronParams._fields},
                   name=name)


def _check_ranges(name: str, values: dict) -> None:
    """Refuse (``NetworkError``, a ValueError, naming ``name`` as the layer) any parameter Loihi 2
    cannot hold: the ranges the core holds an AdLIF layer to (``QuantizedLayer.validate``: the
    kind's field checks, the bias, the threshold's vThMant), so a process refuses what a network
    file would."""
    for check in ADLIF_KIND.field_checks:
        check_range(name, f"neuron {check.shown}", values[check.attribute], check.limit)
    check_range(name, "bias", values["bias"], "bias")
    check_range(name, "neuron threshold's vThMant", values["threshold"] >> ACTIVATION_SHIFT, "threshold_mant")


@implements(proc=AdLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyAdLIFModelFixed(PyLoihiProcessModel):
    """Bit-exact Loihi 2 fixed point: one call of ``adlif_fixed_step`` per time step."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    u: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    w: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    s: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=1)
    alpha: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=13)
    beta: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=13)
    a: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=13)
    b: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=16)
    threshold: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)

    def run_spk(self) -> None:
        synaptic_input = self.a_in.recv().astype(np.int64)
        params = FixedNeuronParams(self.alpha, self.beta, self.a, self.b, self.bias, self.threshold)
        state = adlif_fixed_step(params, NeuronState(self.u, self.w, self.s), synaptic_input)
        # In-place writes: the runtime's Var.get/set address these very arrays.
        self.u[:] = state.u
        self.w[:] = state.w
        self.s[:] = state.s
        self.s_out.send(state.s.astype(np.int32))


@implements(proc=AdLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyAdLIFModelFloat(PyLoihiProcessModel):
    """The float AdLIF step of the training model, with the fixed parameters divided by their
    scales; u and w are in threshold units (see the module docstring)."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    u: np.ndarray = LavaPyType(np.ndarray, np.float64)
    w: np.ndarray = LavaPyType(np.ndarray, np.float64)
    s: np.ndarray = LavaPyType(np.ndarray, np.float64)
    alpha: np.ndarray = LavaPyType(np.ndarray, np.float64)
    beta: np.ndarray = LavaPyType(np.ndarray, np.float64)
    a: np.ndarray = LavaPyType(np.ndarray, np.float64)
    b: np.ndarray = LavaPyType(np.ndarray, np.float64)
    bias: np.ndarray = LavaPyType(np.ndarray, np.float64)
    threshold: np.ndarray = LavaPyType(np.ndarray, np.float64)

    def run_spk(self) -> None:
        synaptic_input = self.a_in.recv().astype(np.float64)
        params = NeuronParams(self.alpha / DECAY_UNITY, self.beta / DECAY_UNITY, self.a / DECAY_UNITY,
                              self.b / self.threshold)
        current = (synaptic_input + self.bias) * float(1 << ACTIVATION_SHIFT) / self.threshold
        state = adlif_float_step(params, NeuronState(self.u, self.w, self.s), current, numpy_heaviside)
        self.u[:] = state.u
        self.w[:] = state.w
        self.s[:] = state.s
        self.s_out.send(state.s)
