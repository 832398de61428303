"""The trained float model as a backend (``snn_toolchain.runs``): a batch of samples -> RunResult.

Its steps are input steps: the float model has no per-layer latency (its layer ``l`` spike at step
``t`` is Lava's at step ``t + l + 1``), so its spikes are compared with fixed point by count, not by
step. Scores are float (the sum over time of the readout synapse's output, threshold units).
"""

from __future__ import annotations

import numpy as np
import torch

from snn_toolchain.runs import RunResult


class FloatModelBackend:
    """A ``DelaySNN`` in evaluation mode on ``device``; call it on (batch, time, inputs) samples.

    Building one moves the model to ``device`` and restarts its uniform evaluation draws, so one
    backend per evaluation pass sees the same initial states as ``evaluate_model``. Each call runs
    in evaluation mode and gives the model back in the mode it found it.
    """

    def __init__(self, model, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device)
        if hasattr(model, "reset_eval_randomness"):
            model.reset_eval_randomness()

    @torch.no_grad()
    def __call__(self, inputs) -> RunResult:
        x = torch.as_tensor(inputs, dtype=torch.float32, device=self.device)
        was_training = self.model.training
        self.model.eval()
        try:
            spikes, readout_input = self.model.run_layers(x)
        finally:
            self.model.train(was_training)
        return RunResult(readout_input.sum(dim=1).cpu().numpy(),
                         [s.cpu().numpy().astype(np.uint8) for s in spikes], readout_input.cpu().numpy())
