"""Dense connection with a trainable delay on every synapse.

    I[b, t, j] = sum_i W[j, i] * x[b, t - D[j, i], i] + bias[j],    x[b, t, i] = 0 for t < 0

Delays D are in time steps. During training they are real numbers and the delayed input is the
linear interpolation between the two neighbouring integer shifts:

    x(t - D) = (1 - f) * x[t - k] + f * x[t - k - 1],    k = floor(D), f = D - k

so dI/dD[j, i] = W[j, i] * (x[t - k - 1] - x[t - k]): minus the temporal derivative of the
shifted input, times the weight -- SLAYER's delay gradient. At an integer delay (f = 0, which is
where every delay starts) this is the right-sided derivative, so a delay of 0 can still grow.
Delays are piecewise linear in D, with kinks at the integers.

In evaluation (``module.training == False``) delays are rounded to integers with ``torch.round``
(halves go to the even neighbour), exactly like :meth:`DelayedDense.integer_delays`, which is
what gets exported: what we evaluate is what we deploy.

Output has the same number of time steps as the input: spikes delayed past the end are dropped
(the data pipeline right-pads every sample by the maximum delay for that reason).
"""

from __future__ import annotations

import math

from typing import Optional

import torch
import torch.nn.functional as F

from snn_toolchain.constants import TRAIN_MAX_DELAY
from snn_toolchain.train.model import event_delay
from snn_toolchain.train.model.delay_taps import delay_kernel, interpolation_weights


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """``round(x)`` (halves to even) whose gradient is the identity (straight-through): training sees
    the rounded value and still moves the underlying float. The value is exactly the rounded number:
    ``x + (round(x) - x)`` is exact in IEEE arithmetic (Sterbenz's lemma)."""
    return x + (torch.round(x) - x).detach() if x.requires_grad else torch.round(x)


def delay_by_steps(x: torch.Tensor, steps: int) -> torch.Tensor:
    """``x`` (batch, time, channels) delayed by ``steps`` whole steps: zeros first, the last steps
    dropped (the time axis keeps its length)."""
    return F.pad(x, (0, 0, steps, 0))[:, :x.shape[1]]


def delayed_dense(
    x: torch.Tensor, weight: torch.Tensor, delay: torch.Tensor, bias: Optional[torch.Tensor] = None,
    taps: Optional[int] = None, method: str = "auto",
) -> torch.Tensor:
    """Fast delayed dense connection: the event-driven kernels of ``event_delay`` on spiking CPU
    inputs, else a causal temporal convolution with the kernel of :func:`delay_kernel` (``method``).

    x: (batch, time, in); weight, delay: (out, in), delay in time steps, >= 0 (fractional allowed);
    bias: (out,) or None. Returns (batch, time, out), possibly a non-contiguous view.

    ``taps`` (kernel length in steps; not used by "events") may be given by a caller that knows every delay is within
    ``[0, taps - 2]``, e.g. ``max_delay + 2``; then nothing is read back from the device. Otherwise
    the kernel is only as long as the largest delay needs (one host sync to find it), so small
    delays early in training cost little. With every delay 0 and no delay gradient wanted, it is a
    plain ``F.linear``. When ``delay`` needs a gradient, the tap after each floor is kept even at
    f = 0 so that the right-sided delay gradient exists.

    ``method``:

    - "events" (CPU): the event-driven kernels of :mod:`snn_toolchain.train.model.event_delay`, whose
      cost follows the number of nonzero inputs (2 multiply-adds per synapse and input event,
      instead of ``taps`` per synapse and input step);
    - "conv": ``F.conv1d``;
    - "gemm": one GEMM over the unfolded time windows (``(batch*time, in*taps) @ (in*taps, out)``):
      cuDNN picks FFT algorithms for this convolution's backward that took 13 ms of a 20 ms
      training step on an H200, against well under a millisecond for the GEMM;
    - "auto": "gemm" on CUDA; on the CPU "events" when Numba is installed and at most
      ``event_delay.EVENT_DENSITY_LIMIT`` of the inputs are nonzero (spikes), else "conv"
      (graded, dense inputs).
    """
    if method not in ("auto", "conv", "gemm", "events"):
        raise ValueError(f"unknown method {method!r}; choose auto, conv, gemm or events")
    needs_delay_grad = delay.requires_grad and torch.is_grad_enabled()
    if taps is None:
        with torch.no_grad():
            largest, smallest = torch.stack([delay.max(), delay.min()]).tolist()
        if smallest < 0:
            raise ValueError(f"delays must be >= 0 time steps, got {smallest}; clamp them first (DelayedDense.clamp_)")
        floor_max, ceil_max = math.floor(largest), math.ceil(largest)
        taps = floor_max + 2 if needs_delay_grad else ceil_max + 1
        if taps <= 1:
            return F.linear(x, weight, bias)
    if method == "auto" and event_delay.supports(x):
        method = "events" if event_delay.input_density(x) <= event_delay.EVENT_DENSITY_LIMIT else "conv"
    if method == "events":
        return event_delay.event_delayed_dense(x, weight, delay, bias)
    kernel = delay_kernel(weight, delay, taps)
    if method == "gemm" or (method == "auto" and x.is_cuda):
        batch, steps, n_in = x.shape
        # windows[b, t, i, l] = x[b, t + l - (taps - 1), i]: the conv1d cross-correlation as a GEMM
        windows = F.pad(x, (0, 0, taps - 1, 0)).unfold(1, taps, 1)
        return F.linear(windows.reshape(batch, steps, n_in * taps), kernel.reshape(kernel.shape[0], -1), bias)
    # (batch, in, time), left-padded so that output step t only sees inputs at t - taps + 1 .. t
    padded = F.pad(x.transpose(1, 2), (taps - 1, 0))
    return F.conv1d(padded, kernel, bias).transpose(1, 2)


