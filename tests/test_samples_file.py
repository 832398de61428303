"""Your own samples (issue #24, item 2): ``snn_toolchain/samples_file.py`` and the commands' option
``--samples-file`` (cli/commands_run.py).

- The reader: an .npz and an .h5 file of the documented layout read alike; the other layout only
  where it is unambiguous; every bad file refused in one line naming the file and the fix.
- Against a network: padding to its time_steps, an empty tail trimmed, labels within its classes,
  payloads within its graded input encoding; a stock lava-dl file runs for the samples' steps plus
  its largest delay.
- The commands: ``run --backend emulator`` with and without labels (its accuracy the emulator's),
  ``report`` without labels, ``parity`` on Lava (PARITY OK), and the refusals of the command line.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import Subset

from cli_support import one_line_error
from model_support import trained_like_model
from snn_toolchain import constants as C
from snn_toolchain.cli import main as cli_main
from snn_toolchain.evaluation import evaluate_backend
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.export.netfile import read_net, write_net
from snn_toolchain.input_encoding import GradedInputEncoding
from snn_toolchain.samples_file import NO_LABEL, SamplesFileError, has_labels, padded_time_steps, read_samples_file
from snn_toolchain.train.model.quantize import quantize_model

CLI = [sys.executable, "-m", "snn_toolchain.cli"]
N_INPUTS, N_CLASSES, DATA_STEPS, MAX_DELAY = 14, 5, 40, 8     # trained_like_model: 14 inputs, 5 classes
TIME_STEPS = DATA_STEPS + MAX_DELAY                            # as an export pads: the data's steps + max_delay


def spikes(count: int = 6, steps: int = DATA_STEPS, seed: int = 0) -> np.ndarray:
    """(count, steps, N_INPUTS) uint8 spikes, dense enough that the small network fires."""
    rng = np.random.default_rng(seed)
    return (rng.random((count, steps, N_INPUTS)) < 0.3).astype(np.uint8)


def save(path, **arrays):
    """``arrays`` as an .npz (numpy.savez) or an .h5 file (datasets at the root), by ``path``'s suffix."""
    if path.suffix == ".npz":
        np.savez(path, **arrays)
    else:
        with h5py.File(path, "w") as handle:
            for key, value in arrays.items():
                handle[key] = value
    return path


@pytest.fixture(scope="module")
def small_net(tmp_path_factory):
    """An exported .net of 14 inputs, 2 x 12 AdLIF+ neurons with delays up to 8, 5 classes; its
    checkpoint beside it (the float model of parity)."""
    folder = tmp_path_factory.mktemp("samples_net")
    model = trained_like_model(max_delay=MAX_DELAY)
    checkpoint = folder / "model.pt"
    torch.save({"model": model.state_dict(), "model_config": model.config}, checkpoint)
    network = quantize_model(model, TIME_STEPS, settings={"source_checkpoint": str(checkpoint)})
    return write_net(network, folder / "model.net")


@pytest.fixture(scope="module")
def network(small_net):
    return read_net(small_net)


# ----------------------------------------------------------------------------------------- the reader

@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_the_documented_layout_reads_from_npz_and_h5_alike(tmp_path, suffix):
    x, labels = spikes(), np.array([0, 1, 2, 3, 4, 0])
    read = read_samples_file(save(tmp_path / f"s{suffix}", spikes=x, labels=labels), N_INPUTS)
    assert len(read) == 6 and read.steps == DATA_STEPS and read.labelled and read.notes == []
    np.testing.assert_array_equal(read.samples, x)
    np.testing.assert_array_equal(read.labels, labels)
    assert read.samples.dtype == np.uint8          # kept compact; int64 per sample on access
    sample, label = read[2]
    assert sample.dtype == np.int64 and sample.shape == (DATA_STEPS, N_INPUTS) and label == 2


def test_inputs_is_the_other_name_and_bool_and_whole_floats_are_counts(tmp_path):
    x = spikes()
    as_bool = read_samples_file(save(tmp_path / "b.npz", inputs=x.astype(bool)), N_INPUTS)
    as_float = read_samples_file(save(tmp_path / "f.h5", inputs=x.astype(np.float32) * 3), N_INPUTS)
    assert as_bool.key == as_float.key == "inputs"
    np.testing.assert_array_equal(as_bool.samples, x)
    np.testing.assert_array_equal(as_float.samples, 3 * x.astype(np.int64))


