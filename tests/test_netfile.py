"""The .net file (export/netfile.py, netfile_reader.py, netx_compat.py, netfile_integrity.py, netfile_values.py,
snn_toolchain/netcodec.py): what is written is read back exactly (the same integers), the writes
are atomic, and a file is checked, not trusted (issue #9 item 4).

Each case edits a copy of a really exported file with h5py and reads it back: the refusal must be
one line naming the file and the key. Edits that model a *consistent but wrong* file (written by a
buggy tool, or edited on purpose) re-stamp the content checksum afterwards, so that the check for
that key, not the checksum, is what refuses them; the checksum has its own test (bytes flipped on
disk, not re-stamped). Hostile files (a huge layer in a small file, link cycles) are refused before
they are read, and a .net file and its export.json form a set that every reader checks.
"""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
import torch

from lava_support import small_network as _small_network
from model_support import trained_like_model as _trained_like_model
from snn_toolchain import constants as C
from snn_toolchain.cli import main as cli_main
from snn_toolchain.export import netfile
from snn_toolchain.export.emulator import Emulator
from snn_toolchain.export.loihi2_plan import plan_partition
from snn_toolchain.export.netfile import NetFileError, read_net, write_net
from snn_toolchain.quantized_network import NetworkError
from snn_toolchain.train.model.delay_snn import DelaySNN
from snn_toolchain.train.model.quantize import quantize_model

try:   # absent before the checks existed: the tests below then fail on their assertions
    from snn_toolchain.export.netfile import CHECKSUM_ATTR, content_checksum
except ImportError:
    CHECKSUM_ATTR, content_checksum = None, None
try:
    from snn_toolchain.quantized_network import check_fits_dataset
except ImportError:
    check_fits_dataset = None

N_INPUTS, CLASSES, HIDDEN, TIME_STEPS = 14, 5, 12, 30


def _model(variant: str) -> DelaySNN:
    torch.manual_seed(0)
    model = DelaySNN(N_INPUTS, CLASSES, HIDDEN, variant=variant, max_delay=8, dropout=0.0)
    with torch.no_grad():
        for synapse in [b.synapse for b in model.blocks] + [model.readout.synapse]:
            synapse.delay.uniform_(0, 8)
            synapse.weight.mul_(3)
            synapse.bias.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """An exported AdLIF+ and a LIF (CUBA) network: 14 -> 12 -> 12 -> 5, 30 steps."""
    folder = tmp_path_factory.mktemp("netfile_checks")
    return {variant: write_net(quantize_model(_model(variant), TIME_STEPS), folder / f"{variant}.net")
            for variant in ("adlif+", "lif")}


def edited(source, target, edit, restamp: bool = True):
    """A copy of ``source`` at ``target`` changed by ``edit(h5py.File)``; its checksum re-stamped."""
    shutil.copy(source, target)
    with h5py.File(target, "a") as f:
        edit(f)
        if restamp and content_checksum is not None and CHECKSUM_ATTR in f.attrs:
            f.attrs[CHECKSUM_ATTR] = content_checksum(f)
    return target


def set_value(key: str, value):
    """An edit that sets ``key``'s first element (or the scalar) to ``value``, stored as int64."""
    def edit(f):
        data = np.array(f[key][()], dtype=np.int64)
        if data.ndim:
            data.flat[0] = value
        else:
            data = np.int64(value)
        del f[key]
        f.create_dataset(key, data=data)
    return edit


