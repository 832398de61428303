"""GPU fast path of the AdLIF recurrence: fused Triton kernels for the forward and the backward.

What this is
------------
A fused transcription of two things defined elsewhere, and nothing else:

- the forward is ``adlif_float_step`` of :mod:`snn_toolchain.neurons.dynamics` (SparCH's adLIF
  update), repeated for every time step, with the same operations in the same order;
- the backward is the reverse-time loop and the parameter-gradient sums written down in the module
  docstring of :mod:`snn_toolchain.train.model.recurrence` ("Backward derivation"), which is the contract
  for every implementation of the recurrence.

:class:`TritonAdlifRecurrence` has the signature and outputs of ``_AdlifRecurrence`` in
``recurrence.py``; ``run_neurons`` dispatches to it for CUDA tensors when :func:`available` says so
(set ``SNN_TOOLCHAIN_NO_TRITON=1`` to force the torch path). ``tests/test_gpu_recurrence.py`` checks
forward traces and all eight gradients against ``run_neurons_reference`` (the per-step autograd
oracle), on a GPU when there is one and otherwise on the CPU under Triton's interpreter
(``TRITON_INTERPRET=1``), so CI executes the kernel code too.

How the kernels are organised
-----------------------------
One program owns ``BLOCK_ELEMENTS`` (batch, neuron) pairs and runs the whole time loop for them in
registers; neurons are independent, so no program ever waits for another. Each step reads one input
current and writes u, w, s (forward), or reads the saved state and writes the current's gradient
(backward): the loop is bound by memory latency, not arithmetic, and its cost grows with the number
of time steps, not with batch x neurons (as long as the GPU holds all programs at once).

- Forward: fills time-major buffers u, w, s of shape (time + 1, batch, N) whose row 0 is the initial
  state. The outputs are views of rows 1.. (like the CPU path), so the backward needs no recompute.
- Backward: walks time backwards with the carries of the contract and writes I'[t] directly. The
  sums over time of the four parameter gradients are kept per (batch, neuron) in registers and
  written once; torch then sums over the batch. No atomics: results are deterministic (and
  Triton's interpreter has no atomics).
- Floating-point contraction (FMA) is switched off at launch (``enable_fp_fusion=False``): every
  product and sum is rounded on its own as in torch's elementwise ops, so the forward traces are
  bit-identical to the reference on the same device, and spikes never flip on a rounding difference.

Units: time is in steps (one input bin); currents and membrane in threshold units. Shapes: currents
and traces (batch, time, N), parameters (N,), states (batch, N). float32 (training) and float64
(tests) are supported; all operands must share device and dtype.

Triton is imported lazily (first call of :func:`available` or of the Function), so that importing
this module costs nothing on machines without a GPU or without Triton.
"""

# No `from __future__ import annotations` here: Triton's interpreter recognises `tl.constexpr`
# parameters only when the annotation is the class itself, not its string.
import os
import warnings
from typing import Optional, Union

import torch

from snn_toolchain.neurons.dynamics import SURROGATE_HALF_WIDTH, THRESHOLD, NeuronParams, NeuronState
from snn_toolchain.train.model.recurrence import finish_forward, register_device_recurrence, run_neurons

# Set to 1 (anything but "" or "0") to keep run_neurons on the torch path even on CUDA.
DISABLE_ENV_VAR = "SNN_TOOLCHAIN_NO_TRITON"
# (batch x neuron) elements per program; one element per thread with 4 warps. With 128 x 128 states
# that is 128 programs, about one per streaming multiprocessor of an H100/H200.
BLOCK_ELEMENTS = 128
NUM_WARPS = 4
SUPPORTED_DTYPES = (torch.float32, torch.float64)

# Bound by _load_kernels(): the jit-compiled kernels look `tl` up in this module's globals.
triton = None
tl = None
_kernels = None
_import_error: Optional[BaseException] = None
_probe_results: dict = {}


