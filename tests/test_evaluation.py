"""The run result every backend reports, and the one comparison of two runs (snn_toolchain/evaluation.py)."""

import numpy as np

from snn_toolchain.evaluation import RunResult, compare_runs, first_difference


def _run(seed=0, samples=3, steps=6, sizes=(4, 3), classes=2):
    rng = np.random.default_rng(seed)
    spikes = [rng.integers(0, 2, (samples, steps, n), dtype=np.uint8) for n in sizes]
    readout = rng.integers(-5, 5, (samples, steps, classes))
    return RunResult(readout.sum(axis=1), spikes, readout)


def test_identical_runs_compare_ok_and_report_counts():
    a, b = _run(), _run()
    comparison = compare_runs(a, b)
    assert comparison.ok and comparison.mismatched_samples == [] and comparison.first_difference is None
    assert comparison.prediction_agreement == 1.0
    assert a.spike_counts() == [int(s.sum()) for s in a.spikes]
    labels = a.predictions()
    assert a.accuracy(labels) == 1.0


def test_the_earliest_difference_is_named_and_only_that_sample_mismatches():
    a, b = _run(), _run()
    b.spikes[1][2, 4, 1] ^= 1          # sample 2, layer 2, step 4
    b.spikes[0][2, 5, 0] ^= 1          # same sample, later step
    comparison = compare_runs(a, b, ("fixed_point", "chip"))
    assert not comparison.ok and not comparison.spikes_identical and comparison.readout_identical
    assert comparison.mismatched_samples == [2]
    first = comparison.first_difference
    assert (first["sample"], first["layer"], first["step"], first["neurons"]) == (2, "2", 4, [1])
    assert first["fixed_point"] == [a.spikes[1][2, 4, 1]] and first["chip"] == [b.spikes[1][2, 4, 1]]


def test_a_backend_without_readout_input_is_compared_on_spikes_and_scores():
    a, b = _run(), _run()
    b.readout_input = None
    assert compare_runs(a, b).ok
    b.scores = b.scores.copy()
    b.scores[0] += 100
    comparison = compare_runs(a, b)
    assert comparison.spikes_identical and not comparison.scores_identical and comparison.mismatched_samples == [0]


def test_from_samples_stacks_per_sample_results():
    class Sample:
        def __init__(self, k):
            self.spikes = [np.full((5, 3), k % 2, dtype=np.uint8)]
            self.readout_input = np.full((5, 2), k)
            self.scores = np.array([k, -k])

    run = RunResult.from_samples([Sample(k) for k in range(4)])
    assert run.samples == 4 and run.spikes[0].shape == (4, 5, 3) and run.readout_input.shape == (4, 5, 2)
    assert run.predictions().tolist() == [0, 0, 0, 0] and run.spike_counts() == [2 * 5 * 3]


def test_evaluate_backend_scores_every_batch_and_concatenates_the_runs():
    from snn_toolchain.evaluation import evaluate_backend

    runs = [_run(seed=1, samples=3), _run(seed=2, samples=2)]
    batches = [(np.zeros((3, 6, 1)), runs[0].predictions()), (np.zeros((2, 6, 1)), 1 - runs[1].predictions())]
    served = iter(runs)
    seen = []
    evaluation = evaluate_backend(lambda inputs: next(served), batches,
                                  on_batch=lambda inputs, labels, run: seen.append(len(labels)))
    assert seen == [3, 2] and evaluation.samples == 5 and evaluation.accuracy == 3 / 5
    assert evaluation.spike_counts == [a + b for a, b in zip(runs[0].spike_counts(), runs[1].spike_counts())]
    assert evaluation.layer_sizes == [4, 3]
    assert evaluation.spikes_per_neuron_per_sample == [evaluation.spike_counts[0] / 20, evaluation.spike_counts[1] / 15]
    whole = evaluation.run
    assert whole.samples == 5 and np.array_equal(whole.spikes[1][3:], runs[1].spikes[1])
    assert np.array_equal(whole.readout_input[:3], runs[0].readout_input) and whole.synaptic_input is None


def test_the_float_model_backend_reports_what_the_model_computes():
    import torch

    from snn_toolchain.evaluation import evaluate_backend
    from snn_toolchain.train.model.delay_snn import DelaySNN
    from snn_toolchain.train.model.float_backend import FloatModelBackend

    torch.manual_seed(0)
    model = DelaySNN(6, 3, hidden=5, max_delay=3).eval()
    x = (torch.rand(4, 9, 6) < 0.5).float()
    with torch.no_grad():
        scores, spikes = model(x, return_spikes=True)
    run = FloatModelBackend(model)(x)
    np.testing.assert_array_equal(run.scores, scores.numpy())
    assert run.spike_counts() == [int(s.sum()) for s in spikes] and run.readout_input.shape == (4, 9 + 3, 3)   # 3 connections, 1 step each
    labels = scores.argmax(dim=1)
    assert evaluate_backend(FloatModelBackend(model), [(x, labels)]).accuracy == 1.0


def test_first_difference_prefers_the_earliest_step():
    emulator = [np.zeros((10, 4), np.uint8), np.zeros((10, 3), np.uint8), np.zeros((10, 2), np.int64)]
    lava = [a.copy() for a in emulator]
    lava[1][4, 2] = 1                  # layer 2 at step 4
    lava[0][6, 0] = 1                  # layer 1 later, at step 6
    lava[2][4, 1] = 7                  # readout at step 4 too: the lower layer is named first
    difference = first_difference(emulator, lava, ["1", "2", "readout"])
    assert difference == {"layer": "2", "step": 4, "neurons": [2], "emulator": [0], "lava": [1]}
