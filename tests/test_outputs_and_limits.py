"""Nothing of the user's is lost or silently wrong (issue #22, docs/reliability.md): folders the
toolchain did not make are never written into, earlier outputs are replaced only with --force, the
outputs of one command form a set that a killed command never mixes, memory is checked before the
work, and hostile files and options end in one line."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from cli_support import one_line_error
from official_layout import write_shd_folder
from snn_toolchain.atomic import OWNER_MARK
from snn_toolchain.cli import main as cli_main
from snn_toolchain.export import netfile
from snn_toolchain.export import emulator as emulator_module
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.export.netfile import NetFileError, read_net, write_net
from snn_toolchain.quantized_network import NetworkError
from snn_toolchain.train.model.delay_snn import DelaySNN
from snn_toolchain.train.model.quantize import quantize_model


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return write_shd_folder(tmp_path_factory.mktemp("shd"), n_train=48, n_test=16, n_speakers=6, spikes=(2000, 4000))


def _train_args(folder, run_dir, epochs=1, *extra):
    return ["train", "--dataset", "shd", "--data-dir", str(folder), "--run-dir", str(run_dir), "--hidden", "12",
            "--batch-size", "8", "--max-delay", "4", "--epochs", str(epochs), "--device", "cpu", *extra]


@pytest.fixture(scope="module")
def finished_run(tiny_folder, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("outputs") / "run"
    assert cli_main(_train_args(tiny_folder, run_dir)) == 0
    assert cli_main(["export", "--run-dir", str(run_dir), "--data-dir", str(tiny_folder)]) == 0
    return run_dir




# ------------------------------------------------------------------------ folders of the user's

def test_training_never_writes_into_a_folder_of_the_users(tiny_folder, tmp_path, capsys, monkeypatch):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"my": "settings"}')
    (mine / "notes.txt").write_text("keep me")
    assert cli_main(_train_args(tiny_folder, mine)) == 2
    one_line_error(capsys, "--run-dir", "holds files train-export did not write (config.json, notes.txt)")
    assert (mine / "config.json").read_text() == '{"my": "settings"}' and sorted(p.name for p in mine.iterdir()) == \
        ["config.json", "notes.txt"]
    # an empty --run-dir is no folder (it would be the current one)
    with pytest.raises(SystemExit) as exit_info:
        cli_main(_train_args(tiny_folder, ""))
    assert exit_info.value.code == 2 and "an empty path" in capsys.readouterr().err.splitlines()[-1]
    monkeypatch.chdir(mine)                          # '.' is a folder, and this one is the user's
    assert cli_main(_train_args(tiny_folder, ".")) == 2
    one_line_error(capsys, "holds files train-export did not write")
    # an empty folder, or one of ours, is fine, and is marked as ours
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_main(_train_args(tiny_folder, empty)) == 0
    assert (empty / OWNER_MARK).is_file() and (empty / "result.json").is_file()


def test_a_run_from_before_the_mark_still_resumes(tiny_folder, tmp_path):
    run_dir = tmp_path / "old"
    assert cli_main(_train_args(tiny_folder, run_dir)) == 0
    (run_dir / OWNER_MARK).unlink()                  # as written before the mark existed
    assert cli_main(_train_args(tiny_folder, run_dir, 2, "--resume")) == 0


def test_an_unfinished_run_is_marked_and_export_refuses_it(tiny_folder, tmp_path, capsys, monkeypatch):
    """A resumed run removes its earlier result.json first: killed midway, the folder is clearly
    unfinished (no result.json beside a newer checkpoint), and export says so."""
    run_dir = tmp_path / "run"
    assert cli_main(_train_args(tiny_folder, run_dir)) == 0
    from snn_toolchain.train.loop import trainer
    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "evaluate_model", crash)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(trainer.TrainConfig(**json.loads((run_dir / "config.json").read_text()) | {"epochs": 2}),
                      run_dir, data_dir=tiny_folder, resume=True, progress=False, make_plots=False, log=lambda *_: None)
    monkeypatch.undo()
    assert not (run_dir / "result.json").exists() and (run_dir / "best.pt").exists()
    capsys.readouterr()
    assert cli_main(["export", "--run-dir", str(run_dir), "--data-dir", str(tiny_folder)]) == 2
    one_line_error(capsys, "the training run did not finish (no result.json)", "--checkpoint")
    assert cli_main(["export", "--run-dir", str(run_dir), "--data-dir", str(tiny_folder),
                     "--checkpoint", str(run_dir / "best.pt")]) == 0


# ------------------------------------------------------------------------ earlier outputs

def test_export_replaces_an_earlier_export_only_with_force(finished_run, tiny_folder, tmp_path, capsys):
    net = finished_run / "model.net"
    before = net.read_bytes()
    args = ["export", "--run-dir", str(finished_run), "--data-dir", str(tiny_folder)]
    capsys.readouterr()
    assert cli_main(args) == 2
    one_line_error(capsys, str(net), "exists; --force replaces it")
    assert net.read_bytes() == before
    assert cli_main(args + ["--force"]) == 0
    report = json.loads((finished_run / "export.json").read_text())
    assert report["net_sha256"] == netfile.stored_checksum(net)
    # a file that is not ours is never replaced, --force or not
    theirs = tmp_path / "theirs.net"
    theirs.write_text("a file of the user's")
    capsys.readouterr()
    assert cli_main(args + ["--out", str(theirs), "--force"]) == 2
    one_line_error(capsys, "is not a .net file of train-export's; it is never replaced")
    assert theirs.read_text() == "a file of the user's"
    # the NIR graph likewise
    assert cli_main(["export", "--run-dir", str(finished_run), "--format", "nir"]) == 0
    capsys.readouterr()
    assert cli_main(["export", "--run-dir", str(finished_run), "--format", "nir"]) == 2
    one_line_error(capsys, "model.nir: exists; --force replaces it")


def test_a_net_file_and_the_export_report_form_a_set(finished_run, tmp_path):
    """A .net that is not the one its export.json describes (an export killed between the two
    files, or the file replaced) is refused by every reader."""
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    report = json.loads((copy / "export.json").read_text())
    report["net_file"] = str(copy / "model.net")
    (copy / "export.json").write_text(json.dumps(report))
    read_net(copy / "model.net")                            # consistent: read
    network = read_net(copy / "model.net")
    network.layers[0].bias = network.layers[0].bias + 1    # another export's integers
    write_net(network, copy / "model.net")
    with pytest.raises(NetFileError, match="is not the file .*export.json describes"):
        read_net(copy / "model.net")


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


# ------------------------------------------------------------------------ parity's outputs

def test_the_parity_verdict_survives_an_unwritable_report(finished_run, tiny_folder, tmp_path, capsys, monkeypatch):
    from snn_toolchain.lava_models import parity
    from snn_toolchain.lava_models.build import LavaTimings, SampleResult

    class EmulatorAsLava:
        def __init__(self, network, samples):
            self.network, self.samples, self.timings = network, samples, LavaTimings(samples=len(samples))

        def run(self, progress=True):
            result = Emulator(self.network)(torch.as_tensor(self.samples))
            return [SampleResult([s[k].numpy() for s in result.spikes], result.readout_input[k].numpy(),
                                 result.scores[k].numpy()) for k in range(len(self.samples))]

    monkeypatch.setattr(parity, "build_lava_network", lambda network, *, samples, synapse: EmulatorAsLava(network, samples))
    base = ["parity", "--net", str(finished_run / "model.net"), "--dataset", "shd", "--data-dir", str(tiny_folder),
            "--samples", "3"]
    # an output that cannot be a file is refused before the run
    assert cli_main(base + ["--nir-traces", str(tmp_path)]) == 2
    one_line_error(capsys, "--nir-traces", "is a folder")
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert cli_main(base + ["--report", str(blocker / "sub" / "parity.json")]) == 2
    one_line_error(capsys, "--report")
    # the report goes where it is asked, and the verdict is printed first whatever happens to it
    assert cli_main(base + ["--report", str(tmp_path / "elsewhere.json")]) == 0
    out = capsys.readouterr().out
    assert "[parity] PARITY OK" in out and json.loads((tmp_path / "elsewhere.json").read_text())["ok"]
    def unwritable(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("snn_toolchain.atomic.write_json", unwritable)
    assert cli_main(base + ["--report", str(tmp_path / "full.json")]) == 0
    captured = capsys.readouterr()
    assert "[parity] PARITY OK" in captured.out and "could not be written" in captured.err


# ------------------------------------------------------------------------ memory, before the work

def test_a_huge_layer_in_a_small_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "huge.net"
    with h5py.File(path, "w") as f:                 # 60000 x 60000 zeros: a few kB compressed
        f.create_dataset("layer/0/weight", shape=(60000, 60000), dtype="int8", chunks=(1000, 1000),
                         compression="gzip", fillvalue=0)
        f["layer/0/type"] = np.array([b"dense"], dtype="S10")
    assert path.stat().st_size < 1_000_000
    monkeypatch.setattr(netfile, "available_bytes", lambda: 8 * 2**30)
    with pytest.raises(NetFileError, match=r"'/layer/0/weight' alone 26\.8 GiB as 64-bit values\) needs"):
        read_net(path, time_steps=10)


def test_the_emulator_runs_what_memory_holds_at_a_time(monkeypatch):
    torch.manual_seed(0)
    model = DelaySNN(12, 4, hidden=10, max_delay=3, dropout=0.0).eval()
    with torch.no_grad():
        for block in model.blocks:
            block.synapse.weight.mul_(4)
    network = quantize_model(model, 30)
    x = (torch.rand(9, 30, 12) < 0.3).float()
    whole = Emulator(network)(x)
    emulator = Emulator(network)
    per_sample = emulator.bytes_per_sample()
    monkeypatch.setattr(emulator_module, "available_bytes", lambda: 2 * per_sample * 2 + 1)   # two samples at a time
    assert emulator.samples_per_chunk() == 2
    chunked = emulator(x)
    assert torch.equal(whole.scores, chunked.scores) and all(torch.equal(a, b) for a, b in zip(whole.spikes, chunked.spikes))
    monkeypatch.setattr(emulator_module, "available_bytes", lambda: per_sample)               # not even one
    with pytest.raises(NetworkError, match="one sample of this network .* needs about"):
        emulator(x)


# ------------------------------------------------------------------------ hostile files and options

@pytest.mark.parametrize("checksum", ["kept", "removed"])
def test_a_link_cycle_inside_a_net_file_is_one_line(finished_run, tmp_path, checksum):
    # a group the reader opens is replaced by links that lead back to themselves (h5py raised
    # RuntimeError "too many links"); with the checksum removed the reader itself meets the cycle
    import shutil

    path = tmp_path / "cycle.net"
    shutil.copy(finished_run / "model.net", path)
    with h5py.File(path, "a") as f:
        f["layer/0/loop"] = h5py.SoftLink("/layer/0")
        del f["layer/1/neuron"]
        f["layer/1/neuron"] = h5py.SoftLink("/layer/1/other")
        f["layer/1/other"] = h5py.SoftLink("/layer/1/neuron")
        if checksum == "removed":
            del f.attrs[netfile.CHECKSUM_ATTR]
    with pytest.raises(NetFileError) as info:
        read_net(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_sixteen_bit_inputs_are_refused_with_the_reason_and_the_fix():
    """16-bit graded payloads (the documented range reaches 16) make the first layer's weights 1/65535
    of their 8-bit size: its threshold then leaves no room for the adaptation jump; the refusal says
    why and what to do, not only which number is out of range."""
    from snn_toolchain.train.model.quantize import quantize_layer
    from snn_toolchain.neurons.dynamics import NeuronParams

    # the first layer of a 16-bit run: trained weights times the input gain 1/65535
    weight = np.random.default_rng(0).standard_normal((4, 3)) * 0.5 / 65535 / 4
    neurons = NeuronParams(*(np.full(4, v) for v in (0.9, 0.98, 0.5, 1.5)))
    with pytest.raises(NetworkError, match=r"neuron b\[0\] = .* is outside .*threshold mantissa is .* train with "
                                           r"fewer --input-bits"):
        quantize_layer("0", weight, np.zeros((4, 3)), np.zeros(4), neurons)


def test_a_net_without_checksum_is_read_with_a_note_on_every_command(finished_run, tiny_folder, tmp_path, capsys):
    import shutil

    path = tmp_path / "old.net"
    shutil.copy(finished_run / "model.net", path)
    with h5py.File(path, "a") as f:
        del f.attrs["content_sha256"]
    capsys.readouterr()
    assert cli_main(["run", "--net", str(path), "--dataset", "shd", "--data-dir", str(tiny_folder), "--backend",
                     "emulator", "--samples", "3"]) == 0
    out = capsys.readouterr().out
    assert "[net] note:" in out and "no content checksum" in out


def test_export_takes_the_dataset_from_the_run_and_refuses_other_data_options(finished_run, capsys):
    for option in (["--dataset", "ssc"], ["--seed", "3"], ["--max-delay", "10"], ["--valid-fraction", "0.2"]):
        with pytest.raises(SystemExit) as exit_info:
            cli_main(["export", "--run-dir", str(finished_run), *option])
        last = capsys.readouterr().err.splitlines()[-1]
        assert exit_info.value.code == 2 and last.startswith("train-export: error: unrecognized arguments")
        assert option[0] in last


def test_an_implausible_energy_figure_is_refused(finished_run, tiny_folder, tmp_path, capsys):
    energy = tmp_path / "energy.json"
    energy.write_text('{"synaptic_op_pj": 1e308}')
    assert cli_main(["report", "--net", str(finished_run / "model.net"), "--dataset", "shd", "--data-dir",
                     str(tiny_folder), "--energy", str(energy), "--out", str(tmp_path / "r")]) == 2
    one_line_error(capsys, "'synaptic_op_pj' = 1e+308 pJ is no energy per operation", "check the units")


def test_a_wrong_gsc_feature_cache_is_recomputed_not_trusted(tmp_path):
    from official_layout import write_gsc_folder
    from snn_toolchain.train.data import gsc
    from snn_toolchain.train.data.loading import build_datasets

    folder = tmp_path / "speech_commands_v0.02"
    write_gsc_folder(folder, gsc.GSC_WORDS, clips_per_word=3)
    first = build_datasets("gsc", folder, pad_steps=2)
    caches = sorted((folder / ".snn_toolchain_cache").glob("gsc_train_*.pt"))
    assert caches
    cached = torch.load(caches[0], weights_only=False)
    cached["labels"] = torch.full_like(cached["labels"], 99)          # loadable, and wrong
    torch.save(cached, caches[0])
    again = build_datasets("gsc", folder, pad_steps=2)
    labels = [int(again.train[i][1]) for i in range(len(again.train))]
    assert labels == [int(first.train[i][1]) for i in range(len(first.train))] and max(labels) < 35
