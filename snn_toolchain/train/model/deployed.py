"""The deployed arithmetic in torch: what Lava and Loihi 2 compute, on whole numbers held in tensors.

Three things run a network in Loihi 2's arithmetic, and they share this module's functions so that
none of them restates it:

- the batched emulator (``export/emulator.py``) on int64 tensors of a ``.net`` file's integers;
- the training model in its deployed arithmetic (``DelaySNN.set_arithmetic("deployed")``,
  ``train/model/delay_snn.py``) on float64 tensors holding whole numbers: the same values, computed from the
  model's own parameters with straight-through gradients, which is what ``--qat`` trains and what
  ``parity`` compares spike by spike with the emulator and Lava;
- (the Lava ProcessModels run the neuron step of ``snn_toolchain/neurons/dynamics.py`` on numpy).

**Timing.** A Lava synapse delivers a spike sent at step ``r`` through a delay ``d`` at step
``r + SYNAPSE_LATENCY_STEPS + d`` (measured: ``tests/test_deployed.py``). Every neuron adds its
bias from step 0. The training model runs with the same latency by default (``DelaySNN(latency=1)``,
docs/fixed_point.md "One timing"), so what it learns is what the chip computes.

**The rules** (docs/fixed_point.md, ``snn_toolchain/fixed_point.py`` for the numpy twins that write
``.net`` files): per connection a scale ``S`` and an input shift ``k`` (:func:`scale_and_shift_torch`),
weights ``round(W S 2^k)``, biases ``round(b S)``, delays ``round(D)``; decays and the coupling
``round(x 4096)``, the adaptation jump ``round(b S 64)``. All in float64, in the same order of
operations as the numpy rules, so the whole numbers are the same (tested: the model's deployed run
equals the emulator of its exported ``.net`` on every spike).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from snn_toolchain.constants import (
    ACTIVATION_SHIFT,
    BIAS_MANT_MAX,
    DECAY_UNITY,
    MAX_INPUT_SHIFT,
    SCALE_BEFORE_SHIFT_MAX,
    SYNAPSE_LATENCY_STEPS,
    THRESHOLD_MANT_MAX,
    WEIGHT_MAX,
)
from snn_toolchain.neurons.dynamics import (
    CubaFixedParams,
    FixedNeuronParams,
    NeuronState,
    boxcar_spike,
    strict_spike,
)
from snn_toolchain.neurons.registry import neuron_kind_of
from snn_toolchain.train.model.synapse import delayed_dense, ste_round


def surrogate_spike(membrane: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """The fixed-point steps' spike (``membrane > threshold``, membrane units) with the training
    model's boxcar surrogate in threshold units: the gradient reaches the integers as it reaches
    the float membrane (``neuron_dynamics.boxcar_spike``)."""
    return boxcar_spike((membrane - threshold) / threshold)


def scale_and_shift_torch(weight: torch.Tensor, bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(S, 2^k) of :func:`snn_toolchain.fixed_point.scale_and_shift` as 0-d float64 tensors on the
    weights' device, every candidate shift at once (no value is read back to the host). Nothing here
    carries a gradient. Where export refuses a layer (a weight beyond 254 thresholds: S would be 0),
    S is kept at 1, so that training in the deployed arithmetic never divides by a zero threshold."""
    weight = weight.detach().to(torch.float64)
    largest = weight.abs().max()
    largest_bias = (bias.detach().to(torch.float64).abs().max() if bias is not None and bias.numel()
                    else torch.zeros((), dtype=torch.float64, device=weight.device))
    mantissa = torch.floor(WEIGHT_MAX / largest)
    factors = 2.0 ** torch.arange(MAX_INPUT_SHIFT + 1, dtype=torch.float64, device=weight.device)
    scales = torch.floor(mantissa / factors)
    fits = ((scales <= SCALE_BEFORE_SHIFT_MAX) & (torch.round(largest_bias * scales) <= BIAS_MANT_MAX)) | (scales <= 1)
    shift = torch.where(fits.any(), fits.to(torch.int64).argmax(), torch.tensor(MAX_INPUT_SHIFT, device=weight.device))
    scale = scales[shift].clamp(min=1, max=THRESHOLD_MANT_MAX)
    ones = torch.ones_like(scale)
    return torch.where(largest > 0, scale, ones), torch.where(largest > 0, factors[shift], ones)


