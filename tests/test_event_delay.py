"""The event-driven CPU delay path against the shift-by-shift oracle and the convolution."""

import os
import subprocess
import sys
import threading

import numba
import pytest
import torch

from snn_toolchain.train.model import event_delay
from snn_toolchain.train.model.synapse import DelayedDense, delayed_dense, reference_delayed_dense

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


def test_results_do_not_depend_on_the_thread_count_which_follows_torch():
    x, weight, delay, bias = (v.float() for v in random_case(batch=6, steps=50, n_in=12, n_out=9, seed=6))
    x.requires_grad_(), weight.requires_grad_(), delay.requires_grad_()
    upstream = torch.randn(6, 50, 9)
    results = []
    previous = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out = delayed_dense(x, weight, delay, bias, method="events")
            assert numba.get_num_threads() == min(threads, numba.config.NUMBA_NUM_THREADS)
            results.append([out, *torch.autograd.grad(out, (x, weight, delay), upstream)])
    finally:
        torch.set_num_threads(previous)
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


def test_auto_keeps_the_convolution_for_other_dtypes_and_refuses_bad_delays():
    x, weight, delay, bias = random_case(seed=8)
    sparse = (x > 0.5).to(torch.bfloat16)                     # 15% nonzero, but bf16: convolution
    torch.testing.assert_close(delayed_dense(sparse, weight.bfloat16(), delay.bfloat16()).double(),
                               reference_delayed_dense(sparse.double(), weight.bfloat16().double(),
                                                       delay.bfloat16().double()), rtol=0.05, atol=0.1)
    assert not event_delay.supports(sparse) and event_delay.supports(x) and not event_delay.supports(x.long())
    with pytest.raises(TypeError, match="float32 or float64"):
        delayed_dense(x.long(), weight, delay, method="events")
    for bad in (-1.0, float("nan")):
        broken = delay.clone()
        broken[2, 3] = bad
        with pytest.raises(ValueError, match="finite and >= 0"):
            delayed_dense(x, weight, broken, taps=30, method="events")


def test_threads_calling_at_once_take_turns():
    x, weight, delay, bias = (v.float() for v in random_case(batch=8, steps=80, n_in=40, n_out=30, seed=9))
    expected = delayed_dense(x, weight, delay, bias, method="events")
    results, errors = [], []

    def call():
        try:
            for _ in range(20):
                results.append(delayed_dense(x, weight, delay, bias, method="events"))
        except Exception as error:   # noqa: BLE001 - reported below
            errors.append(error)

    workers = [threading.Thread(target=call) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors and len(results) == 60
    assert all(torch.equal(result, expected) for result in results)


def test_the_kernels_leave_torchs_thread_count_alone():
    """Numba's OpenMP layer would reset the shared libgomp's thread count on its first launch and
    undo a worker's torch.set_num_threads(1) (sweep --parallel); a fresh process shows it does not."""
    script = ("import torch; torch.set_num_threads(1)\n"
              "from snn_toolchain.train.model.synapse import delayed_dense\n"
              "x = (torch.rand(4, 30, 16) < 0.1).float().requires_grad_()\n"
              "w = torch.randn(8, 16, requires_grad=True); d = (torch.rand(8, 16) * 5).requires_grad_()\n"
              "delayed_dense(x, w, d, method='events').sum().backward()\n"
              "import numba; print(torch.get_num_threads(), numba.get_num_threads(), numba.threading_layer())\n")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "1", "workqueue"]
