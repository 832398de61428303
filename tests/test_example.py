"""The runnable example of the public API (examples/quickstart.py) works, and the API is flat."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_quickstart_example_runs_from_data_to_lava(tmp_path):
    run = subprocess.run([sys.executable, str(REPO / "examples" / "quickstart.py"), str(tmp_path)],
                         capture_output=True, text=True, timeout=900, cwd=REPO)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert lines[0].startswith("shd: ") and "test-selected (paper protocol)" in run.stdout
    assert any(line.startswith("fixed point (emulator): test ") for line in lines)
    assert lines[-1].startswith("PARITY OK")
    assert (tmp_path / "model.net").is_file() and (tmp_path / "run" / "result.json").is_file()


def test_api_names_resolve():
    from snn_toolchain import api

    for name in api.__all__:
        assert getattr(api, name) is not None, name
