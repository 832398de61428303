"""NetX's input neuron stage: an ``input`` layer 0 that holds CUBA neurons (lava-dl's bootstrap
MNIST network, ``tutorials/lava/lib/dl/bootstrap/mnist``), run before the network's first connection.

NetX (``lava.lib.dl.netx.hdf5.Network.create_input``, lava-dl 0.6) builds such a layer as Lava's LIF
with nothing connected to its synaptic input: the data enters through the neurons' bias. The layer
also carries a scalar ``weight`` and ``bias`` (the ``transform``, NetX's defaults 64 and 0) that NetX
does not apply itself; lava-dl's own code applies it per sample before setting the bias
(``pilotnet_snn/dataset.py``: ``int32(2*weight*image - weight + bias)``, an image in 0..1, i.e.
``weight * x + bias`` for the value ``x = 2*image - 1`` in -1..1 that slayer's model is trained on;
``tests/lava/lib/dl/netx/test_hdf5.py`` sets ``net.in_layer.neuron.bias_mant`` so). Here:

    bias_mant[sample, i] = trunc(weight * x[sample, i] + bias)      (NetX casts it to int32)

held for the sample's ``time_steps`` input steps; the neurons then run the CUBA step that the hidden
CUBA layers run (:func:`snn_toolchain.neurons.dynamics.cuba_fixed_step`, synaptic input 0), from rest.
The values come one per input of the first dense layer, in its order: for an input layer of
shape (C, H, W) before a ``flatten``, that shape's C order, which NetX's ``transpose([2, 1, 0])
.flatten()`` of its (W, H, C) neurons gives (checked against stock NetX for (2, 3, 4)). Their
spikes, (samples, time_steps, inputs) 0/1, are this toolchain's usual input: the emulator and the
Lava builder run the rest of the network on them unchanged. The timing is NetX's: a stage spike at
step t reaches the first dense layer's neurons at step t + 1, as an input spike at step t does.

Core module: numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snn_toolchain import constants as C
from snn_toolchain.errors import ToolchainError
from snn_toolchain.neurons.dynamics import CubaFixedParams, NeuronState, cuba_fixed_step

# NetX's transform when the input layer stores none (hdf5.py create_input)
NETX_DEFAULT_INPUT_WEIGHT = 64
NETX_DEFAULT_INPUT_BIAS = 0


class InputStageError(ToolchainError, ValueError):
    """Data the input stage cannot take (shape, non-finite values, a bias beyond Lava's int16)."""


@dataclass(frozen=True)
class InputStage:
    """The input layer's neurons and NetX's transform.

    neuron: Lava's CUBA LIF parameters, int64 (inputs,) arrays (decays 12-bit, ``threshold`` =
    ``vThMant << 6`` membrane units); its ``bias`` is unused (zeros): the bias is the data.
    weight, bias: the transform, whole numbers in bias-mantissa units: a data value x becomes the
    neuron's bias mantissa ``trunc(weight * x + bias)`` for each step of its sample.
    """

    neuron: CubaFixedParams
    weight: int
    bias: int

    @property
    def n_inputs(self) -> int:
        return int(np.shape(self.neuron.threshold)[0])

    def bias_mantissas(self, values) -> np.ndarray:
        """int64 (samples, inputs): each sample's bias mantissas, from its data values (samples,
        inputs), floats in the units the network was trained on (bootstrap MNIST: 2*pixel - 1)."""
        values = np.asarray(values)
        if values.ndim != 2 or values.shape[1] != self.n_inputs:
            raise InputStageError(f"the input stage takes data values of shape (samples, {self.n_inputs}), one value "
                                  f"per input neuron and sample; got shape {values.shape}")
        if values.dtype.kind not in "biuf":
            raise InputStageError(f"the input stage takes numbers, got dtype {values.dtype}")
        values = values.astype(np.float64)
        if not np.all(np.isfinite(values)):
            sample, neuron = (int(i) for i in np.argwhere(~np.isfinite(values))[0])
            raise InputStageError(f"data value [{sample}, {neuron}] is {values[sample, neuron]}, not a number")
        mantissas = np.trunc(self.weight * values + self.bias)
        bad = np.abs(mantissas) > C.BIAS_MANT_MAX
        if bad.any():
            sample, neuron = (int(i) for i in np.argwhere(bad)[0])
            raise InputStageError(f"data value [{sample}, {neuron}] = {values[sample, neuron]:g} gives the bias "
                                  f"mantissa {self.weight} * x + {self.bias} = {mantissas[sample, neuron]:g}, beyond "
                                  f"the +-{C.BIAS_MANT_MAX} of Lava's int16 bias (scale the data to the range the "
                                  "network was trained on)")
        return mantissas.astype(np.int64)

    def spikes(self, values, time_steps: int) -> np.ndarray:
        """uint8 (samples, time_steps, inputs): the stage's spikes, each sample from rest with its
        bias held for ``time_steps`` steps; the network's input."""
        mantissas = self.bias_mantissas(values)
        params = self.neuron._replace(bias=mantissas)            # (samples, inputs): one bias per sample
        zeros = np.zeros_like(mantissas)
        state = NeuronState(zeros, zeros, zeros)
        out = np.zeros((len(mantissas), int(time_steps), self.n_inputs), dtype=np.uint8)
        for step in range(int(time_steps)):
            state = cuba_fixed_step(params, state, zeros)
            out[:, step] = state.s
        return out
