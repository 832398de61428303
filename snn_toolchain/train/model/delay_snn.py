"""The delay-learning AdLIF network: the blocks of :mod:`~snn_toolchain.train.model.adlif_blocks`
stacked as input -> hidden layers -> readout, computed in the float or in the deployed arithmetic."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from snn_toolchain.constants import SYNAPSE_LATENCY_STEPS, TRAIN_MAX_DELAY
from snn_toolchain.input_encoding import GradedInputEncoding
from snn_toolchain.neurons.dynamics import NEURON_BOUNDS, resolve_bounds, strict_spike
from snn_toolchain.train.model.adlif_blocks import AdLIFDelayBlock, SumReadout
from snn_toolchain.train.model.deployed import deployed_synaptic_input, surrogate_spike
from snn_toolchain.train.model.synapse import DelayedDense

# what set_arithmetic accepts: the trained model, or the same model in the deployed integers
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
