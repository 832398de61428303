"""Running neurons over time: the fast BPTT Function against the per-step autograd reference."""

import pytest
import torch

from snn_toolchain.neurons.dynamics import THRESHOLD, NeuronParams, NeuronState, resolve_bounds
from snn_toolchain.train.model.recurrence import initial_state, run_neurons, run_neurons_reference

DT = torch.float64
VARIANTS = ["lif", "adlif", "adlif+"]


def make_case(variant, batch=4, steps=60, n=12, seed=0, dtype=DT):
    generator = torch.Generator().manual_seed(seed)
    bounds = resolve_bounds(variant)
    params = NeuronParams(*(
        (low + (high - low) * torch.rand(n, generator=generator, dtype=dtype)).requires_grad_()
        for low, high in (bounds[name] for name in NeuronParams._fields)))
    # Inputs that make neurons fire often and cross the surrogate window often.
    currents = (1.2 + 1.5 * torch.randn(batch, steps, n, generator=generator, dtype=dtype)).requires_grad_()
    u0, w0, s0 = initial_state(batch, n, "uniform", generator=generator, dtype=dtype)
    return currents, params, NeuronState(u0.requires_grad_(), w0.requires_grad_(), s0.requires_grad_())


def gradient_inputs(currents, params, state):
    return [currents, *params, state.u, state.w, state.s]


NAMES = ["currents", "alpha", "beta", "a", "b", "u0", "w0", "s0"]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("seed", [0, 1])
def test_fast_matches_reference_on_spikes(variant, seed):
    currents, params, state = make_case(variant, seed=seed)
    reference = run_neurons_reference(currents, params, state, return_trace=True)
    fast = run_neurons(currents, params, state, return_trace=True)
    for got, expected in zip(fast, reference):
        assert torch.equal(got, expected)   # same order of operations: bit-identical
    spike_rate = reference.spikes.mean().item()
    in_window = ((reference.membrane - THRESHOLD).abs() < 0.5).to(DT).mean().item()
    assert 0.05 < spike_rate < 0.8 and in_window > 0.1, "case too easy to test the surrogate path"

    upstream = torch.randn(fast.spikes.shape, dtype=DT, generator=torch.Generator().manual_seed(99))
    inputs = gradient_inputs(currents, params, state)
    expected = torch.autograd.grad((reference.spikes * upstream).sum(), inputs, allow_unused=True)
    got = torch.autograd.grad((run_neurons(currents, params, state) * upstream).sum(), inputs)
    for name, g, e in zip(NAMES, got, expected):
        e = torch.zeros_like(g) if e is None else e   # lif: beta, a, b get no gradient through w = 0
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-11, msg=f"gradient of {name}")
        if name in ("currents", "alpha", "u0"):
            assert g.abs().sum() > 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_fast_matches_reference_with_losses_on_all_traces(variant):
    currents, params, state = make_case(variant, steps=40, seed=3)
    generator = torch.Generator().manual_seed(5)
    weights = [torch.randn(currents.shape, dtype=DT, generator=generator) for _ in range(3)]

    def loss(trace):
        return sum((w * x).sum() for w, x in zip(weights, trace))

    inputs = gradient_inputs(currents, params, state)
    expected = torch.autograd.grad(loss(run_neurons_reference(currents, params, state, return_trace=True)),
                                   inputs, allow_unused=True)
    got = torch.autograd.grad(loss(run_neurons(currents, params, state, return_trace=True)), inputs)
    for name, g, e in zip(NAMES, got, expected):
        e = torch.zeros_like(g) if e is None else e
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-11, msg=f"gradient of {name}")


def test_float32_matches_reference():
    currents, params, state = make_case("adlif+", batch=8, steps=80, n=32, seed=4, dtype=torch.float32)
    reference = run_neurons_reference(currents, params, state)
    fast = run_neurons(currents, params, state)
    assert torch.equal(fast, reference)
    inputs = gradient_inputs(currents, params, state)
    expected = torch.autograd.grad(reference.sum(), inputs)
    got = torch.autograd.grad(fast.sum(), inputs)
    for name, g, e in zip(NAMES, got, expected):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4, msg=f"gradient of {name}")


def smooth_case(seed):
    """A case where every membrane value stays more than 0.5 + margin away from the threshold.

    The spike is a step function: finite differences see a zero derivative (or a jump when a spike
    flips), while the backward uses the boxcar surrogate. Only where no u is inside the surrogate
    window (|u - 1| < 0.5) do the two agree, because then the surrogate is zero as well. With the
    membrane kept out of that window (by large positive or negative currents and short time
    constants) neurons still fire, so gradcheck covers the smooth parts exactly: the u and w
    recursions, the reset and b*s terms (spikes are constants there), the parameter and
    initial-state gradients. The surrogate path is covered by the comparison with the reference.
    """
    generator = torch.Generator().manual_seed(seed)
    batch, steps, n = 2, 10, 3
    params = NeuronParams(
        alpha=0.05 + 0.2 * torch.rand(n, generator=generator, dtype=DT),
        beta=0.2 + 0.6 * torch.rand(n, generator=generator, dtype=DT),
        a=0.3 * torch.rand(n, generator=generator, dtype=DT),
        b=0.5 * torch.rand(n, generator=generator, dtype=DT),
    )
    sign = torch.where(torch.rand(batch, steps, n, generator=generator) < 0.5, -1.0, 1.0).to(DT)
    currents = sign * (4.0 + torch.rand(batch, steps, n, generator=generator, dtype=DT))
    state = NeuronState(torch.rand(batch, n, generator=generator, dtype=DT) * 0.3,
                        torch.rand(batch, n, generator=generator, dtype=DT) * 0.3,
                        torch.zeros(batch, n, dtype=DT))
    return currents, params, state


