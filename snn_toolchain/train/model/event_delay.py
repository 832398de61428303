"""Event-driven delayed dense connection for the CPU: the work follows the input's spikes.

The same computation as :func:`snn_toolchain.train.model.synapse.delayed_dense` (its docstring has the
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

The kernel is one Numba loop over the events, used both ways (scatter forward, gather backward),
compiled on first use and cached next to this file. Its parallel loop is over samples, each with
its own output rows (the backward's per-sample sums are merged afterwards), so every sum has one
fixed order: results do not depend on the thread count, and resuming a run stays bit-for-bit.
:func:`supports` says whether a tensor can take this path (Numba importable, float32/float64 on
the CPU); elsewhere the caller keeps the convolution.

Shapes: x (batch, time, in), weight and delay (out, in), delays in time steps (>= 0, fractional
allowed), bias (out,) or None; the output is (batch, time, out) and has x's dtype (float32 or
float64). Time steps past the end are dropped, as in the convolution.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Optional

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from snn_toolchain.train.model.delay_taps import delay_kernel, interpolation_weights

try:  # a dependency; on a platform without Numba wheels the CPU path keeps the convolution
    import numba
    from numba import prange
except ImportError:  # pragma: no cover - exercised only where numba is absent
    numba = None
else:
    # Numba's OpenMP layer shares torch's libgomp and resets its thread count when it starts, which
    # undid torch.set_num_threads(1) in each `sweep --parallel` worker (measured: epochs 30x slower,
    # OpenMP threads spinning on cores that belonged to the other run). The workqueue layer has its
    # own threads. An explicit NUMBA_THREADING_LAYER still wins.
    if "NUMBA_THREADING_LAYER" not in os.environ:
        numba.config.THREADING_LAYER = "workqueue"

# Above this share of nonzero inputs the dense convolution's BLAS kernels win. Measured with
# benchmarks/bench_event_delay.py on a 2-core x86-64 CPU for the SHD preset's layers (batch 32,
# 125 steps, delays up to 25): events are 1.1-1.2x faster at 20% nonzeros, 0.8-0.9x at 30%.
# Samples of graded features (GSC's log-mel filterbanks) are dense and keep the convolution.
EVENT_DENSITY_LIMIT = 0.2


if numba is not None:
    @numba.njit(parallel=True, cache=True, nogil=True)
    def _visit_event_taps(x, whole, floor_taps, ceil_taps, signal, gather):
        """Every input event x[b, t, i] != 0 meets, for each output j, the two taps of its synapse
        at steps t + k and t + k + 1 (``whole`` holds k, (in, out)):

        - ``gather`` 0 (forward): signal[b, t + k, j] += x * floor_taps[0, i, j], and
          ceil_taps likewise at t + k + 1; the taps are the synapses' weight shares, (1, in, out).
        - ``gather`` 1 (backward): floor_taps[b, i, j] += x * signal[b, t + k, j], and ceil_taps
          likewise; ``signal`` is the output gradient and the taps are one row of sums per sample
          (batch, in, out), merged by the caller.

        The parallel loop is over samples and nothing is shared between them, so every sum has one
        fixed order whatever the number of threads."""
        batch, steps, n_in = x.shape
        n_out = whole.shape[1]
        for b in prange(batch):
            own = b * gather   # the forward's taps have one row, the backward's one per sample
            for t in range(steps):
                for i in range(n_in):
                    value = x[b, t, i]
                    if value == 0:
                        continue
                    for j in range(n_out):
                        target = t + whole[i, j]
                        if target >= steps:
                            continue
                        if gather:
                            floor_taps[own, i, j] += value * signal[b, target, j]
                        else:
                            signal[b, target, j] += value * floor_taps[own, i, j]
                        if target + 1 < steps:
                            if gather:
                                ceil_taps[own, i, j] += value * signal[b, target + 1, j]
                            else:
                                signal[b, target + 1, j] += value * ceil_taps[own, i, j]


# Numba's workqueue layer aborts the process when two threads launch parallel loops at once; the
# convolution this path replaces is thread-safe, so threaded callers take turns here.
_KERNEL_LOCK = threading.Lock()


def _run_kernel(*arrays_and_mode) -> None:
    with _KERNEL_LOCK:
        _match_torch_threads()
        _visit_event_taps(*arrays_and_mode)


def _numpy(tensor: torch.Tensor):
    return tensor.detach().contiguous().numpy()


class _EventDelayedDense(torch.autograd.Function):
    """x, weight, delay -> the delayed synaptic current; the bias is added outside (autograd)."""

    @staticmethod
    def forward(ctx, x, weight, delay):
        whole, frac = interpolation_weights(delay.detach())
        weight = weight.detach()
        out = torch.zeros(x.shape[0], x.shape[1], weight.shape[0], dtype=x.dtype)
        whole_by_input = whole.t().to(torch.int64).contiguous()
        shares = [_numpy((weight * share).t().unsqueeze(0)) for share in (1 - frac, frac)]
        _run_kernel(_numpy(x), whole_by_input.numpy(), *shares, out.numpy(), 0)
        ctx.save_for_backward(x, weight, whole, frac, whole_by_input)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x, weight, whole, frac, whole_by_input = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grad_x = grad_weight = grad_delay = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            per_sample = [torch.zeros(x.shape[0], weight.shape[1], weight.shape[0], dtype=grad_out.dtype)
                          for _ in range(2)]
            _run_kernel(_numpy(x), whole_by_input.numpy(), per_sample[0].numpy(), per_sample[1].numpy(),
                        _numpy(grad_out), 1)
            at_floor, at_ceil = (sums.sum(0).t() for sums in per_sample)
            if ctx.needs_input_grad[1]:
                grad_weight = (1 - frac) * at_floor + frac * at_ceil
            if ctx.needs_input_grad[2]:
                grad_delay = weight * (at_ceil - at_floor)
        if ctx.needs_input_grad[0]:
            grad_x = _input_gradient(grad_out, weight, whole, frac)
        return grad_x, grad_weight, grad_delay


def _input_gradient(grad_out: torch.Tensor, weight: torch.Tensor, whole: torch.Tensor, frac: torch.Tensor):
    """dL/dx[b, t, i] = sum_j W[j, i] ((1 - f) g[b, t + k, j] + f g[b, t + k + 1, j]): a
    cross-correlation of the output gradient with the two-tap kernel (unflipped), transposed."""
    taps = int(whole.max().item()) + 2
    kernel = delay_kernel(weight, whole + frac, taps).flip(-1)   # K[j, i, tau], tau = 0 .. taps - 1
    # (batch, out, time), right-padded: input step t reaches outputs t .. t + taps - 1
    padded = F.pad(grad_out.transpose(1, 2), (0, taps - 1))
    return F.conv1d(padded, kernel.transpose(0, 1).to(grad_out.dtype)).transpose(1, 2)


def supports(x: torch.Tensor) -> bool:
    """True when the kernels can take ``x``: Numba is there, and ``x`` is a float32 or float64
    tensor on the CPU (other devices and dtypes keep the convolution or the GEMM)."""
    return numba is not None and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


def event_delayed_dense(x: torch.Tensor, weight: torch.Tensor, delay: torch.Tensor,
                        bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The delayed dense connection, event-driven (module docstring); float32/float64 CPU tensors.
    Gradients flow to ``x``, ``weight``, ``delay`` and ``bias`` as each requires (once: no
    double backward). Delays must be finite and >= 0 time steps: the kernel indexes with them."""
    if numba is None:
        raise RuntimeError("the event-driven delay path needs numba (pip install numba)")
    if not supports(x):
        raise TypeError(f"event_delayed_dense takes float32 or float64 CPU inputs, got {x.dtype} on {x.device}; "
                        "use method='conv' (or 'gemm' on CUDA)")
    with torch.no_grad():
        smallest = delay.min().item() if delay.numel() else 0.0
        if not (math.isfinite(smallest) and bool(torch.isfinite(delay).all())) or smallest < 0:
            raise ValueError(f"delays must be finite and >= 0 time steps, got a minimum of {smallest}; "
                             "clamp them first (DelayedDense.clamp_)")
    if weight.dtype != x.dtype:
        weight = weight.to(x.dtype)
    out = _EventDelayedDense.apply(x, weight, delay.to(x.dtype))
    return out if bias is None else out + bias


def _match_torch_threads() -> None:
    """Run the kernels on as many threads as torch uses: a caller that shares the cores (``sweep
    --parallel``, DDP ranks) sets ``torch.set_num_threads`` once, and the static split of a Numba
    parallel loop would otherwise wait on threads that have no core (measured here: 45 s
    epochs instead of 1.5 s, with two such processes of 2+2 threads on 2 cores)."""
    threads = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != threads:
        numba.set_num_threads(threads)


def input_density(x: torch.Tensor) -> float:
    """The share of nonzero entries of ``x`` (what the event path's cost is proportional to)."""
    return torch.count_nonzero(x).item() / max(x.numel(), 1)
