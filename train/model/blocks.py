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

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from snn_toolchain.constants import SYNAPSE_LATENCY_STEPS, TRAIN_MAX_DELAY
from snn_toolchain.input_encoding import GradedInputEncoding
from snn_toolchain.netcodec import write_layer
from snn_toolchain.neurons.dynamics import (
    NEURON_BOUNDS,
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
    surrogate_spike,
)
from snn_toolchain.train.model.quantize import quantize_block
from snn_toolchain.train.model import gpu_recurrence  # noqa: F401  (registers the Triton kernels for CUDA)
from snn_toolchain.train.model.recurrence import initial_state, run_deployed_adlif, run_neurons
from snn_toolchain.train.model.synapse import DelayedDense

# Evaluation from the uniform initial state draws from its own generator with this seed, so that
# every evaluation of a model sees the same initial states and training's random stream is untouched.
EVAL_UNIFORM_SEED = 1234
ARITHMETICS = ("float", "deployed")


class ModelRun(NamedTuple):
    """What :meth:`DelaySNN.run` computed for a batch: scores (batch, classes); spikes, per hidden
    layer (batch, run steps, neurons); readout_input (batch, run steps, classes), the readout
    synapse's output without its bias; score_scale: scores / score_scale are in threshold units
    (1.0 in the float arithmetic, the readout's S in the deployed one)."""

    scores: torch.Tensor
    spikes: list
    readout_input: torch.Tensor
    score_scale: torch.Tensor | float


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


