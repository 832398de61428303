"""The activity and energy report (export/report.py with export/activity.py and export/energy.py):
counts and energies on a hand-made network whose every spike is known, the energy figures file
(an implausible figure is refused), the files written (a killed report leaves the earlier one
whole), and the spike counts against Lava.

The hand-made network (docs/energy.md explains the counting rules it checks)::

    inputs 2 -> hidden 1 (3) -> hidden 2 (2) -> readout (2), 10 input steps, 13 run steps

Every hidden neuron has alpha = beta = a = b = 0 and threshold 64 << 6, so it has no memory and
fires in exactly the steps where its synaptic input exceeds 64 (weight units).
"""

import json
import os
import pickle
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_support import one_line_error
from snn_toolchain.cli import main as cli_main
from snn_toolchain.errors import ToolchainError
from snn_toolchain.export.netfile import read_net, write_net
from snn_toolchain.quantized_network import QuantizedLayer, QuantizedNetwork
from snn_toolchain.train.model.quantize import quantize_model
from snn_toolchain.export.activity import measure_activity
from snn_toolchain.export.energy import EnergyFileError, EnergyTable, dense_equivalents, load_energy_table, snn_energy
from snn_toolchain.export.report import build_report
from snn_toolchain.neurons.dynamics import FixedNeuronParams
from snn_toolchain.train.data.loading import TensorFeatureDataset, make_loader

LAVA_WORKER_TIMEOUT_S = 240


def memoryless(n):
    zeros = np.zeros(n, dtype=np.int64)
    return FixedNeuronParams(zeros, zeros, zeros, zeros, zeros, zeros + (64 << 6))


def layer(name, weight, delay, neurons=True):
    weight = np.asarray(weight, dtype=np.int64)
    q = QuantizedLayer(name, weight, np.asarray(delay, dtype=np.int64), np.zeros(weight.shape[0], dtype=np.int64), 64)
    if neurons:
        q.neuron = memoryless(weight.shape[0])
        q.neuron_variant = "adlif+"
    return q


def hand_network():
    return QuantizedNetwork([
        # neuron 0 follows input 0, neuron 1 follows input 1, neuron 2 (weights 10, delay 2) never fires
        layer("0", [[65, 0], [0, 65], [10, 10]], [[0, 0], [0, 0], [2, 2]]),
        # neuron 0 follows hidden-1 neuron 0; neuron 1 (weights 1) never fires
        layer("1", [[65, 0, 0], [1, 1, 1]], [[0, 0, 0], [0, 0, 0]]),
        layer("2", [[3, 0], [4, 5]], [[0, 1], [0, 0]], neurons=False),
    ], time_steps=10, variant="adlif+")


def hand_dataset():
    x = torch.zeros(2, 10, 2)
    x[0, 0, 0], x[0, 3, 0], x[0, 5, 1] = 1, 2, 1      # sample A: 4 spikes in 3 bins
    x[1, 1, 0] = 1                                      # sample B: 1 spike
    return TensorFeatureDataset(x, torch.tensor([1, 0]), pad_steps=0)


# Spike times by hand (a spike sent at step r through delay d arrives at r + 1 + d):
#   A: input 0 at 0, 3 and input 1 at 5 -> hidden-1 n0 fires at 1, 4; n1 at 6 -> hidden-2 n0 at 2, 5
#   B: input 0 at 1 -> hidden-1 n0 at 2 -> hidden-2 n0 at 3
EXPECTED = {
    # name: (spikes total, spike events total, synaptic ops total, active updates total)
    "input": (5, 4, 8, 0),          # fan-out of both inputs = 2 non-zero weights: (3 + 1) x 2
    "hidden 1": (4, 4, 7, 8),       # fan-outs (2, 1, 1): A 2x2 + 1x1, B 1x2; active: A 2+1+3, B 1+0+1
    "hidden 2": (3, 3, 6, 7),       # fan-outs (2, 1): 3 spikes of n0 x 2; active: A 2+3, B 1+1
    "readout": (0, 0, 0, 6),        # active: A 2+2, B 1+1
}


