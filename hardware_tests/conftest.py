"""Every test in this folder runs on a Loihi 2 chip through Intel's lava-loihi. Where lava-loihi does
not import (anywhere outside the INRC), each one is skipped with the reason and the missing modules."""

from pathlib import Path

import pytest

from snn_toolchain.lava_models.lava_loihi import lava_loihi_available, missing_lava_loihi_modules

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    # A collection hook in a folder's conftest sees the whole session's items: only mark ours.
    ours = [item for item in items if HERE in Path(str(item.fspath)).resolve().parents]
    if not ours:
        return
    if lava_loihi_available():
        return
    missing = missing_lava_loihi_modules()
    skip = pytest.mark.skip(reason=(
        "needs lava-loihi, Intel's proprietary Loihi 2 extension (INRC members only; docs/deploy_loihi2.md): "
        f"{', '.join(missing)} do not import"))
    for item in ours:
        item.add_marker(skip)