def reference_delayed_dense(
    x: torch.Tensor, weight: torch.Tensor, delay: torch.Tensor, bias: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Oracle for :func:`delayed_dense`: explicit time shifts, one matmul per integer shift.

    For every integer shift s, the synapses whose delay has k == s contribute (1 - f) * W of the
    input shifted by s steps, and those with k + 1 == s contribute f * W. No convolution; autograd
    provides the gradients (f = D - floor(D) carries dD). Shapes as in :func:`delayed_dense`.
    """
    steps = x.shape[1]
    whole, frac = interpolation_weights(delay)
    output = torch.zeros(x.shape[0], steps, weight.shape[0], device=x.device, dtype=x.dtype)
    largest_shift = int(whole.max().item()) + 1 if delay.numel() else 0
    for shift in range(min(largest_shift, steps - 1) + 1):
        # x[t - shift], zero before t = 0
        shifted = F.pad(x[:, : steps - shift], (0, 0, shift, 0))
        share = (whole == shift).to(x.dtype) * (1 - frac) + (whole + 1 == shift).to(x.dtype) * frac
        output = output + shifted @ (weight * share).t()
    if bias is not None:
        output = output + bias
    return output


class DelayedDense(torch.nn.Module):
    """Dense layer with a weight and a delay (in time steps) on every synapse.

    Parameters: ``weight`` (out, in), Xavier-uniform; ``delay`` (out, in), starts at 0 -- a
    Parameter when ``learn_delays``, else a buffer (fixed, 0 unless loaded from a checkpoint; the
    state-dict key is "delay" either way); ``bias`` (out,), starts at 0, or None.

    forward(x): x (batch, time, in) -> (batch, time, out). In training mode the delays used are
    clamp(delay, 0, max_delay) with interpolation (the clamp passes gradient on the bounds
    themselves); in eval mode they are rounded to integers. Call :meth:`clamp_` after every
    optimizer step.
    """

    def __init__(self, in_features: int, out_features: int, max_delay: int = TRAIN_MAX_DELAY,
                 learn_delays: bool = True, bias: bool = True):
        super().__init__()
        if int(max_delay) != max_delay or max_delay < 0:
            raise ValueError(f"max_delay must be a whole number of time steps >= 0, got {max_delay!r}")
        self.in_features = in_features
        self.out_features = out_features
        self.max_delay = int(max_delay)
        self.learn_delays = learn_delays
        self.weight = torch.nn.Parameter(torch.empty(out_features, in_features))
        torch.nn.init.xavier_uniform_(self.weight)
        delay = torch.zeros(out_features, in_features)
        if learn_delays:
            self.delay = torch.nn.Parameter(delay)
        else:
            self.register_buffer("delay", delay)
        self.bias = torch.nn.Parameter(torch.zeros(out_features)) if bias else None
        # steps every input arrives late besides its delay: Lava's synapses add one
        # (constants.SYNAPSE_LATENCY_STEPS); the model sets it (DelaySNN(latency=...))
        self.latency = 0
        # training forward on rounded delays with straight-through gradients (--delay-rounding-epochs)
        self.round_delays_in_training = False
        # evaluation on rounded delays (what is deployed); off only to measure what rounding costs
        self.round_delays_in_eval = True

    def effective_delays(self) -> torch.Tensor:
        """The delays forward uses: clamped (training) or clamped and rounded (evaluation)."""
        delay = self.delay.clamp(0, self.max_delay)
        if self.training:
            return ste_round(delay) if self.round_delays_in_training else delay
        return torch.round(delay) if self.round_delays_in_eval else delay

    def forward(self, x: torch.Tensor, include_bias: bool = True) -> torch.Tensor:
        """(batch, time, in) -> (batch, time, out); ``include_bias=False`` leaves the bias out (the
        summing readout adds it once per input step, not per run step)."""
        # On a GPU the kernel length is fixed by max_delay (delays are clamped into it), so the
        # forward never waits for the device to report the largest delay.
        taps = self.max_delay + 2 if x.is_cuda and self.max_delay > 0 else None
        if self.latency:
            x = delay_by_steps(x, self.latency)
        return delayed_dense(x, self.weight, self.effective_delays(), self.bias if include_bias else None, taps=taps)

    @torch.no_grad()
    def clamp_(self) -> "DelayedDense":
        """Clip the stored delays to [0, max_delay] in place."""
        self.delay.clamp_(0, self.max_delay)
        return self

    @torch.no_grad()
    def rounded_delays(self) -> torch.Tensor:
        """The delays that get exported, in steps: clamped and rounded like eval mode, still float
        (out, in), so that a NaN stays a NaN for the quantizer to name."""
        return torch.round(self.delay.clamp(0, self.max_delay))

    def integer_delays(self) -> torch.Tensor:
        """:meth:`rounded_delays` as int64 (out, in)."""
        return self.rounded_delays().to(torch.int64)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"max_delay={self.max_delay}, learn_delays={self.learn_delays}, bias={self.bias is not None}")
