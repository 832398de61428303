"""The paper's sweep and its worker pool (train/sweeps/sweep.py, train/sweeps/report.py): the table
(mean, spread and max under both protocols), finished runs skipped, the parallel sweep equal to
the sequential one, the analyses it writes; and its faults (docs/reliability.md):

- The main process SIGKILLed (``sweep`` and ``frontier`` with ``--parallel 2``): its workers die
  with it (``PR_SET_PDEATHSIG``), instead of finishing their runs and idling on, orphaned.
- SIGTERM to the main process, or SIGINT (Ctrl-C to the whole process group, or to the main
  process only): the workers are stopped at once, not after their runs; the command exits 143 /
  130 with one line, and the run folders they left unfinished resume on the next sweep.
- ``--seeds 0`` (or negative), an empty or blank ``--variants`` list and a repeated variant are
  refused in one line before anything is written.

The signal tests start the CLI in its own session with long runs (thousands of epochs on a tiny
set), wait until both workers have written a checkpoint, signal, and look for survivors in /proc.
Output goes to files, not pipes: an orphaned worker would hold a pipe open and hang the reader.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from model_support import batchnorm_model
from process_support import alive, descendants, start_time
from snn_toolchain.cli import main as cli_main
from snn_toolchain.errors import ToolchainError
from snn_toolchain.train.loop.config import TrainConfig
from snn_toolchain.train.sweeps.sweep import DataSource, aggregate, run_sweep
from training_support import TINY


def test_sweep_aggregates_mean_and_max_and_skips_finished_runs(tiny_folder, tmp_path):
    from snn_toolchain.train.sweeps.sweep import DataSource, run_sweep

    base = TrainConfig(**{**TINY, "epochs": 1})
    loader = DataSource("shd", tiny_folder)
    logs = []
    table = run_sweep(base, tmp_path, seeds=2, variants=["LIF", "delay-AdLIF+"], data=loader,
                      log=logs.append)
    for variant, (neuron, delays) in (("LIF", ("lif", False)), ("delay-AdLIF+", ("adlif+", True))):
        runs = [json.loads((tmp_path / variant / f"seed{s}" / "result.json").read_text()) for s in (0, 1)]
        assert [r["config"]["neuron"] for r in runs] == [neuron, neuron]
        assert [r["config"]["delays"] for r in runs] == [delays, delays]
        assert [r["config"]["seed"] for r in runs] == [0, 1]
        valid = [100 * r["best_valid_acc"] for r in runs]
        assert table[variant]["valid_mean"] == pytest.approx(sum(valid) / 2)
        assert table[variant]["valid_max"] == pytest.approx(max(valid))
        assert table[variant]["seeds"] == 2
    markdown = (tmp_path / "sweep.md").read_text()
    assert "| delay-AdLIF+ | " in markdown and "No validation split" not in markdown
    assert f"Settings: preset {base.preset}, batch 8, " in markdown
    assert "on the validation-selected means" in markdown
    # the sweep's first line names the preset, the batch and the protocol; each run's line its batch
    assert logs[0] == f"[sweep] preset {base.preset}; batch 8; protocol valid"
    assert sum(line.endswith("% (validation-selected), batch 8") for line in logs) == 4
    logs.clear()
    run_sweep(base, tmp_path, seeds=2, variants=["LIF"], data=loader, log=logs.append)
    assert sum("done earlier" in line for line in logs) == 2
    with pytest.raises(ToolchainError, match="unknown variant"):
        run_sweep(base, tmp_path, seeds=1, variants=["GRU"], data=loader)


def test_a_sweep_without_a_validation_split_labels_every_figure_test_selected(tiny_folder, tmp_path):
    """--protocol paper --valid-fraction 0: the test split stands in for validation, so neither the
    runs' lines nor sweep.md may call a figure validation-selected (honest)."""
    base = TrainConfig(**{**TINY, "epochs": 1, "protocol": "paper", "valid_fraction": 0.0, "batch_size": 16,
                           "min_updates": 4})
    logs = []
    run_sweep(base, tmp_path, seeds=1, variants=["LIF"], data=DataSource("shd", tiny_folder), log=logs.append)
    assert logs[0] == (f"[sweep] preset {base.preset}; batch 16, halved per run until an epoch has 4 updates (each "
                       "run's line gives its batch); protocol paper; no validation split: the test split stands "
                       "in, every figure is test-selected")
    result = json.loads((tmp_path / "LIF" / "seed0" / "result.json").read_text())
    batch = result["config"]["batch_size"]
    assert result["validation_is_test"] and batch == 8   # 48 training samples: 16 makes 3 updates, 8 makes 6
    assert [line for line in logs if "LIF seed 0:" in line][0].endswith(
        f"% (test-selected (paper protocol)), batch {batch}")
    markdown = (tmp_path / "sweep.md").read_text()
    assert "**No validation split**" in markdown and "on the test-selected (paper protocol) means" in markdown
    assert f"batch {batch} (halved until an epoch has 4 updates)" in markdown