def test_gradcheck_where_the_spike_function_is_locally_constant():
    margin = 1e-3
    for seed in range(200):
        currents, params, state = smooth_case(seed)
        trace = run_neurons_reference(currents, params, state, return_trace=True)
        distance = (trace.membrane - THRESHOLD).abs()
        if distance.min() > 0.5 + margin and 0.1 < trace.spikes.mean() < 0.9:
            break
    else:
        pytest.fail("no case found with every membrane value outside the surrogate window")

    def run(currents, alpha, beta, a, b, u0, w0):
        return tuple(run_neurons(currents, NeuronParams(alpha, beta, a, b), NeuronState(u0, w0, state.s),
                                 return_trace=True))

    inputs = tuple(x.clone().requires_grad_() for x in (currents, *params, state.u, state.w))
    assert torch.autograd.gradcheck(run, inputs, eps=1e-6, atol=1e-8)


def test_runs_can_be_continued_from_the_final_state():
    currents, params, state = make_case("adlif+", steps=50, seed=6)
    with torch.no_grad():
        whole = run_neurons(currents, params, state, return_trace=True)
        first = run_neurons(currents[:, :20], params, state, return_trace=True)
        second = run_neurons(currents[:, 20:], params, first.final_state(), return_trace=True)
    for full, part1, part2 in zip(whole, first, second):
        assert torch.equal(full, torch.cat([part1, part2], dim=1))


def test_parameters_without_gradient_and_broadcast_initial_state():
    currents, params, _ = make_case("adlif", seed=7)
    params = NeuronParams(*(p.detach() for p in params))
    zero = NeuronState(torch.zeros(12, dtype=DT), torch.zeros(12, dtype=DT), torch.zeros(12, dtype=DT))
    spikes = run_neurons(currents, params, zero)
    assert torch.equal(spikes, run_neurons_reference(currents, params, initial_state(4, 12, "zero", dtype=DT)))
    (grad,) = torch.autograd.grad(spikes.sum(), currents)
    assert grad.shape == currents.shape


def test_lif_ignores_initial_adaptation():
    currents, params, state = make_case("lif", seed=8)
    trace = run_neurons(currents, params, state, return_trace=True)
    assert torch.count_nonzero(trace.adaptation) == 0


def test_initial_state_modes():
    zero = initial_state(3, 5, "zero", dtype=DT)
    assert all(x.shape == (3, 5) and x.dtype == DT and torch.count_nonzero(x) == 0 for x in zero)
    first = initial_state(64, 32, "uniform", generator=torch.Generator().manual_seed(1))
    again = initial_state(64, 32, "uniform", generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(x, y) for x, y in zip(first, again))
    assert torch.count_nonzero(first.s) == 0
    for x in (first.u, first.w):
        assert x.min() >= 0 and x.max() < 1 and 0.4 < x.mean() < 0.6
    assert not torch.equal(first.u, first.w)
    with pytest.raises(ValueError, match="initial state mode"):
        initial_state(1, 1, "random")


def test_torch_loop_matches_reference(monkeypatch):
    # Off the CPU (or for dtypes numpy lacks) the same loops run on torch tensors; exercise them here.
    from snn_toolchain.train.model import recurrence
    monkeypatch.setattr(recurrence, "_use_numpy", lambda tensor: False)
    currents, params, state = make_case("adlif+", seed=9)
    reference = run_neurons_reference(currents, params, state, return_trace=True)
    fast = run_neurons(currents, params, state, return_trace=True)
    for got, expected in zip(fast, reference):
        assert torch.equal(got, expected)
    inputs = gradient_inputs(currents, params, state)
    weights = torch.randn(currents.shape, dtype=DT, generator=torch.Generator().manual_seed(2))
    expected = torch.autograd.grad((reference.spikes * weights).sum() + reference.membrane.sum(), inputs)
    got = torch.autograd.grad((fast.spikes * weights).sum() + fast.membrane.sum(), inputs)
    for name, g, e in zip(NAMES, got, expected):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-11, msg=f"gradient of {name}")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    currents, params, state = make_case("adlif", seed=10)
    inputs = gradient_inputs(currents, params, state)
    expected_spikes = run_neurons(currents, params, state)
    expected = torch.autograd.grad(expected_spikes.sum(), inputs)
    moved = [x.detach().cuda().requires_grad_() for x in inputs]
    spikes = run_neurons(moved[0], NeuronParams(*moved[1:5]), NeuronState(*moved[5:]))
    got = torch.autograd.grad(spikes.sum(), moved)
    assert torch.equal(spikes.cpu(), expected_spikes)
    for name, g, e in zip(NAMES, got, expected):
        torch.testing.assert_close(g.cpu(), e, rtol=1e-9, atol=1e-10, msg=f"gradient of {name}")


def test_mixed_dtypes_are_refused():
    currents, params, state = make_case("adlif", seed=11)
    with pytest.raises(ValueError, match="same dtype and device"):
        run_neurons(currents.float(), params, state)