def neuron_scales_torch(weight: torch.Tensor, bias: torch.Tensor, scale: torch.Tensor,
                        factor: torch.Tensor) -> torch.Tensor:
    """S_j of :func:`snn_toolchain.fixed_point.neuron_scales` as a float64 (out,) tensor on the
    weights' device, from the layer's (S, 2^k); no gradient."""
    weight, bias = weight.detach().to(torch.float64), bias.detach().to(torch.float64)
    largest = weight.abs().amax(dim=1)
    own = torch.where(largest > 0, torch.floor(torch.floor(WEIGHT_MAX / torch.where(largest > 0, largest, 1.0)) / factor),
                      scale)
    bias_room = torch.where(bias != 0, torch.floor(BIAS_MANT_MAX / torch.where(bias != 0, bias.abs(), 1.0)),
                            torch.full_like(bias, float("inf")))
    upper = torch.minimum(torch.clamp(scale, min=SCALE_BEFORE_SHIFT_MAX), bias_room)
    return torch.maximum(scale, torch.minimum(own, upper))


class DeployedConnection(NamedTuple):
    """One connection in the deployed integers, as float64 tensors holding whole numbers.

    weight: (out, in), the ``.net`` weights ``round(W S 2^k)``; delay: (out, in), steps; bias: (out,),
    synaptic units ``round(b S)``; scale: S, the threshold mantissa vThMant (0-d for the layer, or
    (out,) per neuron); shift_factor: 2^k (0-d, the synapse's sum is divided by it and floored per
    delay group).
    """

    weight: torch.Tensor
    delay: torch.Tensor
    bias: torch.Tensor
    scale: torch.Tensor
    shift_factor: torch.Tensor


def deployed_connection(weight: torch.Tensor, bias: torch.Tensor | None, delay: torch.Tensor,
                        max_delay: int, per_neuron: bool = False) -> DeployedConnection:
    """The deployed integers of a connection whose float weights and biases are in threshold units
    as the neurons receive them (BatchNorm, the input gain and a CUBA layer's ``1 - alpha`` already
    folded in) and whose delays are in steps; straight-through gradients to all three.
    ``per_neuron``: a scale per neuron (an AdLIF layer), as ``quantization.quantize_connection``."""
    weight = weight.to(torch.float64)
    bias = torch.zeros(weight.shape[0], dtype=torch.float64, device=weight.device) if bias is None \
        else bias.to(torch.float64)
    scale, factor = scale_and_shift_torch(weight, bias)
    scales = neuron_scales_torch(weight, bias, scale, factor) if per_neuron else scale.expand(weight.shape[0])
    return DeployedConnection(ste_round(weight * (scales * factor)[:, None]),
                              ste_round(delay.to(torch.float64).clamp(0, max_delay)), ste_round(bias * scales),
                              scales if per_neuron else scale, factor)