def test_aggregate_means_spreads_and_maxima():
    def run(test, paper, valid):
        return {"test_acc": test, "best_valid_acc": valid, "parameters": 10,
                "test_selected": {"test_acc": paper}, "selected_model_analysis": {
                    "test_acc_zero_init": test, "test_acc_uniform_init": test - 0.1,
                    "test_acc_fractional_delays": test, "spikes_per_neuron_per_sample": [2.0, 4.0]}}

    table = aggregate({"AdLIF": [run(0.8, 0.85, 0.7), run(0.9, 0.95, 0.75), run(0.7, 0.9, 0.72)]})
    row = table["AdLIF"]
    assert row["test_mean"] == pytest.approx(80) and row["test_max"] == pytest.approx(90)
    assert row["test_std"] == pytest.approx(10) and row["paper_mean"] == pytest.approx(90)
    assert row["test_acc_uniform_init"] == pytest.approx(70) and row["spikes_per_neuron"] == pytest.approx(3)


def test_parallel_sweep_equals_the_sequential_one_and_writes_the_analyses(tiny_folder, tmp_path):
    base = TrainConfig(**{**TINY, "epochs": 2})
    data = DataSource("shd", tiny_folder)
    variants = ["LIF", "AdLIF+"]
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))   # what each of 2 workers gets: same sums, same order
    try:
        sequential = run_sweep(base, tmp_path / "seq", seeds=2, variants=variants, data=data, log=lambda *_: None)
    finally:
        torch.set_num_threads(threads)
    logs = []
    parallel = run_sweep(base, tmp_path / "par", seeds=2, variants=variants, data=data, parallel=2, log=logs.append)
    assert sum(line.endswith("% (validation-selected), batch 8") for line in logs) == 4   # a line per run
    for variant in variants:
        for key in ("test_per_seed", "paper_per_seed", "valid_mean", "spikes_per_neuron"):
            assert sequential[variant][key] == pytest.approx(parallel[variant][key]), (variant, key)
        assert (tmp_path / "par" / variant / "seed1" / "train.log").read_text().count("[train] epoch") == 2
    markdown = (tmp_path / "par" / "sweep.md").read_text()
    assert "test-selected (paper protocol)" in markdown and "| AdLIF+ | 38," not in markdown  # hidden 16 here
    assert "Table 4" in markdown and "Fig. 3" in markdown and "Fig. 5" in markdown
    for figure in ("seeds.png", "adaptation_grid.png"):
        assert (tmp_path / "par" / figure).read_bytes()[:4] == b"\x89PNG"
    runs = json.loads((tmp_path / "par" / "sweep.json").read_text())["runs"]
    row = parallel["AdLIF+"]
    tests = [100 * r["test_acc"] for r in runs["AdLIF+"]]
    assert row["test_mean"] == pytest.approx(np.mean(tests)) and row["test_std"] == pytest.approx(np.std(tests, ddof=1))
    assert row["paper_max"] >= row["test_max"] - 1e-9   # the test-selected figure can only be higher
    # finished runs are not trained again
    run_sweep(base, tmp_path / "par", seeds=2, variants=variants, data=data, parallel=2, log=logs.append)
    assert sum("done earlier" in line for line in logs) == 4


