"""The emulator (export/emulator.py): it runs as many samples at a time as memory holds, with the
same result as all at once, and refuses, in one line, a network of which not even one sample fits.
"""

from __future__ import annotations

import pytest
import torch

from snn_toolchain.export import emulator as emulator_module
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.quantized_network import NetworkError
from snn_toolchain.train.model.delay_snn import DelaySNN
from snn_toolchain.train.model.quantize import quantize_model


def test_the_emulator_runs_what_memory_holds_at_a_time(monkeypatch):
    torch.manual_seed(0)
    model = DelaySNN(12, 4, hidden=10, max_delay=3, dropout=0.0).eval()
    with torch.no_grad():
        for block in model.blocks:
            block.synapse.weight.mul_(4)
    network = quantize_model(model, 30)
    x = (torch.rand(9, 30, 12) < 0.3).float()
    whole = Emulator(network)(x)
    emulator = Emulator(network)
    per_sample = emulator.bytes_per_sample()
    monkeypatch.setattr(emulator_module, "available_bytes", lambda: 2 * per_sample * 2 + 1)   # two samples at a time
    assert emulator.samples_per_chunk() == 2
    chunked = emulator(x)
    assert torch.equal(whole.scores, chunked.scores) and all(torch.equal(a, b) for a, b in zip(whole.spikes, chunked.spikes))
    monkeypatch.setattr(emulator_module, "available_bytes", lambda: per_sample)               # not even one
    with pytest.raises(NetworkError, match="one sample of this network .* needs about"):
        emulator(x)