def test_without_labels_there_are_none_and_a_note_says_so(tmp_path):
    read = read_samples_file(save(tmp_path / "s.npz", spikes=spikes()), N_INPUTS)
    assert not read.labelled and read[0][1] == NO_LABEL and not has_labels(read)
    assert any("no 'labels'" in note and "no accuracy" in note for note in read.notes)


def test_the_transposed_layout_is_read_only_where_it_is_unambiguous(tmp_path):
    x = spikes()
    read = read_samples_file(save(tmp_path / "t.npz", spikes=x.transpose(0, 2, 1)), N_INPUTS)
    np.testing.assert_array_equal(read.samples, x)
    assert any("read as (samples, inputs, steps)" in note for note in read.notes)
    # as many steps as inputs: the documented layout, never a guess
    square = spikes(steps=N_INPUTS)
    read = read_samples_file(save(tmp_path / "sq.npz", spikes=square), N_INPUTS)
    np.testing.assert_array_equal(read.samples, square)
    assert read.notes == [f"{tmp_path / 'sq.npz'}: no 'labels': predictions and spikes only, no accuracy"]


def _bad_files():
    """(name, arrays to save or a writer, fragments the one-line error must hold)."""
    x = spikes()
    nan = x.astype(np.float64)
    nan[1, 3, 2] = np.nan
    negative = x.astype(np.int16)
    negative[0, 5, 1] = -1
    fractional = x.astype(np.float64)
    fractional[2, 0, 0] = 0.5
    # counts too large for Lava's int32 messages, which a cast to int64 would wrap round to negatives
    huge_unsigned, huge_float, huge_int = x.astype(np.uint64), x.astype(np.float64), x.astype(np.int64)
    huge_unsigned[0, 1, 2] = 2 ** 63
    huge_float[3, 0, 4] = 1e30
    huge_int[5, 39, 13] = 2 ** 40
    return [
        ("wrong_key.npz", {"data": x}, ["no 'spikes' or 'inputs' array", "'data'", "(samples, steps, inputs)"]),
        ("both_keys.npz", {"spikes": x, "inputs": x}, ["both 'spikes' and 'inputs'", "keep one"]),
        ("two_dims.npz", {"spikes": x[0]}, ["2 dimension(s)", "expected 3", "spikes[None]"]),
        ("four_dims.h5", {"spikes": x[None]}, ["4 dimension(s)", f"(samples, steps, {N_INPUTS})"]),
        ("width.npz", {"spikes": x[:, :, :10]}, ["the network takes 14 inputs", "(samples, steps, 14)"]),
        ("nan.npz", {"spikes": nan}, ["NaN or infinite", "sample 1, step 3, input 2", "whole spike counts >= 0"]),
        ("negative.h5", {"spikes": negative}, ["negative values", "sample 0, step 5, input 1", ">= 0"]),
        ("fraction.npz", {"spikes": fractional}, ["0.5", "not a whole number", "spike counts per step"]),
        ("huge_uint64.npz", {"spikes": huge_unsigned}, [f"{2 ** 63} at sample 0, step 1, input 2", "beyond 2147483647",
                                                       "int32"]),
        ("huge_float.h5", {"spikes": huge_float}, ["1e+30 at sample 3, step 0, input 4", "beyond 2147483647"]),
        ("huge_int64.npz", {"spikes": huge_int}, [f"{2 ** 40} at sample 5, step 39, input 13", "int32"]),
        ("text.npz", {"spikes": np.full((2, 3, N_INPUTS), "a")}, ["dtype <U1", "bool or integer"]),
        ("no_samples.npz", {"spikes": x[:0]}, ["no samples or no steps"]),
        ("label_count.npz", {"spikes": x, "labels": np.arange(5)}, ["5 labels for 6 samples", "one label per sample"]),
        ("one_hot.npz", {"spikes": x, "labels": np.eye(6)}, ["'labels' has shape (6, 6)", "labels.argmax(1)"]),
        ("negative_label.npz", {"spikes": x, "labels": np.array([0, 1, -2, 0, 0, 0])},
         ["label -2 (sample 2) is negative", "0..classes-1"]),
        ("float_label.npz", {"spikes": x, "labels": np.full(6, 0.5)}, ["not whole class indices"]),
        ("huge_label.npz", {"spikes": x, "labels": np.array([0, 1, 2, 2 ** 63, 0, 0], dtype=np.uint64)},
         [f"label {2 ** 63} (sample 3) is not a class index"]),
    ]


