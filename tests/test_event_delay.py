"""The event-driven CPU delay path against the shift-by-shift oracle and the convolution."""

import numba
import pytest
import torch

from snn_toolchain.train import event_delay
from snn_toolchain.train.synapse import DelayedDense, delayed_dense, reference_delayed_dense

from test_synapse import random_case

DT = torch.float64


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_events_match_reference_forward_and_gradients(seed):
    inputs = [v.requires_grad_() for v in random_case(seed=seed)]
    upstream = torch.randn(3, 40, 5, dtype=DT, generator=torch.Generator().manual_seed(seed + 10))
    fast = delayed_dense(*inputs, method="events")
    reference = reference_delayed_dense(*inputs)
    torch.testing.assert_close(fast, reference, rtol=1e-12, atol=1e-12)
    fast_grads = torch.autograd.grad(fast, inputs, upstream)
    reference_grads = torch.autograd.grad(reference, inputs, upstream)
    for name, got, expected in zip(("x", "weight", "delay", "bias"), fast_grads, reference_grads):
        assert torch.count_nonzero(expected) > 0, name
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10, msg=f"gradient of {name}")


def test_events_in_float32_match_the_convolution():
    x, weight, delay, bias = (v.float() for v in random_case(batch=4, steps=60, n_in=30, n_out=20, seed=4))
    weight.requires_grad_(), delay.requires_grad_(), bias.requires_grad_()
    upstream = torch.randn(4, 60, 20)
    results = []
    for method in ("events", "conv"):
        out = delayed_dense(x, weight, delay, bias, method=method)
        results.append([out, *torch.autograd.grad(out, (weight, delay, bias), upstream)])
    for got, expected in zip(*results):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_gradcheck_events():
    generator = torch.Generator().manual_seed(7)
    x = torch.rand(2, 9, 3, generator=generator, dtype=DT, requires_grad=True)
    weight = torch.randn(2, 3, generator=generator, dtype=DT, requires_grad=True)
    # fractions away from the integers, where the output is not differentiable in the delay
    delay = (torch.randint(0, 4, (2, 3), generator=generator).to(DT)
             + 0.1 + 0.8 * torch.rand(2, 3, generator=generator, dtype=DT)).requires_grad_()
    bias = torch.randn(2, generator=generator, dtype=DT, requires_grad=True)

    def events(*args):
        return delayed_dense(*args, method="events")

    assert torch.autograd.gradcheck(events, (x, weight, delay, bias), eps=1e-6, atol=1e-8)


def test_integer_delays_get_the_right_sided_gradient_so_zero_can_grow():
    x = torch.zeros(1, 6, 1, dtype=DT)
    x[0, 1, 0] = 1.0                                         # one spike at t = 1
    weight = torch.tensor([[2.0]], dtype=DT)
    delay = torch.tensor([[0.0]], dtype=DT, requires_grad=True)
    upstream = torch.zeros(1, 6, 1, dtype=DT)
    upstream[0, 2, 0] = 1.0                                  # the loss wants the spike at t = 2
    (grad,) = torch.autograd.grad(delayed_dense(x, weight, delay, method="events"), delay, upstream)
    # d/dD of W * x(t - D) at t = 2, D = 0+: W * (x[1] - x[2]) = 2
    assert grad.item() == pytest.approx(2.0)


def test_data_input_without_gradient_and_an_empty_batch():
    x, weight, delay, bias = random_case(seed=5)
    weight.requires_grad_()
    out = delayed_dense(x, weight, delay, bias, method="events")
    (grad,) = torch.autograd.grad(out.sum(), weight)
    torch.testing.assert_close(grad, torch.autograd.grad(reference_delayed_dense(x, weight, delay, bias).sum(),
                                                         weight)[0])
    silent = delayed_dense(torch.zeros_like(x), weight, delay, bias, method="events")
    torch.testing.assert_close(silent, bias.expand_as(silent))


def test_results_do_not_depend_on_the_thread_count():
    x, weight, delay, bias = (v.float() for v in random_case(batch=6, steps=50, n_in=12, n_out=9, seed=6))
    x.requires_grad_(), weight.requires_grad_(), delay.requires_grad_()
    upstream = torch.randn(6, 50, 9)
    results = []
    previous = numba.get_num_threads()
    try:
        for threads in (1, previous):
            numba.set_num_threads(threads)
            out = delayed_dense(x, weight, delay, bias, method="events")
            results.append([out, *torch.autograd.grad(out, (x, weight, delay), upstream)])
    finally:
        numba.set_num_threads(previous)
    for one_thread, many in zip(*results):
        assert torch.equal(one_thread, many)


def test_auto_takes_events_for_spikes_and_the_convolution_for_dense_inputs(monkeypatch):
    calls = []
    real = event_delay.event_delayed_dense

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(event_delay, "event_delayed_dense", counting)
    layer = DelayedDense(20, 8, max_delay=10)
    with torch.no_grad():
        layer.delay.uniform_(0, 10)
    sparse = (torch.rand(2, 30, 20) < 0.05).float()
    dense = torch.rand(2, 30, 20)                             # graded features, every entry nonzero
    layer(sparse)
    assert len(calls) == 1
    layer(dense)
    assert len(calls) == 1
    torch.testing.assert_close(layer(dense), reference_delayed_dense(dense, layer.weight,
                                                                     layer.effective_delays(), layer.bias))


def test_input_density():
    assert event_delay.input_density(torch.tensor([0.0, 2.0, 0.0, 1.0])) == 0.5
    assert event_delay.available()