def test_activity_counts_by_hand():
    network = hand_network()
    activity, run = measure_activity(network, make_loader(hand_dataset(), 8))
    assert run["samples"] == 2 and run["accuracy"] == 0.5      # both predict class 1 (scores 6 < 8, 3 < 4)
    by_name = {a.name: a for a in activity}
    for name, (spikes, events, synops, active) in EXPECTED.items():
        a = by_name[name]
        assert (a.spikes, a.spike_events, a.synaptic_ops, a.active_updates) == (spikes, events, synops, active), name
    assert by_name["input"].spikes_per_neuron_per_sample == 5 / (2 * 2)
    assert by_name["hidden 1"].spikes_per_neuron_per_sample == pytest.approx(4 / (2 * 3))
    assert by_name["hidden 2"].spikes_per_neuron_per_sample == 3 / (2 * 2)
    # neuron updates: neurons x 13 run steps x 2 samples
    assert [a.neuron_updates for a in activity] == [0, 3 * 13 * 2, 2 * 13 * 2, 2 * 13 * 2]
    # silent: hidden 1 has 1 (A) and 2 (B) of 3 silent; hidden 2 has 1 of 2 in each sample
    assert by_name["hidden 1"].silent_share == pytest.approx(3 / 6)
    assert by_name["hidden 1"].never_active_share == pytest.approx(1 / 3)
    assert by_name["hidden 2"].silent_share == 0.5 and by_name["hidden 2"].never_active_share == 0.5
    np.testing.assert_array_equal(by_name["hidden 1"].per_neuron_spikes, [3, 1, 0])
    # counting zero weights too: every input reaches all 3 neurons of hidden 1
    activity_all, _ = measure_activity(network, make_loader(hand_dataset(), 8), count_zero_weights=True)
    assert activity_all[0].synaptic_ops == 4 * 3


def test_activity_counts_are_the_emulator_run_s():
    """The report counts what the emulator's RunResult holds: its spikes, synaptic operations and
    active updates equal the same numbers counted here from ``Emulator.run``'s arrays another way
    round: operations synapse by synapse (each non-zero synapse carries every spike event of its
    source), active updates neuron by neuron (the steps it received input or fired)."""
    from snn_toolchain.export.emulator import Emulator

    network = hand_network()
    x, labels = next(iter(make_loader(hand_dataset(), 8)))
    run = Emulator(network).run(x, keep_synaptic_input=True)
    assert [a.shape for a in run.synaptic_input] == [(2, 13, 3), (2, 13, 2)]
    activity, summary = measure_activity(network, [(x, labels)])
    assert [a.spikes for a in activity[1:-1]] == [int(np.asarray(s).sum()) for s in run.spikes]
    assert summary["accuracy"] == float(np.mean(np.argmax(run.scores, axis=1) == labels.numpy()))
    for index, layer in enumerate(network.layers[1:], start=1):
        source = np.asarray(run.spikes[index - 1])
        operations = 0
        for _, i in zip(*np.nonzero(layer.weight)):          # every synapse that exists
            operations += int(np.count_nonzero(source[:, :, i]))
        assert activity[index].synaptic_ops == operations, index
    for index, receiver in enumerate(activity[1:-1]):
        synaptic_input, spikes = np.asarray(run.synaptic_input[index]), np.asarray(run.spikes[index])
        active = 0
        for k in range(synaptic_input.shape[0]):
            for j in range(synaptic_input.shape[2]):
                active += len(set(np.flatnonzero(synaptic_input[k, :, j])) | set(np.flatnonzero(spikes[k, :, j])))
        assert receiver.active_updates == active, index
    readout_input = np.asarray(run.readout_input)
    assert activity[-1].active_updates == sum(len(np.flatnonzero(readout_input[k, :, c]))
                                              for k in range(readout_input.shape[0]) for c in range(readout_input.shape[2]))
    assert activity[-1].active_updates == EXPECTED["readout"][3]
    np.testing.assert_array_equal(summary["raster"]["readout_input"], run.readout_input[0])


