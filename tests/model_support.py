"""Small DelaySNN models whose parameters look trained (delays spread over their range, weights large
enough that every layer fires), for the tests of quantization, the .net file, the deployed
arithmetic and parity."""

from __future__ import annotations

import torch

from snn_toolchain.train.model.delay_snn import DelaySNN


def trained_like_model(variant="adlif+", seed=0, max_delay=8):
    """14 inputs, 2 x 12 hidden neurons of ``variant``, 5 classes, with biases."""
    torch.manual_seed(seed)
    model = DelaySNN(14, 5, 12, variant=variant, max_delay=max_delay, dropout=0.0)
    with torch.no_grad():
        for synapse in [b.synapse for b in model.blocks] + [model.readout.synapse]:
            synapse.delay.uniform_(0, max_delay)
            synapse.weight.mul_(3)
            synapse.bias.uniform_(-0.2, 0.2)
    return model.eval()


def batchnorm_model(seed: int = 0, hidden: int = 24, max_delay: int = 10) -> DelaySNN:
    """An AdLIF+ network with delays and BatchNorm whose statistics and affine parameters are far
    from the identity, so folding them is not a no-op."""
    torch.manual_seed(seed)
    model = DelaySNN(140, 20, hidden=hidden, variant="adlif+", delays=True, max_delay=max_delay, dropout=0.0,
                     norm="batchnorm")
    with torch.no_grad():
        for block in list(model.blocks) + [model.readout]:
            block.synapse.delay.uniform_(0, max_delay)
            block.synapse.bias.uniform_(-0.2, 0.2)
        for block in model.blocks:
            block.norm.running_mean.uniform_(-0.5, 0.5)
            block.norm.running_var.uniform_(0.05, 0.3)
            block.norm.weight.uniform_(0.5, 1.5)
            block.norm.bias.uniform_(-0.3, 0.6)
    return model.eval()
