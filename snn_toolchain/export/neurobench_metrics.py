"""The NeuroBench metrics of a network (Yik et al., NeuroBench; the ``neurobench`` package 2.3.0,
``neurobench/metrics``), named and computed as NeuroBench computes them:

- **activation sparsity**: 1 - non-zero activations / all activations, over every spiking layer,
  time step and sample (``ActivationSparsity``: the outputs of the spiking neuron modules);
- **synaptic operations** per sample (``SynapticOperations``): for every connection layer and step,
  the layer's binarised weights (non-zero -> 1) applied to its binarised inputs (non-zero -> 1) and
  summed; counted as **effective ACs** where the layer's inputs are spikes (-1, 0 or 1) and as
  **effective MACs** otherwise; **dense** is the same with every weight and input set to 1
  (in x out per step). Biases are not operations;
- **connection sparsity**: zero weights / all weights of the connection layers (``ConnectionSparsity``);
- **parameter count** and **footprint** (bytes) of the model (``ParameterCount``, ``Footprint``).

Two differences, both of definition, not of counting: NeuroBench decides AC or MAC per call, i.e.
per time step and batch; here it is per layer and dataset (a graded input layer, counts above 1 or
GSC's payloads, is MACs). And for the deployed network the parameters and footprint are the
``.net`` integers at their Loihi 2 widths, where NeuroBench counts a PyTorch model's float tensors.
``tests/test_energy_report.py`` checks these functions against the ``neurobench`` package itself.
"""

from __future__ import annotations

import math

import numpy as np

from snn_toolchain.quantized_network import FIELD_LIMITS


def synaptic_operations(layer_inputs: list, weights: list) -> dict:
    """NeuroBench's synaptic operations per sample of connection layers ``weights[l]`` (out, in)
    whose inputs over a run are ``layer_inputs[l]`` (samples, steps, in)."""
    acs = macs = dense = 0.0
    samples = None
    for inputs, weight in zip(layer_inputs, weights):
        inputs, weight = np.asarray(inputs), np.asarray(weight)
        samples = inputs.shape[0]
        fan_out = (weight != 0).sum(axis=0)                      # binarised weights, per input
        effective = float(((inputs != 0).sum(axis=(0, 1)) * fan_out).sum())
        if np.isin(inputs, (-1, 0, 1)).all():
            acs += effective
        else:
            macs += effective
        dense += float(inputs.shape[0] * inputs.shape[1] * weight.size)
    samples = max(samples or 1, 1)
    return {"Effective_ACs": acs / samples, "Effective_MACs": macs / samples, "Dense": dense / samples}


def activation_sparsity(spikes: list) -> float:
    """NeuroBench's activation sparsity of spiking layers' outputs (samples, steps, neurons)."""
    active = sum(int(np.count_nonzero(s)) for s in spikes)
    total = sum(int(np.asarray(s).size) for s in spikes)
    return (total - active) / total if total else 0.0


def connection_sparsity(weights: list) -> float:
    zeros = sum(int((np.asarray(w) == 0).sum()) for w in weights)
    total = sum(int(np.asarray(w).size) for w in weights)
    return zeros / total if total else 0.0


def _bits(limit: str) -> int:
    low, high, _ = FIELD_LIMITS[limit]
    return max(1, math.ceil(math.log2(high - low + 1)))


def deployed_size(network) -> tuple[int, int]:
    """(parameters, footprint in bytes) of a QuantizedNetwork: every integer the ``.net`` holds that
    the chip needs (weights, biases, the delays of delayed layers, each neuron's parameters), at the
    widths ``FIELD_LIMITS`` gives them, rounded up to whole bytes per layer and field."""
    count, bits = 0, 0
    for layer in network.layers:
        fields = [("weight", layer.weight.size), ("bias", layer.bias.size)]
        if np.asarray(layer.delay).any():
            fields.append(("delay", layer.delay.size))
        if layer.neuron is not None:
            kind = layer.neuron_kind
            fields += [(check.limit, int(np.size(getattr(layer.neuron, check.attribute)))) for check in kind.field_checks]
        for limit, values in fields:
            count += values
            bits += math.ceil(values * _bits(limit) / 8) * 8
    return count, bits // 8


def deployed_metrics(network, activity: list, time_steps: int) -> dict:
    """The NeuroBench metrics of a deployed network from its activity counts (``export/activity.py``,
    emulator runs): the same formulas as above, on counts instead of arrays. Activations are taken
    over the sample's ``time_steps`` input steps, as NeuroBench's frameworks (which have no Lava
    latency) count them, not over the run's ``time_steps + L`` steps."""
    samples = max(activity[0].samples, 1)
    spiking = [a for a in activity[1:] if a.role in ("hidden", "output")]
    active = sum(a.spike_events for a in spiking)
    total = sum(a.neurons * time_steps * samples for a in spiking)
    acs = macs = dense = 0.0
    for sender, layer in zip(activity, network.layers):
        effective = sender.per_sample(sender.synaptic_ops)
        if sender.role == "input" and sender.message_bits:
            macs += effective
        else:
            acs += effective
        dense += float(time_steps * layer.weight.size)
    parameters, footprint = deployed_size(network)
    return {"activation_sparsity": (total - active) / total if total else 0.0,
            "synaptic_operations": {"Effective_ACs": acs, "Effective_MACs": macs, "Dense": dense},
            "connection_sparsity": connection_sparsity([layer.weight for layer in network.layers]),
            "parameter_count": parameters, "footprint_bytes": footprint}
