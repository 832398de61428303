"""Writes that never leave a half-written file, folders the toolchain did not make, and leftovers of
killed writes (snn_toolchain/atomic.py; docs/reliability.md): a folder of the user's is never
written into, a folder of ours is marked as such (older runs without the mark still resume), the
temporary file of a killed write goes with the next write into its folder, and a folder is never
the target of an atomic write.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from cli_support import one_line_error, small_train_args as _train_args
from snn_toolchain.atomic import OWNER_MARK, atomic_path, write_json
from snn_toolchain.cli import main as cli_main
from snn_toolchain.errors import ToolchainError


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


def test_leftovers_of_a_killed_write_go_with_the_next_write_to_that_folder(tmp_path):
    killed = subprocess.run([sys.executable, "-c", (
        "import os, sys\nfrom snn_toolchain.atomic import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n    tmp.write_bytes(b'half')\n    os.kill(os.getpid(), 9)\n"),
        str(tmp_path / "model.net")])
    assert killed.returncode == -signal.SIGKILL
    leftovers = list(tmp_path.glob(".model.net.*.tmp"))
    assert len(leftovers) == 1 and not (tmp_path / "model.net").exists()
    live_writer = tmp_path / ".other.json.1.abcdefgh.tmp"   # pid 1 is alive: its write goes on
    live_writer.write_text("in progress")
    write_json(tmp_path / "result.json", {"ok": True})
    assert not leftovers[0].exists() and live_writer.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [live_writer.name, "result.json"]


def test_atomic_write_refuses_a_folder_as_its_target(tmp_path):
    with pytest.raises(ToolchainError, match="is a folder"):
        with atomic_path(tmp_path):
            pass
