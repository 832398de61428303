"""Ctrl-C and SIGTERM during a Lava run (lava_models/shutdown.py).

- A real ``train-export parity`` (and ``run --backend lava-sim``) on a small .net, interrupted once
  Lava's processes exist: SIGINT to the whole process group (what a terminal's Ctrl-C does),
  SIGTERM to the parent only, SIGTERM to the group. Each must end with exit 128 + signal, the one line "train-export: interrupted", no
  traceback, and every process it had started gone.
- The fork guard on its own, without Lava (fast): a child forked inside a session ignores SIGINT
  and dies quietly on SIGTERM; a signal that arrives while a fork is guarded is raised in the
  parent (not dropped by os.fork's hook runner) and the child of that fork is stopped too.

Output goes to files, not pipes: an orphaned worker would hold a pipe open and hang the reader.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from process_support import alive, descendants
from test_parity import MAX_DELAY, export, small_model

CLI = [sys.executable, "-m", "snn_toolchain.cli"]
LAVA_PROCESSES = 10        # 9 Lava processes + the runtime service (+ shared-memory server, tracker)
EXIT_TIMEOUT_S = 60
GONE_TIMEOUT_S = 10


@pytest.fixture(scope="module")
def small_net(tmp_path_factory):
    return export(small_model(), tmp_path_factory.mktemp("interrupt"), 100 + MAX_DELAY)


COMMANDS = {"parity": ["parity", "--samples", "60"],
            "run": ["run", "--backend", "lava-sim", "--samples", "60"]}


def _interrupt(net, tmp_path, signum: int, to_group: bool, command: str = "parity"):
    """Start ``train-export <command>`` on ``net``, signal it once Lava runs; return (exit status,
    stderr, the pids it had started, those of them still alive GONE_TIMEOUT_S later)."""
    out_path, err_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        process = subprocess.Popen(CLI + COMMANDS[command] + ["--net", str(net)], stdout=out, stderr=err,
                                   start_new_session=True)
    started = set()
    try:
        deadline = time.monotonic() + 120
        while len(descendants(process.pid)) < LAVA_PROCESSES:
            assert process.poll() is None, f"{command} ended (exit {process.returncode}) before Lava ran:\n" \
                                           f"{err_path.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "Lava's processes never appeared"
            time.sleep(0.1)
        time.sleep(1.0)     # samples are running now
        started = descendants(process.pid)
        assert process.poll() is None, f"{command} finished before it could be interrupted; use more samples"
        if to_group:
            os.killpg(process.pid, signum)
        else:
            os.kill(process.pid, signum)
        try:
            returncode = process.wait(timeout=EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            returncode = None
        deadline = time.monotonic() + GONE_TIMEOUT_S
        while alive(started) and time.monotonic() < deadline:
            time.sleep(0.2)
        return returncode, err_path.read_text(), started, alive(started)
    finally:   # whatever the outcome, leave nothing behind
        for pid in alive(started):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except OSError:
            pass
        process.wait()


@pytest.mark.parametrize("signum, to_group, command",
                         [(signal.SIGINT, True, "parity"), (signal.SIGTERM, False, "parity"),
                          (signal.SIGTERM, True, "parity"), (signal.SIGINT, True, "run")],
                         ids=["ctrl-c-to-group", "sigterm-to-parent", "sigterm-to-group", "ctrl-c-run-lava-sim"])
def test_interrupted_lava_run_stops_everything(small_net, tmp_path, signum, to_group, command):
    returncode, stderr, started, left = _interrupt(small_net, tmp_path, signum, to_group, command)
    assert len(started) >= LAVA_PROCESSES
    assert returncode == 128 + signum, f"exit {returncode} (None: still running {EXIT_TIMEOUT_S} s later); " \
                                       f"stderr:\n{stderr[-3000:]}"
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]
    assert "leaked" not in stderr, stderr[-3000:]        # the resource tracker found nothing to clean
    assert stderr.strip().splitlines()[-1] == "train-export: interrupted", stderr[-3000:]
    assert not left, f"{len(left)} of the {len(started)} processes it started outlived it"


# ------------------------------------------------------------------------------ the fork guard

def _run_script(script: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                            timeout=60, start_new_session=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
    return result.stdout


def test_children_forked_in_a_session_leave_signals_to_the_parent():
    out = _run_script("""
        import multiprocessing, os, signal, time
        from snn_toolchain.lava_models.shutdown import lava_session

        class NoRuntime:
            runtime = None

        def wait():
            time.sleep(30)

        with lava_session(NoRuntime()):
            context = multiprocessing.get_context("fork")
            child = context.Process(target=wait)
            child.start()
            time.sleep(0.3)
            os.kill(child.pid, signal.SIGINT)
            time.sleep(0.5)
            print("after SIGINT alive", child.is_alive())
            child.terminate()
            child.join(10)
            print("after SIGTERM exitcode", child.exitcode)
            survivor = context.Process(target=wait)
            survivor.start()
        time.sleep(0.3)
        print("left after the session", survivor.is_alive())
    """)
    assert "after SIGINT alive True" in out
    assert "after SIGTERM exitcode -15" in out
    assert "left after the session False" in out


def test_a_signal_during_a_guarded_fork_is_raised_in_the_parent():
    # A before-fork hook registered before the session's runs after it (reverse order): its
    # SIGINT arrives while the session holds signals blocked across the fork, the worst moment.
    out = _run_script("""
        import multiprocessing, os, signal, time
        armed = []
        def interrupt_now():
            if armed:
                armed.clear()
                os.kill(os.getpid(), signal.SIGINT)
        os.register_at_fork(before=interrupt_now)
        from snn_toolchain.lava_models.shutdown import lava_session
        from snn_toolchain.processes import descendants

        class NoRuntime:
            runtime = None

        try:
            with lava_session(NoRuntime()):
                child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(30,))
                armed.append(True)
                child.start()
                time.sleep(1.0)
            print("not interrupted")
        except KeyboardInterrupt:
            print("interrupted in the parent; children left", len(descendants()))
    """)
    assert "interrupted in the parent; children left 0" in out, out
