"""Running a layer of AdLIF neurons over time, with backpropagation through time.

Two implementations of the same computation:

- :func:`run_neurons_reference`: a plain per-step loop over ``adlif_float_step`` with the boxcar
  surrogate; autograd records every step. It is the test oracle and the speed baseline.
- :func:`run_neurons`: the fast path. A ``torch.autograd.Function`` whose forward runs the loop
  without recording a graph and keeps only the u, w, s traces, and whose backward is the
  hand-derived reverse-time loop below. On CPU both loops run on numpy views of the torch buffers
  (numpy's per-call overhead is several times smaller than torch's at these sizes); on other
  devices they run the same code on torch tensors.

Shapes: currents and all traces are (batch, time, N); params are (N,); states are (batch, N).
Time is in steps. Gradients flow through spikes with the boxcar surrogate
dS/du = 1[|u - THRESHOLD| < SURROGATE_HALF_WIDTH]; nothing is detached (the reset and the b*s
term carry gradient too, as in SparCH and in the reference).

Backward derivation (the contract for any other kernel, e.g. a GPU one)
-----------------------------------------------------------------------
Forward, for t = 0..T-1, from the initial state (u[-1], w[-1], s[-1]):

    w[t] = beta * w[t-1] + a * u[t-1] + b * s[t-1]
    u[t] = alpha * (u[t-1] - s[t-1]) + (1 - alpha) * (I[t] - w[t])
    s[t] = H(u[t] - 1),          surrogate  sigma[t] = 1[|u[t] - 1| < 0.5]

Write X' for dLoss/dX (total derivative, every later use included) and gs[t], gu[t], gw[t] for
the gradients arriving from outside on the outputs spikes, membrane, adaptation at step t (zero
where not given). Each variable of step t is used by step t's later equations and by step t+1:

    s[t] -> u[t+1] (coefficient -alpha), w[t+1] (coefficient b)
    u[t] -> s[t] (sigma[t]), u[t+1] (alpha), w[t+1] (a)
    w[t] -> u[t] (-(1 - alpha)), w[t+1] (beta)

so, going backwards in time with the carries from step t+1

    carry_s[t] = b * w'[t+1] - alpha * u'[t+1]
    carry_u[t] = a * w'[t+1] + alpha * u'[t+1]
    carry_w[t] = beta * w'[t+1]                  (all carries are 0 at t = T-1)

the adjoints of step t are, in this order (u' needs s', w' needs u' of the same step):

    s'[t] = gs[t] + carry_s[t]
    u'[t] = gu[t] + sigma[t] * s'[t] + carry_u[t]
    w'[t] = gw[t] + carry_w[t] - (1 - alpha) * u'[t]

The loop keeps u'[t] and w'[t] for every t; everything else is one vectorised expression after
the loop (sums over batch and time):

    I'[t]  = (1 - alpha) * u'[t]
    alpha' = sum u'[t] * (u[t-1] - s[t-1] - (I[t] - w[t]))
    beta'  = sum w'[t] * w[t-1]
    a'     = sum w'[t] * u[t-1]
    b'     = sum w'[t] * s[t-1]
    u[-1]' = carry_u[-1],  w[-1]' = carry_w[-1],  s[-1]' = carry_s[-1]

Note that (1 - alpha) * u'[t] is the current's gradient: with alpha = 1 a neuron ignores its input
and gets no input gradient, as it should.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Union

import numpy as np
import torch

from snn_toolchain.constants import ACTIVATION_SHIFT, DECAY_UNITY
from snn_toolchain.neurons.dynamics import (
    SURROGATE_HALF_WIDTH,
    THRESHOLD,
    FixedNeuronParams,
    NeuronParams,
    NeuronState,
    adlif_fixed_step,
    adlif_float_step,
    boxcar_spike,
    numpy_heaviside,
)

INITIAL_STATE_MODES = ("uniform", "zero")


class NeuronTrace(NamedTuple):
    """Everything a layer did over time; each field (batch, time, N)."""

    spikes: torch.Tensor
    membrane: torch.Tensor
    adaptation: torch.Tensor

    def final_state(self) -> NeuronState:
        """The state after the last step, to continue a run in another call."""
        return NeuronState(self.membrane[:, -1], self.adaptation[:, -1], self.spikes[:, -1])


def initial_state(
    batch: int,
    n: int,
    mode: str,
    generator: Optional[torch.Generator] = None,
    device: Union[str, torch.device, None] = None,
    dtype: Optional[torch.dtype] = None,
) -> NeuronState:
    """The state before the first time step, each field (batch, n).

    mode "uniform": u and w drawn independently from U[0, 1), s = 0. The paper's training
        initialisation; it keeps neurons from starting in lock-step. ``generator`` makes it
        reproducible (it must live on ``device``).
    mode "zero": u = w = s = 0. Used in evaluation and deployment, because Lava's neurons start
        from zero, so evaluating from zero measures what the chip will do.
    """
    if mode not in INITIAL_STATE_MODES:
        raise ValueError(f"unknown initial state mode {mode!r}; choose one of {', '.join(INITIAL_STATE_MODES)}")
    dtype = dtype or torch.get_default_dtype()
    spikes = torch.zeros(batch, n, device=device, dtype=dtype)
    if mode == "zero":
        return NeuronState(torch.zeros_like(spikes), torch.zeros_like(spikes), spikes)
    membrane = torch.rand(batch, n, generator=generator, device=device, dtype=dtype)
    adaptation = torch.rand(batch, n, generator=generator, device=device, dtype=dtype)
    return NeuronState(membrane, adaptation, spikes)


def run_neurons_reference(
    currents: torch.Tensor, params: NeuronParams, init_state: NeuronState, return_trace: bool = False
) -> Union[torch.Tensor, NeuronTrace]:
    """Oracle: step ``adlif_float_step`` (boxcar surrogate) over time; autograd does the backward.

    currents: (batch, time, N) input current per step. Returns the spikes (batch, time, N), or with
    ``return_trace`` a NeuronTrace of spikes, membrane and adaptation.
    """
    state = init_state
    spikes, membrane, adaptation = [], [], []
    for t in range(currents.shape[1]):
        state = adlif_float_step(params, state, currents[:, t], boxcar_spike)
        spikes.append(state.s)
        membrane.append(state.u)
        adaptation.append(state.w)
    if not return_trace:
        return torch.stack(spikes, dim=1)
    return NeuronTrace(torch.stack(spikes, dim=1), torch.stack(membrane, dim=1), torch.stack(adaptation, dim=1))


# --------------------------------------------------------------------------------------------
# Fast path
# --------------------------------------------------------------------------------------------

def _forward_loop(spike_fn, current, params, u_buf, w_buf, s_buf):
    """Fill u_buf[1:], w_buf[1:], s_buf[1:] (time-major, (T+1, B, N); index 0 holds the initial
    state) by calling ``adlif_float_step`` itself, so the fast forward cannot drift from the
    definition. Works on numpy arrays and torch tensors alike."""
    state = NeuronState(u_buf[0], w_buf[0], s_buf[0])
    for t in range(current.shape[0]):
        state = adlif_float_step(params, state, current[t], spike_fn)
        u_buf[t + 1], w_buf[t + 1], s_buf[t + 1] = state


def _backward_loop(xp, surrogate, grad_s, grad_u, grad_w, alpha, beta, a, b, one_minus_alpha,
                   u_adj, w_adj, carry_u, carry_w, carry_s, s_adj, alpha_u_adj):
    """Reverse-time loop of the module docstring: fills u_adj[t], w_adj[t] (time-major (T, B, N))
    and leaves the carries holding the adjoints of the initial state. grad_* may be None."""
    for t in range(u_adj.shape[0] - 1, -1, -1):
        if grad_s is not None:
            xp.add(grad_s[t], carry_s, out=s_adj)
            spike_adj = s_adj
        else:
            spike_adj = carry_s
        ua, wa = u_adj[t], w_adj[t]
        xp.multiply(surrogate[t], spike_adj, out=ua)
        xp.add(ua, carry_u, out=ua)
        if grad_u is not None:
            xp.add(ua, grad_u[t], out=ua)
        xp.multiply(one_minus_alpha, ua, out=wa)
        xp.subtract(carry_w, wa, out=wa)
        if grad_w is not None:
            xp.add(wa, grad_w[t], out=wa)
        xp.multiply(alpha, ua, out=alpha_u_adj)
        xp.multiply(a, wa, out=carry_u)
        xp.add(carry_u, alpha_u_adj, out=carry_u)
        xp.multiply(b, wa, out=carry_s)
        xp.subtract(carry_s, alpha_u_adj, out=carry_s)
        xp.multiply(beta, wa, out=carry_w)


def _strict_heaviside(x: torch.Tensor) -> torch.Tensor:
    return (x > 0).to(x.dtype)


def _use_numpy(tensor: torch.Tensor) -> bool:
    return tensor.device.type == "cpu" and tensor.dtype in (torch.float32, torch.float64)


def _as_loop_operand(tensor, use_numpy: bool):
    if tensor is None:
        return None
    tensor = tensor.detach()
    return tensor.numpy() if use_numpy else tensor


def finish_forward(ctx, initial_state, u_buf, w_buf, s_buf):
    """The end of every recurrence's forward (CPU here, Triton in gpu_recurrence.py): remember the
    initial state's shapes for the backward and return spikes, membrane, adaptation (batch, time, N)
    as views of the time-major (time + 1, batch, N) buffers, without copying. Autograd refuses
    in-place changes to them."""
    ctx.initial_shapes = tuple(x.shape for x in initial_state)
    ctx.set_materialize_grads(False)
    return s_buf[1:].transpose(0, 1), u_buf[1:].transpose(0, 1), w_buf[1:].transpose(0, 1)


class _AdlifRecurrence(torch.autograd.Function):
    """Fast BPTT for a layer of AdLIF neurons; see the module docstring for the math."""

    @staticmethod
    def forward(ctx, currents, alpha, beta, a, b, u0, w0, s0):
        batch, steps, n = currents.shape
        options = dict(device=currents.device, dtype=currents.dtype)
        # Time-major buffers: every step reads and writes contiguous (batch, N) slices.
        current_tm = currents.detach().transpose(0, 1).contiguous()
        u_buf = torch.empty(steps + 1, batch, n, **options)
        w_buf = torch.empty(steps + 1, batch, n, **options)
        s_buf = torch.empty(steps + 1, batch, n, **options)
        u_buf[0], w_buf[0], s_buf[0] = u0.detach(), w0.detach(), s0.detach()
        one_minus_alpha = 1 - alpha.detach()
        use_numpy = _use_numpy(currents)
        spike_fn = numpy_heaviside if use_numpy else _strict_heaviside
        current_op, u_op, w_op, s_op = (_as_loop_operand(x, use_numpy) for x in (current_tm, u_buf, w_buf, s_buf))
        params = NeuronParams(*(_as_loop_operand(p, use_numpy) for p in (alpha, beta, a, b)))
        _forward_loop(spike_fn, current_op, params, u_op, w_op, s_op)

        ctx.save_for_backward(current_tm, alpha, beta, a, b, one_minus_alpha, u_buf, w_buf, s_buf)
        return finish_forward(ctx, (u0, w0, s0), u_buf, w_buf, s_buf)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_spikes, grad_membrane, grad_adaptation):
        current_tm, alpha, beta, a, b, one_minus_alpha, u_buf, w_buf, s_buf = ctx.saved_tensors
        steps, batch, n = current_tm.shape
        options = dict(device=current_tm.device, dtype=current_tm.dtype)
        if grad_spikes is None and grad_membrane is None and grad_adaptation is None:
            return (None,) * 8

        membrane = u_buf[1:]
        surrogate = ((membrane - THRESHOLD).abs_() < SURROGATE_HALF_WIDTH).to(current_tm.dtype)
        time_major = [None if g is None else g.transpose(0, 1).contiguous()
                      for g in (grad_spikes, grad_membrane, grad_adaptation)]
        u_adj = torch.empty(steps, batch, n, **options)
        w_adj = torch.empty(steps, batch, n, **options)
        carry_u = torch.zeros(batch, n, **options)
        carry_w = torch.zeros(batch, n, **options)
        carry_s = torch.zeros(batch, n, **options)
        s_adj = torch.empty(batch, n, **options)
        alpha_u_adj = torch.empty(batch, n, **options)
        use_numpy = _use_numpy(current_tm)
        xp = np if use_numpy else torch
        operands = [_as_loop_operand(x, use_numpy) for x in
                    (surrogate, *time_major, alpha, beta, a, b, one_minus_alpha,
                     u_adj, w_adj, carry_u, carry_w, carry_s, s_adj, alpha_u_adj)]
        _backward_loop(xp, *operands)

        needs = ctx.needs_input_grad
        grad_currents = (one_minus_alpha * u_adj).transpose(0, 1) if needs[0] else None

        def reduce_to(value, like):
            return value.sum_to_size(like.shape)

        u_prev, w_prev, s_prev = u_buf[:-1], w_buf[:-1], s_buf[:-1]
        grad_alpha = grad_beta = grad_a = grad_b = None
        if needs[1]:
            # u[t-1] - s[t-1] - (I[t] - w[t])
            leak_minus_drive = (u_prev - s_prev).sub_(current_tm).add_(w_buf[1:])
            grad_alpha = reduce_to((u_adj * leak_minus_drive).sum(0), alpha)
        if needs[2]:
            grad_beta = reduce_to((w_adj * w_prev).sum(0), beta)
        if needs[3]:
            grad_a = reduce_to((w_adj * u_prev).sum(0), a)
        if needs[4]:
            grad_b = reduce_to((w_adj * s_prev).sum(0), b)
        u0_shape, w0_shape, s0_shape = ctx.initial_shapes
        grad_u0 = carry_u.sum_to_size(u0_shape) if needs[5] else None
        grad_w0 = carry_w.sum_to_size(w0_shape) if needs[6] else None
        grad_s0 = carry_s.sum_to_size(s0_shape) if needs[7] else None
        return grad_currents, grad_alpha, grad_beta, grad_a, grad_b, grad_u0, grad_w0, grad_s0


class _DeployedAdlifRecurrence(_AdlifRecurrence):
    """A layer in the deployed arithmetic that trains: the forward is ``adlif_fixed_step`` on the
    deployed integers (int64, from zero), exactly what Lava computes; the backward is the float
    recurrence's (the module docstring) evaluated on that trajectory in threshold units, i.e. every
    truncation and rounding of the fixed-point step passes its gradient straight through."""

    @staticmethod
    def forward(ctx, currents, alpha, beta, a, b, u0, w0, s0, fixed_params, synaptic_input):
        batch, steps, n = currents.shape
        on_cpu = currents.device.type == "cpu"

        def integers(x):
            x = torch.round(x.detach()).to(torch.int64)
            return x.numpy() if on_cpu else x

        params = FixedNeuronParams(*(integers(p) for p in fixed_params))
        inputs = integers(synaptic_input.transpose(0, 1))          # time-major
        zeros = inputs[0] * 0
        state = NeuronState(zeros, zeros, zeros)
        traces = []
        for t in range(steps):
            state = adlif_fixed_step(params, state, inputs[t])
            traces.append(state)
        stack = np.stack if on_cpu else torch.stack
        u, w, s = (torch.as_tensor(stack([getattr(x, f) for x in traces])) for f in ("u", "w", "s"))
        options = dict(device=currents.device, dtype=currents.dtype)
        threshold = fixed_params.threshold.detach().to(**options)
        u_buf = torch.zeros(steps + 1, batch, n, **options)
        w_buf, s_buf = torch.zeros_like(u_buf), torch.zeros_like(u_buf)
        u_buf[1:] = u.to(**options) / threshold          # threshold units, as the float recurrence
        w_buf[1:] = w.to(**options) / threshold
        s_buf[1:] = s.to(**options)
        current_tm = currents.detach().transpose(0, 1).contiguous()
        ctx.save_for_backward(current_tm, alpha, beta, a, b, 1 - alpha.detach(), u_buf, w_buf, s_buf)
        return finish_forward(ctx, (u0, w0, s0), u_buf, w_buf, s_buf)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_spikes, grad_membrane, grad_adaptation):
        return (*_AdlifRecurrence.backward(ctx, grad_spikes, grad_membrane, grad_adaptation), None, None)


def run_deployed_adlif(fixed_params: FixedNeuronParams, synaptic_input: torch.Tensor) -> torch.Tensor:
    """Spikes (batch, steps, n) of a layer of AdLIF neurons in the deployed arithmetic, from a zero
    state, with gradients: ``fixed_params`` and ``synaptic_input`` are float64 tensors holding the
    deployed whole numbers (``train/model/deployed.py``), with straight-through gradients to the trained
    parameters. Equal in value to ``deployed.run_fixed_point`` (tested); much faster to train through
    than the step-by-step autograd graph, because the backward is the hand-derived float one."""
    threshold = fixed_params.threshold
    scale = float(1 << ACTIVATION_SHIFT)
    current = (synaptic_input + fixed_params.bias) * scale / threshold        # threshold units
    fractions = NeuronParams(fixed_params.alpha / DECAY_UNITY, fixed_params.beta / DECAY_UNITY,
                             fixed_params.a / DECAY_UNITY, fixed_params.b / threshold)
    zeros = torch.zeros(current.shape[0], current.shape[2], dtype=current.dtype, device=current.device)
    spikes, _, _ = _DeployedAdlifRecurrence.apply(current, *fractions, zeros, zeros, zeros, fixed_params,
                                                  synaptic_input)
    return spikes


# Faster recurrences for other devices register here, so that this module needs none of them:
# train/model/gpu_recurrence.py registers its fused Triton kernels when it is imported
# (train/model/adlif_blocks.py imports it). Each entry maps a device to an autograd Function with
# _AdlifRecurrence's contract, or None.
_DEVICE_RECURRENCES: list = []


def register_device_recurrence(choose) -> None:
    """Add ``choose(device) -> autograd Function | None`` to the recurrences ``run_neurons`` tries
    on a device other than the CPU (first answer wins)."""
    _DEVICE_RECURRENCES.append(choose)


def device_recurrence(device: torch.device):
    """The registered recurrence for ``device``, None for the CPU/torch loop."""
    if torch.device(device).type == "cpu":
        return None
    return next((found for found in (choose(device) for choose in _DEVICE_RECURRENCES) if found is not None), None)


def run_neurons(
    currents: torch.Tensor, params: NeuronParams, init_state: NeuronState, return_trace: bool = False,
    recurrence=None,
) -> Union[torch.Tensor, NeuronTrace]:
    """Fast equivalent of :func:`run_neurons_reference` (same arguments, same results, same
    surrogate gradients), with the hand-derived backward of the module docstring.

    currents: (batch, time, N) input current per step; params: NeuronParams of (N,) tensors;
    init_state: NeuronState of (batch, N) tensors (see :func:`initial_state`). All must share
    device and dtype. Returns the spikes (batch, time, N), or with ``return_trace`` a NeuronTrace
    (gradients flow through all three traces). The returned tensors are views of internal
    time-major buffers: non-contiguous, and autograd refuses in-place changes to them.
    ``recurrence`` forces an implementation (an autograd Function with this module's contract);
    by default the Triton kernels on CUDA where they are available, the CPU/torch loop elsewhere.
    """
    if currents.dim() != 3:
        raise ValueError(f"currents must be (batch, time, N), got shape {tuple(currents.shape)}")
    options = dict(device=currents.device, dtype=currents.dtype)
    alpha, beta, a, b = (x if torch.is_tensor(x) else torch.as_tensor(x, **options) for x in params)
    state_shape = (currents.shape[0], currents.shape[2])
    u0, w0, s0 = (torch.broadcast_to(x if torch.is_tensor(x) else torch.as_tensor(x, **options), state_shape)
                  for x in init_state)
    for name, value in zip(("alpha", "beta", "a", "b", "u", "w", "s"), (alpha, beta, a, b, u0, w0, s0)):
        if value.dtype != currents.dtype or value.device != currents.device:
            raise ValueError(f"{name} is {value.dtype} on {value.device} but the currents are "
                             f"{currents.dtype} on {currents.device}; give all of them the same dtype and device")
    if recurrence is None:
        recurrence = device_recurrence(currents.device)
    spikes, membrane, adaptation = (recurrence or _AdlifRecurrence).apply(currents, alpha, beta, a, b, u0, w0, s0)
    if not return_trace:
        return spikes
    return NeuronTrace(spikes, membrane, adaptation)