def test_adaptation_grid_counts_what_the_neuron_would_fire():
    from snn_toolchain.train.sweeps.report import adaptation_grid

    model = batchnorm_model(hidden=24)
    x = (torch.rand(60, 140) < 0.1).float()
    data = adaptation_grid(model, x.numpy(), grid=5)
    assert data["counts"].shape == (5, 5)
    i, j = 2, 3
    neuron = data["neuron"]
    with torch.no_grad():
        model.blocks[0].neuron.a[neuron] = float(data["a"][i])
        model.blocks[0].neuron.b[neuron] = float(data["b"][j])
        _, spikes = model(x[None], return_spikes=True)
    assert spikes[0][0, :, neuron].sum().item() == data["counts"][i, j]
    # stronger spike-triggered adaptation never makes this neuron fire more, at a = 0
    assert np.all(np.diff(data["counts"][0]) <= 0)


# ----------------------------------------------------------------------------------------- signals

CLI = [sys.executable, "-c", "from snn_toolchain.cli import main; import sys; sys.exit(main(sys.argv[1:]))"]


LONG_EPOCHS = 5000          # minutes of training per run: a worker that is not stopped is still there


START_TIMEOUT_S = 180       # until both workers have written a checkpoint (spawning imports torch; a loaded machine)


EXIT_TIMEOUT_S = 30         # from the signal to the main process's exit


GONE_TIMEOUT_S = 15         # from the main process's exit (or death) until no worker is left


def _cli_args(folder: Path, epochs: int) -> list[str]:
    return ["--dataset", "shd", "--data-dir", str(folder), "--hidden", "16", "--batch-size", "8", "--max-delay", "5",
            "--dropout", "0", "--device", "cpu", "--epochs", str(epochs)]


def _identified(pids) -> dict:
    """pid -> start time, the identity of each process (pids are reused)."""
    return {pid: start for pid in pids if (start := start_time(pid)) is not None}


def _workers(pid: int) -> dict:
    """The sweep's worker processes among the descendants of ``pid`` (spawned multiprocessing
    children; not the resource tracker), as pid -> start time."""
    found = set()
    for child in descendants(pid):
        try:
            with open(f"/proc/{child}/cmdline", "rb") as f:
                if b"spawn_main" in f.read():
                    found.add(child)
        except OSError:
            continue
    return _identified(found)


def _wait_until(condition, timeout_s: float, what: str, process=None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            pytest.fail(f"the command ended (exit {process.returncode}) before {what}")
        time.sleep(0.2)
    pytest.fail(f"no {what} within {timeout_s} s")


def _start_parallel(command: str, folder: Path, out: Path, tmp_path: Path):
    """Start ``train-export COMMAND`` with two long runs two at a time; return (the process, the
    pids of its two workers, the two run folders, the stderr file) once both runs have checkpointed."""
    if command == "sweep":
        extra = ["--variants", "LIF,AdLIF", "--seeds", "1"]
        run_dirs = [out / "LIF" / "seed0", out / "AdLIF" / "seed0"]
    else:
        extra = ["--strengths", "0,1", "--seeds", "1"]
        run_dirs = [out / "lambda0" / "seed0", out / "lambda1" / "seed0"]
    err_path = tmp_path / "stderr.txt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(tmp_path / "stdout.txt", "w") as stdout, open(err_path, "w") as stderr:
        process = subprocess.Popen(CLI + [command, *_cli_args(folder, LONG_EPOCHS), "--run-dir", str(out),
                                          "--parallel", "2", *extra],
                                   stdout=stdout, stderr=stderr, env=env, start_new_session=True)
    workers: dict = {}
    try:
        _wait_until(lambda: all((d / "checkpoint.pt").is_file() for d in run_dirs), START_TIMEOUT_S,
                    "checkpoint in both run folders", process)
        workers = _wait_until(lambda: w if len(w := _workers(process.pid)) == 2 else None, 30, "two workers", process)
    except BaseException:
        _kill(process, _identified(descendants(process.pid)))
        raise
    return process, workers, run_dirs, err_path


def _kill(process, pids: dict) -> None:
    """Clean up after a failed test: SIGKILL what this test started and is still alive (checked by
    pid and start time), then reap the command."""
    if process.poll() is None:
        process.kill()
    for pid in alive(pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


def _gone(pids) -> bool:
    deadline = time.monotonic() + GONE_TIMEOUT_S
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not alive(pids)


@pytest.mark.parametrize("command", ["sweep", "frontier"])
def test_workers_die_with_a_sigkilled_main_process(command, tiny_folder, tmp_path):
    process, workers, _, _ = _start_parallel(command, tiny_folder, tmp_path / "out", tmp_path)
    everything = _identified(descendants(process.pid))   # the workers and multiprocessing's resource tracker
    try:
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=EXIT_TIMEOUT_S) == -signal.SIGKILL
        assert _gone(workers), f"workers {sorted(alive(workers))} outlived the SIGKILLed {command}"
        assert _gone(everything), f"{sorted(alive(everything))} outlived the SIGKILLed {command}"
    finally:
        _kill(process, everything)


def _checkpoint_epoch(run_dir: Path) -> int:
    import torch

    return int(torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)["epoch"])