def test_activity_counts_whatever_run_the_backend_reports():
    """measure_activity consumes the backend's RunResult: one extra spike in the run it is given
    is one more spike, and its fan-out more synaptic ops, in the report."""
    from snn_toolchain.export.emulator import Emulator

    network = hand_network()
    emulator = Emulator(network)

    def one_more_spike(inputs):
        run = emulator.run(inputs, keep_synaptic_input=True)
        run.spikes[1][1, 7, 1] = 1          # sample B, hidden 2 neuron 1 (fan-out 1), step 7
        return run

    reference, _ = measure_activity(network, make_loader(hand_dataset(), 8))
    changed, _ = measure_activity(network, make_loader(hand_dataset(), 8), backend=one_more_spike)
    assert changed[2].spikes == reference[2].spikes + 1
    assert changed[2].synaptic_ops == reference[2].synaptic_ops + 1
    assert changed[2].active_updates == reference[2].active_updates + 1   # the neuron fired: an active update
    with pytest.raises(ToolchainError, match="synaptic input"):
        measure_activity(network, make_loader(hand_dataset(), 8), backend=emulator.run)


def test_energy_by_hand():
    network = hand_network()
    activity, _ = measure_activity(network, make_loader(hand_dataset(), 1))     # batches of 1: same sums
    # per sample: synaptic ops (8 + 7 + 6) / 2 = 10.5; active (8 + 7 + 6) / 2 = 10.5;
    # inactive 39 - 4 + 26 - 3.5 + 26 - 3 = 80.5; spike messages (4 + 4 + 3) / 2 = 5.5 (one core each)
    table = EnergyTable(synaptic_op_pj=1, neuron_update_active_pj=10, neuron_update_inactive_pj=100,
                        spike_within_tile_pj=1000, tile_hop_pj=10000, tile_hops_per_message=1)
    energy = snn_energy(activity, table)
    assert energy["per_sample"]["synaptic_pj"] == pytest.approx(10.5)
    assert energy["per_sample"]["neuron_update_pj"] == pytest.approx(10.5 * 10 + 80.5 * 100)
    assert energy["per_sample"]["spike_routing_pj"] == pytest.approx(5.5 * 11000)
    assert energy["per_sample"]["total_pj"] == pytest.approx(10.5 + 8155 + 60500)
    # the published Loihi 1 figures: 23.6, 81, 52, 1.7 + 3.5
    default = snn_energy(activity, EnergyTable())["per_sample"]["total_pj"]
    assert default == pytest.approx(10.5 * 23.6 + 10.5 * 81 + 80.5 * 52 + 5.5 * (1.7 + 3.5))
    # two destination cores double the messages of the layers feeding them
    activity[0].destination_cores = 2
    assert snn_energy(activity, table)["per_sample"]["spike_routing_pj"] == pytest.approx((4 + 2 + 1.5) * 11000)


def test_non_spiking_comparison_by_hand():
    network = hand_network()
    comparison = dense_equivalents(network, EnergyTable(), synaptic_ops_per_sample=10.5)
    # dense 2-3-2-2: 6 + 6 + 4 = 16 MACs per step, 10 steps
    assert comparison["dense"]["macs_per_step"] == 16 and comparison["dense"]["macs_per_sample"] == 160
    assert comparison["dense"]["float32_pj"] == pytest.approx(160 * 4.6)
    assert comparison["dense"]["int8_pj"] == pytest.approx(160 * 0.23)
    # GRU, 2 layers of width 3: 3(2*3 + 9) + 3(9 + 9) + readout 3*2 = 45 + 54 + 6 = 105 per step
    assert comparison["gru"]["macs_per_step"] == 105 and comparison["gru"]["macs_per_sample"] == 1050
    assert comparison["gru"]["float32_pj"] == pytest.approx(1050 * 4.6)
    assert comparison["snn_synaptic_ops_as_float32_adds_pj"] == pytest.approx(10.5 * 0.9)
    # the paper's SHD size: 2 x 3 (140*128 + 128*128) ... as documented
    assert "2-layer GRU, hidden width 3" in comparison["gru"]["description"]


