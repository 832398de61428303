"""SLAYER-style blocks of the delay-learning AdLIF network: synapse, then neuron, then dropout.

lava-dl's SLAYER composes a block as synapse -> neuron -> (axonal) delay, and each block knows its
own quantization and ``export_hdf5``. These blocks keep that shape, with tensors laid out
(batch, time, channels) instead of SLAYER's (batch, channels, time) because the per-step neuron
loop reads one time slice at a time.

Where SLAYER could not be reused, and why:

- **Delays.** ``slayer.axon.Delay`` has one delay per *neuron* (axonal); the paper learns one per
  *synapse*. :class:`~snn_toolchain.train.model.synapse.DelayedDense` implements per-synapse fractional
  delays with SLAYER's delay gradient.
- **Neurons.** SLAYER's neuron models (CUBA, ALIF, RF, ...) have no adaptation *current* coupled to
  the membrane (``a``) and spikes (``b``); its ALIF adapts the threshold. The AdLIF family is
  defined once in :mod:`snn_toolchain.neurons.dynamics`.
- **Kernels.** SLAYER's CUDA kernels do not run on Hopper GPUs; our recurrence has its own CPU
  path (:mod:`~snn_toolchain.train.model.recurrence`) and GPU kernel.

What is kept from SLAYER: the block structure, Xavier-initialised dense synapses, and each block
knowing its own quantization (``quantize``) and its NetX ``layer/<i>`` group (``export_hdf5``),
both implemented once in ``snn_toolchain.export``.
"""

from __future__ import annotations

import torch
from torch import nn

from snn_toolchain.constants import TRAIN_MAX_DELAY
from snn_toolchain.netcodec import write_layer
from snn_toolchain.neurons.dynamics import (
    PARAM_NAMES,
    FixedNeuronParams,
    NeuronParams,
    resolve_bounds,
    strict_spike,
)
from snn_toolchain.train.model.deployed import (
    DeployedConnection,
    deployed_connection,
    deployed_neuron_params,
    deployed_synaptic_input,
    run_fixed_point,
)
from snn_toolchain.train.model.quantize import quantize_block
from snn_toolchain.train.model import gpu_recurrence  # noqa: F401  (registers the Triton kernels for CUDA)
from snn_toolchain.train.model.recurrence import initial_state, run_deployed_adlif, run_neurons
from snn_toolchain.train.model.synapse import DelayedDense

# Evaluation from the uniform initial state draws from its own generator with this seed, so that
# every evaluation of a model sees the same initial states and training's random stream is untouched.
EVAL_UNIFORM_SEED = 1234


class AdLIFNeuron(nn.Module):
    """A layer of ``n`` neurons of the AdLIF family with trainable per-neuron alpha, beta, a, b.

    Every parameter starts uniform within its bounds (the paper's appendix) and is clipped back
    into them by :meth:`clamp_` after every optimizer step. A parameter whose bounds are a single
    value (LIF's a, b, beta) is a fixed buffer, not a trainable parameter.

    Args:
        n: number of neurons.
        variant: "lif", "adlif" or "adlif+" (see ``NEURON_BOUNDS``).
        bounds: per-parameter (low, high) overrides of the variant's bounds.
        train_init_state: "uniform" (u, w ~ U[0, 1], the paper) or "zero", used in training mode.
        eval_init_state: the initial state in evaluation mode; "zero", as Lava starts every sample.
    """

    def __init__(self, n: int, variant: str = "adlif+", bounds: dict | None = None,
                 train_init_state: str = "uniform", eval_init_state: str = "zero"):
        super().__init__()
        self.n = n
        self.variant = variant
        self.bounds = resolve_bounds(variant, bounds)
        self.train_init_state = train_init_state
        self.eval_init_state = eval_init_state
        self.layer_index = 0          # set by DelaySNN; seeds this layer's uniform evaluation draws
        self.eval_generator = None
        for name in PARAM_NAMES:
            low, high = self.bounds[name]
            value = torch.empty(n).uniform_(low, high) if high > low else torch.full((n,), low)
            if high > low:
                self.register_parameter(name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)

    def params(self) -> NeuronParams:
        return NeuronParams(*(getattr(self, name) for name in PARAM_NAMES))

    def reset_eval_randomness(self, device=None, layer_index: int | None = None) -> None:
        """Restart the draws of the uniform evaluation state: every evaluation pass (evaluate_model
        calls this through DelaySNN) then sees the same initial states, each layer and each sample
        its own, and training's random stream is untouched."""
        if layer_index is not None:
            self.layer_index = layer_index
        generator = torch.Generator(device=device or self.alpha.device)
        generator.manual_seed(EVAL_UNIFORM_SEED + 1009 * self.layer_index)
        self.eval_generator = generator

    @torch.no_grad()
    def clamp_(self) -> None:
        """Clip every parameter into its bounds (called after each optimizer step)."""
        for name in PARAM_NAMES:
            low, high = self.bounds[name]
            getattr(self, name).clamp_(low, high)

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        """Spikes (batch, time, n) for input currents (batch, time, n), in threshold units."""
        mode = self.train_init_state if self.training else self.eval_init_state
        generator = None
        if mode == "uniform" and not self.training:
            if self.eval_generator is None or self.eval_generator.device != current.device:
                self.reset_eval_randomness(current.device)
            generator = self.eval_generator
        state = initial_state(current.shape[0], self.n, mode, generator=generator, device=current.device,
                              dtype=current.dtype)
        return run_neurons(current, self.params(), state)

    def extra_repr(self) -> str:
        return f"n={self.n}, variant={self.variant}"