def refused(path, *keys) -> str:
    """read_net(path) must raise one line naming the file and every one of ``keys``."""
    with pytest.raises(NetFileError) as info:
        read_net(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message
    for key in keys:
        assert key in message, message
    return message


# ------------------------------------------------------------------------------------ integrity

def test_flipped_bytes_are_refused_by_the_checksum(exported, tmp_path):
    """Weights changed on disk by a damaged copy, each still legal: only the checksum sees it."""
    target = tmp_path / "flipped.net"
    shutil.copy(exported["adlif+"], target)
    with h5py.File(target, "r") as f:
        dataset = f["layer/0/weight"]
        offset, old = dataset.id.get_offset(), dataset[()].reshape(-1)[:64]
        assert offset is not None and dataset.dtype == np.int32
    new = np.where(old < 0, old + 1, old - 1).astype("<i4")      # still inside -256..254
    with open(target, "r+b") as handle:
        handle.seek(offset)
        handle.write(new.tobytes())
    assert read_net(exported["adlif+"])                           # the original still reads
    refused(target, "content checksum mismatch", "export it again")


def test_a_file_without_checksum_reads_with_a_note(exported, tmp_path):
    target = edited(exported["adlif+"], tmp_path / "old.net", lambda f: f.attrs.__delitem__("content_sha256"),
                    restamp=False)
    network = read_net(target)
    assert network.n_classes == CLASSES
    notes = getattr(network, "notes", [])
    assert len(notes) == 1 and str(target) in notes[0] and "checksum" in notes[0] and "\n" not in notes[0], notes
    assert read_net(exported["adlif+"]).notes == []               # a checked file reads without a note


# --------------------------------------------------------------------------------- completeness

def test_a_missing_delay_is_refused(exported, tmp_path):
    target = edited(exported["adlif+"], tmp_path / "nodelay.net", lambda f: f["layer/1"].__delitem__("delay"))
    refused(target, "'/layer/1/delay'")


def test_a_stock_file_without_delay_reads_with_a_note(exported, tmp_path):
    """No ``format`` attribute: a stock lava-dl file, whose delays are 0 when it stores none."""
    def stock(f):
        for key in ("format", "format_version"):
            del f.attrs[key]
        del f["layer/1/delay"]
    network = read_net(edited(exported["lif"], tmp_path / "stock.net", stock))
    assert not network.layers[1].delay.any() and network.layers[0].delay.any()
    notes = getattr(network, "notes", [])
    assert any("layer/1/delay" in note and str(tmp_path / "stock.net") in note for note in notes), notes


def test_a_deleted_readout_is_refused(exported, tmp_path):
    """Without layer 2, hidden layer 1 (12 AdLIF neurons) would act as the readout."""
    target = edited(exported["adlif+"], tmp_path / "noreadout.net", lambda f: f["layer"].__delitem__("2"))
    refused(target, "layer 1", "summing readout", "'ADLIF'")


def test_a_wrong_format_is_refused(exported, tmp_path):
    target = edited(exported["adlif+"], tmp_path / "format.net", lambda f: f.attrs.__setitem__("format", "other-netx"))
    refused(target, "'format'", "'other-netx'")


def test_a_newer_format_version_is_refused(exported, tmp_path):
    target = edited(exported["adlif+"], tmp_path / "version.net", lambda f: f.attrs.__setitem__("format_version", 99))
    refused(target, "'format_version'", "99")


def test_the_dataset_fit_check_names_the_class_count(exported):
    assert check_fits_dataset is not None, "snn_toolchain.quantized_network.check_fits_dataset is missing"
    network = read_net(exported["adlif+"])
    check_fits_dataset(network, N_INPUTS, CLASSES, TIME_STEPS, source=exported["adlif+"])   # fits
    with pytest.raises(NetworkError) as info:
        check_fits_dataset(network, N_INPUTS, 20, TIME_STEPS, source=exported["adlif+"])
    message = str(info.value)
    assert str(exported["adlif+"]) in message and "classes" in message and "20" in message and "\n" not in message
    for args, key in (((N_INPUTS + 1, CLASSES, TIME_STEPS), "inputs"), ((N_INPUTS, CLASSES, TIME_STEPS + 1), "time_steps")):
        with pytest.raises(NetworkError, match=key):
            check_fits_dataset(network, *args, source=exported["adlif+"])


# ---------------------------------------------------------------------------------------- ranges

def _plan_refuses(network, key: str) -> None:
    plan = plan_partition(network)
    assert not plan.fits and any(key in reason for reason in plan.reasons), plan.reasons


@pytest.mark.parametrize("variant, key, value, named", [
    ("adlif+", "layer/0/neuron/a", 10 ** 6, "neuron a[0] = 1000000"),
    ("adlif+", "layer/0/neuron/b", 2 ** 30, "neuron b[0] = 1073741824"),
    ("adlif+", "layer/0/bias", 10 ** 6, "bias[0] = 1000000"),
    ("adlif+", "layer/0/neuron/vThMant", 2 ** 30, "vThMant"),
    ("lif", "layer/0/neuron/vDecay", 9000, "vDecay"),
    ("adlif+", "layer/2/neuron/vDecay", 9000, "vDecay"),     # the summing readout's
])
def test_out_of_range_fields_are_refused(exported, tmp_path, variant, key, value, named):
    target = edited(exported[variant], tmp_path / "range.net", set_value(key, value))
    message = refused(target, named, str(value))
    assert f"layer {key.split('/')[1]}" in message


@pytest.mark.parametrize("field, value, named", [
    ("a", 10 ** 6, "neuron a"), ("b", 2 ** 30, "neuron b"), ("threshold", (2 ** 30) << C.ACTIVATION_SHIFT, "vThMant"),
])
def test_the_deploy_plan_refuses_the_same_ranges(exported, field, value, named):
    """The planner (and the Lava builder) call the same validate() as the reader."""
    network = read_net(exported["adlif+"])
    neuron = network.layers[0].neuron
    values = np.array(getattr(neuron, field))
    values[0] = value
    network.layers[0].neuron = neuron._replace(**{field: values})
    _plan_refuses(network, named)
    with pytest.raises(NetworkError, match=named):
        network.validate()


# ------------------------------------------------------------------------------------ time steps

@pytest.mark.parametrize("value", [0, C.MAX_TIME_STEPS + 1 if hasattr(C, "MAX_TIME_STEPS") else 10 ** 7])
def test_time_steps_out_of_range_are_refused(exported, tmp_path, value):
    target = edited(exported["adlif+"], tmp_path / "steps.net", lambda f: f.attrs.__setitem__("time_steps", value))
    refused(target, f"time_steps = {value}", "outside 1..")


def test_the_emulator_refuses_samples_longer_than_time_steps(exported):
    """time_steps = 1 with 30-step samples: Lava and the report refuse such samples; so does the emulator."""
    network = read_net(exported["adlif+"])
    network.time_steps = 1
    x = torch.zeros(2, TIME_STEPS, N_INPUTS)
    with pytest.raises(NetworkError, match="time_steps"):
        Emulator(network)(x)
    assert Emulator(network)(x[:, :1]).scores.shape == (2, CLASSES)   # a 1-step network runs 1-step samples
    with pytest.raises(NetworkError, match="time_steps"):
        check_fits_dataset(network, N_INPUTS, CLASSES, TIME_STEPS, source="x.net")


# ----------------------------------------------------------------- per-neuron scales (version 3)

def test_per_neuron_scales_are_version_3_and_older_files_still_read(exported, tmp_path):
    """AdLIF layers are written with a weightScale and vThMant per neuron (format version 3); a file
    with one scale per AdLIF layer, as versions 1 and 2 wrote them, reads and runs as it was written."""
    with h5py.File(exported["adlif+"]) as f:
        assert f.attrs["format_version"] == 3
        assert f["layer/0/weightScale"].shape == (HIDDEN,) and f["layer/0/neuron/vThMant"].shape == (HIDDEN,)
        assert f["layer/2/weightScale"].shape == ()          # the summing readout: one unit for its scores
    with h5py.File(exported["lif"]) as f:                    # stock CUBA layers keep one scale
        assert f.attrs["format_version"] == 1 and f["layer/0/neuron/vThMant"].shape == ()
    # a version-1 AdLIF file: one scale per layer
    from snn_toolchain.fixed_point import quantize_connection, quantize_neurons

    model = _model("adlif+")
    layers = []
    for index, block in enumerate(list(model.blocks) + [model.readout]):
        weight, bias = (t.detach().double().numpy() for t in (block.synapse.weight, block.synapse.bias))
        layer = quantize_connection(str(index), weight, block.synapse.rounded_delays().numpy(), bias)
        if index < 2:
            params = quantize_neurons(str(index), *(getattr(block.neuron, p).detach().double().numpy()
                                                    for p in ("alpha", "beta", "a", "b")), layer.weight_scale << 6)
            layer.neuron, layer.neuron_variant = params._replace(bias=layer.bias), "adlif+"
        layers.append(layer)
    from snn_toolchain.quantized_network import QuantizedNetwork

    per_layer = QuantizedNetwork(layers, TIME_STEPS, "adlif+").validate()
    old = write_net(per_layer, tmp_path / "v1.net")
    with h5py.File(old) as f:
        assert f.attrs["format_version"] == 1 and f["layer/0/neuron/vThMant"].shape == ()
    back = read_net(old)
    assert not back.layers[0].per_neuron_scale and back.layers[0].weight_scale == layers[0].weight_scale
    x = (torch.rand(3, TIME_STEPS, N_INPUTS) < 0.3).float()
    torch.testing.assert_close(Emulator(back)(x).scores, Emulator(per_layer)(x).scores)


def test_a_wrong_per_neuron_scale_is_refused_in_one_line(exported, tmp_path):
    def shorter(key):
        def edit(f):
            data = f[key][()][:-1]
            del f[key]
            f.create_dataset(key, data=data)
        return edit

    refused(edited(exported["adlif+"], tmp_path / "short.net", shorter("layer/1/neuron/vThMant")),
            "'/layer/1/neuron/vThMant' must be a positive integer, or one per neuron (12,)")
    refused(edited(exported["adlif+"], tmp_path / "zero.net", set_value("layer/1/weightScale", 0)),
            "'/layer/1/weightScale' must be a positive integer, or one per neuron")

    def cuba_vector(f):
        scale = int(f["layer/0/neuron/vThMant"][()])
        for key in ("layer/0/neuron/vThMant", "layer/0/weightScale"):
            del f[key]
            f.create_dataset(key, data=np.full(HIDDEN, scale))
    refused(edited(exported["lif"], tmp_path / "cuba.net", cuba_vector),
            "layer 0: a CUBA layer (Lava's LIF) holds one vThMant, not one per neuron")


# -------------------------------------------------------------------- round trip and damaged files

@pytest.mark.parametrize("variant", ["adlif+", "adlif", "lif"])
def test_round_trip_gives_the_same_integers(tmp_path, variant):
    qnet = quantize_model(_trained_like_model(variant), time_steps=40, settings={"source_checkpoint": "x.pt"})
    path = write_net(qnet, tmp_path / "model.net")
    back = read_net(path)
    assert back.time_steps == 40 and back.run_steps == 43 and back.variant == variant
    assert back.settings["source_checkpoint"] == "x.pt"
    for a, b in zip(qnet.layers, back.layers):
        for field in ("weight", "delay", "bias"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        np.testing.assert_array_equal(a.weight_scale, b.weight_scale)
        assert a.per_neuron_scale == b.per_neuron_scale == (variant != "lif" and a.neuron is not None)
        if a.neuron is not None:
            assert type(a.neuron) is type(b.neuron)
            for x, y in zip(a.neuron, b.neuron):
                np.testing.assert_array_equal(np.broadcast_to(x, y.shape), y)
    assert [layer.neuron_variant for layer in back.layers[:-1]] == (["cuba"] * 2 if variant == "lif" else [variant] * 2)
    x = (torch.rand(3, 40, 14) < 0.3).float() * 2
    torch.testing.assert_close(Emulator(back)(x).scores, Emulator(qnet)(x).scores)


def test_damaged_files_are_refused_in_one_line(tmp_path):
    path = write_net(quantize_model(_trained_like_model(), 20), tmp_path / "ok.net")
    cases = {}
    truncated = tmp_path / "truncated.net"
    truncated.write_bytes(path.read_bytes()[:2000])
    cases[truncated] = "not a readable HDF5 file"
    for name, edit, message in [
        ("nokey.net", lambda f: f.__delitem__("layer/1/weight"), "missing '/layer/1/weight'"),
        ("nan.net", lambda f: (f["layer/0"].__delitem__("bias"), f["layer/0"].create_dataset("bias", data=np.full(12, np.nan))),
         "expected integers"),
        ("shape.net", lambda f: (f["layer/1"].__delitem__("delay"), f["layer/1"].create_dataset("delay", data=np.zeros((3, 3)))),
         "delay shape"),
        ("delay.net", lambda f: f["layer/2/delay"].__setitem__((0, 0), 70), "delay[0, 0] = 70 is outside 0..62"),
        ("type.net", lambda f: (f["layer/0/neuron"].__delitem__("type"), f["layer/0/neuron"].create_dataset("type", data=[b"SIGMA"])),
         "unknown neuron type 'SIGMA'"),
    ]:
        target = tmp_path / name
        target.write_bytes(path.read_bytes())
        with h5py.File(target, "a") as f:
            edit(f)
            f.attrs[CHECKSUM_ATTR] = content_checksum(f)   # a consistent wrong file: the key check must refuse it
        cases[target] = message
    cases[tmp_path / "missing.net"] = "file not found"
    for target, message in cases.items():
        with pytest.raises(NetFileError) as info:
            read_net(target)
        assert message in str(info.value) and str(target) in str(info.value) and "\n" not in str(info.value)


def test_a_cuba_layer_without_its_decay_names_the_missing_key(tmp_path):
    path = write_net(quantize_model(_trained_like_model("lif"), 20), tmp_path / "lif.net")
    with h5py.File(path, "a") as f:
        assert f["layer/0/neuron/type"][0] == b"CUBA"
        del f["layer/0/neuron/iDecay"]
        f.attrs[CHECKSUM_ATTR] = content_checksum(f)
    with pytest.raises(NetFileError, match="missing '/layer/0/neuron/iDecay'") as info:
        read_net(path)
    assert "do not match" not in str(info.value)


def test_write_is_atomic(tmp_path, monkeypatch):
    good = write_net(quantize_model(_trained_like_model(), 20), tmp_path / "model.net")
    before = good.read_bytes()
    import snn_toolchain.netcodec as netcodec

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")
    monkeypatch.setattr(netcodec, "write_cuba", broken)
    with pytest.raises(RuntimeError):
        write_net(quantize_model(_trained_like_model(seed=1), 20), good)
    assert good.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["model.net"]


def test_a_file_without_weight_scales_reads_like_a_stock_lava_dl_file(tmp_path):
    """Stock lava-dl files have no weightScale: a hidden layer's scale is its vThMant, and the
    readout's lava-dl "infinite" vThMant (2^18 - 1) must not be taken for a weight scale."""
    import h5py

    from snn_toolchain import constants as C
    from snn_toolchain.export.netfile import read_net, write_net

    path = write_net(_small_network(), tmp_path / "stock_like.net")
    with h5py.File(path, "a") as handle:
        for key in ("format", "format_version", "content_sha256"):   # a stock file has none of these
            del handle.attrs[key]
        for index in range(3):
            del handle[f"layer/{index}/weightScale"]
        assert int(handle["layer/2/neuron/vThMant"][()]) == C.READOUT_THRESHOLD_MANT
    network = read_net(path)
    assert [layer.weight_scale for layer in network.layers] == [64, 64, 1]


# ---------------------------------- hostile files, and the set a .net forms with its export report

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