def test_energy_file_overrides_and_refusals(tmp_path):
    path = tmp_path / "loihi2.json"
    path.write_text(json.dumps({"synaptic_op_pj": 5, "neuron_update_active_pj": 20, "neuron_update_inactive_pj": 2,
                                "spike_within_tile_pj": 1, "tile_hop_pj": 2, "label": "Loihi 2, measured on chip X",
                                "source": "our measurement", "measured": {"energy_per_inference_uj": 12.5}}))
    table = load_energy_table(path)
    assert table.synaptic_op_pj == 5 and table.tile_hops_per_message == 1.0 and table.float32_mac_pj == 4.6
    assert table.label == "Loihi 2, measured on chip X"
    assert table.sources["synaptic_op_pj"] == "our measurement"
    assert "Horowitz" in table.sources["float32_mac_pj"]
    assert table.measured == {"energy_per_inference_uj": 12.5}
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"synaptic_op_pj": 5}))
    assert "NOT Loihi 2" in load_energy_table(partial).label     # the rest stays labelled as Loihi 1
    for payload, message in (({"synaptic_ops_pj": 5}, "unknown key"), ({"tile_hop_pj": -1}, ">= 0"),
                             ({"tile_hop_pj": "3"}, "finite number"), ([1, 2], "JSON object")):
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(payload))
        with pytest.raises(EnergyFileError, match=message):
            load_energy_table(bad)
    with pytest.raises(EnergyFileError, match="not found"):
        load_energy_table(tmp_path / "none.json")


def png_size(path: Path) -> tuple:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height, len(data)


def test_report_files(tmp_path):
    net = write_net(hand_network(), tmp_path / "hand.net")
    energy_file = tmp_path / "figures.json"
    energy_file.write_text(json.dumps({"synaptic_op_pj": 1, "label": "test figures"}))
    report = build_report(net, hand_dataset(), out_dir=tmp_path / "report", energy_file=energy_file)
    out = tmp_path / "report"
    saved = json.loads((out / "report.json").read_text())
    assert saved["samples"] == 2 and saved["energy"]["model"]["label"] == "test figures"
    assert [layer["spikes_total"] for layer in saved["layers"]] == [5, 4, 3, 0]
    assert saved["hidden_spikes_per_neuron_per_sample"] == pytest.approx(7 / (2 * 5))
    assert saved["energy"]["per_sample"]["synaptic_pj"] == pytest.approx(10.5)
    assert report["energy"]["per_sample"] == saved["energy"]["per_sample"]
    markdown = (out / "report.md").read_text()
    for text in ("| hidden 1 | 3 | 0.667 |", "test figures", "2-layer GRU", "![raster.png](raster.png)"):
        assert text in markdown
    for name in ("raster.png", "rates.png", "delays.png", "neuron_parameters.png", "energy.png"):
        width, height, size = png_size(out / name)
        assert 300 <= width <= 4000 and 200 <= height <= 4000, (name, width, height)
        assert 5_000 <= size <= 3_000_000, (name, size)
    # n_samples keeps the first samples; the default Loihi 1 label is there without a file
    first = build_report(net, hand_dataset(), n_samples=1, out_dir=tmp_path / "one", plots=False)
    assert first["samples"] == 1 and first["layers"][1]["spikes_total"] == 3
    assert "NOT Loihi 2" in first["energy"]["model"]["label"]
    # beside it, the Loihi 2 range modelled from measurements; a user's table replaces both
    loihi2 = first["energy"]["loihi2"]
    assert loihi2["dynamic_pj"] == pytest.approx([first["synaptic_ops_per_sample"] * e for e in (15.4, 29.9)])
    assert "MODELLED" in loihi2["label"] and "pilotnet_snn/benchmark.ipynb" in loihi2["source"]
    assert loihi2["static_pj"][0] == pytest.approx(0.178 * first["run_steps"] * 150e-6 * 1e12)
    assert "Loihi 2 estimate (modelled from measurements)" in (tmp_path / "one" / "report.md").read_text()
    assert saved["energy"]["loihi2"] is None and "replaced by the energy file" in markdown
    assert saved["neurobench"]["synaptic_operations"]["Dense"] > 0 and "NeuroBench metrics" in markdown
    profile_fit = ("lava-loihi 2024-04 profile (the default): fitted to lava-dl's MNIST 784-128-64-10, not to this "
                   "network: its core counts are a prediction (no single profile reproduces both Oxford and MNIST; "
                   "docs/deploy_loihi2.md, 'Which profile to use')")
    assert first["loihi2_plan"] == {"fits": True, "total_cores": 3, "cores_per_layer": [1, 1, 1], "chips_needed": 1,
                                    "compiler_profile": "2024-04", "profile_fit": profile_fit}
    assert loihi2["chips"] == 1 and "lava-loihi 2024-04 profile" in markdown
    assert f"Profile: {profile_fit}." in markdown