class DelaySNN(nn.Module):
    """input -> hidden 1 -> hidden 2 -> readout; every connection has a weight and a delay per synapse.

    ``forward`` takes (batch, time, inputs) and returns class scores (batch, classes); with
    ``return_spikes=True`` it also returns the spikes (batch, run steps, neurons) of each hidden
    layer. The inputs are spike counts per step, or graded payloads of ``input_encoding`` (a
    ``GradedInputEncoding.to_dict()``, GSC), which the model scales by 1/levels.

    **Timing** (``latency``, steps): every connection delivers its input ``latency`` steps late on
    top of its trained delays, as Lava's synapses do (``SYNAPSE_LATENCY_STEPS`` = 1), and every
    neuron adds its bias from step 0, so the model computes what the deployed network computes
    (docs/fixed_point.md, "One timing"). A sample of ``T`` steps then runs for ``T + latency * L``
    run steps (``L`` connections); the spikes have that many steps, and the class scores are the
    readout synapse's output summed over them plus ``T`` times its bias, as on Lava. ``latency=0``
    is the paper's timing (and that of checkpoints written before the option existed).

    **Arithmetic** (:meth:`set_arithmetic`): "float", the trained model; "deployed", the same
    model in the deployed integers (train/model/deployed.py: Lava's latency, the weights, biases, delays
    and neuron parameters export writes, the kind's fixed-point step from a zero state), with
    straight-through gradients: what ``--qat`` trains and what ``parity`` compares spike by spike.
    """

    def __init__(self, n_inputs: int, n_classes: int, hidden: int = 128, *, variant: str = "adlif+",
                 delays: bool = True, max_delay: int = TRAIN_MAX_DELAY, dropout: float = 0.5, bounds: dict | None = None,
                 train_init_state: str = "uniform", n_hidden_layers: int = 2, norm: str = "none",
                 eval_init_state: str = "zero", input_encoding: dict | None = None,
                 latency: int = SYNAPSE_LATENCY_STEPS, bn_momentum: float = 0.05):
        super().__init__()
        if variant not in NEURON_BOUNDS:
            raise ValueError(f"unknown neuron variant {variant!r}")
        # the resolved bounds, not the overrides: a checkpoint rebuilds with the bounds it was trained in,
        # whatever the variant's defaults are by then
        self.config = dict(n_inputs=n_inputs, n_classes=n_classes, hidden=hidden, variant=variant, delays=delays,
                           max_delay=max_delay, dropout=dropout, bounds=resolve_bounds(variant, bounds),
                           train_init_state=train_init_state,
                           n_hidden_layers=n_hidden_layers, norm=norm, eval_init_state=eval_init_state,
                           input_encoding=input_encoding, latency=int(latency), bn_momentum=float(bn_momentum))
        if int(latency) != latency or latency < 0:
            raise ValueError(f"latency must be a whole number of steps >= 0, got {latency!r}")
        self.latency = int(latency)
        self.arithmetic = "float"
        # how the model is deployed, and so computed in the deployed arithmetic: a LIF layer as
        # lava-dl's CUBA neurons, an AdLIF layer with a scale per neuron (train/model/quantize.py)
        self.lif_as_cuba = True
        self.per_neuron_scales = True
        # Graded payloads (0..levels) are scaled to [0, 1] before the first synapse, so the weights
        # train at the scale they have on spike counts; export folds the gain into the first layer.
        encoding = GradedInputEncoding.from_dict(input_encoding)
        self.input_gain = 1.0 if encoding is None else encoding.gain
        sizes = [n_inputs] + [hidden] * n_hidden_layers
        self.blocks = nn.ModuleList(
            AdLIFDelayBlock(sizes[i], sizes[i + 1], variant=variant, max_delay=max_delay, learn_delays=delays,
                            dropout=dropout, bounds=bounds, train_init_state=train_init_state,
                            eval_init_state=eval_init_state, norm=norm, bn_momentum=bn_momentum)
            for i in range(n_hidden_layers))
        self.readout = SumReadout(hidden, n_classes, max_delay=max_delay, learn_delays=delays)
        for module in self.modules():
            if isinstance(module, DelayedDense):
                module.latency = self.latency

    def forward(self, x: torch.Tensor, return_spikes: bool = False):
        run = self.run(x)
        scores = run.scores / run.score_scale    # threshold units in either arithmetic
        return (scores, run.spikes) if return_spikes else scores

    def run(self, x: torch.Tensor) -> "ModelRun":
        """Everything a forward pass computes: class scores, each hidden layer's spikes (before
        dropout, run steps), the readout synapse's output at each run step (without its bias).
        In the deployed arithmetic these are the deployed whole numbers (float64; scores and the
        readout input in the readout's synaptic units, ``score_scale`` = its S)."""
        steps = x.shape[1]
        if self.arithmetic == "deployed":
            return self._run_deployed(x, steps)
        x = self.prepare_input(x)
        spikes = []
        for block in self.blocks:
            layer_spikes = block.spikes(x)      # before dropout: the activity an activity penalty counts
            spikes.append(layer_spikes)
            x = block.dropout(layer_spikes)
        readout_input = self.readout.synapse(x, include_bias=False)
        scores = readout_input.sum(dim=1)
        if self.readout.synapse.bias is not None:
            scores = scores + steps * self.readout.synapse.bias
        return ModelRun(scores, spikes, readout_input, 1.0)

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the first synapse of the float arithmetic receives for (batch, time, inputs) samples:
        scaled by the input gain, and with ``latency`` steps per connection appended, room for the
        latency (the run steps)."""
        if self.input_gain != 1.0:
            x = x * self.input_gain
        if self.latency:
            x = F.pad(x, (0, 0, 0, self.latency * (len(self.blocks) + 1)))
        return x

    def _run_deployed(self, x: torch.Tensor, steps: int) -> "ModelRun":
        # the deployed inputs: whole spike counts, graded payloads rounded (the input gain is
        # folded into the first layer's weights, as at export)
        x = torch.round(x.to(torch.float64))
        x = F.pad(x, (0, 0, 0, SYNAPSE_LATENCY_STEPS * (len(self.blocks) + 1)))
        spike_fn = surrogate_spike if torch.is_grad_enabled() and self.training else strict_spike
        spikes = []
        for index, block in enumerate(self.blocks):
            as_cuba = block.neuron.variant == "lif" and self.lif_as_cuba
            layer_spikes = block.deployed_spikes(x, self.input_gain if index == 0 else 1.0, as_cuba, spike_fn,
                                                 per_neuron=self.per_neuron_scales and not as_cuba)
            spikes.append(layer_spikes)
            x = block.dropout(layer_spikes)
        readout = self.readout.deployed_connection()
        readout_input = deployed_synaptic_input(x, readout.weight, readout.delay, readout.shift_factor)
        scores = readout_input.sum(dim=1) + steps * readout.bias
        return ModelRun(scores, spikes, readout_input, readout.scale)

    def set_arithmetic(self, arithmetic: str) -> "DelaySNN":
        """"float" (the trained model) or "deployed" (the deployed integers with straight-through
        gradients, see the class docstring). In the deployed arithmetic BatchNorm acts folded in at
        its running statistics, which training then leaves as they are (batch statistics have no
        deployed form); every sample starts from zero and runs Lava's latency, whatever the
        model's training start state and ``latency``."""
        if arithmetic not in ARITHMETICS:
            raise ValueError(f"unknown arithmetic {arithmetic!r}; choose one of {', '.join(ARITHMETICS)}")
        self.arithmetic = arithmetic
        return self

    @torch.no_grad()
    def clamp_(self) -> None:
        for block in self.blocks:
            block.clamp_()
        self.readout.clamp_()

    def set_train_init_state(self, mode: str) -> "DelaySNN":
        """Start every training sample from ``mode`` ("uniform": the paper's; "zero": Lava's); the
        configured state stays in ``config`` (``--zero-start-epochs`` switches it for the last epochs)."""
        for block in self.blocks:
            block.neuron.train_init_state = mode
        return self

    def set_eval_init_state(self, mode: str) -> "DelaySNN":
        """Start every evaluation from ``mode`` ("zero": what Lava does; "uniform": the paper's)."""
        for block in self.blocks:
            block.neuron.eval_init_state = mode
        return self.reset_eval_randomness()

    def reset_eval_randomness(self) -> "DelaySNN":
        """Restart the uniform evaluation state's draws (per layer), so that an evaluation pass over
        the same samples in the same batches always sees the same initial states."""
        for index, block in enumerate(self.blocks):
            block.neuron.reset_eval_randomness(layer_index=index)
        return self

    def set_delay_rounding(self, *, training: bool | None = None, evaluation: bool | None = None) -> "DelaySNN":
        """Round delays in training (straight-through) and/or in evaluation; None leaves a setting."""
        for module in self.modules():
            if isinstance(module, DelayedDense):
                if training is not None:
                    module.round_delays_in_training = training
                if evaluation is not None:
                    module.round_delays_in_eval = evaluation
        return self

    @torch.no_grad()
    def folded(self) -> "DelaySNN":
        """A copy without BatchNorm whose synapses hold the folded weights and biases: in
        evaluation it computes what this model computes (to float rounding), and it is what export
        quantizes."""
        with torch.random.fork_rng(devices=[]):   # building a model draws initial values; keep training's stream
            folded = DelaySNN(**{**self.config, "norm": "none"})
        folded.load_state_dict({k: v for k, v in self.state_dict().items() if ".norm." not in k})
        for source, target in zip(self.blocks, folded.blocks):
            weight, bias = source.folded_connection()
            target.synapse.weight.data.copy_(weight)
            if target.synapse.bias is not None and bias is not None:
                target.synapse.bias.data.copy_(bias)
        folded.set_arithmetic(self.arithmetic)
        folded.lif_as_cuba, folded.per_neuron_scales = self.lif_as_cuba, self.per_neuron_scales
        return folded.train(self.training).to(next(self.parameters()).device)

    def parameter_count(self) -> int:
        """Trained numbers (the paper's Table 1 count): weights, biases, delays, neuron parameters, BN."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def delay_parameters(self) -> list[nn.Parameter]:
        return [m.delay for m in self.modules() if isinstance(m, DelayedDense) and isinstance(m.delay, nn.Parameter)]

    def parameter_groups(self, lr_weights: float, lr_delays: float) -> list[dict]:
        """Two optimizer groups: delays at their own learning rate, everything else at ``lr_weights``."""
        delay_ids = {id(p) for p in self.delay_parameters()}
        others = [p for p in self.parameters() if id(p) not in delay_ids]
        groups = [{"params": others, "lr": lr_weights, "name": "weights"}]
        if delay_ids:
            groups.append({"params": self.delay_parameters(), "lr": lr_delays, "name": "delays"})
        return groups


@torch.no_grad()
def evaluate_model(model: nn.Module, loader, device: torch.device | str = "cpu", count_spikes: bool = False,
                   halves: bool = False) -> dict:
    """Loss, accuracy in [0, 1] and samples; with ``count_spikes`` also the spikes per neuron per
    sample of each hidden layer (over every time step of the padded input).

    The trainer's evaluation, kept apart from the one backend loop (``snn_toolchain.evaluation.
    evaluate_backend`` with ``train.float_backend.FloatModelBackend``) because it needs the loss and
    runs every epoch on the training device: it keeps the scores there instead of copying every
    spike to numpy. ``halves``: also the loss and accuracy of the even- and of the odd-numbered
    samples (in the loader's order), to compare selection rules on validation alone (docs/training.md)."""
    was_training = model.training
    model.eval()
    if hasattr(model, "reset_eval_randomness"):
        model.reset_eval_randomness()
    loss_sum, correct, count, spikes = 0.0, 0, 0, None
    per_half = [[0.0, 0, 0], [0.0, 0, 0]]     # even, odd: loss sum, correct, count
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        if count_spikes:
            scores, layer_spikes = model(x, return_spikes=True)
            sums = [float(s.sum()) for s in layer_spikes]
            spikes = sums if spikes is None else [a + b for a, b in zip(spikes, sums)]
        else:
            scores = model(x)
        losses = torch.nn.functional.cross_entropy(scores, y, reduction="none")
        hits = scores.argmax(1) == y
        loss_sum += losses.sum().item()
        correct += hits.sum().item()
        if halves:
            parity = (torch.arange(len(y), device=y.device) + count) % 2
            for half in (0, 1):
                chosen = parity == half
                per_half[half][0] += losses[chosen].sum().item()
                per_half[half][1] += hits[chosen].sum().item()
                per_half[half][2] += int(chosen.sum().item())
        count += len(y)
    model.train(was_training)
    result = {"loss": loss_sum / max(count, 1), "accuracy": correct / max(count, 1), "samples": count}
    if halves:
        result["halves"] = [{"loss": loss / max(n, 1), "accuracy": hit / max(n, 1), "samples": n}
                            for loss, hit, n in per_half]
    if count_spikes:
        sizes = [block.neuron.n for block in model.blocks]
        result["spikes_per_neuron_per_sample"] = [total / (max(count, 1) * n) for total, n in zip(spikes or [], sizes)]
    return result