class AdLIFDelayBlock(nn.Module):
    """Dense synapse with a trained delay per synapse -> (BatchNorm) -> AdLIF neurons -> dropout.

    ``norm="batchnorm"`` normalises the synaptic current of each neuron over batch and time, as
    SparCH does (``nn.BatchNorm1d`` on the (batch x time, neurons) current; 2 trained parameters
    per neuron). In evaluation it is a fixed affine map per neuron, so export folds it into the
    synapse's weights and the neuron's bias (:meth:`folded_connection`) and the .net file holds no
    BatchNorm.
    """

    def __init__(self, in_features: int, out_features: int, *, variant: str = "adlif+", max_delay: int = TRAIN_MAX_DELAY,
                 learn_delays: bool = True, dropout: float = 0.0, bounds: dict | None = None,
                 train_init_state: str = "uniform", eval_init_state: str = "zero", norm: str = "none",
                 bn_momentum: float = 0.05):
        super().__init__()
        if norm not in ("none", "batchnorm"):
            raise ValueError(f"unknown normalisation {norm!r}; choose none or batchnorm")
        self.synapse = DelayedDense(in_features, out_features, max_delay=max_delay, learn_delays=learn_delays)
        # momentum of the running statistics: SparCH's 0.05 (the paper is silent); 0.1 before
        self.norm = nn.BatchNorm1d(out_features, momentum=bn_momentum) if norm == "batchnorm" else None
        self.neuron = AdLIFNeuron(out_features, variant, bounds, train_init_state=train_init_state,
                                  eval_init_state=eval_init_state)
        self.dropout = nn.Dropout(dropout)

    def synaptic_current(self, x: torch.Tensor) -> torch.Tensor:
        """The neurons' input current (batch, time, out), in threshold units: the delayed synapse,
        then the BatchNorm if any."""
        current = self.synapse(x)
        if self.norm is not None:
            current = self.norm(current.reshape(-1, current.shape[-1])).view(current.shape)
        return current

    def spikes(self, x: torch.Tensor) -> torch.Tensor:
        """The neurons' spikes (batch, time, out), before dropout: what the chip would send."""
        return self.neuron(self.synaptic_current(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.spikes(x))

    def deployed_connection(self, input_gain: float = 1.0, as_cuba: bool = False,
                            per_neuron: bool = True) -> DeployedConnection:
        """The synapse in the deployed integers (train/model/deployed.py), from the folded weights and
        biases with ``input_gain`` and, for a LIF layer deployed as CUBA, ``1 - alpha`` folded in,
        in the order ``train/model/quantize.py`` folds them; straight-through gradients. ``per_neuron``:
        a scale per neuron (never for CUBA)."""
        weight, bias = self.folded_connection()
        weight = weight * input_gain
        if as_cuba:
            input_scale = 1.0 - self.neuron.alpha.to(torch.float64)
            weight, bias = weight * input_scale[:, None], None if bias is None else bias * input_scale
        return deployed_connection(weight, bias, self.synapse.delay, self.synapse.max_delay,
                                   per_neuron=per_neuron and not as_cuba)

    def deployed_spikes(self, x: torch.Tensor, input_gain: float = 1.0, as_cuba: bool = False,
                        spike_fn=strict_spike, per_neuron: bool = True) -> torch.Tensor:
        """The spikes of this layer in the deployed arithmetic, (batch, run steps, out) float64 whole
        numbers, for (batch, run steps, in) whole-number inputs: Lava's latency, the deployed
        integers, the kind's fixed-point step from a zero state."""
        connection = self.deployed_connection(input_gain, as_cuba, per_neuron)
        synaptic_input = deployed_synaptic_input(x, connection.weight, connection.delay, connection.shift_factor)
        params = deployed_neuron_params(*self.neuron.params(), connection, as_cuba)
        if spike_fn is not strict_spike and isinstance(params, FixedNeuronParams):
            # training: the same integers, with the float recurrence's hand-derived backward
            return run_deployed_adlif(params, synaptic_input)
        return run_fixed_point(params, synaptic_input, spike_fn)

    def folded_connection(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(weight, bias) of the synapse with the evaluation-mode BatchNorm folded in (float64,
        differentiable in the weights and BatchNorm's affine parameters; its running statistics
        are constants).

        BN(z) = gamma * (z - mean) / sqrt(var + eps) + shift is affine in z = W x + bias, and a
        per-neuron scale commutes with the per-synapse delays, so
        W' = W * k, bias' = (bias - mean) * k + shift with k = gamma / sqrt(var + eps).
        Without BatchNorm it is the synapse's own weight and bias.
        """
        weight = self.synapse.weight.to(torch.float64)
        bias = self.synapse.bias.to(torch.float64) if self.synapse.bias is not None else None
        if self.norm is None:
            return weight, bias
        norm = self.norm
        gain = (norm.weight.to(torch.float64) if norm.affine else 1.0) / torch.sqrt(
            norm.running_var.to(torch.float64) + norm.eps)
        shift = norm.bias.to(torch.float64) if norm.affine else 0.0
        bias = torch.zeros(weight.shape[0], dtype=torch.float64, device=weight.device) if bias is None else bias
        return weight * gain.unsqueeze(1), (bias - norm.running_mean.to(torch.float64)) * gain + shift

    def clamp_(self) -> None:
        self.synapse.clamp_()
        self.neuron.clamp_()

    def quantize(self, name: str = "0", lif_as_cuba: bool = True, input_gain: float = 1.0,
                 per_neuron_scales: bool = True):
        """This block in Loihi 2 fixed point (a QuantizedLayer; docs/fixed_point.md)."""
        return quantize_block(self, name, lif_as_cuba, input_gain, per_neuron_scales)

    def export_hdf5(self, handle) -> None:
        """Write this block as one NetX ``layer/<i>`` group (``handle``), as SLAYER blocks do."""
        write_layer(handle, self.quantize(handle.name.rsplit("/", 1)[-1]))


class SumReadout(nn.Module):
    """Memoryless readout with an infinite threshold: the membrane is the weighted, delayed input
    current at each step, and the class scores are that membrane summed over time."""

    def __init__(self, in_features: int, n_classes: int, *, max_delay: int = TRAIN_MAX_DELAY, learn_delays: bool = True):
        super().__init__()
        self.synapse = DelayedDense(in_features, n_classes, max_delay=max_delay, learn_delays=learn_delays)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.synapse(x).sum(dim=1)

    def clamp_(self) -> None:
        self.synapse.clamp_()

    def deployed_connection(self) -> DeployedConnection:
        """The readout synapse in the deployed integers (train/model/deployed.py), one scale for its classes."""
        return deployed_connection(self.synapse.weight, self.synapse.bias, self.synapse.delay, self.synapse.max_delay)

    quantize = AdLIFDelayBlock.quantize
    export_hdf5 = AdLIFDelayBlock.export_hdf5
