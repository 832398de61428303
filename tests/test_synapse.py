"""Per-synapse delayed dense connection: fast conv path against the shift-by-shift oracle."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from snn_toolchain.train.model.synapse import DelayedDense, delay_kernel, delayed_dense, reference_delayed_dense

DT = torch.float64


def random_case(batch=3, steps=40, n_in=7, n_out=5, max_delay=25, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = (torch.rand(batch, steps, n_in, generator=generator, dtype=DT) < 0.3).to(DT)
    x = x * torch.rand(batch, steps, n_in, generator=generator, dtype=DT)   # not only 0/1
    weight = torch.randn(n_out, n_in, generator=generator, dtype=DT)
    delay = torch.rand(n_out, n_in, generator=generator, dtype=DT) * max_delay
    # the edges and integers must be covered: 0, max_delay, and some whole numbers
    delay[0, 0], delay[0, 1], delay[1, 0], delay[1, 1] = 0.0, float(max_delay), 3.0, 12.0
    bias = torch.randn(n_out, generator=generator, dtype=DT)
    return x, weight, delay, bias


def numpy_oracle(x, weight, delay, bias):
    """Element by element: I[b,t,j] = sum_i W[j,i] * x(t - D[j,i]) + bias[j], linear interpolation."""
    x, weight, delay, bias = (v.detach().numpy() for v in (x, weight, delay, bias))
    batch, steps, n_in = x.shape
    out = np.zeros((batch, steps, weight.shape[0]))

    def sample(b, t, i):
        return x[b, t, i] if t >= 0 else 0.0

    for b in range(batch):
        for t in range(steps):
            for j in range(weight.shape[0]):
                total = bias[j]
                for i in range(n_in):
                    k = math.floor(delay[j, i])
                    f = delay[j, i] - k
                    total += weight[j, i] * ((1 - f) * sample(b, t - k, i) + f * sample(b, t - k - 1, i))
                out[b, t, j] = total
    return out


def test_reference_matches_element_by_element_definition():
    x, weight, delay, bias = random_case(batch=2, steps=12, n_in=4, n_out=3, max_delay=6, seed=3)
    np.testing.assert_allclose(reference_delayed_dense(x, weight, delay, bias).numpy(),
                               numpy_oracle(x, weight, delay, bias), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_fast_path_matches_reference_forward_and_gradients(seed):
    inputs = [v.requires_grad_() for v in random_case(seed=seed)]
    upstream = torch.randn(3, 40, 5, dtype=DT, generator=torch.Generator().manual_seed(seed + 10))
    fast = delayed_dense(*inputs)
    reference = reference_delayed_dense(*inputs)
    torch.testing.assert_close(fast, reference, rtol=1e-12, atol=1e-12)
    fast_grads = torch.autograd.grad(fast, inputs, upstream)
    reference_grads = torch.autograd.grad(reference, inputs, upstream)
    for name, got, expected in zip(("x", "weight", "delay", "bias"), fast_grads, reference_grads):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10, msg=f"gradient of {name}")


def test_delay_gradient_is_minus_the_temporal_derivative_of_the_shifted_input():
    x, weight, delay, _ = random_case(batch=2, steps=30, n_in=4, n_out=3, max_delay=8, seed=5)
    delay.requires_grad_()
    upstream = torch.randn(2, 30, 3, dtype=DT)
    (grad,) = torch.autograd.grad(delayed_dense(x, weight, delay), delay, upstream)
    lead = 20                          # more than the largest delay (12) + 1
    padded = F.pad(x, (0, 0, lead, 0))   # padded[:, t + lead] = x[:, t], zero before t = 0
    expected = torch.zeros_like(delay)
    for j in range(3):
        for i in range(4):
            k = int(math.floor(delay[j, i].item()))   # integer delays: the right-sided derivative
            later = padded[:, lead - k: lead - k + 30, i]            # x[t - k]
            earlier = padded[:, lead - k - 1: lead - k - 1 + 30, i]  # x[t - k - 1]
            expected[j, i] = (upstream[:, :, j] * weight[j, i] * (earlier - later)).sum()
    torch.testing.assert_close(grad, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ["conv", "events"])
def test_gradcheck_fast_path(method):
    # The output is piecewise linear in each delay with kinks at the integers; keep the
    # fractional parts away from them so the finite differences see one linear piece.
    generator = torch.Generator().manual_seed(7)
    x = torch.rand(2, 9, 3, generator=generator, dtype=DT, requires_grad=True)
    weight = torch.randn(2, 3, generator=generator, dtype=DT, requires_grad=True)
    delay = (torch.randint(0, 4, (2, 3), generator=generator).to(DT)
             + 0.1 + 0.8 * torch.rand(2, 3, generator=generator, dtype=DT)).requires_grad_()
    bias = torch.randn(2, generator=generator, dtype=DT, requires_grad=True)
    def fast(*args):
        return delayed_dense(*args, method=method)

    assert torch.autograd.gradcheck(fast, (x, weight, delay, bias), eps=1e-6, atol=1e-8)


def test_kernel_has_two_interpolation_taps_flipped_for_conv1d():
    weight = torch.tensor([[2.0, -1.0]], dtype=DT)
    delay = torch.tensor([[1.25, 0.0]], dtype=DT)
    kernel = delay_kernel(weight, delay, taps=4).flip(-1)   # back to K[j, i, tau]
    torch.testing.assert_close(kernel[0, 0], torch.tensor([0.0, 1.5, 0.5, 0.0], dtype=DT))
    torch.testing.assert_close(kernel[0, 1], torch.tensor([-1.0, 0.0, 0.0, 0.0], dtype=DT))


def test_eval_mode_rounds_delays_to_whole_shifts():
    layer = DelayedDense(1, 3, max_delay=10, bias=False).double()
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.delay.copy_(torch.tensor([[3.0], [2.6], [2.5]]))   # 2.5 rounds half to even: 2
    spikes = torch.zeros(1, 20, 1, dtype=DT)
    spikes[0, [1, 4, 5, 11], 0] = 1.0
    layer.eval()
    out = layer(spikes)
    torch.testing.assert_close(out[0, :, 0], torch.roll(spikes[0, :, 0], 3))
    torch.testing.assert_close(out[0, :, 1], torch.roll(spikes[0, :, 0], 3))
    torch.testing.assert_close(out[0, :, 2], torch.roll(spikes[0, :, 0], 2))
    assert layer.integer_delays().tolist() == [[3], [3], [2]]
    assert layer.integer_delays().dtype == torch.int64
    # Training mode interpolates instead: 0.4 of the spike at shift 2, 0.6 at shift 3.
    layer.train()
    out = layer(spikes)
    expected = 0.4 * torch.roll(spikes[0, :, 0], 2) + 0.6 * torch.roll(spikes[0, :, 0], 3)
    torch.testing.assert_close(out[0, :, 1], expected)


def test_delayed_spikes_past_the_end_are_dropped():
    layer = DelayedDense(1, 1, max_delay=25, bias=False).double().eval()
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.delay.fill_(4.0)
    spikes = torch.zeros(1, 6, 1, dtype=DT)
    spikes[0, [0, 3], 0] = 1.0
    assert layer(spikes)[0, :, 0].tolist() == [0, 0, 0, 0, 1, 0]


def test_clamp_keeps_delays_in_bounds_and_forward_clamps_too():
    layer = DelayedDense(4, 3, max_delay=25)
    with torch.no_grad():
        layer.delay.copy_(torch.linspace(-5, 30, 12).reshape(3, 4))
    unclamped = layer.delay.detach().clone()
    x = (torch.rand(2, 30, 4) < 0.5).float()
    # forward uses clamp(delay, 0, max_delay) even before clamp_ is called
    torch.testing.assert_close(layer(x), reference_delayed_dense(x, layer.weight, unclamped.clamp(0, 25), layer.bias))
    assert layer.clamp_() is layer
    assert layer.delay.min().item() == 0.0 and layer.delay.max().item() == 25.0
    torch.testing.assert_close(layer.delay.detach(), unclamped.clamp(0, 25))
    assert isinstance(layer.delay, torch.nn.Parameter)


def test_negative_delays_are_refused_by_the_functional_path():
    x, weight, delay, bias = random_case()
    delay[2, 2] = -0.5
    with pytest.raises(ValueError, match=">= 0"):
        delayed_dense(x, weight, delay, bias)


def test_zero_delays_still_get_a_gradient_in_training():
    layer = DelayedDense(6, 4).double()
    x = (torch.rand(2, 15, 6, dtype=DT) < 0.4).to(DT)
    upstream = torch.randn(2, 15, 4, dtype=DT)
    (layer(x) * upstream).sum().backward()
    delay = layer.delay.detach().clone().requires_grad_()
    (reference_delayed_dense(x, layer.weight.detach(), delay, None) * upstream).sum().backward()
    assert layer.delay.grad.abs().sum() > 0
    torch.testing.assert_close(layer.delay.grad, delay.grad)


def test_fixed_delays_use_a_buffer_and_a_plain_matmul():
    layer = DelayedDense(6, 4, learn_delays=False)
    assert "delay" not in dict(layer.named_parameters())
    assert "delay" in layer.state_dict()
    x = torch.rand(2, 10, 6)
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias))
    # Fixed but non-zero delays (loaded from a checkpoint) are still applied.
    with torch.no_grad():
        layer.delay.fill_(2.0)
    torch.testing.assert_close(layer(x), reference_delayed_dense(x, layer.weight, layer.delay, layer.bias))


def test_initialisation():
    layer = DelayedDense(140, 128)
    limit = math.sqrt(6 / (140 + 128))
    assert layer.weight.shape == (128, 140) and layer.weight.abs().max() <= limit
    assert layer.weight.std() > limit / 3
    assert torch.count_nonzero(layer.delay) == 0 and layer.delay.shape == (128, 140)
    assert torch.count_nonzero(layer.bias) == 0 and layer.bias.shape == (128,)
    assert DelayedDense(3, 2, bias=False).bias is None
    with pytest.raises(ValueError):
        DelayedDense(3, 2, max_delay=2.5)


@pytest.mark.parametrize("taps", [None, 9])
def test_gemm_path_matches_the_reference(taps):
    """The GEMM formulation that CUDA uses, run on the CPU here, against the explicit-shift oracle."""
    torch.manual_seed(3)
    x = (torch.rand(3, 20, 7, dtype=torch.float64) < 0.4).to(torch.float64).requires_grad_()
    weight = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    delay = (torch.rand(5, 7, dtype=torch.float64) * 7).requires_grad_()
    bias = torch.randn(5, dtype=torch.float64, requires_grad=True)
    fast = delayed_dense(x, weight, delay, bias, taps=taps, method="gemm")
    slow = reference_delayed_dense(x, weight, delay, bias)
    torch.testing.assert_close(fast, slow)
    grad = torch.randn_like(fast)
    fast_grads = torch.autograd.grad(fast, (x, weight, delay, bias), grad)
    slow_grads = torch.autograd.grad(slow, (x, weight, delay, bias), grad)
    for a, b in zip(fast_grads, slow_grads):
        torch.testing.assert_close(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run by benchmarks/gpu_check.sh)")
def test_delayed_dense_module_on_cuda_matches_cpu():
    torch.manual_seed(4)
    layer = DelayedDense(11, 6, max_delay=5)
    with torch.no_grad():
        layer.delay.uniform_(0, 5)
    x = (torch.rand(2, 30, 11) < 0.3).float()
    expected = layer(x)
    expected.sum().backward()
    cpu_grads = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    cuda_layer = layer.cuda()
    got = cuda_layer(x.cuda())
    got.sum().backward()
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-4, atol=1e-4)
    for p, g in zip(cuda_layer.parameters(), cpu_grads):
        torch.testing.assert_close(p.grad.cpu(), g, rtol=1e-3, atol=1e-3)
