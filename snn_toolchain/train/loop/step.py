"""One training step, as the trainer runs it and as ``benchmarks/bench_training_step.py`` times it:
forward -> cross-entropy (+ an activity penalty, train/loop/regularization.py) -> backward -> Adam step
-> clip delays and neuron parameters -> zero the pruned synapses' weights (``--prune``).

On CUDA the step can be replayed as one captured CUDA graph (``cuda_graphs=True``). The GPU work
of a step of the SHD preset is about 5 ms on an H200, but launching its ~200 kernels one by one
from Python costs more than that; a graph launches them all at once. The arithmetic is the same
kernels with the same inputs, so a graphed step computes what an eager step computes.

The first ``warmup`` steps run eagerly (they are real training steps, not extra ones): capturing
needs the optimizer state and the lazily initialised CUDA libraries to exist already. A batch of
another shape (the last, smaller batch of an epoch) runs eagerly too, and a change of learning rate
(ReduceLROnPlateau) triggers a new capture, because a captured Adam step has its learning rate
baked in.
"""

from __future__ import annotations

import torch


def make_optimizer(model, lr_weights: float, lr_delays: float, device: torch.device,
                   cuda_graphs: bool = False) -> torch.optim.Adam:
    """Adam over the model's two parameter groups (delays at their own learning rate).

    On CUDA it uses the fused implementation (one kernel for all parameters) or, for graphs, the
    capturable multi-tensor one.
    """
    groups = model.parameter_groups(lr_weights, lr_delays)
    if device.type == "cuda":
        if cuda_graphs:
            return torch.optim.Adam(groups, capturable=True, foreach=True)
        return torch.optim.Adam(groups, fused=True)
    return torch.optim.Adam(groups)


class TrainingStep:
    """Callable ``step(x, y) -> (loss, scores)``; ``loss`` is a 0-d tensor, ``scores`` (batch, classes).

    Args:
        model: the DelaySNN (its ``clamp_`` runs after every optimizer step).
        optimizer: from :func:`make_optimizer`.
        forward: what computes the scores from x; default ``model`` (the trainer passes the
            DDP-wrapped model here).
        cuda_graphs: replay the step as a CUDA graph (CUDA only, not with DDP).
        warmup: eager steps before the first capture.
        regularizer: an ``ActivityRegularizer`` (train/loop/regularization.py) whose penalty is added to
            the loss, or None; with one, ``synops`` holds the last step's hidden synaptic operations
            per sample (a 0-d tensor on the device, read once per epoch by the trainer).
        pruner: a ``SynapsePruner`` (train/loop/regularization.py) whose masks are applied after every
            optimizer step, or None. Its masks change in place between epochs, so a captured
            graph applies the current ones.
    """

    def __init__(self, model, optimizer, forward=None, cuda_graphs: bool = False, warmup: int = 3,
                 regularizer=None, pruner=None):
        self.model = model
        self.optimizer = optimizer
        self.forward = forward or model
        self.cuda_graphs = cuda_graphs
        self.warmup = warmup
        self.regularizer = regularizer
        self.pruner = pruner
        self.synops = None
        self.eager_steps = 0
        self.graph = None
        self.graph_key = None
        self.static = None

    def _loss(self, x: torch.Tensor, y: torch.Tensor):
        """(loss, scores, hidden synaptic ops per sample or None): the forward and the objective."""
        if self.regularizer is None:
            scores = self.forward(x)
            return torch.nn.functional.cross_entropy(scores, y), scores, None
        scores, spikes = self.forward(x, return_spikes=True)
        penalty, synops = self.regularizer(self.model, spikes)
        return torch.nn.functional.cross_entropy(scores, y) + penalty, scores, synops

    def _after_update(self) -> None:
        self.model.clamp_()
        if self.pruner is not None:
            self.pruner.apply_(self.model)

    def eager(self, x: torch.Tensor, y: torch.Tensor):
        loss, scores, synops = self._loss(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self._after_update()
        self.synops = synops
        return loss.detach(), scores.detach()

    def _learning_rates(self) -> tuple:
        return tuple(float(group["lr"]) for group in self.optimizer.param_groups)

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        static_x, static_y = x.clone(), y.clone()
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        # Capture on a side stream, as torch.cuda.graph requires; work queued before is awaited.
        torch.cuda.synchronize()
        with torch.cuda.graph(graph):
            loss, scores, synops = self._loss(static_x, static_y)
            loss.backward()
            self.optimizer.step()
            self._after_update()
        self.graph = graph
        self.static = (static_x, static_y, loss, scores, synops)
        self.graph_key = (tuple(x.shape), x.dtype, tuple(y.shape), self._learning_rates())

    def __call__(self, x: torch.Tensor, y: torch.Tensor):
        if not (self.cuda_graphs and x.is_cuda):
            return self.eager(x, y)
        if self.eager_steps < self.warmup:
            self.eager_steps += 1
            return self.eager(x, y)
        key = (tuple(x.shape), x.dtype, tuple(y.shape), self._learning_rates())
        if self.graph is not None and key[:3] != self.graph_key[:3]:
            return self.eager(x, y)  # e.g. the last, smaller batch of an epoch
        if self.graph is None or key != self.graph_key:
            self._capture(x, y)  # capturing records the work; the replay below does it
        static_x, static_y, loss, scores, synops = self.static
        static_x.copy_(x)
        static_y.copy_(y)
        self.graph.replay()
        self.synops = synops
        return loss.detach(), scores.detach()