def deployed_neuron_params(alpha, beta, a, b, connection: DeployedConnection, as_cuba: bool):
    """The fixed-point parameters of the neurons a connection feeds (float64 whole numbers,
    straight-through gradients): ``FixedNeuronParams`` (AdLIF arithmetic) or, for a LIF layer
    deployed as lava-dl's CUBA (``as_cuba``), ``CubaFixedParams`` with a memoryless current.
    alpha, beta, a: fractions per step; b: threshold units."""
    alpha, beta, a, b = (p.to(torch.float64) for p in (alpha, beta, a, b))
    n = alpha.shape[0]
    threshold = (connection.scale * (1 << ACTIVATION_SHIFT)).expand(n)    # per layer or per neuron
    alpha_q = ste_round(alpha * DECAY_UNITY)
    if as_cuba:
        return CubaFixedParams(torch.full_like(alpha_q, DECAY_UNITY), DECAY_UNITY - alpha_q, connection.bias, threshold)
    return FixedNeuronParams(alpha_q, ste_round(beta * DECAY_UNITY), ste_round(a * DECAY_UNITY), ste_round(b * threshold),
                             connection.bias, threshold)


def deployed_synaptic_input(spikes: torch.Tensor, weight: torch.Tensor, delay: torch.Tensor,
                            shift_factor: torch.Tensor | float = 1.0,
                            latency: int = SYNAPSE_LATENCY_STEPS) -> torch.Tensor:
    """a[b, r, j] = sum_i W[j, i] x[b, r - latency - D[j, i], i] (zero before the first step), as
    float64 whole numbers (batch, steps, out); exact (every partial sum is far below 2^53).

    spikes: (batch, steps, in) counts, graded payloads or 0/1 spikes; weight, delay: (out, in)
    whole numbers (any dtype). ``shift_factor`` 2^k > 1: Lava's synapse shifts right by k (floor)
    each step's sum of each delay group before the groups meet in its buffer
    (``PyDelayDenseModelBitAcc``: ``calc_act``, then ``right_shift``), so each delay value's partial
    sum is floored on its own: ``a = sum_d floor(sum_{i: D[j,i] = d} W[j, i] x[b, r - 1 - d, i] / 2^k)``.
    With a gradient (the training model), the sums pass it straight through the floors.
    """
    x = spikes.to(torch.float64)
    weight = weight.to(torch.float64)
    lag = delay.to(torch.float64) + latency
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad or lag.requires_grad)
    # reads the shift back to the host, and (below) the delay groups: no CUDA graphs here
    if float(shift_factor) <= 1.0:
        taps = None if lag.requires_grad else int(lag.detach().max().item()) + 1
        return ste_round(delayed_dense(x, weight, lag, taps=taps))
    steps = x.shape[1]
    with torch.no_grad():
        exact = torch.zeros(x.shape[0], steps, weight.shape[0], dtype=torch.float64, device=x.device)
        whole_delays = lag.detach().round().to(torch.int64)
        for value in torch.unique(whole_delays).tolist():
            group = torch.where(whole_delays == value, weight.detach(), torch.zeros_like(weight))
            shifted = torch.nn.functional.pad(x.detach(), (0, 0, value, 0))[:, :steps]
            exact += torch.floor(torch.round(shifted @ group.T) / shift_factor)
    if not needs_grad:
        return exact
    total = delayed_dense(x, weight / shift_factor, lag)      # the gradient's path
    return total + (exact - total).detach()


def run_fixed_point(params, synaptic_input: torch.Tensor, spike_fn=strict_spike) -> torch.Tensor:
    """Spikes (batch, steps, n), in the input's dtype, of one layer stepped from zero by its kind's
    fixed-point step (``params``: a registered kind's parameters as tensors on the input's device;
    ``synaptic_input``: (batch, steps, n) whole numbers, weight units). ``spike_fn``: the steps'
    spike decision, :func:`surrogate_spike` to train through it."""
    step = neuron_kind_of(params).fixed_step
    extra = {} if spike_fn is strict_spike else {"spike_fn": spike_fn}
    zeros = synaptic_input.new_zeros(synaptic_input.shape[0], synaptic_input.shape[2])
    state = NeuronState(zeros, zeros, zeros)
    spikes = []
    for t in range(synaptic_input.shape[1]):
        state = step(params, state, synaptic_input[:, t], **extra)
        spikes.append(state.s)
    return torch.stack(spikes, dim=1)