def test_spike_messages_and_static_energy_follow_the_loihi2_plan(tmp_path):
    """A layer the plan splits over k cores receives each spike k times; static power is per chip."""
    from snn_toolchain.export.energy import loihi2_estimate
    from snn_toolchain.export.loihi2_limits import Loihi2Limits

    net = write_net(hand_network(), tmp_path / "hand.net")
    # a 3-word SynMem budget: layer 0 (2 inputs, delays: 8 + 12 + 6 = 26 bits per synapse) takes 2 neurons
    # per core (2 x ceil((2 x 26 + 10) / 64) = 2 words; 3 neurons need 4), so 2 cores
    limits = Loihi2Limits.from_overrides({"synmem_fill_words": 3})
    report = build_report(net, hand_dataset(), out_dir=tmp_path / "r", plots=False, limits=limits)
    assert report["loihi2_plan"]["cores_per_layer"] == [2, 1, 1]
    source = report["layers"][0]
    assert source["role"] == "input" and source["destination_cores"] == 2
    assert source["spike_messages_per_sample"] == pytest.approx(2 * source["spike_events_per_sample"])
    one, two = loihi2_estimate(100.0, 128), loihi2_estimate(100.0, 128, chips=2)
    assert two["static_pj"] == pytest.approx([2 * x for x in one["static_pj"]]) and two["dynamic_pj"] == one["dynamic_pj"]
    with pytest.raises(ValueError, match="chips must be at least 1"):
        loihi2_estimate(100.0, 128, chips=0)


def test_report_refuses_non_count_inputs(tmp_path):
    net = write_net(hand_network(), tmp_path / "hand.net")
    features = TensorFeatureDataset(torch.full((1, 10, 2), 0.5), torch.zeros(1, dtype=torch.int64), pad_steps=0)
    with pytest.raises(ToolchainError, match="not non-negative whole numbers"):
        build_report(net, features, out_dir=tmp_path / "r", plots=False)


# ------------------------------------------------------------------------------ against Lava

def lava_worker(net_path: str, samples_path: str, result_path: str) -> None:
    """Runs in a subprocess: the samples through Lava fixed_pt with the lead's builder."""
    from snn_toolchain.lava_models.build import build_lava_network

    network = read_net(net_path)
    samples = np.load(samples_path)
    results = build_lava_network(network, samples=samples, synapse="stock").run(progress=False)
    with open(result_path, "wb") as handle:
        pickle.dump([[np.asarray(s) for s in r.spikes] for r in results], handle)


