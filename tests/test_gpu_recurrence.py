"""The Triton AdLIF kernels (train/model/gpu_recurrence.py) against the per-step autograd reference.

Each case runs the same inputs through ``run_neurons_reference`` and through the Triton Function and
compares the three traces (bit for bit) and all eight gradients.

- With a CUDA device the compiled kernels run on it (float64 and float32).
- Without one, the same cases run on the CPU under Triton's interpreter (TRITON_INTERPRET=1), so CI
  executes the kernel code for real. That happens in a subprocess: ``triton.jit`` reads the variable
  when the kernels are defined, and the interpreter patches ``triton.language`` process-wide.

Run on a GPU machine without pytest: ``python tests/test_gpu_recurrence.py`` runs every case on CUDA.
"""

import os
import subprocess
import sys
from pathlib import Path

import torch

try:
    import pytest
except ImportError:  # the GPU machine may lack pytest; the __main__ block below needs none
    pytest = None

from snn_toolchain.neurons.dynamics import THRESHOLD, NeuronParams, NeuronState, resolve_bounds
from snn_toolchain.train.model import gpu_recurrence
from snn_toolchain.train.model.recurrence import initial_state, run_neurons, run_neurons_reference

NAMES = ["currents", "alpha", "beta", "a", "b", "u0", "w0", "s0"]
# Gradients are sums over time and batch in another order than autograd's: compare with tolerances.
TOLERANCES = {torch.float64: dict(rtol=1e-9, atol=1e-10), torch.float32: dict(rtol=1e-4, atol=1e-4)}

# (name, variant, dtype, batch, steps, n, loss, layout). batch x n > 128 spreads the elements over
# more than one program, with a partly masked last block; "transposed" currents have the strides of
# the delayed synapse's output (conv1d, transposed), "expanded" upstream gradients stride 0 (sum()).
CASES = [
    ("lif-spikes-f64", "lif", torch.float64, 4, 50, 12, "spikes", "contiguous"),
    ("adlif-spikes-f64", "adlif", torch.float64, 4, 50, 12, "spikes", "contiguous"),
    ("adlif+-spikes-f64", "adlif+", torch.float64, 4, 50, 12, "spikes", "contiguous"),
    ("adlif+-all-traces-f64", "adlif+", torch.float64, 5, 40, 30, "all", "transposed"),
    ("adlif-membrane-only-f64", "adlif", torch.float64, 3, 30, 7, "membrane", "contiguous"),
    ("adlif+-sum-f64", "adlif+", torch.float64, 3, 25, 9, "sum", "transposed"),
    ("lif-all-traces-f32", "lif", torch.float32, 6, 60, 40, "all", "contiguous"),
    ("adlif+-spikes-f32", "adlif+", torch.float32, 8, 80, 32, "spikes", "transposed"),
]


def make_case(variant, dtype, batch, steps, n, layout, seed=0, device="cpu"):
    generator = torch.Generator().manual_seed(seed)
    bounds = resolve_bounds(variant)
    params = NeuronParams(*(
        (low + (high - low) * torch.rand(n, generator=generator, dtype=dtype)).to(device).requires_grad_()
        for low, high in (bounds[name] for name in NeuronParams._fields)))
    # Fires often and crosses the surrogate window often, so every path of the backward is used.
    currents = 1.2 + 1.5 * torch.randn(batch, steps, n, generator=generator, dtype=dtype)
    if layout == "transposed":
        currents = currents.transpose(1, 2).contiguous().transpose(1, 2)
    currents = currents.to(device).requires_grad_()
    state = initial_state(batch, n, "uniform", generator=generator, dtype=dtype)
    state = NeuronState(*(x.to(device).requires_grad_() for x in state))
    return currents, params, state


def loss_of(trace, kind, weights):
    if kind == "spikes":
        return (trace.spikes * weights[0]).sum()
    if kind == "membrane":
        return (trace.membrane * weights[1]).sum()
    if kind == "sum":
        return trace.spikes.sum() + trace.adaptation.sum()
    return sum((w * x).sum() for w, x in zip(weights, trace))