@pytest.mark.parametrize("name, arrays, fragments", _bad_files(), ids=[case[0] for case in _bad_files()])
def test_a_bad_file_is_refused_in_one_line_naming_it_and_the_fix(tmp_path, name, arrays, fragments):
    path = save(tmp_path / name, **arrays)
    with pytest.raises(SamplesFileError) as info:
        read_samples_file(path, N_INPUTS)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_files_that_are_not_samples_files_are_refused_by_name(tmp_path):
    cases = {tmp_path / "missing.npz": "samples file not found",
             tmp_path / "x.csv": "unknown kind of samples file",
             tmp_path / "broken.npz": "not a readable .npz file",
             tmp_path / "broken.h5": "not a readable HDF5 file",
             tmp_path / "single.npz": "a single array, not an .npz archive",
             tmp_path / "pickled.npz": "not a readable .npz file",
             tmp_path / "group.h5": "'spikes' is a group, not a dataset"}
    (tmp_path / "x.csv").write_text("0,1\n")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    with open(tmp_path / "single.npz", "wb") as handle:
        np.save(handle, spikes())
    np.savez(tmp_path / "pickled.npz", spikes=np.array([[[{"a": 1}]]], dtype=object))
    with h5py.File(tmp_path / "group.h5", "w") as handle:
        handle.create_group("spikes")
    for path, fragment in cases.items():
        with pytest.raises(SamplesFileError) as info:
            read_samples_file(path, N_INPUTS)
        assert str(info.value).startswith(f"{path}: ") and fragment in str(info.value), str(info.value)


# ---------------------------------------------------------------------------------- against a network

def test_fit_pads_short_samples_to_the_networks_time_steps(tmp_path, network):
    read = read_samples_file(save(tmp_path / "s.npz", spikes=spikes(), labels=np.arange(6) % N_CLASSES), N_INPUTS)
    fitted = read.fit(network)
    sample, _ = fitted[0]
    assert network.time_steps == TIME_STEPS and sample.shape == (TIME_STEPS, N_INPUTS)
    np.testing.assert_array_equal(sample[:DATA_STEPS], read.samples[0])
    assert not sample[DATA_STEPS:].any()          # the delay padding: empty steps at the end


def test_fit_trims_an_empty_tail_and_refuses_a_long_one(tmp_path, network):
    long = np.zeros((2, TIME_STEPS + 5, N_INPUTS), dtype=np.uint8)
    long[:, :DATA_STEPS] = spikes(2)
    fitted = read_samples_file(save(tmp_path / "empty_tail.npz", spikes=long), N_INPUTS).fit(network)
    assert fitted.steps == TIME_STEPS and any("are empty: dropped" in note for note in fitted.notes)
    long[1, -1, 0] = 1
    path = save(tmp_path / "long.npz", spikes=long)
    with pytest.raises(SamplesFileError, match=f"{TIME_STEPS + 5} steps but the network runs {TIME_STEPS} input "
                                               f"steps .*trim the samples to {TIME_STEPS} steps"):
        read_samples_file(path, N_INPUTS).fit(network)


def test_fit_refuses_labels_beyond_the_networks_classes(tmp_path, network):
    path = save(tmp_path / "s.npz", spikes=spikes(), labels=np.array([0, 1, 2, 3, 4, 5]))
    with pytest.raises(SamplesFileError) as info:
        read_samples_file(path, N_INPUTS).fit(network)
    assert str(info.value) == (f"{path}: label 5 (sample 5) is beyond the network's 5 classes (its readout layer has "
                               "5 neurons); give labels 0..4, or the .net file of these classes")


