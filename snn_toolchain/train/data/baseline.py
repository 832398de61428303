"""The non-temporal reference: multinomial logistic regression on per-channel spike counts.

Each sample becomes one vector: its counts per input channel summed over all time steps, then
``log1p`` and standardised with the train split's mean and deviation. Any SNN that uses spike
timing should clearly beat this; on the embedded set it tells how hard the task is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset


@dataclass
class BaselineResult:
    train_accuracy: float
    valid_accuracy: float
    test_accuracy: float


def channel_counts(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """(samples, channels) spike counts summed over time, and (samples,) labels."""
    features, labels = [], []
    for i in range(len(dataset)):
        x, y = dataset[i]
        features.append(x.sum(dim=0))
        labels.append(y)
    return torch.stack(features), torch.tensor(labels, dtype=torch.int64)


def logistic_regression_baseline(train: Dataset, valid: Dataset, test: Dataset, n_classes: int,
                                 weight_decay: float = 1e-3, iterations: int = 200, seed: int = 0) -> BaselineResult:
    """Fit on ``train`` with full-batch L-BFGS; return accuracies (fractions in [0, 1])."""
    torch.manual_seed(seed)
    x_train, y_train = channel_counts(train)
    mean, std = x_train.log1p().mean(0), x_train.log1p().std(0) + 1e-6

    def standardise(x):
        return (x.log1p() - mean) / std

    model = torch.nn.Linear(x_train.shape[1], n_classes, dtype=torch.float64)
    xs = standardise(x_train).double()
    optimizer = torch.optim.LBFGS(model.parameters(), max_iter=iterations, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xs), y_train)
        loss = loss + weight_decay * model.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)

    def accuracy(dataset):
        x, y = channel_counts(dataset)
        with torch.no_grad():
            return (model(standardise(x).double()).argmax(1) == y).double().mean().item()

    return BaselineResult(accuracy(train), accuracy(valid), accuracy(test))
