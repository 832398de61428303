"""Each block quantizes itself (SLAYER's way): a trained ``DelaySNN`` to the deployable
:class:`~snn_toolchain.quantized_network.QuantizedNetwork`, with the rules of
:mod:`snn_toolchain.fixed_point` (docs/fixed_point.md).
"""

from __future__ import annotations

import numpy as np

from snn_toolchain import constants as C
from snn_toolchain.input_encoding import GradedInputEncoding
from snn_toolchain.quantized_network import QuantizedLayer, QuantizedNetwork
from snn_toolchain.neurons.dynamics import CubaFixedParams, NeuronParams
from snn_toolchain.fixed_point import finite, quantize_connection, quantize_neurons


def _numpy(tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float64)


def quantize_block(block, name: str, lif_as_cuba: bool = True, input_gain: float = 1.0,
                   per_neuron_scales: bool = True) -> QuantizedLayer:
    """Quantize one block: an ``AdLIFDelayBlock`` (synapse, its BatchNorm folded in, and the neurons
    it feeds) or the ``SumReadout`` (synapse only). Delays are rounded as in evaluation.

    A LIF block is written as lava-dl's CUBA neurons (``lif_as_cuba``), so the stock NetX reader
    runs it: ``iDecay = 4096`` (a memoryless current), ``vDecay = 4096 - alpha``, and the input
    scale ``1 - alpha`` of our LIF folded into each neuron's weights and bias. CUBA resets to 0 on a
    spike where our LIF subtracts the threshold; the accuracy cost is measured, not assumed
    (docs/fixed_point.md).

    ``input_gain``: the factor the model applies to its inputs before this block (the first block
    of a model fed graded payloads, 1/levels), folded into the weights: the deployed synapse
    multiplies the integer payloads themselves. ``per_neuron_scales=False``: an AdLIF layer with one
    scale, as format versions 1 and 2 held them (what the model's deployed arithmetic does not compute).
    """
    synapse = block.synapse
    neuron = getattr(block, "neuron", None)
    if hasattr(block, "folded_connection"):
        weight, bias = (None if t is None else t.detach().cpu().numpy() for t in block.folded_connection())
    else:
        weight = _numpy(synapse.weight)
        bias = _numpy(synapse.bias) if synapse.bias is not None else None
    bias = np.zeros(synapse.out_features) if bias is None else bias
    weight = weight * input_gain
    delay = synapse.rounded_delays().detach().cpu().numpy()
    if neuron is None:
        return quantize_layer(name, weight, delay, bias)
    params = NeuronParams(*(_numpy(getattr(neuron, p)) for p in ("alpha", "beta", "a", "b")))
    as_cuba = neuron.variant == "lif" and lif_as_cuba
    if as_cuba:
        input_scale = 1.0 - finite(name, "neuron alpha", params.alpha)
        weight, bias = weight * input_scale[:, None], bias * input_scale
    return quantize_layer(name, weight, delay, bias, params, neuron.variant, as_cuba=as_cuba,
                          per_neuron_scales=per_neuron_scales)


def quantize_layer(name: str, weight, delay, bias, neuron: NeuronParams | None = None, variant: str = "adlif+", *,
                   as_cuba: bool = False, current_decay=None, per_neuron_scales: bool = True) -> QuantizedLayer:
    """One connection layer and the neurons it feeds, from float values (numpy): the rules every
    producer shares (a trained block, an imported NIR graph).

    weight, bias: threshold units, as the neurons receive them (any input scale already applied);
    delay: steps; neuron: float ``NeuronParams`` per neuron (alpha, beta, a, b: fractions per
    step), None for the summing readout. ``as_cuba``: Lava's CUBA LIF (memoryless current unless
    ``current_decay``, the fraction of the current lost per step, is given; voltage decay
    ``1 - alpha``; reset to 0), else the AdLIF arithmetic of ``variant``. An AdLIF layer gets a
    scale (threshold) per neuron, a CUBA layer and the readout one (Lava's LIF holds one ``vth``, and
    the readout's class scores share one unit; docs/fixed_point.md).
    """
    layer = quantize_connection(name, weight, delay, bias,
                                per_neuron=per_neuron_scales and neuron is not None and not as_cuba)
    if neuron is None:
        return layer
    threshold = np.asarray(layer.threshold_mant, dtype=np.int64) << C.ACTIVATION_SHIFT
    params = quantize_neurons(name, *neuron, threshold)
    if as_cuba:
        n = len(layer.bias)
        if current_decay is None:
            current = np.full(n, C.DECAY_UNITY, dtype=np.int64)
        else:
            current = np.round(finite(name, "neuron current decay", np.broadcast_to(current_decay, (n,)))
                               * C.DECAY_UNITY).astype(np.int64)
        layer.neuron = CubaFixedParams(current, C.DECAY_UNITY - params.alpha, layer.bias, params.threshold)
        layer.neuron_variant = "cuba"
    else:
        layer.neuron = params._replace(bias=layer.bias)
        layer.neuron_variant = variant
    return layer.validate()


def quantize_model(model, time_steps: int, settings: dict | None = None, lif_as_cuba: bool = True,
                   per_neuron_scales: bool = True) -> QuantizedNetwork:
    """The QuantizedNetwork of a trained ``DelaySNN``; ``time_steps`` input steps per sample."""
    blocks = list(model.blocks) + [model.readout]
    layers = [block.quantize(str(index), lif_as_cuba=lif_as_cuba, input_gain=model.input_gain if index == 0 else 1.0,
                             per_neuron_scales=per_neuron_scales)
              for index, block in enumerate(blocks)]
    return QuantizedNetwork(layers, time_steps, model.config["variant"], dict(settings or {}),
                            input_encoding=GradedInputEncoding.from_dict(model.config.get("input_encoding"))).validate()