def test_fit_refuses_payloads_beyond_a_graded_input_encoding(tmp_path, network):
    encoded = dataclasses.replace(network, input_encoding=GradedInputEncoding(4, np.zeros(N_INPUTS), np.ones(N_INPUTS)))
    x = spikes().astype(np.int64) * 15                    # 15: the top 4-bit payload, accepted
    read_samples_file(save(tmp_path / "ok.npz", spikes=x), N_INPUTS).fit(encoded)
    x[0, 0, 0] = 16
    path = save(tmp_path / "over.npz", spikes=x)
    with pytest.raises(SamplesFileError, match="an input payload is 16 but the network takes 4-bit graded inputs"):
        read_samples_file(path, N_INPUTS).fit(encoded)


def test_the_padding_of_a_network_without_time_steps_is_just_long_enough(network):
    """A spike at the samples' last step through a synapse of the largest delay: with the padding
    of ``padded_time_steps`` it reaches the first layer right after the input steps (in the
    connection's one step of latency), so one step less of padding would leave it out."""
    layer = network.layers[0]
    assert int(layer.delay.max()) == max(int(other.delay.max()) for other in network.layers)
    neuron, source = np.argwhere((layer.delay == layer.delay.max()) & (layer.weight != 0))[0]
    steps = padded_time_steps(DATA_STEPS, network)
    x = np.zeros((1, steps, N_INPUTS), dtype=np.int64)
    x[0, DATA_STEPS - 1, source] = 1
    run = Emulator(dataclasses.replace(network, time_steps=steps)).run(x, keep_synaptic_input=True)
    arrivals = np.flatnonzero(run.synaptic_input[0][0, :, neuron])
    assert arrivals.tolist() == [steps], arrivals     # step index `steps`: the first after the input steps


def test_has_labels_looks_through_splits_and_subsets(tmp_path, network):
    from snn_toolchain.train.data.splits import DatasetSplits

    unlabelled = read_samples_file(save(tmp_path / "s.npz", spikes=spikes()), N_INPUTS)
    labelled = read_samples_file(save(tmp_path / "l.npz", spikes=spikes(), labels=np.zeros(6, int)), N_INPUTS)
    splits = DatasetSplits("s", unlabelled.first(0), unlabelled.first(0), unlabelled, N_INPUTS, N_CLASSES,
                           TIME_STEPS, [], "s.npz")
    assert not has_labels(splits) and not has_labels(Subset(Subset(unlabelled, [0, 1]), [0]))
    assert has_labels(labelled) and has_labels(Subset(labelled, [0]))
    assert has_labels([(np.zeros((2, 3)), 1)])       # any other dataset: labelled


def test_a_fitted_file_is_a_dataset_the_emulator_evaluates(tmp_path, network):
    x, labels = spikes(), np.array([0, 1, 2, 3, 4, 0])
    fitted = read_samples_file(save(tmp_path / "s.npz", spikes=x, labels=labels), N_INPUTS).fit(network)
    expected = evaluate_backend(Emulator(network).run, [(np.pad(x, ((0, 0), (0, MAX_DELAY), (0, 0))), labels)])
    assert Emulator(network).evaluate(fitted)["accuracy"] == expected.accuracy


# ------------------------------------------------------------------------------------------ commands

def test_run_on_the_emulator_gives_the_emulators_accuracy(small_net, network, tmp_path, capsys):
    x, labels = spikes(), np.array([0, 1, 2, 3, 4, 0])
    path = save(tmp_path / "s.npz", spikes=x, labels=labels)
    assert cli_main(["run", "--net", str(small_net), "--samples-file", str(path), "--backend", "emulator"]) == 0
    out = capsys.readouterr().out
    expected = evaluate_backend(Emulator(network).run, [(np.pad(x, ((0, 0), (0, MAX_DELAY), (0, 0))), labels)])
    assert f"[run] emulator: accuracy {100 * expected.accuracy:.2f}% on 6 samples of {path}" in out, out
    assert f"[run] predictions: {expected.run.predictions().tolist()}" in out, out
    assert f"{path} holds 6 samples of 40 steps x 14 inputs, labelled; 5 classes" in out, out


