"""The trained network (train/model/delay_snn.py and its blocks, train/model/adlif_blocks.py): bounds
that hold under aggressive steps, LIF without adaptation, evaluation on rounded delays and the
option to train on them, BatchNorm on the synaptic current and its folding, and the evaluation's
selectable, deterministic initial state.
"""

from __future__ import annotations

import pytest
import torch

from model_support import batchnorm_model
from snn_toolchain.neurons.dynamics import PARAM_NAMES
from snn_toolchain.train.model.delay_snn import DelaySNN


@pytest.mark.parametrize("variant", ["lif", "adlif", "adlif+"])
def test_bounds_hold_after_many_aggressive_steps(variant):
    torch.manual_seed(0)
    model = DelaySNN(20, 4, 12, variant=variant, max_delay=6, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameter_groups(lr_weights=0.5, lr_delays=5.0))
    x = (torch.rand(6, 30, 20) < 0.3).float()
    y = torch.randint(0, 4, (6,))
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.clamp_()
    for block in model.blocks:
        for name in PARAM_NAMES:
            low, high = block.neuron.bounds[name]
            values = getattr(block.neuron, name)
            assert values.min() >= low and values.max() <= high, (variant, name)
    for synapse in [b.synapse for b in model.blocks] + [model.readout.synapse]:
        assert synapse.delay.min() >= 0 and synapse.delay.max() <= 6
    moved = model.blocks[0].synapse.delay.detach()
    assert moved.abs().sum() > 0  # the delays did train


def test_lif_has_no_trainable_adaptation():
    model = DelaySNN(10, 3, 8, variant="lif")
    names = {n for n, _ in model.named_parameters()}
    assert "blocks.0.neuron.alpha" in names
    assert not {"blocks.0.neuron.a", "blocks.0.neuron.b", "blocks.0.neuron.beta"} & names


# ------------------------------------------------------------------------------------------ delays

def test_evaluation_uses_rounded_delays():
    torch.manual_seed(1)
    model = DelaySNN(10, 3, 8, max_delay=8, dropout=0.0).eval()
    x = (torch.rand(4, 40, 10) < 0.3).float()
    with torch.no_grad():
        for synapse in [b.synapse for b in model.blocks] + [model.readout.synapse]:
            synapse.delay.uniform_(0, 8)
            synapse.weight.mul_(6)  # strong enough that both hidden layers spike
        fractional, spikes = model(x, return_spikes=True)
        assert spikes[1].sum() > 0 and fractional.abs().sum() > 0
        for synapse in [b.synapse for b in model.blocks] + [model.readout.synapse]:
            synapse.delay.copy_(synapse.delay.round())
        torch.testing.assert_close(model(x), fractional, rtol=0, atol=0)
        model.train()
        model.blocks[0].neuron.train_init_state = "zero"
        model.blocks[1].neuron.train_init_state = "zero"
        for synapse in [b.synapse for b in model.blocks] + [model.readout.synapse]:
            synapse.delay.add_(0.3)
        assert not torch.equal(model(x), fractional)  # training mode interpolates


def test_training_can_end_on_the_deployed_integer_delays():
    torch.manual_seed(0)
    model = DelaySNN(10, 3, hidden=6, max_delay=6, dropout=0.0)
    with torch.no_grad():
        for synapse in [b.synapse for b in model.blocks] + [model.readout.synapse]:
            synapse.delay.uniform_(0, 6)
    x = (torch.rand(4, 20, 10) < 0.3).float()
    model.train().set_delay_rounding(training=True)
    rounded = model.blocks[0].synapse(x)
    model.eval()
    torch.testing.assert_close(rounded, model.blocks[0].synapse(x))   # training sees the eval (deployed) delays
    model.train()
    model.blocks[0].synapse(x).sum().backward()
    assert model.blocks[0].synapse.delay.grad.abs().sum() > 0          # straight-through: delays still learn
    model.set_delay_rounding(evaluation=False).eval()
    fractional = model.blocks[0].synapse(x)
    assert not torch.allclose(fractional, rounded)


# --------------------------------------------------------------------------------------- BatchNorm

def test_batchnorm_acts_on_the_synaptic_current_with_two_parameters_per_neuron():
    plain = DelaySNN(140, 20, hidden=128, variant="lif", delays=False, norm="none")
    normed = DelaySNN(140, 20, hidden=128, variant="lif", delays=False, norm="batchnorm")
    assert normed.parameter_count() - plain.parameter_count() == 2 * 2 * 128
    # the paper's Table 1 counts: LIF 37.9k, AdLIF 38.7k, delay-LIF 74.8k
    assert round(normed.parameter_count() / 100) / 10 == 37.9
    assert round(DelaySNN(140, 20, variant="adlif", delays=False, norm="batchnorm").parameter_count() / 100) / 10 == 38.7
    assert round(DelaySNN(140, 20, variant="lif", delays=True, norm="batchnorm").parameter_count() / 100) / 10 == 74.8
    x = torch.rand(8, 30, 140)
    normed.train()
    current = normed.blocks[0].norm(normed.blocks[0].synapse(x).reshape(-1, 128))
    # normalised over batch and time together
    assert current.mean(0).abs().max() < 1e-5 and (current.var(0, unbiased=False) - 1).abs().max() < 1e-3


def test_folded_model_equals_the_batchnorm_model_in_evaluation():
    model = batchnorm_model()
    folded = model.folded()
    assert all(block.norm is None for block in folded.blocks)
    x = (torch.rand(6, 60, 140) < 0.08).float()
    scores, spikes = model(x, return_spikes=True)
    folded_scores, folded_spikes = folded(x, return_spikes=True)
    for a, b in zip(spikes, folded_spikes):
        assert min(a.sum(), b.sum()) > 0
        # float32 rounding can flip a spike whose membrane sits on the threshold; there is none here
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(scores, folded_scores, rtol=1e-5, atol=1e-4)
    # the synaptic currents themselves agree to float tolerance
    block, folded_block = model.blocks[0], folded.blocks[0]
    reference = block.norm(block.synapse(x).reshape(-1, 24)).view(6, 60, 24)
    torch.testing.assert_close(folded_block.synapse(x), reference, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------- initial state

def test_evaluation_initial_state_is_selectable_and_deterministic():
    torch.manual_seed(0)
    model = DelaySNN(140, 20, hidden=24, delays=False, dropout=0.0).eval()
    with torch.no_grad():
        for block in model.blocks:
            block.synapse.weight.mul_(4.0)
    x = (torch.rand(3, 20, 140) < 0.1).float()
    zero_scores = model(x)
    model.set_eval_init_state("uniform")
    scores = model(x)
    model.reset_eval_randomness()
    again = model(x)
    torch.testing.assert_close(scores, again)      # the same draws in every evaluation pass
    first, second = model.blocks[0].neuron, model.blocks[1].neuron
    assert first.eval_generator.initial_seed() != second.eval_generator.initial_seed()   # layers differ
    from snn_toolchain.train.model.recurrence import initial_state

    draws = initial_state(4, 24, "uniform", generator=first.eval_generator)
    assert not torch.equal(draws.u[0], draws.u[1])  # samples of a batch differ
    assert not torch.equal(scores, zero_scores)
    rng_before = torch.get_rng_state()
    model(x)
    assert torch.equal(torch.get_rng_state(), rng_before), "evaluation must not consume training's random stream"
