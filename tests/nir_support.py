"""What the NIR tests share (tests/test_nir_export.py, tests/test_nir_import.py,
tests/test_nir_frameworks.py): a small network whose parameters look trained, its spike inputs,
the check that an error is one line, and running a graph in snnTorch and Norse step by step."""

from __future__ import annotations

import torch

from snn_toolchain.train.model.delay_snn import DelaySNN

N_IN, HIDDEN, CLASSES, MAX_DELAY, STEPS = 30, 16, 5, 6, 40
SNNTORCH_DT = 1e-4    # snnTorch reads and writes NIR with this fixed time step
SILENT = [0, 5, 11]   # the neurons with_silent_neurons silences


def trained_like(variant: str, delays: bool, seed: int = 0, hidden: int = HIDDEN, n_in: int = N_IN,
                 latency: int = 1) -> DelaySNN:
    torch.manual_seed(seed)
    model = DelaySNN(n_in, CLASSES, hidden, variant=variant, delays=delays, max_delay=MAX_DELAY, dropout=0.0,
                     norm="batchnorm", latency=latency).eval()
    with torch.no_grad():
        for block in list(model.blocks) + [model.readout]:
            block.synapse.weight.mul_(4.0)
            if delays:
                block.synapse.delay.uniform_(0, MAX_DELAY)
        for block in model.blocks:      # a trained BatchNorm's statistics, to be folded
            block.norm.running_mean.uniform_(-0.1, 0.1)
            block.norm.running_var.uniform_(0.5, 2.0)
    return model


def spike_inputs(n: int = 12, seed: int = 1, n_in: int = N_IN) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(n, STEPS, n_in, generator=generator) < 0.15).to(torch.float32)


def with_silent_neurons(variant: str, delays: bool):
    """``trained_like`` with the hidden neurons SILENT at alpha = 1 (they never leave the zero state)."""
    model = trained_like(variant, delays)
    with torch.no_grad():
        for block in model.blocks:          # the trainer's bound: clamp_ leaves exactly 1.0
            block.neuron.alpha[SILENT] = 1.0
    return model


def one_line(err) -> str:
    """The message of an error (or of pytest's ExceptionInfo): not empty, one line."""
    message = str(err.value if hasattr(err, "value") else err)
    assert "\n" not in message and message, message
    return message


def active_lif() -> DelaySNN:
    """``trained_like``'s LIF network without delays and latency, its weights x3 so that both layers
    fire often: the network of our export for Sinabs in tests/data/nir-frameworks (make_fixtures.py)."""
    model = trained_like("lif", False, latency=0)
    with torch.no_grad():
        for block in list(model.blocks) + [model.readout]:
            block.synapse.weight.mul_(3.0)
    return model


def _step_by_step(net, x: torch.Tensor, spiking: tuple) -> tuple:
    """Run a nirtorch-built module (snnTorch's or Norse's) one step at a time, its state carried;
    (output summed over the steps, the spikes of the named modules (batch, steps, n))."""
    recorded = {name: [] for name in spiking}

    def keep(name):
        return lambda module, inputs, output: recorded[name].append(
            (output[0] if isinstance(output, tuple) else output).detach())

    hooks = [getattr(net, name).register_forward_hook(keep(name)) for name in spiking]
    outputs, state = [], None
    with torch.no_grad():
        for t in range(x.shape[1]):
            out, state = net(x[:, t], state)
            outputs.append(out)
    for hook in hooks:
        hook.remove()
    return torch.stack(outputs, 1).sum(1).numpy(), [torch.stack(recorded[n], 1).numpy() for n in spiking]


def run_snntorch(net, x: torch.Tensor, spiking: tuple) -> tuple:
    """A graph imported by snnTorch's import_from_nir, step by step (``_step_by_step``)."""
    import snntorch

    for module in net.modules():
        if isinstance(module, snntorch.SpikingNeuron):
            module.reset_hidden()
    return _step_by_step(net, x, spiking)


def run_norse(net, x: torch.Tensor, spiking: tuple) -> tuple:
    """A graph imported by Norse's from_nir, step by step (``_step_by_step``)."""
    return _step_by_step(net, x, spiking)