def test_run_without_labels_prints_predictions_and_no_accuracy(small_net, tmp_path, capsys):
    path = save(tmp_path / "s.h5", spikes=spikes())
    assert cli_main(["run", "--net", str(small_net), "--samples-file", str(path), "--backend", "emulator",
                     "--samples", "4"]) == 0
    out = capsys.readouterr().out
    assert f"[run] emulator: 4 samples of {path}, no labels, no accuracy" in out, out
    assert "[run] predictions: [" in out and "spikes per neuron per sample, by spiking layer" in out, out
    assert "accuracy 0.00%" not in out


def test_report_without_labels_gives_rates_and_no_accuracy(small_net, tmp_path, capsys):
    path = save(tmp_path / "s.npz", spikes=spikes())
    out_dir = tmp_path / "report"
    assert cli_main(["report", "--net", str(small_net), "--samples-file", str(path), "--out", str(out_dir)]) == 0
    report = json.loads((out_dir / "report.json").read_text())
    assert report["fixed_point_accuracy"] is None and report["samples"] == 6
    assert report["dataset"] == f"samples file {path}" and report["hidden_spikes_per_neuron_per_sample"] > 0
    assert "no labels, no accuracy" in (out_dir / "report.md").read_text()


@pytest.mark.parametrize("extra, fragments", [
    (["--dataset", "shd"], ["--samples-file", "--dataset", "leave out"]),
    (["--data-dir", "somewhere"], ["--data-dir", "leave out"]),
])
def test_samples_file_and_a_dataset_exclude_each_other(small_net, tmp_path, capsys, extra, fragments):
    path = save(tmp_path / "s.npz", spikes=spikes())
    assert cli_main(["run", "--net", str(small_net), "--samples-file", str(path), "--backend", "emulator",
                     *extra]) == 2
    one_line_error(capsys, *fragments)


def test_a_bad_samples_file_ends_the_command_in_one_line(small_net, tmp_path, capsys):
    path = save(tmp_path / "s.npz", spikes=spikes()[:, :, :10])
    assert cli_main(["run", "--net", str(small_net), "--samples-file", str(path), "--backend", "emulator"]) == 2
    one_line_error(capsys, str(path), "the network takes 14 inputs")
    missing = tmp_path / "missing.npz"
    assert cli_main(["report", "--net", str(small_net), "--samples-file", str(missing)]) == 2
    one_line_error(capsys, str(missing), "samples file not found")


def test_a_dataset_that_does_not_fit_the_network_points_to_samples_file(small_net, capsys):
    assert cli_main(["run", "--net", str(small_net), "--backend", "emulator", "--samples", "1"]) == 2
    one_line_error(capsys, "the network has 5 output classes", "--dataset", "--samples-file")


def _write_stock_file(path):
    """A file in lava-dl's layout, as its MNIST tutorial network (no time_steps, no format): dense
    CUBA 14 -> 10 with delays up to 3, dense CUBA 10 -> 5 (the spiking output layer)."""
    rng = np.random.default_rng(1)

    from netx_layout import write_netx_dense

    cuba = {"type": "CUBA", "iDecay": 410, "vDecay": 410, "vThMant": 64, "refDelay": 1, "gradedSpike": False}

    def dense(group, weight, delay=None):
        write_netx_dense(group, weight, delay, cuba)

    with h5py.File(path, "w") as handle:
        dense(handle.create_group("layer/0"), 2 * rng.integers(0, 60, (10, N_INPUTS)), rng.integers(0, 4, (10, N_INPUTS)))
        dense(handle.create_group("layer/1"), 2 * rng.integers(-10, 60, (N_CLASSES, 10)))
    return path


def test_a_stock_file_runs_for_the_samples_steps_plus_its_largest_delay(tmp_path, capsys):
    net = _write_stock_file(tmp_path / "stock.net")
    with h5py.File(net, "r") as handle:
        largest = int(handle["layer/0/delay"][()].max())       # the only layer with delays
    path = save(tmp_path / "s.npz", spikes=spikes(), labels=np.arange(6) % N_CLASSES)
    assert cli_main(["run", "--net", str(net), "--samples-file", str(path), "--backend", "emulator"]) == 0
    out = capsys.readouterr().out
    assert (f"{DATA_STEPS + largest} input steps per sample, the samples' {DATA_STEPS} + {largest} of delay "
            "padding") in out, out
    assert "[run] emulator: accuracy" in out and f"on 6 samples of {path}" in out, out