def check_case(name, variant, dtype, batch, steps, n, loss, layout, device):
    """Raise AssertionError unless the Triton Function matches the reference on ``device``."""
    currents, params, state = make_case(variant, dtype, batch, steps, n, layout, device=device)
    inputs = [currents, *params, *state]
    generator = torch.Generator().manual_seed(1)
    weights = [torch.randn(batch, steps, n, generator=generator, dtype=dtype).to(device) for _ in range(3)]

    reference = run_neurons_reference(currents, params, state, return_trace=True)
    fast = gpu_recurrence.run_neurons_triton(currents, params, state, return_trace=True)
    for field, got, expected in zip(reference._fields, fast, reference):
        assert got.shape == expected.shape and got.dtype == expected.dtype, f"{name}: {field} shape/dtype"
        # no FMA contraction, same order of operations: the traces are bit-identical
        assert torch.equal(got, expected), f"{name}: {field} differs from the reference"
    spike_rate = reference.spikes.mean().item()
    in_window = ((reference.membrane - THRESHOLD).abs() < 0.5).to(dtype).mean().item()
    assert 0.05 < spike_rate < 0.8 and in_window > 0.1, f"{name}: case too easy to test the surrogate path"

    expected = torch.autograd.grad(loss_of(reference, loss, weights), inputs, allow_unused=True)
    got = torch.autograd.grad(loss_of(fast, loss, weights), inputs, allow_unused=True)
    for grad_name, g, e in zip(NAMES, got, expected):
        # lif: beta, a, b get no gradient through w = 0 in the reference (None), zeros here
        e = torch.zeros_like(inputs[NAMES.index(grad_name)]) if e is None else e
        assert g is not None, f"{name}: no gradient for {grad_name}"
        torch.testing.assert_close(g, e, **TOLERANCES[dtype], msg=lambda m: f"{name}: gradient of {grad_name}: {m}")


def check_edge_cases(device):
    """Zero time steps, parameters without gradient, broadcast (N,) initial state, scalar parameters."""
    dtype = torch.float64
    currents, params, _ = make_case("adlif", dtype, 4, 20, 12, "contiguous", seed=7, device=device)
    params = NeuronParams(*(p.detach() for p in params))
    zero = NeuronState(*(torch.zeros(12, dtype=dtype, device=device) for _ in range(3)))
    spikes = gpu_recurrence.run_neurons_triton(currents, params, zero)
    expected = run_neurons_reference(currents, params, initial_state(4, 12, "zero", dtype=dtype, device=device))
    assert torch.equal(spikes, expected)
    (grad,) = torch.autograd.grad(spikes.sum(), currents)
    (expected_grad,) = torch.autograd.grad(expected.sum(), currents)
    torch.testing.assert_close(grad, expected_grad, **TOLERANCES[dtype])

    scalar = NeuronParams(*(torch.tensor(v, dtype=dtype, device=device, requires_grad=True)
                            for v in (0.9, 0.95, 0.3, 0.5)))
    state = initial_state(4, 12, "uniform", generator=torch.Generator().manual_seed(3), dtype=dtype)
    state = NeuronState(*(x.to(device) for x in state))
    got = gpu_recurrence.run_neurons_triton(currents, scalar, state)
    ref = run_neurons_reference(currents, scalar, state)
    assert torch.equal(got, ref)
    for g, e in zip(torch.autograd.grad(got.sum(), scalar), torch.autograd.grad(ref.sum(), scalar)):
        assert g.shape == () and torch.allclose(g, e, **TOLERANCES[dtype])

    empty = gpu_recurrence.run_neurons_triton(currents[:, :0], params, zero, return_trace=True)
    assert all(x.shape == (4, 0, 12) for x in empty)


def check_all(device):
    """Every case on ``device``; returns the list of failure messages (empty when all pass)."""
    failures = []
    for case in CASES:
        try:
            check_case(*case, device=device)
        except AssertionError as error:
            failures.append(str(error))
    try:
        check_edge_cases(device)
    except AssertionError as error:
        failures.append(f"edge cases: {error}")
    return failures


