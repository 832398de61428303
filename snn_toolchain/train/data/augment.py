"""Data augmentation on a training batch, as the delay-learning peers use on SHD and SSC.

Every transformation works on a whole batch ``x`` of shape (batch, time, channels) on its own
device, draws its randomness from torch's global generator (so a resumed run draws what the
uninterrupted run drew) and is off unless named in ``--augment``:

========================  =====================================================================
``time-shift=N``          move each sample by a random whole number of steps in [-N, N]; what
                          leaves the window is dropped, what enters is silence
``channel-shift=N``       move each sample by a random number of input channels in [-N, N]
                          (a shift along the cochlea's frequency axis)
``time-mask=N``           silence one random block of 0..N consecutive steps per sample
``channel-mask=N``        silence one random block of 0..N consecutive channels per sample
``mix=P``                 with probability P per sample, paste a random stretch of time from
                          another sample of the batch (CutMix in time); the target becomes the
                          two labels weighted by the share of spikes each sample contributed
========================  =====================================================================

Steps are input time steps (10 ms bins), channels are input channels (5 cochlea channels each for
SHD/SSC). Evaluation never augments.
"""

from __future__ import annotations

from typing import Dict

import torch

# name -> the type of its value: int for a count of steps or channels, float for a probability
AUGMENTATIONS: Dict[str, type] = {
    "time-shift": int,
    "channel-shift": int,
    "time-mask": int,
    "channel-mask": int,
    "mix": float,
}


def parse_augment(text: str) -> Dict[str, float]:
    """'time-shift=5,mix=0.5' -> {'time-shift': 5, 'mix': 0.5}; '' -> {}.

    Raises ValueError naming the item for an unknown name, a missing value, a negative count or a
    probability outside [0, 1].
    """
    spec: Dict[str, float] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, _, value = item.partition("=")
        if name not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation '{name}'; choose from {', '.join(AUGMENTATIONS)}")
        kind = AUGMENTATIONS[name]
        try:
            number = kind(value)
        except ValueError:
            raise ValueError(f"'{item}': write {name}=<{'steps or channels' if kind is int else 'probability'}>") from None
        if number < 0 or (kind is float and number > 1):
            raise ValueError(f"'{item}': must be {'>= 0' if kind is int else 'in [0, 1]'}")
        spec[name] = number
    return spec


def _shift(x: torch.Tensor, dim: int, largest: int) -> torch.Tensor:
    """Each sample shifted along ``dim`` by its own random amount in [-largest, largest], zero-filled."""
    batch, length = x.shape[0], x.shape[dim]
    shifts = torch.randint(-largest, largest + 1, (batch,), device=x.device)
    positions = torch.arange(length, device=x.device)
    source = positions.unsqueeze(0) - shifts.unsqueeze(1)                     # (batch, length)
    inside = (source >= 0) & (source < length)
    source = source.clamp(0, length - 1)
    view = [batch, 1, 1]
    view[dim] = length
    index = source.view(view).expand_as(x)
    return torch.gather(x, dim, index) * inside.view(view).to(x.dtype)


def _block_mask(batch: int, length: int, largest: int, device) -> torch.Tensor:
    """(batch, length) bool: True inside one random block of 0..largest positions per sample."""
    width = torch.randint(0, min(largest, length) + 1, (batch,), device=device)
    start = (torch.rand(batch, device=device) * (length - width + 1)).floor().long()
    positions = torch.arange(length, device=device).unsqueeze(0)
    return (positions >= start.unsqueeze(1)) & (positions < (start + width).unsqueeze(1))


def _mix(x: torch.Tensor, labels: torch.Tensor, n_classes: int, probability: float):
    batch, steps = x.shape[:2]
    partner = torch.randperm(batch, device=x.device)
    chosen = torch.rand(batch, device=x.device) < probability
    stretch = _block_mask(batch, steps, steps, x.device) & chosen.unsqueeze(1)   # (batch, time)
    pasted = torch.where(stretch.unsqueeze(2), x[partner], x)
    from_partner = (x[partner] * stretch.unsqueeze(2)).sum(dim=(1, 2))
    total = pasted.sum(dim=(1, 2))
    # share of the mixed sample's activity that came from the partner (its time share when silent)
    share = torch.where(total > 0, from_partner / total.clamp(min=1e-12), stretch.float().mean(1))
    one_hot = torch.nn.functional.one_hot(labels, n_classes).to(x.dtype)
    target = (1 - share).unsqueeze(1) * one_hot + share.unsqueeze(1) * one_hot[partner]
    return pasted, target


def augment_batch(x: torch.Tensor, labels: torch.Tensor, spec: Dict[str, float], n_classes: int):
    """(x, target) after the augmentations in ``spec`` (from :func:`parse_augment`).

    ``target`` is ``labels`` (int64, (batch,)) unless ``mix`` is on, then class probabilities
    (batch, n_classes), which ``torch.nn.functional.cross_entropy`` takes as they are.
    """
    if spec.get("time-shift"):
        x = _shift(x, 1, int(spec["time-shift"]))
    if spec.get("channel-shift"):
        x = _shift(x, 2, int(spec["channel-shift"]))
    if spec.get("time-mask"):
        x = x * ~_block_mask(x.shape[0], x.shape[1], int(spec["time-mask"]), x.device).unsqueeze(2)
    if spec.get("channel-mask"):
        x = x * ~_block_mask(x.shape[0], x.shape[2], int(spec["channel-mask"]), x.device).unsqueeze(1)
    if spec.get("mix"):
        return _mix(x, labels, n_classes, float(spec["mix"]))
    return x, labels


def hard_labels(target: torch.Tensor) -> torch.Tensor:
    """The class each target stands for: labels as they are, probabilities by their largest entry."""
    return target.argmax(dim=1) if target.dim() == 2 else target
