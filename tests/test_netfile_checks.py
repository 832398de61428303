"""A ``.net`` file is checked, not trusted (issue #9 item 4).

Each case edits a copy of a really exported file with h5py and reads it back: the refusal must be
one line naming the file and the key. Edits that model a *consistent but wrong* file (written by a
buggy tool, or edited on purpose) re-stamp the content checksum afterwards, so that the check for
that key, not the checksum, is what refuses them; the checksum has its own test (bytes flipped on
disk, not re-stamped).
"""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import torch

from snn_toolchain import constants as C
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
