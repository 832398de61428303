"""Event-driven delayed dense connection for the CPU: the work follows the input's spikes.

The same computation as :func:`snn_toolchain.train.synapse.delayed_dense` (its docstring has the
equations), organised around the nonzero inputs instead of a dense convolution:

    for every input event x[b, t, i] != 0 and every output j, with k = floor(D[j, i]), f = D - k:
        I[b, t + k,     j] += x * W[j, i] * (1 - f)
        I[b, t + k + 1, j] += x * W[j, i] * f

A dense causal convolution spends ``taps`` multiply-adds per synapse and input step (27 for the
SHD preset's delays of up to 25 steps), although only 2 taps of each synapse's kernel are nonzero,
and most inputs are 0 (2% of the embedded set's binned inputs, about 3% of a trained network's
hidden spikes). Here a step costs 2 multiply-adds per synapse and input *event*.

The backward pass splits the same way:

- weight and delay gradients are sums over input events (``A`` at the floor tap, ``B`` at the
  ceiling tap): dL/dW = (1 - f) A + f B, dL/dD = W (B - A), the right-sided delay derivative of
  SLAYER's delay gradient (also at f = 0, so a delay of 0 can grow);
- the input gradient is dense in (batch, time, input) whatever the sparsity, so it stays a
  convolution (torch's, with the transposed kernel), and only for inputs that need it (the second
  hidden layer's spikes, never the data).

Kernels are Numba loops, compiled on first use and cached next to this file. Each parallel loop
owns its output rows (forward: a batch sample; backward: an input channel), so the sums are
accumulated in one fixed order: results do not depend on the thread count, and resuming a run
stays bit-for-bit. :func:`available` says whether Numba could be imported; without it the caller
keeps the convolution.

Shapes: x (batch, time, in), weight and delay (out, in), delays in time steps (>= 0, fractional
allowed), bias (out,) or None; the output is (batch, time, out) and has x's dtype (float32 or
float64). Time steps past the end are dropped, as in the convolution.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

try:  # Numba is optional: without it the CPU path keeps the dense convolution
    import numba
    from numba import prange
except ImportError:  # pragma: no cover - exercised only where numba is absent
    numba = None

# Above this share of nonzero inputs the dense convolution's BLAS kernels win. Measured with
# benchmarks/bench_event_delay.py on a 2-core x86-64 CPU for the SHD preset's layers (batch 32,
# 125 steps, delays up to 25): events are 1.1-1.2x faster at 20% nonzeros, 0.8-0.9x at 30%.
# Samples of graded features (GSC's log-mel filterbanks) are dense and keep the convolution.
EVENT_DENSITY_LIMIT = 0.2


def available() -> bool:
    """True when the Numba kernels can be used."""
    return numba is not None


if numba is not None:
    @numba.njit(parallel=True, cache=True, nogil=True)
    def _scatter_events(x, whole, weight_floor, weight_ceil, out):
        """out[b, t + k, j] += x[b, t, i] * weight_floor[i, j] (and the ceiling tap at t + k + 1);
        ``whole``, ``weight_floor``, ``weight_ceil`` are (in, out): one input's synapses are contiguous."""
        batch, steps, n_in = x.shape
        n_out = whole.shape[1]
        for b in prange(batch):
            for t in range(steps):
                for i in range(n_in):
                    value = x[b, t, i]
                    if value == 0:
                        continue
                    for j in range(n_out):
                        target = t + whole[i, j]
                        if target < steps:
                            out[b, target, j] += value * weight_floor[i, j]
                            if target + 1 < steps:
                                out[b, target + 1, j] += value * weight_ceil[i, j]

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _gather_events(x_by_input, whole, grad_out, at_floor, at_ceil):
        """at_floor[i, j] = sum over events x[b, t, i] of x * grad_out[b, t + k, j]; at_ceil likewise
        at t + k + 1. ``x_by_input`` is (in, batch, time) so that one input's events are contiguous."""
        n_in, batch, steps = x_by_input.shape
        n_out = whole.shape[1]
        for i in prange(n_in):
            for b in range(batch):
                for t in range(steps):
                    value = x_by_input[i, b, t]
                    if value == 0:
                        continue
                    for j in range(n_out):
                        target = t + whole[i, j]
                        if target < steps:
                            at_floor[i, j] += value * grad_out[b, target, j]
                            if target + 1 < steps:
                                at_ceil[i, j] += value * grad_out[b, target + 1, j]


