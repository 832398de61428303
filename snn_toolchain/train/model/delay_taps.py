"""The two interpolation taps of a fractional delay, shared by every delay formulation.

A delay of D steps reads (1 - f) of the input k = floor(D) steps back and f of it k + 1 steps back
(f = D - k); ``train/model/synapse.py`` has the equations. The convolution and GEMM paths
(``train/model/synapse.py``) and the event path's input gradient (``train/model/event_delay.py``) build their
kernels here.
"""

from __future__ import annotations

import torch


def interpolation_weights(delay: torch.Tensor):
    """k = floor(D) (integer, no gradient) and f = D - k (carries dD)."""
    whole = torch.floor(delay.detach())
    return whole, delay - whole


def delay_kernel(weight: torch.Tensor, delay: torch.Tensor, taps: int) -> torch.Tensor:
    """Causal temporal kernel K[j, i, tau] = W[j, i] * ((1 - f) if tau == k, f if tau == k + 1,
    else 0), for tau = 0..taps-1, returned flipped along tau (index m holds tau = taps-1-m),
    because conv1d is a cross-correlation. Gradients flow to ``weight`` and ``delay``."""
    whole, frac = interpolation_weights(delay)
    lag = torch.arange(taps - 1, -1, -1, device=delay.device, dtype=delay.dtype)
    at_floor = (lag == whole.unsqueeze(-1)).to(weight.dtype)
    at_ceil = (lag == (whole + 1).unsqueeze(-1)).to(weight.dtype)
    return weight.unsqueeze(-1) * ((1 - frac).unsqueeze(-1) * at_floor + frac.unsqueeze(-1) * at_ceil)