def _interpreter_works() -> bool:
    try:
        import triton  # noqa: F401
        from triton.runtime import interpreter  # noqa: F401
    except ImportError:
        return False
    return True


if pytest is not None:
    cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device with Triton")

    @cuda_only
    @pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
    def test_compiled_kernels_match_reference_on_cuda(case):
        assert gpu_recurrence.available(), "Triton kernels unavailable on this CUDA machine (see warnings)"
        check_case(*case, device="cuda")

    @cuda_only
    def test_compiled_kernels_edge_cases_on_cuda():
        check_edge_cases("cuda")

    @cuda_only
    def test_run_neurons_dispatches_to_triton_on_cuda(monkeypatch):
        currents, params, state = make_case("adlif+", torch.float32, 4, 30, 16, "contiguous", device="cuda")
        spikes = run_neurons(currents, params, state)
        assert type(spikes.grad_fn).__name__ == "TritonAdlifRecurrenceBackward"
        monkeypatch.setenv(gpu_recurrence.DISABLE_ENV_VAR, "1")
        assert not gpu_recurrence.available()
        assert type(run_neurons(currents, params, state).grad_fn).__name__ == "_AdlifRecurrenceBackward"

    @pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present: the compiled kernels are tested directly")
    @pytest.mark.skipif(not _interpreter_works(), reason="triton (or its interpreter) is not installed")
    def test_kernels_match_reference_in_triton_interpreter_on_cpu():
        env = dict(os.environ, TRITON_INTERPRET="1", PYTHONWARNINGS="ignore")
        script = ("import sys; sys.path.insert(0, sys.argv[1]); import test_gpu_recurrence as t; "
                  "failures = t.check_all('cpu'); print('\\n'.join(failures) or 'all cases pass'); "
                  "sys.exit(1 if failures else 0)")
        result = subprocess.run([sys.executable, "-c", script, str(Path(__file__).resolve().parent)],
                                env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"interpreter run failed:\n{result.stdout}\n{result.stderr[-4000:]}"

    def test_not_available_without_cuda_or_when_disabled(monkeypatch):
        monkeypatch.setenv(gpu_recurrence.DISABLE_ENV_VAR, "1")
        assert not gpu_recurrence.available()
        monkeypatch.delenv(gpu_recurrence.DISABLE_ENV_VAR)
        if not torch.cuda.is_available():
            assert not gpu_recurrence.available()
            assert not gpu_recurrence.available("cuda:0")

    def test_import_does_not_import_triton():
        # run from the repository root: snn_toolchain/ resolves there whether or not it is installed
        script = ("import snn_toolchain.train.model.gpu_recurrence, snn_toolchain.train.model.recurrence, sys; "
                  "sys.exit(1 if 'triton' in sys.modules else 0)")
        repo_root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ)
        env.pop("TRITON_INTERPRET", None)
        result = subprocess.run([sys.executable, "-c", script], cwd=repo_root, env=env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]


if __name__ == "__main__":
    if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
        print("no CUDA device; run with TRITON_INTERPRET=1 to check the kernels in Triton's interpreter")
        sys.exit(0)
    target = "cuda" if torch.cuda.is_available() else "cpu"
    problems = check_all(target)
    print("\n".join(problems) or f"all {len(CASES)} cases and the edge cases pass on {target}")
    sys.exit(1 if problems else 0)


def test_run_neurons_finds_the_triton_kernels_through_the_registry_not_an_import():
    """recurrence.py no longer imports gpu_recurrence (they imported each other): the Triton
    recurrence registers itself for CUDA devices, and the CPU always takes the torch loop."""
    from snn_toolchain.train.model import recurrence
    assert recurrence.device_recurrence(torch.device("cpu")) is None
    chooser = recurrence._DEVICE_RECURRENCES[0]
    assert chooser(torch.device("cuda")) in (None, gpu_recurrence.TritonAdlifRecurrence)
    picked = []
    recurrence.register_device_recurrence(lambda device: picked.append(device) or None)
    try:
        recurrence.device_recurrence(torch.device("cuda", 1))
    finally:
        recurrence._DEVICE_RECURRENCES.pop()
    assert picked == [torch.device("cuda", 1)]