def test_samples_too_long_for_a_stock_file_blame_the_samples_file(tmp_path, capsys):
    net = _write_stock_file(tmp_path / "stock.net")
    with h5py.File(net, "r") as handle:
        largest = int(handle["layer/0/delay"][()].max())
    path = save(tmp_path / "long.npz", spikes=np.zeros((1, 5000, N_INPUTS), dtype=np.uint8))
    assert cli_main(["run", "--net", str(net), "--samples-file", str(path), "--backend", "emulator"]) == 2
    line = one_line_error(capsys, f"5000 steps per sample + {largest} of delay padding",
                          f"trim the samples to {C.MAX_TIME_STEPS - largest} steps")
    assert line.startswith(f"train-export: error: {path}: "), line      # the samples file is the subject


def test_counts_above_one_on_a_stock_file_are_refused_naming_the_samples_file(tmp_path, capsys):
    """Stock NetX's first synapse is binary unless built with input_message_bits: a count of 2
    would run here as a graded spike that NetX and Loihi never see."""
    net = _write_stock_file(tmp_path / "stock.net")
    x = spikes(2)
    x[1, 7, 3] = 2
    path = save(tmp_path / "counts.npz", spikes=x)
    assert cli_main(["run", "--net", str(net), "--samples-file", str(path), "--backend", "emulator"]) == 2
    one_line_error(capsys, str(path), "a spike count of 2 at sample 1, step 7, input 3", "stock lava-dl file",
                   "input_message_bits", "give 0/1 spikes")


def test_a_stock_network_declaring_graded_input_takes_counts_above_one(tmp_path):
    net = read_net(_write_stock_file(tmp_path / "stock.net"), DATA_STEPS + 3)
    samples = read_samples_file(save(tmp_path / "counts.npz", spikes=spikes() * 3), N_INPUTS)
    with pytest.raises(SamplesFileError, match="a spike count of 3"):
        samples.check_for_stock_file(net, tmp_path / "stock.net")
    graded = dataclasses.replace(net, input_encoding=GradedInputEncoding(4, np.zeros(N_INPUTS), np.ones(N_INPUTS)))
    samples.check_for_stock_file(graded, tmp_path / "stock.net")      # accepted: payloads up to its levels


