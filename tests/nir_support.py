"""What the NIR tests share (tests/test_nir_export.py, tests/test_nir_import.py): a small network
whose parameters look trained, its spike inputs, and the check that an error is one line."""

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
