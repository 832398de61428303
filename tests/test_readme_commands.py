"""The README's two commands: the test command is what CI runs (.ci/run); the main job is run here."""

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_readme_names_the_two_commands_and_ci_runs_the_test_command():
    readme = (REPO / "README.md").read_text()
    assert "scripts/demo.sh" in readme and "scripts/test.sh" in readme
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^exec bash scripts/test\.sh\s*$", ci, re.M)


def test_main_job_runs_end_to_end_on_the_embedded_dataset(tmp_path):
    """scripts/demo.sh (setup + train-export --dataset shd), shortened to 2 epochs for CI."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    run = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh"), "--epochs", "2", "--out", str(tmp_path)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    assert "[data] shd: 1120 train / 160 valid / 320 test" in out
    assert "[baseline] logistic regression" in out and "[train] best validation accuracy" in out
    assert "[export] test: float" in out
    assert "[parity] PARITY OK" in out and "[report] energy estimate" in out
    run_dirs = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(run_dirs) == 1
    for name in ("summary.json", "metrics.csv", "best.pt", "model.net", "curves.png", "export.json", "report/report.md"):
        assert (run_dirs[0] / name).is_file(), name
