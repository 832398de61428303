"""Activity regularisation: train for fewer synaptic operations, the quantity the chip pays for.

Two penalties, each off unless its strength is set (TrainConfig), added to the cross-entropy:

- **Synaptic operations** (``--synops-penalty L``): ``L x`` the synaptic operations per sample of
  the hidden layers, in millions. An operation is one spike reaching one synapse: each hidden
  spike counts its layer's fan-out, the non-zero weights of the next connection (what
  ``export/activity.py`` counts on the deployed network and what the energy report prices). The
  input's operations are left out: training cannot change them.
- **Firing-rate bounds** (``--rate-bounds LOW:HIGH --rate-penalty M``), as in SparCH: per hidden
  layer, the mean firing rate r (spikes per neuron per step, over batch and time) costs
  ``M x (relu(LOW - r)^2 + relu(r - HIGH)^2)``; it keeps layers from falling silent or saturating.

And one that is not a penalty: **pruning** (``--prune F0[,F1,F2]``, :class:`SynapsePruner`). The
input layer's operations are the input spikes times the first connection's fan-out; no activity
penalty can lower them, removing synapses can. A pruned synapse's weight is 0, which export
writes as 0 and which the operation count (``export/activity.py``) does not count.

Both are functions of the spikes, so their gradients flow through the surrogate of the spike
function; the fan-out is a count, not differentiated. Spikes are counted before dropout (what a
deployed network sends).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from snn_toolchain.errors import ToolchainError

SYNOPS_UNIT = 1e6      # the synaptic-operations penalty counts millions of operations per sample


def parse_prune(text: str) -> tuple[float, ...]:
    """'0.6' or '0.6,0.2,0' -> fractions of each connection's synapses to prune, from the input
    connection on (missing ones are 0); '' -> ()."""
    if not text:
        return ()
    try:
        fractions = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ToolchainError(f"--prune {text!r}: write fractions of synapses per connection, from the input's on, "
                             "e.g. 0.6 or 0.6,0.2,0") from None
    if not all(0.0 <= f < 1.0 for f in fractions):
        raise ToolchainError(f"--prune {text!r}: each fraction must be in [0, 1)")
    return fractions


def parse_rate_bounds(text: str) -> tuple[float, float] | None:
    """'0.01:0.2' -> (0.01, 0.2) spikes per neuron per step; '' -> None."""
    if not text:
        return None
    try:
        low, high = (float(v) for v in text.split(":"))
    except ValueError:
        raise ToolchainError(f"--rate-bounds {text!r}: write LOW:HIGH in spikes per neuron per step, "
                             "e.g. 0.01:0.2") from None
    if not 0.0 <= low <= high <= 1.0:
        raise ToolchainError(f"--rate-bounds {text!r}: need 0 <= LOW <= HIGH <= 1 (spikes per neuron per step)")
    return low, high


@dataclass
class ActivityRegularizer:
    """``penalty(model, spikes) -> (penalty, synaptic ops per sample)``, both 0-d tensors.

    synops_penalty: per million synaptic operations per sample; rate_bounds: (low, high) spikes
    per neuron per step, or None; rate_penalty: its strength.
    """

    synops_penalty: float = 0.0
    rate_bounds: tuple | None = None
    rate_penalty: float = 0.0

    @classmethod
    def from_config(cls, config) -> "ActivityRegularizer | None":
        """The regulariser a TrainConfig asks for, or None when both penalties are off."""
        bounds = parse_rate_bounds(config.rate_bounds)
        if config.rate_penalty and bounds is None:
            raise ToolchainError("--rate-penalty needs --rate-bounds LOW:HIGH")
        if bounds is not None and not config.rate_penalty:
            raise ToolchainError("--rate-bounds needs --rate-penalty M (its strength); without it the bounds do nothing")
        if not config.synops_penalty and not (config.rate_penalty and bounds):
            return None
        return cls(config.synops_penalty, bounds, config.rate_penalty)

    def __call__(self, model, spikes: list) -> tuple[torch.Tensor, torch.Tensor]:
        targets = list(model.blocks[1:]) + [model.readout]
        batch = spikes[0].shape[0]
        synops = spikes[0].new_zeros(())
        rates = spikes[0].new_zeros(())
        for layer_spikes, target in zip(spikes, targets):
            fan_out = (target.synapse.weight.detach() != 0).sum(dim=0).to(layer_spikes.dtype)   # (in,)
            synops = synops + (layer_spikes.sum(dim=(0, 1)) * fan_out).sum() / batch
            if self.rate_bounds is not None and self.rate_penalty:
                low, high = self.rate_bounds
                rate = layer_spikes.mean()
                rates = rates + torch.relu(low - rate) ** 2 + torch.relu(rate - high) ** 2
        penalty = self.synops_penalty * synops / SYNOPS_UNIT + self.rate_penalty * rates
        return penalty, synops.detach()


def pruning_target(final_fraction: float, epoch: int, ramp_epochs: int) -> float:
    """The fraction pruned during (0-based) ``epoch``: Zhu and Gupta's (2017) cubic ramp, reaching
    ``final_fraction`` in the epoch ``ramp_epochs - 1`` and holding it after (the rest of the run lets
    the remaining synapses recover). Prunes fast while many weights are redundant, slowly at the end."""
    progress = min(1.0, (epoch + 1) / max(ramp_epochs, 1))
    return final_fraction * (1.0 - (1.0 - progress) ** 3)


class SynapsePruner:
    """Magnitude pruning of the model's connections (``--prune``), in the order input -> hidden 1,
    hidden 1 -> hidden 2, ..., last hidden -> readout.

    ``update(model, epoch)`` at the start of each epoch sets each connection's mask to its
    ``pruning_target`` largest-magnitude weights (a weight pruned before is 0, the smallest, so it
    stays pruned); ``apply_(model)`` after every optimizer step sets the pruned weights to 0 again
    (the TrainingStep does it, inside a CUDA graph too: the masks are updated in place). The masks
    are not stored: they are the zero weights, so a resumed run rebuilds the same ones, and under
    DDP every rank, holding the same weights, computes the same.
    """

    def __init__(self, fractions: tuple, ramp_epochs: int):
        self.fractions = tuple(fractions)
        self.ramp_epochs = ramp_epochs
        self.masks: list | None = None

    @classmethod
    def from_config(cls, config) -> "SynapsePruner | None":
        fractions = parse_prune(config.prune)
        if not any(fractions):
            return None
        return cls(fractions, config.prune_epochs or max(1, config.epochs // 2))

    @staticmethod
    def connections(model) -> list:
        return [block.synapse for block in model.blocks] + [model.readout.synapse]

    def check_fits(self, model) -> None:
        if len(self.fractions) > len(self.connections(model)):
            raise ToolchainError(f"--prune: {len(self.fractions)} fractions for a network of "
                                 f"{len(self.connections(model))} connections")

    @torch.no_grad()
    def update(self, model, epoch: int) -> list:
        """Sets the masks for ``epoch`` and applies them; returns the fraction pruned per connection."""
        self.check_fits(model)
        synapses = self.connections(model)
        if self.masks is None:
            self.masks = [torch.ones_like(s.weight, dtype=torch.bool) for s in synapses[:len(self.fractions)]]
        pruned = []
        for synapse, mask, final in zip(synapses, self.masks, self.fractions):
            weight = synapse.weight
            n_pruned = int(round(pruning_target(final, epoch, self.ramp_epochs) * weight.numel()))
            # at least the synapses pruned already (their weights are 0): pruning never grows one back
            n_pruned = max(n_pruned, int((weight == 0).sum()))
            keep = torch.zeros(weight.numel(), dtype=torch.bool, device=weight.device)
            keep[torch.topk(weight.abs().flatten(), weight.numel() - n_pruned, sorted=False).indices] = True
            mask.copy_(keep.view_as(weight))
            pruned.append(n_pruned / weight.numel())
        self.apply_(model)
        return pruned

    @torch.no_grad()
    def apply_(self, model) -> None:
        if self.masks is None:
            return
        for synapse, mask in zip(self.connections(model), self.masks):
            synapse.weight.mul_(mask)
