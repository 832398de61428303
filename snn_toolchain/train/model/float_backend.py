"""The trained model as a backend (``snn_toolchain.evaluation``): a batch of samples -> RunResult.

Its steps are run steps: the model runs with Lava's latency (``DelaySNN(latency=1)``, the default),
so its layer ``l`` spike at step ``r`` is Lava's at step ``r``, and in the deployed arithmetic
(``arithmetic="deployed"``) its spikes, readout input and scores are the emulator's and Lava's
integers (``parity`` compares them spike by spike). In the float arithmetic the scores are floats
(threshold units). A model trained with ``latency=0`` (checkpoints from before the option) has no
latency in the float arithmetic: its spikes are then comparable with fixed point by count only.
"""

from __future__ import annotations

import numpy as np
import torch

from snn_toolchain.evaluation import RunResult


class FloatModelBackend:
    """A ``DelaySNN`` in evaluation mode on ``device``; call it on (batch, time, inputs) samples.

    ``arithmetic``: "float" (the trained model) or "deployed" (the same model in the deployed
    integers, train/model/deployed.py). Building one moves the model to ``device`` and restarts its
    uniform evaluation draws, so one backend per evaluation pass sees the same initial states as
    ``evaluate_model``. Each call runs in evaluation mode and the given arithmetic, and gives the
    model back in the mode and arithmetic it found it in.
    """

    def __init__(self, model, device: str | torch.device = "cpu", arithmetic: str = "float"):
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.arithmetic = arithmetic
        if hasattr(model, "reset_eval_randomness"):
            model.reset_eval_randomness()

    @torch.no_grad()
    def __call__(self, inputs) -> RunResult:
        x = torch.as_tensor(inputs, dtype=torch.float32, device=self.device)
        was_training, arithmetic = self.model.training, self.model.arithmetic
        self.model.eval().set_arithmetic(self.arithmetic)
        try:
            run = self.model.run(x)
        finally:
            self.model.train(was_training).set_arithmetic(arithmetic)
        scores, readout_input = run.scores.cpu().numpy(), run.readout_input.cpu().numpy()
        if self.arithmetic == "deployed":      # whole numbers: the emulator's int64
            scores, readout_input = (np.round(a).astype(np.int64) for a in (scores, readout_input))
        return RunResult(scores, [s.cpu().numpy().astype(np.uint8) for s in run.spikes], readout_input)
