"""The trainer's evaluation of a model on a data loader: loss, accuracy and spike counts."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def evaluate_model(model: nn.Module, loader, device: torch.device | str = "cpu", count_spikes: bool = False,
                   halves: bool = False) -> dict:
    """Loss, accuracy in [0, 1] and samples; with ``count_spikes`` also the spikes per neuron per
    sample of each hidden layer (over every time step of the padded input).

    The trainer's evaluation, kept apart from the one backend loop (``snn_toolchain.evaluation.
    evaluate_backend`` with ``train.float_backend.FloatModelBackend``) because it needs the loss and
    runs every epoch on the training device: it keeps the scores there instead of copying every
    spike to numpy. ``halves``: also the loss and accuracy of the even- and of the odd-numbered
    samples (in the loader's order), to compare selection rules on validation alone (docs/training.md)."""
    was_training = model.training
    model.eval()
    if hasattr(model, "reset_eval_randomness"):
        model.reset_eval_randomness()
    loss_sum, correct, count, spikes = 0.0, 0, 0, None
    per_half = [[0.0, 0, 0], [0.0, 0, 0]]     # even, odd: loss sum, correct, count
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        if count_spikes:
            scores, layer_spikes = model(x, return_spikes=True)
            sums = [float(s.sum()) for s in layer_spikes]
            spikes = sums if spikes is None else [a + b for a, b in zip(spikes, sums)]
        else:
            scores = model(x)
        losses = torch.nn.functional.cross_entropy(scores, y, reduction="none")
        hits = scores.argmax(1) == y
        loss_sum += losses.sum().item()
        correct += hits.sum().item()
        if halves:
            parity = (torch.arange(len(y), device=y.device) + count) % 2
            for half in (0, 1):
                chosen = parity == half
                per_half[half][0] += losses[chosen].sum().item()
                per_half[half][1] += hits[chosen].sum().item()
                per_half[half][2] += int(chosen.sum().item())
        count += len(y)
    model.train(was_training)
    result = {"loss": loss_sum / max(count, 1), "accuracy": correct / max(count, 1), "samples": count}
    if halves:
        result["halves"] = [{"loss": loss / max(n, 1), "accuracy": hit / max(n, 1), "samples": n}
                            for loss, hit, n in per_half]
    if count_spikes:
        sizes = [block.neuron.n for block in model.blocks]
        result["spikes_per_neuron_per_sample"] = [total / (max(count, 1) * n) for total, n in zip(spikes or [], sizes)]
    return result
