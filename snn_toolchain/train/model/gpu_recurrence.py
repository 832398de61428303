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

How it is organised
-------------------
The kernels, and how they share the work among programs, are in
:mod:`~snn_toolchain.train.model.gpu_recurrence_kernels`; this module checks the operands, allocates
the buffers and launches one program per ``BLOCK_ELEMENTS`` (batch, neuron) pairs.
Floating-point contraction (FMA) is switched off at launch (``enable_fp_fusion=False``): every
product and sum is rounded on its own as in torch's elementwise ops, so the forward traces are
bit-identical to the reference on the same device, and spikes never flip on a rounding difference.

Units: time is in steps (one input bin); currents and membrane in threshold units. Shapes: currents
and traces (batch, time, N), parameters (N,), states (batch, N). float32 (training) and float64
(tests) are supported; all operands must share device and dtype.

Triton and the kernels are imported lazily (first call of :func:`available` or of the Function), so
that importing this module costs nothing on machines without a GPU or without Triton.
"""

from __future__ import annotations

import os
import warnings

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

# Bound by _load_kernels(): the forward and the backward kernel, once triton has defined them.
_kernels = None
_import_error: BaseException | None = None
_probe_results: dict = {}


def interpreter_mode() -> bool:
    """True when Triton runs kernels in its CPU interpreter (TRITON_INTERPRET=1, read by triton.jit)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _load_kernels():
    """Import triton and the two kernels (once). Raises ImportError without triton."""
    global _kernels
    if _kernels is None:
        if interpreter_mode():
            _patch_interpreter_for_float64()
        from snn_toolchain.train.model import gpu_recurrence_kernels  # imports triton: only when the kernels run

        _kernels = (gpu_recurrence_kernels.adlif_forward_kernel, gpu_recurrence_kernels.adlif_backward_kernel)
    return _kernels


def _patch_interpreter_for_float64() -> None:
    """Triton 2.3's interpreter builder lacks the float64 type hooks that its own front end calls
    (``get_double_ty``), so any float64 kernel fails there although numpy computes it fine. Add
    them; newer interpreters have them and are left alone."""
    try:
        import numpy as np
        import triton.language as tl
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


def available(device: torch.device | str | None = None) -> bool:
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


def _program_grid(elements: int) -> tuple[int]:
    """The launch grid: one program per BLOCK_ELEMENTS (batch, neuron) elements, the last one partly
    masked (triton.cdiv, without importing triton here)."""
    return ((elements + BLOCK_ELEMENTS - 1) // BLOCK_ELEMENTS,)


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
            grid = _program_grid(batch * n)
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
            grid = _program_grid(batch * n)
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
