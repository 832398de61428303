"""Fuzzing the readers of files a user brings (issue #22): random mutations of a real ``.net`` file
and of a real NIR graph (bytes, shapes, dtypes, values, attributes, links) must each end in a
result or in the toolchain's one-line error (``ToolchainError``: the CLI's exit 2), never in
another exception (a traceback) and never in a hang (Hypothesis' deadline).

The default suite runs a small budget (FUZZ_EXAMPLES); ``scripts/test.sh --long`` a larger one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snn_toolchain.errors import ToolchainError
from snn_toolchain.export.netfile import CHECKSUM_ATTR, content_checksum, read_net, write_net
from snn_toolchain.export.nir_export import model_to_nir, write_nir
from snn_toolchain.export.nir_import import import_nir
from snn_toolchain.train.model.delay_snn import DelaySNN
from snn_toolchain.train.model.quantize import quantize_model

FUZZ_EXAMPLES = 40
LONG_FUZZ_EXAMPLES = 600
DEADLINE_MS = 20_000
STEPS = 20


@pytest.fixture(autouse=True)
def _short_nir_read_timeout(monkeypatch):
    # a read the HDF5 library never ends (a damaged string heap) is refused at the timeout: keep
    # it well inside the deadline, so that such a case counts as refused, not as a hang
    from snn_toolchain.export import nir_import

    monkeypatch.setattr(nir_import, "NIR_READ_TIMEOUT_S", DEADLINE_MS / 4000)


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """A real exported .net file (AdLIF+ with delays, BatchNorm folded) and a real NIR graph of a LIF network."""
    folder = tmp_path_factory.mktemp("fuzz")
    torch.manual_seed(0)
    adlif = DelaySNN(10, 4, hidden=8, max_delay=3, dropout=0.0, norm="batchnorm").eval()
    lif = DelaySNN(10, 4, hidden=8, variant="lif", max_delay=3, dropout=0.0).eval()
    with torch.no_grad():
        for model in (adlif, lif):
            for block in list(model.blocks) + [model.readout]:
                block.synapse.delay.uniform_(0, 3)
    return {"net": write_net(quantize_model(adlif, STEPS), folder / "model.net"),
            "nir": write_nir(model_to_nir(lif), folder / "model.nir")}


def _paths(f) -> tuple[list, list]:
    """(dataset paths, group paths) of an open HDF5 file, links not followed."""
    datasets, groups = [], ["/"]

    def visit(name, item):
        (datasets if isinstance(item, h5py.Dataset) else groups).append("/" + name)

    f.visititems(visit)
    return datasets, groups


_VALUES = st.sampled_from([
    np.float64("nan"), np.float64("inf"), -1, 0, 1, 2**31, -2**40, 1e300, 0.5,
    np.array([], dtype=np.int64), np.array([[1, 2], [3, 4]]), np.array([b"x"], dtype="S1"),
    np.zeros((3, 3, 3)), np.array([1.5, np.nan]), np.full(7, 255, dtype=np.uint8), np.array([1 + 2j]),
])
_EDITS = st.lists(st.tuples(st.sampled_from(["flip_bytes", "replace_dataset", "delete", "set_attr", "delete_attr",
                                             "soft_link", "truncate", "new_dataset"]),
                            st.integers(0, 10**6), _VALUES), min_size=1, max_size=4)


def mutate(source: Path, target: Path, edits, restamp: bool) -> None:
    """``source`` copied to ``target`` with ``edits`` applied (each: a kind, a number that picks the
    place, a value); the content checksum re-stamped when ``restamp`` (so that the checks behind it
    are reached too)."""
    shutil.copy(source, target)
    for kind, pick, value in edits:
        if kind in ("flip_bytes", "truncate"):
            data = bytearray(target.read_bytes())
            if kind == "truncate":
                data = data[: pick % max(len(data), 1)]
            elif data:
                for k in range(8):
                    data[(pick + 977 * k) % len(data)] ^= 0xFF
            target.write_bytes(bytes(data))
            continue
        try:
            _edit_hdf5(target, kind, pick, value, restamp)
        except Exception:
            continue                    # a mutation HDF5 itself refuses (a broken file): the reader meets that


def _edit_hdf5(target: Path, kind: str, pick: int, value, restamp: bool) -> None:
    with h5py.File(target, "a") as f:
        datasets, groups = _paths(f)
        if kind == "replace_dataset" and datasets:
            name = datasets[pick % len(datasets)]
            del f[name]
            f[name] = value
        elif kind == "delete" and len(datasets) + len(groups) > 1:
            names = datasets + groups[1:]
            del f[names[pick % len(names)]]
        elif kind == "set_attr":
            holder = f[groups[pick % len(groups)]]
            keys = list(holder.attrs) or ["x"]
            holder.attrs[keys[pick % len(keys)]] = value
        elif kind == "delete_attr":
            holder = f[groups[pick % len(groups)]]
            keys = list(holder.attrs)
            if keys:
                del holder.attrs[keys[pick % len(keys)]]
        elif kind == "soft_link" and len(groups) > 1:
            f[groups[pick % len(groups)] + "/link"] = h5py.SoftLink(groups[(pick // 7) % len(groups)])
        elif kind == "new_dataset":
            f[groups[pick % len(groups)] + f"/extra{pick}"] = value
        if restamp and CHECKSUM_ATTR in f.attrs:
            try:
                f.attrs[CHECKSUM_ATTR] = content_checksum(f)
            except Exception:
                pass                # a checksum that cannot be computed stays as it was


def _read_or_refuse(action) -> None:
    try:
        action()
    except ToolchainError as err:        # the one-line refusal: exit 2 on the command line
        assert "\n" not in str(err), err
    except RecursionError as err:        # pragma: no cover - a failure, with the reason
        pytest.fail(f"recursion instead of a refusal: {err}")


def _fuzz_net(originals, tmp_path_factory, edits, restamp):
    target = tmp_path_factory.mktemp("net") / "mutated.net"
    mutate(originals["net"], target, edits, restamp)
    _read_or_refuse(lambda: read_net(target))


def _fuzz_nir(originals, tmp_path_factory, edits, restamp):
    folder = tmp_path_factory.mktemp("nir")
    target = folder / "mutated.nir"
    mutate(originals["nir"], target, edits, restamp=False)
    _read_or_refuse(lambda: import_nir(target, folder / "out.net", STEPS))


_SETTINGS = dict(deadline=DEADLINE_MS, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@settings(max_examples=FUZZ_EXAMPLES, **_SETTINGS)
@given(edits=_EDITS, restamp=st.booleans())
def test_a_mutated_net_file_is_read_or_refused_in_one_line(originals, tmp_path_factory, edits, restamp):
    _fuzz_net(originals, tmp_path_factory, edits, restamp)


@settings(max_examples=FUZZ_EXAMPLES, **_SETTINGS)
@given(edits=_EDITS)
def test_a_mutated_nir_graph_is_imported_or_refused_in_one_line(originals, tmp_path_factory, edits):
    _fuzz_nir(originals, tmp_path_factory, edits, False)


@pytest.mark.long
@settings(max_examples=LONG_FUZZ_EXAMPLES, **_SETTINGS)
@given(edits=_EDITS, restamp=st.booleans())
def test_a_mutated_net_file_is_read_or_refused_in_one_line_long(originals, tmp_path_factory, edits, restamp):
    _fuzz_net(originals, tmp_path_factory, edits, restamp)


@pytest.mark.long
@settings(max_examples=LONG_FUZZ_EXAMPLES, **_SETTINGS)
@given(edits=_EDITS)
def test_a_mutated_nir_graph_is_imported_or_refused_in_one_line_long(originals, tmp_path_factory, edits):
    _fuzz_nir(originals, tmp_path_factory, edits, False)
