"""Our NeuroBench metrics (export/neurobench_metrics.py) against the ``neurobench`` package itself
(2.3.0, a test dependency): the same snnTorch network and data through NeuroBench's Benchmark and
through our functions on the activity recorded from it; and the report's counts of a deployed
network equal the same functions on the emulator's arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snn_toolchain.export.activity import measure_activity
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.export.neurobench_metrics import (
    activation_sparsity,
    connection_sparsity,
    deployed_metrics,
    synaptic_operations,
)
from snn_toolchain.train.model.delay_snn import DelaySNN
from snn_toolchain.train.model.quantize import quantize_model


def snntorch_network():
    import snntorch as snn

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(10, 8), snn.Leaky(beta=0.8, init_hidden=True),
                              torch.nn.Linear(8, 3), snn.Leaky(beta=0.8, init_hidden=True, output=True))
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[0].weight[:, :2] = 0.0                # zero weights: connection sparsity, and no operations
        net[2].weight[0, :3] = 0.0
    return net


def test_our_metrics_equal_neurobench_on_the_same_snntorch_network():
    import snntorch.utils
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity
    from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
    from neurobench.models import SNNTorchModel

    net = snntorch_network()
    x = (torch.rand(6, 20, 10, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(6, dtype=torch.long)),
                                         batch_size=3)
    theirs = Benchmark(SNNTorchModel(net), loader, [], [],
                       [[ConnectionSparsity], [ActivationSparsity, SynapticOperations]]).run(quiet=True)

    # the same network on the same data, recording each Linear's input and each Leaky's output
    inputs, spikes = {0: [], 2: []}, {1: [], 3: []}
    hooks = [net[i].register_forward_hook(lambda m, args, out, i=i: inputs[i].append(args[0].detach()))
             for i in inputs]
    hooks += [net[i].register_forward_hook(lambda m, args, out, i=i: spikes[i].append(
        (out[0] if isinstance(out, tuple) else out).detach())) for i in spikes]
    for batch in x.split(3):
        snntorch.utils.reset(net)
        with torch.no_grad():
            for t in range(batch.shape[1]):
                net(batch[:, t])
    for hook in hooks:
        hook.remove()

    def by_sample(recorded):     # per batch: a list over steps of (batch, n) -> (samples, steps, n)
        steps = x.shape[1]
        batches = [torch.stack(recorded[k:k + steps], 1) for k in range(0, len(recorded), steps)]
        return torch.cat(batches).numpy()

    ours_ops = synaptic_operations([by_sample(inputs[0]), by_sample(inputs[2])],
                                   [net[0].weight.detach().numpy(), net[2].weight.detach().numpy()])
    assert ours_ops["Effective_ACs"] > 100
    assert ours_ops == pytest.approx(theirs["SynapticOperations"], rel=1e-12)
    assert activation_sparsity([by_sample(spikes[1]), by_sample(spikes[3])]) == \
        pytest.approx(theirs["ActivationSparsity"], rel=1e-12)
    # NeuroBench rounds connection sparsity to 4 decimals
    assert round(connection_sparsity([net[0].weight.detach().numpy(), net[2].weight.detach().numpy()]), 4) == \
        theirs["ConnectionSparsity"]


def test_graded_inputs_are_macs_as_neurobench_counts_them():
    weight = np.array([[1.0, 0.0], [2.0, 3.0]])
    counts = np.array([[[2.0, 0.0], [0.0, 1.0]]])          # a bin with 2 spikes: not a binary input
    assert synaptic_operations([counts], [weight]) == {"Effective_ACs": 0.0, "Effective_MACs": 3.0, "Dense": 8.0}


def test_the_reports_counts_equal_the_metrics_of_the_emulators_arrays():
    torch.manual_seed(0)
    model = DelaySNN(12, 4, 10, max_delay=3, dropout=0.0).eval()
    with torch.no_grad():
        for block in list(model.blocks) + [model.readout]:
            block.synapse.weight.mul_(4.0)
            block.synapse.delay.uniform_(0, 3)
    network = quantize_model(model, 25)
    x = (torch.rand(7, 25, 12, generator=torch.Generator().manual_seed(2)) < 0.2).float()
    activity, _ = measure_activity(network, [(x, torch.zeros(7, dtype=torch.long))])
    metrics = deployed_metrics(network, activity, network.time_steps)
    run = Emulator(network)(x)
    layer_inputs = [x.numpy()] + [s.numpy() for s in run.spikes]
    expected = synaptic_operations(layer_inputs, [layer.weight for layer in network.layers])
    # the emulator's arrays run for run_steps (with Lava's latency); dense counts the input steps
    assert metrics["synaptic_operations"]["Effective_ACs"] == pytest.approx(expected["Effective_ACs"])
    assert metrics["synaptic_operations"]["Effective_MACs"] == 0.0
    assert metrics["synaptic_operations"]["Dense"] == sum(25 * layer.weight.size for layer in network.layers)
    active = sum(int(s.sum()) for s in run.spikes)
    assert active > 0
    assert metrics["activation_sparsity"] == pytest.approx(1 - active / (7 * 25 * 20))
    assert metrics["connection_sparsity"] == pytest.approx(connection_sparsity([l.weight for l in network.layers]))
    weights = sum(layer.weight.size for layer in network.layers)
    assert metrics["parameter_count"] > weights and metrics["footprint_bytes"] > weights
