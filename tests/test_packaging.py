"""The folder is the import path (docs/architecture.md): a built wheel and an editable install both
give ``snn_toolchain.train``, ``.export`` and ``.lava_models`` from the product card's folders, and
neither installs a bare ``train`` or ``export`` module.

Both are built from a copy of the tracked files (links kept as links), with setuptools' own PEP 517 /
PEP 660 hooks, so the checkout itself gets no build/ or egg-info folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINKED_FOLDERS = ("train", "export", "lava_models")
PROBE = ("import sys, snn_toolchain.train.loop.trainer as t, snn_toolchain.export.netfile as n, "
         "snn_toolchain.lava_models.build as l, snn_toolchain.neurons.registry as r\n"
         "from snn_toolchain.train.data.registry import EMBEDDED_DATA_DIR\n"
         "print(t.__file__); print(l.__file__); print(EMBEDDED_DATA_DIR / 'shd_train.h5')\n"
         "try:\n    import train\nexcept ImportError:\n    print('no bare train')\n")


def _copy_tracked_files(destination: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source, target = REPO / name, destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            os.symlink(os.readlink(source), target)
        elif source.is_file():
            shutil.copy2(source, target)


def _build(copy: Path, hook: str, out: Path) -> Path:
    script = (f"import sys, setuptools.build_meta as backend; "
              f"print(backend.{hook}(sys.argv[1]))")
    done = subprocess.run([sys.executable, "-c", script, str(out)], cwd=copy, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out / done.stdout.strip().splitlines()[-1]


def _probe(site_dir: Path, cwd: Path) -> list[str]:
    # a clean interpreter whose only way to snn_toolchain is site_dir (its .pth files run too).
    # -S: no site-packages .pth runs, so this checkout's own editable install stays out; the
    # dependencies (torch, h5py, ...) come from this interpreter's site-packages, appended after
    dependencies = sysconfig.get_paths()["purelib"]
    script = (f"import site, sys; site.addsitedir({str(site_dir)!r}); sys.path.append({dependencies!r})\n"
              + PROBE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-S", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split("\n")


def test_the_card_folders_are_links_into_the_package():
    for folder in LINKED_FOLDERS:
        link = REPO / folder
        assert link.is_symlink() and link.resolve() == (REPO / "snn_toolchain" / folder).resolve()
        assert not (REPO / "snn_toolchain" / folder).is_symlink()


@pytest.fixture(scope="module")
def tracked_copy(tmp_path_factory) -> Path:
    copy = tmp_path_factory.mktemp("checkout")
    _copy_tracked_files(copy)
    return copy


def test_the_wheel_holds_the_tree_and_imports(tracked_copy, tmp_path):
    wheel = _build(tracked_copy, "build_wheel", tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert "snn_toolchain/train/loop/trainer.py" in names
    assert "snn_toolchain/neurons/adlif.py" in names
    assert "snn_toolchain/lava_models/processes/adlif.py" in names
    assert "snn_toolchain/train/data/embedded_data/shd_train.h5" in names
    assert not [name for name in names if name.split("/")[0] in LINKED_FOLDERS]   # no bare train/ or export/
    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)
    trainer, lava_build, embedded, bare, *_ = _probe(installed, cwd=tmp_path)
    assert trainer == str(installed / "snn_toolchain/train/loop/trainer.py")
    assert lava_build == str(installed / "snn_toolchain/lava_models/build.py")
    assert Path(embedded).is_file() and str(installed) in embedded
    assert bare == "no bare train"


def test_an_editable_install_reads_the_checkout(tracked_copy, tmp_path):
    wheel = _build(tracked_copy, "build_editable", tmp_path)
    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)
    trainer, lava_build, embedded, bare, *_ = _probe(installed, cwd=tmp_path)
    # the checkout's own files
    assert Path(trainer).resolve() == (tracked_copy / "train/loop/trainer.py").resolve()
    assert Path(lava_build).resolve() == (tracked_copy / "lava_models/build.py").resolve()
    assert Path(embedded).resolve() == (tracked_copy / "train/data/embedded_data/shd_train.h5").resolve()
    assert bare == "no bare train"


def test_python_m_runs_from_the_checkout_root():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-m", "snn_toolchain.cli", "--help"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "train" in done.stdout, done.stderr[-2000:]