def _cli_config(folder: Path, epochs: int) -> TrainConfig:
    """The TrainConfig the CLI builds from ``_cli_args`` (the same settings, so the runs resume)."""
    from snn_toolchain.cli import build_parser, config_from_args

    return config_from_args(build_parser().parse_args(["sweep", *_cli_args(folder, epochs)]))


def test_sigterm_stops_the_workers_at_once_and_the_runs_resume(tiny_folder, tmp_path):
    out = tmp_path / "out"
    process, workers, run_dirs, err_path = _start_parallel("sweep", tiny_folder, out, tmp_path)
    everything = _identified(descendants(process.pid))
    try:
        os.kill(process.pid, signal.SIGTERM)            # to the main process only, as `kill PID` does
        assert process.wait(timeout=EXIT_TIMEOUT_S) == 128 + signal.SIGTERM   # not after the runs (minutes)
        assert _gone(workers), f"workers {sorted(alive(workers))} outlived the interrupted sweep"
        assert _gone(everything), f"{sorted(alive(everything))} outlived the interrupted sweep"
    finally:
        _kill(process, everything)
    stderr = err_path.read_text()
    assert "train-export: interrupted" in stderr and "Traceback" not in stderr, stderr
    # the unfinished run folders resume: the sweep continues them from their checkpoints (a run may
    # be extended or cut short on resume; a few more epochs keep this test short)
    done = max(_checkpoint_epoch(d) for d in run_dirs)
    for run_dir in run_dirs:
        assert not (run_dir / "result.json").exists()
    logs: list[str] = []
    run_sweep(_cli_config(tiny_folder, done + 3), out, seeds=1, variants=["LIF", "AdLIF"],
              data=DataSource("shd", tiny_folder), log=logs.append)
    assert sum("[train] resuming" in line for line in logs) == 2, logs
    for run_dir in run_dirs:
        assert json.loads((run_dir / "result.json").read_text())["config"]["epochs"] == done + 3


@pytest.mark.parametrize("to_group", [True, False], ids=["ctrl-c-to-group", "sigint-to-main"])
def test_sigint_stops_the_workers_without_a_traceback(to_group, tiny_folder, tmp_path):
    process, workers, _, err_path = _start_parallel("sweep", tiny_folder, tmp_path / "out", tmp_path)
    everything = _identified(descendants(process.pid))
    try:
        if to_group:
            os.killpg(process.pid, signal.SIGINT)       # what a terminal's Ctrl-C does: the whole group
        else:
            os.kill(process.pid, signal.SIGINT)         # `kill -INT PID`: the workers see nothing
        assert process.wait(timeout=EXIT_TIMEOUT_S) == 128 + signal.SIGINT
        assert _gone(workers), f"workers {sorted(alive(workers))} outlived the interrupted sweep"
    finally:
        _kill(process, everything)
    stderr = err_path.read_text()
    assert "train-export: interrupted" in stderr and "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr


def test_a_failed_run_stops_the_other_workers_at_once(tiny_folder, tmp_path):
    import multiprocessing

    from snn_toolchain.atomic import exclusive_folder_lock

    out = tmp_path / "sweep"
    before = set(multiprocessing.active_children())
    started = time.monotonic()
    # LIF's run folder is held by "another run": that run fails at once, AdLIF's would train for minutes
    with exclusive_folder_lock(out / "LIF" / "seed0", "training run"):
        with pytest.raises(ToolchainError, match="in use by another training run"):
            run_sweep(TrainConfig(**{**TINY, "epochs": LONG_EPOCHS}), out, seeds=1, variants=["LIF", "AdLIF"],
                      data=DataSource("shd", tiny_folder), parallel=2, log=lambda *_: None)
    assert time.monotonic() - started < START_TIMEOUT_S
    assert set(multiprocessing.active_children()) - before == set()    # stopped and reaped
    assert not (out / "AdLIF" / "seed0" / "result.json").exists()


