"""The training step shared by the trainer and the benchmark, eager and as a CUDA graph."""

import pytest
import torch

from snn_toolchain.train.model.delay_snn import DelaySNN
from snn_toolchain.train.loop.step import TrainingStep, make_optimizer


def _model(device):
    torch.manual_seed(0)
    model = DelaySNN(12, 4, 10, max_delay=4, dropout=0.0, train_init_state="zero").to(device)
    with torch.no_grad():
        for block in model.blocks:
            block.synapse.weight.mul_(4)  # enough drive that both hidden layers spike
    return model


def _batches(device, sizes=(6, 6, 6, 6, 6, 3, 6, 6)):
    generator = torch.Generator().manual_seed(1)
    return [((torch.rand(n, 20, 12, generator=generator) < 0.4).float().to(device),
             torch.randint(0, 4, (n,), generator=generator).to(device)) for n in sizes]


def test_eager_step_trains_and_clamps():
    model = _model("cpu")
    step = TrainingStep(model, make_optimizer(model, 0.05, 0.5, torch.device("cpu")))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = [step(x, y)[0].item() for x, y in _batches("cpu")]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert not torch.equal(before["blocks.0.synapse.weight"], model.blocks[0].synapse.weight)
    assert model.blocks[0].synapse.delay.min() >= 0 and model.blocks[0].neuron.alpha.max() <= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run by benchmarks/gpu_check.sh)")
def test_cuda_graph_step_computes_what_the_eager_step_computes():
    device = torch.device("cuda")
    eager_model, graph_model = _model(device), _model(device)
    eager_opt = make_optimizer(eager_model, 0.05, 0.5, device, cuda_graphs=True)
    graph_opt = make_optimizer(graph_model, 0.05, 0.5, device, cuda_graphs=True)
    eager = TrainingStep(eager_model, eager_opt, cuda_graphs=False)
    graphed = TrainingStep(graph_model, graph_opt, cuda_graphs=True, warmup=2)
    for index, (x, y) in enumerate(_batches(device)):
        if index == 6:  # a learning-rate change (ReduceLROnPlateau) must be picked up by a new capture
            for optimizer in (eager_opt, graph_opt):
                for group in optimizer.param_groups:
                    group["lr"] *= 0.5
        loss_eager, scores_eager = eager(x, y)
        loss_graph, scores_graph = graphed(x, y)
        torch.testing.assert_close(scores_graph, scores_eager, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(loss_graph, loss_eager, rtol=1e-4, atol=1e-4)
    assert graphed.graph is not None  # the graph path really ran
    for (name, a), b in zip(eager_model.state_dict().items(), graph_model.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4, msg=name)


def _pruned_steps(device, cuda_graphs: bool):
    from snn_toolchain.train.loop.regularization import SynapsePruner

    model = _model(device)
    pruner = SynapsePruner((0.6, 0.3), ramp_epochs=2)
    step = TrainingStep(model, make_optimizer(model, 0.05, 0.5, device, cuda_graphs=True), cuda_graphs=cuda_graphs,
                        warmup=2, pruner=pruner)
    batches = _batches(device)
    for epoch in range(2):          # the masks change in place between "epochs", under a captured graph too
        pruner.update(model, epoch)
        for x, y in batches[:4]:
            step(x, y)
    return model, step


def test_the_step_keeps_pruned_synapses_at_zero():
    model, _ = _pruned_steps(torch.device("cpu"), cuda_graphs=False)
    for synapse, fraction in zip([model.blocks[0].synapse, model.blocks[1].synapse], (0.6, 0.3)):
        assert (synapse.weight == 0).float().mean().item() == pytest.approx(fraction, abs=0.01)
    assert (model.readout.synapse.weight != 0).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run by benchmarks/gpu_check.sh)")
def test_a_graphed_step_applies_the_current_pruning_masks():
    device = torch.device("cuda")
    eager_model, _ = _pruned_steps(device, cuda_graphs=False)
    graph_model, graphed = _pruned_steps(device, cuda_graphs=True)
    assert graphed.graph is not None
    assert (graph_model.blocks[0].synapse.weight == 0).float().mean().item() == pytest.approx(0.6, abs=0.01)
    for (name, a), b in zip(eager_model.state_dict().items(), graph_model.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4, msg=name)