def interpreter_mode() -> bool:
    """True when Triton runs kernels in its CPU interpreter (TRITON_INTERPRET=1, read by triton.jit)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _load_kernels():
    """Import triton and define the two kernels (once). Raises ImportError without triton."""
    global triton, tl, _kernels
    if _kernels is not None:
        return _kernels
    import triton as triton_module
    import triton.language as language

    triton, tl = triton_module, language
    if interpreter_mode():
        _patch_interpreter_for_float64()

    @triton.jit
    def neuron_block(alpha_ptr, alpha_stride, beta_ptr, beta_stride, a_ptr, a_stride, b_ptr, b_stride,
                     batch, n_neurons, BLOCK: tl.constexpr):
        # The BLOCK (batch, neuron) elements of this program, which of them exist, and their
        # neurons' parameters; shared by the forward and the backward kernel.
        element = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        plane = batch * n_neurons
        inside = element < plane
        row = element // n_neurons
        neuron = element % n_neurons
        alpha = tl.load(alpha_ptr + neuron * alpha_stride, mask=inside)
        beta = tl.load(beta_ptr + neuron * beta_stride, mask=inside)
        a = tl.load(a_ptr + neuron * a_stride, mask=inside)
        b = tl.load(b_ptr + neuron * b_stride, mask=inside)
        return element, plane, inside, row, neuron, alpha, beta, a, b

    @triton.jit
    def adlif_forward_kernel(
        current_ptr, current_stride_b, current_stride_t, current_stride_n,
        alpha_ptr, alpha_stride, beta_ptr, beta_stride, a_ptr, a_stride, b_ptr, b_stride,
        u0_ptr, u0_stride_b, u0_stride_n, w0_ptr, w0_stride_b, w0_stride_n, s0_ptr, s0_stride_b, s0_stride_n,
        u_ptr, w_ptr, s_ptr,
        batch, n_neurons, steps,
        THRESHOLD_VALUE: tl.constexpr, BLOCK: tl.constexpr,
    ):
        # One program: BLOCK (batch, neuron) elements, all time steps. u_ptr, w_ptr, s_ptr are
        # contiguous time-major buffers (steps + 1, batch, n_neurons); row 0 gets the initial state.
        element, plane, inside, row, neuron, alpha, beta, a, b = neuron_block(
            alpha_ptr, alpha_stride, beta_ptr, beta_stride, a_ptr, a_stride, b_ptr, b_stride, batch, n_neurons, BLOCK)
        # int64 time index: t * plane must not wrap for buffers of more than 2**31 elements
        zero_index = element * 0
        one_minus_alpha = 1.0 - alpha
        u = tl.load(u0_ptr + row * u0_stride_b + neuron * u0_stride_n, mask=inside)
        w = tl.load(w0_ptr + row * w0_stride_b + neuron * w0_stride_n, mask=inside)
        s = tl.load(s0_ptr + row * s0_stride_b + neuron * s0_stride_n, mask=inside)
        tl.store(u_ptr + element, u, mask=inside)
        tl.store(w_ptr + element, w, mask=inside)
        tl.store(s_ptr + element, s, mask=inside)

        current_row = current_ptr + row * current_stride_b + neuron * current_stride_n
        for step in range(steps):
            t = zero_index + step
            current = tl.load(current_row + t * current_stride_t, mask=inside)
            # adlif_float_step, same order of operations:
            #   w = beta * w + a * u + b * s ;  u = alpha * (u - s) + (1 - alpha) * (I - w)
            w_new = beta * w + a * u
            w_new = w_new + b * s
            u_new = alpha * (u - s) + one_minus_alpha * (current - w_new)
            s = (u_new > THRESHOLD_VALUE).to(u_new.dtype)
            u = u_new
            w = w_new
            out = (t + 1) * plane + element
            tl.store(u_ptr + out, u, mask=inside)
            tl.store(w_ptr + out, w, mask=inside)
            tl.store(s_ptr + out, s, mask=inside)

    @triton.jit
    def adlif_backward_kernel(
        current_ptr, current_stride_b, current_stride_t, current_stride_n,
        alpha_ptr, alpha_stride, beta_ptr, beta_stride, a_ptr, a_stride, b_ptr, b_stride,
        u_ptr, w_ptr, s_ptr,
        grad_s_ptr, grad_s_stride_b, grad_s_stride_t, grad_s_stride_n,
        grad_u_ptr, grad_u_stride_b, grad_u_stride_t, grad_u_stride_n,
        grad_w_ptr, grad_w_stride_b, grad_w_stride_t, grad_w_stride_n,
        grad_current_ptr, grad_current_stride_b, grad_current_stride_t, grad_current_stride_n,
        grad_state_ptr, grad_param_ptr,
        batch, n_neurons, steps,
        HAS_GRAD_S: tl.constexpr, HAS_GRAD_U: tl.constexpr, HAS_GRAD_W: tl.constexpr,
        THRESHOLD_VALUE: tl.constexpr, HALF_WIDTH: tl.constexpr, BLOCK: tl.constexpr,
    ):
        # Reverse-time loop of the contract in recurrence.py. u/w/s_ptr: the forward's time-major
        # buffers (row t + 1 holds step t). Writes I'[t]; grad_state_ptr (3, batch, n): adjoints of
        # the initial u, w, s; grad_param_ptr (4, batch, n): per-element sums over time of the
        # alpha, beta, a, b gradients.
        element, plane, inside, row, neuron, alpha, beta, a, b = neuron_block(
            alpha_ptr, alpha_stride, beta_ptr, beta_stride, a_ptr, a_stride, b_ptr, b_stride, batch, n_neurons, BLOCK)
        zero_index = element * 0
        one_minus_alpha = 1.0 - alpha
        zero = tl.zeros([BLOCK], dtype=alpha.dtype)
        carry_u = zero
        carry_w = zero
        carry_s = zero
        sum_alpha = zero
        sum_beta = zero
        sum_a = zero
        sum_b = zero

        current_row = current_ptr + row * current_stride_b + neuron * current_stride_n
        grad_current_row = grad_current_ptr + row * grad_current_stride_b + neuron * grad_current_stride_n
        grad_s_row = grad_s_ptr + row * grad_s_stride_b + neuron * grad_s_stride_n
        grad_u_row = grad_u_ptr + row * grad_u_stride_b + neuron * grad_u_stride_n
        grad_w_row = grad_w_ptr + row * grad_w_stride_b + neuron * grad_w_stride_n
        last = (zero_index + steps) * plane + element
        u_now = tl.load(u_ptr + last, mask=inside)   # u[t] and w[t], t = steps - 1
        w_now = tl.load(w_ptr + last, mask=inside)
        for reverse_step in range(steps):
            t = zero_index + (steps - 1 - reverse_step)
            before = t * plane + element               # buffer row t holds step t - 1
            u_before = tl.load(u_ptr + before, mask=inside)
            w_before = tl.load(w_ptr + before, mask=inside)
            s_before = tl.load(s_ptr + before, mask=inside)
            current = tl.load(current_row + t * current_stride_t, mask=inside)

            # s'[t] = gs[t] + carry_s ; u'[t] = gu[t] + sigma[t] s'[t] + carry_u ;
            # w'[t] = gw[t] + carry_w - (1 - alpha) u'[t]
            spike_adj = carry_s
            if HAS_GRAD_S:
                spike_adj = tl.load(grad_s_row + t * grad_s_stride_t, mask=inside) + carry_s
            surrogate = (tl.abs(u_now - THRESHOLD_VALUE) < HALF_WIDTH).to(u_now.dtype)
            u_adj = surrogate * spike_adj + carry_u
            if HAS_GRAD_U:
                u_adj = u_adj + tl.load(grad_u_row + t * grad_u_stride_t, mask=inside)
            w_adj = carry_w - one_minus_alpha * u_adj
            if HAS_GRAD_W:
                w_adj = w_adj + tl.load(grad_w_row + t * grad_w_stride_t, mask=inside)

            tl.store(grad_current_row + t * grad_current_stride_t, one_minus_alpha * u_adj, mask=inside)
            # alpha' += u'[t] (u[t-1] - s[t-1] - (I[t] - w[t])); beta', a', b' += w'[t] (w, u, s)[t-1]
            sum_alpha += u_adj * ((u_before - s_before) - current + w_now)
            sum_beta += w_adj * w_before
            sum_a += w_adj * u_before
            sum_b += w_adj * s_before

            alpha_u_adj = alpha * u_adj
            carry_u = a * w_adj + alpha_u_adj
            carry_s = b * w_adj - alpha_u_adj
            carry_w = beta * w_adj
            u_now = u_before
            w_now = w_before

        tl.store(grad_state_ptr + element, carry_u, mask=inside)
        tl.store(grad_state_ptr + plane + element, carry_w, mask=inside)
        tl.store(grad_state_ptr + 2 * plane + element, carry_s, mask=inside)
        tl.store(grad_param_ptr + element, sum_alpha, mask=inside)
        tl.store(grad_param_ptr + plane + element, sum_beta, mask=inside)
        tl.store(grad_param_ptr + 2 * plane + element, sum_a, mask=inside)
        tl.store(grad_param_ptr + 3 * plane + element, sum_b, mask=inside)

    _kernels = (adlif_forward_kernel, adlif_backward_kernel)
    return _kernels


def _patch_interpreter_for_float64() -> None:
    """Triton 2.3's interpreter builder lacks the float64 type hooks that its own front end calls
    (``get_double_ty``), so any float64 kernel fails there although numpy computes it fine. Add
    them; newer interpreters have them and are left alone."""
    try:
        import numpy as np
        from triton.runtime import interpreter
    except ImportError:
        return
    builder_class = getattr(interpreter, "Builder", None)
    if builder_class is None or hasattr(builder_class, "get_double_ty"):
        return
    builder_class.get_double_ty = lambda self: tl.float64
    builder_class.get_fp64 = lambda self, value: interpreter.TensorHandle(np.array([value], dtype=np.float64),
                                                                           tl.float64)


def _triton_importable() -> bool:
    global _import_error
    if _kernels is not None:
        return True
    if _import_error is not None:
        return False
    try:
        _load_kernels()
    except Exception as error:  # ImportError, or a triton too old or broken to define the kernels
        _import_error = error
        return False
    return True


def available(device: Union[torch.device, str, None] = None) -> bool:
    """Whether ``run_neurons`` should use the Triton kernels for CUDA tensors on ``device``.

    False when ``SNN_TOOLCHAIN_NO_TRITON`` is set (to anything but "" or "0"), without CUDA, without
    an importable triton, or when a one-time smoke run of both kernels on the device failed (then a
    warning says why, and training falls back to the torch path instead of crashing).
    """
    if os.environ.get(DISABLE_ENV_VAR, "") not in ("", "0"):
        return False
    if not torch.cuda.is_available() or not _triton_importable():
        return False
    device = torch.device("cuda") if device is None else torch.device(device)
    if device.type != "cuda":
        return False
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _probe_results:
        _probe_results[index] = _probe(torch.device("cuda", index))
    return _probe_results[index]


def _probe(device: torch.device) -> bool:
    try:
        # the first call may come from an evaluation under no_grad or inference_mode
        with torch.inference_mode(False), torch.enable_grad():
            return _smoke_run(device)
    except Exception as error:  # compile or launch failure on this GPU
        warnings.warn(f"Triton AdLIF kernels do not run on {device} ({error.__class__.__name__}: {error}); "
                      "using the torch recurrence instead", RuntimeWarning, stacklevel=3)
        return False


def _smoke_run(device: torch.device) -> bool:
    """Both kernels once on a tiny float32 case; raises when they cannot compile or launch."""
    generator = torch.Generator(device=device).manual_seed(0)
    currents = torch.rand(2, 3, 5, device=device, generator=generator).mul_(3).requires_grad_()
    params = NeuronParams(*(torch.full((5,), 0.5, device=device) for _ in range(4)))
    state = NeuronState(*(torch.zeros(2, 5, device=device) for _ in range(3)))
    spikes = run_neurons_triton(currents, params, state)
    spikes.sum().backward()
    torch.cuda.synchronize(device)
    return True


def _operand(tensor: torch.Tensor):
    """(tensor to pass as a read-only kernel argument, its strides).

    The kernels address memory through the data pointer and the strides passed next to it, so a
    broadcast (stride-0) or transposed operand needs no copy. Triton's interpreter, though, copies
    every tensor argument back onto itself after a launch: that bumps the autograd version counter
    of inputs (breaking any other graph that saved them) and fails on broadcast tensors. There, the
    kernel gets a private contiguous copy instead.
    """
    tensor = tensor.detach()
    if tensor.device.type == "cpu" and interpreter_mode():
        tensor = tensor.contiguous().clone()
    return tensor, tensor.stride()


def _vector(param: torch.Tensor, n: int):
    vector, (stride,) = _operand(torch.broadcast_to(param, (n,)))
    return vector, stride


def _matrix(state: torch.Tensor, shape):
    matrix, strides = _operand(torch.broadcast_to(state, shape))
    return (matrix, *strides)


# No FMA contraction: each product and sum rounds on its own, as in torch's elementwise ops.
_LAUNCH_OPTIONS = dict(num_warps=NUM_WARPS, enable_fp_fusion=False)


class _DeviceGuard:
    """torch.cuda.device(...) for CUDA tensors (Triton launches on the current device); nothing on CPU."""

    def __init__(self, device: torch.device):
        self.guard = torch.cuda.device(device) if device.type == "cuda" else None

    def __enter__(self):
        if self.guard is not None:
            self.guard.__enter__()

    def __exit__(self, *exc):
        if self.guard is not None:
            return self.guard.__exit__(*exc)
        return False


class TritonAdlifRecurrence(torch.autograd.Function):
    """``_AdlifRecurrence`` of recurrence.py, on Triton kernels: same arguments, same outputs
    (spikes, membrane, adaptation as (batch, time, N) views of time-major buffers), same gradients."""

    @staticmethod
    def forward(ctx, currents, alpha, beta, a, b, u0, w0, s0):
        forward_kernel, _ = _load_kernels()
        batch, steps, n = currents.shape
        operands = (currents, alpha, beta, a, b, u0, w0, s0)
        if currents.dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"Triton AdLIF kernels take float32 or float64 currents, got {currents.dtype}")
        for name, x in zip(("alpha", "beta", "a", "b", "u0", "w0", "s0"), operands[1:]):
            if x.dtype != currents.dtype or x.device != currents.device:
                raise TypeError(f"{name} is {x.dtype} on {x.device}, but the currents are {currents.dtype} on "
                                f"{currents.device}; all operands must share dtype and device")
        current = currents.detach()
        # one allocation for the three time-major traces (row 0: the initial state)
        traces = torch.empty(3, steps + 1, batch, n, device=current.device, dtype=current.dtype)
        u_buf, w_buf, s_buf = traces.unbind(0)
        if batch * n > 0:
            params = [item for p in (alpha, beta, a, b) for item in _vector(p, n)]
            states = [item for x in (u0, w0, s0) for item in _matrix(x, (batch, n))]
            grid = (triton.cdiv(batch * n, BLOCK_ELEMENTS),)
            current_arg, current_strides = _operand(current)
            with _DeviceGuard(current.device):
                forward_kernel[grid](
                    current_arg, *current_strides, *params, *states, u_buf, w_buf, s_buf,
                    batch, n, steps, THRESHOLD_VALUE=THRESHOLD, BLOCK=BLOCK_ELEMENTS,
                    **_LAUNCH_OPTIONS)
        ctx.save_for_backward(current, alpha, beta, a, b, traces)

        return finish_forward(ctx, (u0, w0, s0), u_buf, w_buf, s_buf)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_spikes, grad_membrane, grad_adaptation):
        if grad_spikes is None and grad_membrane is None and grad_adaptation is None:
            return (None,) * 8
        _, backward_kernel = _load_kernels()
        current, alpha, beta, a, b, traces = ctx.saved_tensors
        batch, steps, n = current.shape
        options = dict(device=current.device, dtype=current.dtype)
        # same layout as the currents, so that the synapse's backward gets the strides it produced
        grad_current = torch.empty_like(current)
        grad_states = torch.empty(3, batch, n, **options)
        param_sums = torch.empty(4, batch, n, **options)
        if batch * n > 0:
            upstream = []
            for grad in (grad_spikes, grad_membrane, grad_adaptation):
                if grad is None:   # never read (the HAS_GRAD_* flag is off); any pointer will do
                    upstream += [current, 0, 0, 0]
                else:
                    grad, strides = _operand(grad.to(current.dtype))
                    upstream += [grad, *strides]
            params = [item for p in (alpha, beta, a, b) for item in _vector(p, n)]
            current_arg, current_strides = _operand(current)
            # traces: contiguous (3, steps + 1, batch, n), as the forward allocated them
            u_arg, w_arg, s_arg = _operand(traces)[0].unbind(0)
            grid = (triton.cdiv(batch * n, BLOCK_ELEMENTS),)
            with _DeviceGuard(current.device):
                backward_kernel[grid](
                    current_arg, *current_strides, *params, u_arg, w_arg, s_arg, *upstream,
                    grad_current, *grad_current.stride(), grad_states, param_sums, batch, n, steps,
                    HAS_GRAD_S=grad_spikes is not None, HAS_GRAD_U=grad_membrane is not None,
                    HAS_GRAD_W=grad_adaptation is not None, THRESHOLD_VALUE=THRESHOLD,
                    HALF_WIDTH=SURROGATE_HALF_WIDTH, BLOCK=BLOCK_ELEMENTS, **_LAUNCH_OPTIONS)
        else:
            grad_current.zero_()
            grad_states.zero_()
            param_sums.zero_()

        needs = ctx.needs_input_grad
        param_grads = param_sums.sum(1)   # over the batch; (4, n)
        grads = [grad_current if needs[0] else None]
        grads += [param_grads[i].sum_to_size(p.shape) if needs[1 + i] else None
                  for i, p in enumerate((alpha, beta, a, b))]
        grads += [grad_states[i].sum_to_size(shape) if needs[5 + i] else None
                  for i, shape in enumerate(ctx.initial_shapes)]
        return tuple(grads)


def run_neurons_triton(currents: torch.Tensor, params: NeuronParams, init_state: NeuronState,
                       return_trace: bool = False):
    """``run_neurons`` forced onto the Triton kernels (CUDA tensors, or CPU tensors under
    TRITON_INTERPRET=1). Same arguments and results as :func:`~snn_toolchain.train.model.recurrence.run_neurons`."""
    return run_neurons(currents, params, init_state, return_trace, recurrence=TritonAdlifRecurrence)


# On CUDA, run_neurons takes the fused kernels wherever they work (SNN_TOOLCHAIN_NO_TRITON=1 opts out).
register_device_recurrence(lambda device: TritonAdlifRecurrence if available(device) else None)
