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

Both are functions of the spikes, so their gradients flow through the surrogate of the spike
function; the fan-out is a count, not differentiated. Spikes are counted before dropout (what a
deployed network sends).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from snn_toolchain.errors import ToolchainError

SYNOPS_UNIT = 1e6      # the synaptic-operations penalty counts millions of operations per sample


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
