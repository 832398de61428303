"""The fused Triton kernels of the AdLIF recurrence, forward and backward. What they compute, the
contract they follow and how they are tested: :mod:`~snn_toolchain.train.model.gpu_recurrence`, which
launches them and imports this module only when it needs them (importing it imports triton).

How the kernels are organised
-----------------------------
One program owns ``BLOCK`` (batch, neuron) pairs and runs the whole time loop for them in
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

Units: time in steps, currents and membrane in threshold units. Every tensor argument is a pointer
followed by its strides in elements, except the contiguous ones: the time-major buffers u, w, s and
the backward's grad_state and grad_param.
"""

# No `from __future__ import annotations` here: Triton's interpreter recognises `tl.constexpr`
# parameters only when the annotation is the class itself, not its string.
import triton
import triton.language as tl


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