def random_delay_network(tmp_path):
    from snn_toolchain.train.model.delay_snn import DelaySNN

    torch.manual_seed(3)
    model = DelaySNN(8, 3, hidden=6, variant="adlif+", max_delay=4, dropout=0.0)
    with torch.no_grad():
        for block in model.blocks:
            block.synapse.weight.mul_(3.0)
        for synapse in [b.synapse for b in model.blocks] + [model.readout.synapse]:
            synapse.delay.copy_(torch.randint(0, 5, synapse.delay.shape).float())
    model.eval()
    return write_net(quantize_model(model, time_steps=20), tmp_path / "random.net")


def test_report_spike_counts_equal_lava(tmp_path):
    net = random_delay_network(tmp_path)
    generator = torch.Generator().manual_seed(5)
    features = torch.poisson(torch.full((3, 20, 8), 0.6), generator=generator)
    dataset = TensorFeatureDataset(features, torch.zeros(3, dtype=torch.int64), pad_steps=0)
    report = build_report(net, dataset, out_dir=tmp_path / "report", plots=False)
    hidden = [layer for layer in report["layers"] if layer["role"] == "hidden"]
    assert all(layer["spikes_total"] > 0 for layer in hidden), "the test network must spike to compare anything"

    np.save(tmp_path / "samples.npy", features.numpy().astype(np.int64))
    result_path = tmp_path / "lava.pkl"
    worker = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--lava-worker", str(net),
                               str(tmp_path / "samples.npy"), str(result_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        log, _ = worker.communicate(timeout=LAVA_WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        # Lava forks a process per Process: end the worker's whole group, not just the worker.
        os.killpg(worker.pid, signal.SIGKILL)
        log, _ = worker.communicate()
        pytest.fail(f"the Lava run hung and was killed after {LAVA_WORKER_TIMEOUT_S} s:\n{log.decode()[-3000:]}")
    assert result_path.exists(), f"Lava worker exited {worker.returncode}:\n{log.decode(errors='replace')[-3000:]}"
    with open(result_path, "rb") as handle:
        lava_spikes = pickle.load(handle)
    for index, layer in enumerate(hidden):
        lava_total = int(sum(int(sample[index].sum()) for sample in lava_spikes))
        assert layer["spikes_total"] == lava_total, f"{layer['name']}: report {layer['spikes_total']}, Lava {lava_total}"



# -------------------------------------------------------------------- the report command's outputs

def test_a_killed_report_leaves_the_earlier_one_whole(finished_run, tiny_folder, tmp_path, capsys, monkeypatch):
    from snn_toolchain.export import report as report_module

    out = tmp_path / "report"
    net_args = ["report", "--net", str(finished_run / "model.net"), "--dataset", "shd", "--data-dir",
                str(tiny_folder), "--samples", "4", "--out", str(out)]
    assert cli_main(net_args) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert cli_main(net_args) == 2                           # an earlier report: only with --force
    one_line_error(capsys, "holds an earlier report; --force replaces it")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_module, "render_markdown", killed)    # after the figures, before the text
    with pytest.raises(KeyboardInterrupt):
        report_module.build_report(finished_run / "model.net", "shd", n_samples=4, out_dir=out, force=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["report"]        # no half-written folder left
    monkeypatch.undo()
    assert cli_main(net_args + ["--force"]) == 0
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"\xff\xd8")
    capsys.readouterr()
    assert cli_main(net_args[:-1] + [str(foreign), "--force"]) == 2
    one_line_error(capsys, "holds files train-export did not write (cat.jpg)")


def test_an_implausible_energy_figure_is_refused(finished_run, tiny_folder, tmp_path, capsys):
    energy = tmp_path / "energy.json"
    energy.write_text('{"synaptic_op_pj": 1e308}')
    assert cli_main(["report", "--net", str(finished_run / "model.net"), "--dataset", "shd", "--data-dir",
                     str(tiny_folder), "--energy", str(energy), "--out", str(tmp_path / "r")]) == 2
    one_line_error(capsys, "'synaptic_op_pj' = 1e+308 pJ is no energy per operation", "check the units")

if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "--lava-worker":
    lava_worker(*sys.argv[2:])