def test_parity_on_lava_is_ok_on_a_samples_file_without_labels(small_net, tmp_path):
    """The issue's bar on your own samples: `parity` says PARITY OK, the model (from the checkpoint
    the .net names), the emulator and Lava fixed_pt agreeing on every spike; no accuracy anywhere."""
    path, report_path = save(tmp_path / "s.npz", spikes=spikes(3)), tmp_path / "parity.json"
    done = subprocess.run(CLI + ["parity", "--net", str(small_net), "--samples-file", str(path), "--samples", "3",
                                 "--report", str(report_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "PARITY OK: model (deployed arithmetic) == emulator == Lava fixed_pt" in done.stdout, done.stdout
    assert "no labels, no accuracy; float and deployed predict alike on" in done.stdout, done.stdout
    report = json.loads(report_path.read_text())
    assert report["ok"] and report["samples"] == 3 and report["classes"] == N_CLASSES
    assert report["labels"] is None and set(report["accuracy"].values()) == {None}
    assert report["accuracy_gap_points"] is None and report["validation"] is None
    assert report["predictions"]["emulator"] == report["predictions"]["lava"] == report["predictions"]["deployed"]


def test_parity_with_labels_scores_them(small_net, network, tmp_path, capsys, monkeypatch):
    """The same with labels, Lava stood in for by the emulator (the Lava run is the test above's)."""
    from lava_support import replace_lava_by_the_emulator

    replace_lava_by_the_emulator(monkeypatch)
    x, labels = spikes(4), np.array([4, 0, 2, 1])
    path, report_path = save(tmp_path / "l.h5", spikes=x, labels=labels), tmp_path / "parity.json"
    assert cli_main(["parity", "--net", str(small_net), "--samples-file", str(path), "--report", str(report_path)]) == 0
    assert "PARITY OK" in capsys.readouterr().out
    report = json.loads(report_path.read_text())
    expected = evaluate_backend(Emulator(network).run, [(np.pad(x, ((0, 0), (0, MAX_DELAY), (0, 0))), labels)])
    assert report["labels"] == labels.tolist() and report["samples"] == 4
    assert report["accuracy"]["emulator"] == report["accuracy"]["lava"] == expected.accuracy
    assert report["accuracy"]["float"] is not None and report["validation"] is None   # no validation samples


def test_parity_shards_on_a_cluster_carry_only_their_samples(small_net, network, tmp_path, monkeypatch):
    """``parity --samples-file F --cluster``: each task receives its shard's samples, not the whole
    file, and the merged report is the one-process report. The cluster's engine is stood in for by
    a loop that pickles each task as Ray would; Lava by the emulator."""
    import pickle

    from lava_support import replace_lava_by_the_emulator
    from snn_toolchain.cluster import ClusterSpec
    from snn_toolchain.cluster import engine
    from snn_toolchain.lava_models.parity import parity_check
    from snn_toolchain.lava_models.parity_shards import sharded_parity_check
    from snn_toolchain.train.data.splits import DatasetSplits

    replace_lava_by_the_emulator(monkeypatch)
    samples = read_samples_file(save(tmp_path / "s.npz", spikes=spikes(30, seed=3), labels=np.arange(30) % N_CLASSES),
                                N_INPUTS).fit(network)
    splits = DatasetSplits("s.npz", samples.first(0), samples.first(0), samples, N_INPUTS, N_CLASSES, TIME_STEPS, [],
                           "s.npz")
    sent = []

    def run_here(tasks, spec, **_):
        results = {}
        for task in tasks:
            payload = pickle.dumps(task.args)
            sent.append(len(payload))
            results[task.key] = task.function(*pickle.loads(payload))
        return results, []

    monkeypatch.setattr(engine, "run_tasks", run_here)
    sharded = sharded_parity_check(small_net, splits, None, shards=3, cluster=ClusterSpec("auto"), log=lambda _: None)
    whole = parity_check(small_net, splits, 30, progress=False)
    assert len(sent) == 3 and max(sent) < len(pickle.dumps(splits)) / 2, (sent, len(pickle.dumps(splits)))
    assert sharded.verdict() == whole.verdict() and sharded.samples == 30
    assert sharded.labels == whole.labels == (np.arange(30) % N_CLASSES).tolist()
    assert sharded.predictions == whole.predictions and sharded.accuracy == whole.accuracy


@pytest.mark.parametrize("values, expected", [
    (np.zeros((2, 3)), "has shape (2, 3); the network's input stage takes (samples, 4)"),
    (np.array([[0.0, np.nan, 0.0, 0.0]]), "NaN or infinity (sample 0, input 1)"),
    (np.array([["a", "b", "c", "d"]]), "give real numbers"),
])
def test_values_for_an_input_stage_are_checked_in_one_line(tmp_path, values, expected):
    from snn_toolchain.samples_file import read_values_file

    np.savez(tmp_path / "v.npz", values=values)
    with pytest.raises(SamplesFileError, match="v.npz") as error:
        read_values_file(tmp_path / "v.npz", 4)
    assert expected in str(error.value) and "\n" not in str(error.value)
    np.savez(tmp_path / "s.npz", spikes=np.zeros((1, 5, 4), np.uint8))
    with pytest.raises(SamplesFileError, match="no 'values' array"):
        read_values_file(tmp_path / "s.npz", 4)
    values, labels, notes = read_values_file(_saved_values(tmp_path), 4)
    assert values.dtype == np.float64 and labels is None and "no 'labels'" in notes[0]


def _saved_values(tmp_path):
    np.savez(tmp_path / "ok.npz", values=np.full((2, 4), 0.5))
    return tmp_path / "ok.npz"
