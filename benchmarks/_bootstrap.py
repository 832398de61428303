"""Make ``snn_toolchain`` (with its ``train``, ``export``, ``lava_models`` subpackages) importable
from this checkout when the package is not installed, e.g. on a GPU machine where nothing from the
repository is installed. Every benchmark script imports this module first.

The repository maps its top-level folders ``train/``, ``export/``, ``lava_models/`` under the import
name ``snn_toolchain`` (pyproject.toml, package-dir). Without an installation, putting the repository
root on sys.path makes ``snn_toolchain`` importable but not ``snn_toolchain.train``; appending the
root to ``snn_toolchain.__path__`` makes ``snn_toolchain.train`` resolve to ``<repo>/train``.
"""

import importlib
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _ensure_importable() -> None:
    try:
        importlib.import_module("snn_toolchain.train")
        return
    except ImportError:
        pass
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    import snn_toolchain

    if str(REPO_ROOT) not in list(snn_toolchain.__path__):
        snn_toolchain.__path__.append(str(REPO_ROOT))
    importlib.import_module("snn_toolchain.train")


_ensure_importable()