# --------------------------------------------------------------------------------------- arguments

@pytest.fixture(scope="module")
def finished_sweep(tiny_folder, tmp_path_factory) -> Path:
    """A sweep trained to its end by two workers (the pool's ordinary path)."""
    out = tmp_path_factory.mktemp("finished") / "sweep"
    run_sweep(TrainConfig(**{**TINY, "epochs": 1}), out, seeds=1, variants=["LIF", "AdLIF"],
              data=DataSource("shd", tiny_folder), parallel=2, log=lambda *_: None)
    assert json.loads((out / "sweep.json").read_text())["table"]["AdLIF"]["seeds"] == 1
    return out


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("seeds", [0, -2])
def test_sweep_refuses_seeds_below_one_before_writing(seeds, finished_sweep, tiny_folder, capsys):
    out = finished_sweep
    before = _snapshot(out)
    with pytest.raises(ToolchainError, match=f"--seeds {seeds}: must be a whole number, at least 1"):
        run_sweep(TrainConfig(**{**TINY, "epochs": 1}), out, seeds=seeds, variants=["LIF"],
                  data=DataSource("shd", tiny_folder), log=lambda *_: None)
    capsys.readouterr()
    assert cli_main(["sweep", *_cli_args(tiny_folder, 1), "--run-dir", str(out), "--variants", "LIF",
                     "--seeds", str(seeds)]) == 2
    err = capsys.readouterr().err
    assert err == f"train-export: error: --seeds {seeds}: must be a whole number, at least 1\n"
    assert _snapshot(out) == before      # the finished sweep's summary is left as it was


@pytest.mark.parametrize("variants", [[], [""], [" "], ["", ""]])
def test_sweep_refuses_an_empty_variant_list(variants, tiny_folder, tmp_path):
    with pytest.raises(ToolchainError, match="no variant given") as caught:
        run_sweep(TrainConfig(**TINY), tmp_path / "sweep", seeds=1, variants=variants,
                  data=DataSource("shd", tiny_folder), log=lambda *_: None)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "sweep").exists()


def test_sweep_refuses_a_blank_name_and_a_repeated_variant(tiny_folder, tmp_path):
    with pytest.raises(ToolchainError, match="an empty name in the list"):
        run_sweep(TrainConfig(**TINY), tmp_path / "sweep", seeds=1, variants=["LIF", ""],
                  data=DataSource("shd", tiny_folder), log=lambda *_: None)
    with pytest.raises(ToolchainError, match="LIF given more than once") as caught:
        run_sweep(TrainConfig(**TINY), tmp_path / "sweep", seeds=1, variants=["LIF", "AdLIF", "LIF"],
                  data=DataSource("shd", tiny_folder), parallel=2, log=lambda *_: None)
    assert "\n" not in str(caught.value) and "AdLIF" not in str(caught.value).split(":")[-1]
    assert not (tmp_path / "sweep").exists()
    from snn_toolchain.train.sweeps.sweep import check_variants

    assert check_variants(None) == ["LIF", "AdLIF", "AdLIF+", "delay-LIF", "delay-AdLIF+"]
    assert check_variants([" LIF", "delay-LIF "]) == ["LIF", "delay-LIF"]


def test_the_sweep_command_refuses_a_repeated_variant_in_one_line(tiny_folder, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert cli_main(["sweep", *_cli_args(tiny_folder, 1), "--run-dir", str(out), "--variants", "LIF,LIF",
                     "--parallel", "2", "--seeds", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("train-export: error: --variants LIF,LIF: LIF given more than once")
    assert not out.exists()


def test_the_sweep_command_refuses_an_empty_variant_list(tmp_path, capsys):
    out = tmp_path / "sweep"
    # a missing data folder: the code of before trains all five variants and fails on the data, at once
    assert cli_main(["sweep", *_cli_args(tmp_path / "missing", 1), "--run-dir", str(out), "--variants", "",
                     "--seeds", "1"]) == 2
    assert capsys.readouterr().err.startswith("train-export: error: --variants '': no variant given")
    assert not out.exists()