def _split_delays(delay: torch.Tensor):
    """(k, f): the integer floor of each delay and its fraction, both (out, in), without gradient."""
    whole = torch.floor(delay)
    return whole, delay - whole


def _numpy(tensor: torch.Tensor):
    return tensor.detach().contiguous().numpy()


class _EventDelayedDense(torch.autograd.Function):
    """x, weight, delay -> the delayed synaptic current; the bias is added outside (autograd)."""

    @staticmethod
    def forward(ctx, x, weight, delay):
        whole, frac = _split_delays(delay.detach())
        weight = weight.detach()
        out = torch.zeros(x.shape[0], x.shape[1], weight.shape[0], dtype=x.dtype)
        _scatter_events(_numpy(x), _numpy(whole.t().to(torch.int64)), _numpy((weight * (1 - frac)).t()),
                        _numpy((weight * frac).t()), out.numpy())
        ctx.save_for_backward(x, weight, whole, frac)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, whole, frac = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grad_x = grad_weight = grad_delay = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            at_floor = torch.zeros(weight.shape[1], weight.shape[0], dtype=grad_out.dtype)
            at_ceil = torch.zeros_like(at_floor)
            _gather_events(_numpy(x.permute(2, 0, 1)), _numpy(whole.t().to(torch.int64)), _numpy(grad_out),
                           at_floor.numpy(), at_ceil.numpy())
            at_floor, at_ceil = at_floor.t(), at_ceil.t()
            if ctx.needs_input_grad[1]:
                grad_weight = (1 - frac) * at_floor + frac * at_ceil
            if ctx.needs_input_grad[2]:
                grad_delay = weight * (at_ceil - at_floor)
        if ctx.needs_input_grad[0]:
            grad_x = _input_gradient(grad_out, weight, whole, frac)
        return grad_x, grad_weight, grad_delay


def _input_gradient(grad_out: torch.Tensor, weight: torch.Tensor, whole: torch.Tensor, frac: torch.Tensor):
    """dL/dx[b, t, i] = sum_j W[j, i] ((1 - f) g[b, t + k, j] + f g[b, t + k + 1, j]): a
    cross-correlation of the output gradient with the (unflipped) two-tap kernel, transposed."""
    taps = int(whole.max().item()) + 2
    lag = torch.arange(taps, dtype=whole.dtype)
    kernel = weight.unsqueeze(-1) * ((1 - frac).unsqueeze(-1) * (lag == whole.unsqueeze(-1))
                                     + frac.unsqueeze(-1) * (lag == (whole + 1).unsqueeze(-1)))
    # (batch, out, time), right-padded: input step t reaches outputs t .. t + taps - 1
    padded = F.pad(grad_out.transpose(1, 2), (0, taps - 1))
    return F.conv1d(padded, kernel.transpose(0, 1).to(grad_out.dtype)).transpose(1, 2)


def event_delayed_dense(x: torch.Tensor, weight: torch.Tensor, delay: torch.Tensor,
                        bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The delayed dense connection, event-driven (module docstring); CPU tensors only.
    Gradients flow to ``x``, ``weight``, ``delay`` and ``bias`` as each requires."""
    if numba is None:
        raise RuntimeError("the event-driven delay path needs numba (pip install numba)")
    if x.is_cuda:
        raise ValueError("event_delayed_dense runs on the CPU; CUDA tensors take the GEMM path")
    if weight.dtype != x.dtype:
        weight = weight.to(x.dtype)
    out = _EventDelayedDense.apply(x, weight, delay.to(x.dtype))
    return out if bias is None else out + bias


def input_density(x: torch.Tensor) -> float:
    """The share of nonzero entries of ``x`` (what the event path's cost is proportional to)."""
    return torch.count_nonzero(x).item() / max(x.numel(), 1)
