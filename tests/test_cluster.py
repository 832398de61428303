"""Past one machine (snn_toolchain/cluster/, docs/scale.md): the run folder's lease across machines,
the sharded parity's merge, the ``--cluster`` options; and, on a real Ray cluster of two nodes
started on this machine as separate processes (tests/ray_support.py), a sweep whose worker node is
killed in the middle of a run, a failed run reported with its log while the others go on, and a
parity check over 8 samples in shards.

- The lease (``lease.py``): a live holder on this machine is refused at once and a dead one
  replaced at once; a holder on another machine (a lease written with another host name) is
  refused as soon as its heartbeat is seen and replaced when none comes for the timeout; of two
  claimants of one stale lease exactly one wins; a holder whose lease was taken over is told.
- The sweep on the cluster equals the local run: a training's result depends only on its config,
  seed and threads, and the tasks run with as many torch threads (1) as the local run here.
"""

from __future__ import annotations

import contextlib
import functools
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_support import one_line_error
from lava_support import run_isolated
from ray_support import local_ray_cluster, node_processes
from snn_toolchain.atomic import claim_folder, exclusive_folder_lock
from snn_toolchain.cli import main as cli_main
from snn_toolchain.cluster import ClusterSpec, engine
from snn_toolchain.cluster.lease import LEASE_NAME, FolderLease, machine_identity
from snn_toolchain.errors import ToolchainError
from snn_toolchain.export.netfile import read_net
from snn_toolchain.lava_models import parity
from snn_toolchain.lava_models.lava_backend import dataset_samples
from snn_toolchain.lava_models.parity_shards import merge_reports, shard_ranges, sharded_parity_check
from snn_toolchain.train.loop import run_folder
from snn_toolchain.train.loop.config import TrainConfig
from snn_toolchain.train.sweeps.sweep import DataSource, run_sweep
from test_parity import MAX_DELAY, _OneSpikeOffRunner, export, small_model

# fast leases for the tests (seconds): the product's are 10 s heartbeats and a 60 s timeout
FAST = dict(heartbeat_s=0.1, timeout_s=0.6, poll_s=0.02)
# the sweep of the cluster tests: 2 variants x 2 seeds of a tiny network on the embedded set
SWEEP = dict(hidden=16, batch_size=32, max_delay=5, epochs=4, dropout=0.0, device="cpu")
KILL_TIMEOUT_S = 120.0


def _quiet(*_):
    pass


def _foreign_lease(folder: Path, host: str = "another-machine", beats: int = 0, written: float | None = None) -> bytes:
    """A lease as a process of another machine (or of another boot of this one) writes it;
    written: its last heartbeat's time (seconds since the epoch, the holder's clock)."""
    folder.mkdir(parents=True, exist_ok=True)
    holder = {"token": "theirs", "host": host, "boot_id": "other-boot", "pid_namespace": 1, "pid": 4242, "start": 1,
              "what": "training run", "beats": beats}
    if written is not None:
        holder["written"] = written
    content = json.dumps(holder).encode().ljust(1024)
    (folder / LEASE_NAME).write_bytes(content)
    return content


# ------------------------------------------------------------------------------------------ lease

def test_a_live_holder_of_this_machine_is_refused_and_a_dead_one_replaced_at_once(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                               "from snn_toolchain.cluster.lease import FolderLease\n"
                               f"with FolderLease({str(tmp_path)!r}, 'training run'):\n"
                               "    print('held', flush=True); time.sleep(600)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(ToolchainError, match=f"in use by another training run \\(pid {holder.pid} on "):
            with FolderLease(tmp_path, "training run", say=_quiet):
                pass
        assert time.monotonic() - started < 1.0         # no watching: this machine's pid says it
    finally:
        holder.kill()
        holder.wait()
    started = time.monotonic()
    with FolderLease(tmp_path, "training run", say=_quiet) as lease:   # SIGKILLed: its lease is left behind
        assert lease.replaced["pid"] == holder.pid and not lease.replaced_elsewhere
    assert time.monotonic() - started < 1.0
    assert not (tmp_path / LEASE_NAME).exists()         # released on leaving


def test_the_holder_renews_its_lease_and_a_second_claim_in_one_process_is_refused(tmp_path):
    with FolderLease(tmp_path, "training run", **FAST) as lease:
        first = json.loads((tmp_path / LEASE_NAME).read_bytes().rstrip())
        time.sleep(0.5)
        assert json.loads((tmp_path / LEASE_NAME).read_bytes().rstrip())["beats"] > first["beats"] == 0
        assert first["host"] == machine_identity()["host"] and first["token"] == lease.token
        with pytest.raises(ToolchainError, match="in use by another training run"):
            with FolderLease(tmp_path, "training run", **FAST):
                pass


def test_another_machines_lease_is_replaced_only_after_its_heartbeat_stops(tmp_path):
    said = []
    _foreign_lease(tmp_path)
    started = time.monotonic()
    with FolderLease(tmp_path, "training run", say=said.append, **FAST) as lease:
        waited = time.monotonic() - started
        assert lease.replaced["host"] == "another-machine" and lease.replaced_elsewhere
    assert FAST["timeout_s"] <= waited < FAST["timeout_s"] + 1.0
    assert "pid 4242 on another-machine (another machine); watching its heartbeat" in said[0]
    assert "taken for dead" in said[1]


def test_a_holder_of_this_host_from_before_its_last_boot_is_replaced_at_once(tmp_path):
    """Same host name, another boot id, last heartbeat before this machine booted: it died with
    that boot, and is replaced without the 60 s watch (the product's timeout, not FAST)."""
    said, host = [], machine_identity()["host"]
    _foreign_lease(tmp_path, host=host, written=1.0)          # 1970: before any boot of this machine
    started = time.monotonic()
    with FolderLease(tmp_path, "training run", say=said.append) as lease:
        assert lease.replaced["boot_id"] == "other-boot" and lease.replaced_elsewhere   # its flock may linger
    assert time.monotonic() - started < 1.0
    assert said == [f"[lease] {tmp_path}: pid 4242 on {host} ran before this machine last booted: taken for dead, "
                    "its lease replaced"]


def test_another_machine_of_the_same_host_name_is_watched_not_taken_for_rebooted(tmp_path):
    """Host names repeat across machines (nodes left with a default name): a holder of this host
    name and another boot whose heartbeat is recent, not from before this boot, is watched."""
    said = []
    _foreign_lease(tmp_path, host=machine_identity()["host"], written=time.time())
    started = time.monotonic()
    with FolderLease(tmp_path, "training run", say=said.append, **FAST):
        waited = time.monotonic() - started
    assert waited >= FAST["timeout_s"] and "watching its heartbeat" in said[0]
    assert "sent no heartbeat for 1 s: taken for dead" in said[1]


def test_another_machines_live_heartbeat_refuses_the_claim(tmp_path):
    _foreign_lease(tmp_path)
    stop = threading.Event()

    def beat():        # the other machine's holder, renewing in place
        beats = 0
        while not stop.wait(0.1):
            beats += 1
            _foreign_lease(tmp_path, beats=beats)

    beater = threading.Thread(target=beat)
    beater.start()
    try:
        with pytest.raises(ToolchainError, match="pid 4242 on another-machine, its heartbeat is live"):
            with FolderLease(tmp_path, "training run", say=_quiet, **FAST):
                pass
    finally:
        stop.set()
        beater.join()
    assert json.loads((tmp_path / LEASE_NAME).read_bytes().rstrip())["token"] == "theirs"   # left as it was


def test_of_two_claimants_of_one_stale_lease_exactly_one_wins(tmp_path):
    _foreign_lease(tmp_path)
    outcomes, barrier = [], threading.Barrier(2)

    def claim():
        barrier.wait()
        try:
            with FolderLease(tmp_path, "training run", say=_quiet, **FAST):
                outcomes.append("held")
                time.sleep(0.5)
        except ToolchainError as err:
            outcomes.append(str(err))

    claimants = [threading.Thread(target=claim) for _ in range(2)]
    for thread in claimants:
        thread.start()
    for thread in claimants:
        thread.join()
    assert outcomes.count("held") == 1, outcomes
    assert "in use by another training run" in [o for o in outcomes if o != "held"][0]
    assert not list(tmp_path.glob(".lease.stale-*"))


def test_a_holder_whose_lease_was_taken_over_is_told(tmp_path):
    lost = []
    with FolderLease(tmp_path, "training run", on_lost=lost.append, **FAST):
        _foreign_lease(tmp_path)            # as if another machine had taken it, this one long silent
        deadline = time.monotonic() + 5
        while not lost and time.monotonic() < deadline:
            time.sleep(0.02)
    assert lost and "no longer holds the folder (its lease was taken over by pid 4242 on another-machine)" in lost[0]
    assert json.loads((tmp_path / LEASE_NAME).read_bytes().rstrip())["token"] == "theirs"   # not removed as ours


def test_the_flock_of_a_machine_found_dead_is_waited_for_then_gone_past(tmp_path, monkeypatch, capsys):
    """A run folder whose holder died with its machine: the lease is replaced after its timeout;
    the file server may still hold that machine's flock (here: this process holds it), which is
    waited for DEAD_MACHINE_LOCK_WAIT_S, then the run goes on under the lease."""
    monkeypatch.setattr(run_folder, "FolderLease", functools.partial(FolderLease, say=_quiet, **FAST))
    monkeypatch.setattr(run_folder, "DEAD_MACHINE_LOCK_WAIT_S", 0.3)
    monkeypatch.setattr(run_folder, "LOCK_POLL_S", 0.05)
    run_dir = claim_folder(tmp_path / "run", "training run")    # a run folder of ours, as that machine left it
    with exclusive_folder_lock(run_dir, "training run"):
        _foreign_lease(run_dir)
        with contextlib.ExitStack() as held:
            run_folder.claim_run_folder(run_dir, held)
            assert json.loads((run_dir / LEASE_NAME).read_bytes().rstrip())["host"] == machine_identity()["host"]
    assert "going on under the lease" in capsys.readouterr().err
    # a flock alone, with no lease to say its holder is dead, is refused at once, as before
    with exclusive_folder_lock(run_dir, "training run"):
        with pytest.raises(ToolchainError, match="in use by another training run"), contextlib.ExitStack() as held:
            run_folder.claim_run_folder(run_dir, held)
    assert not (run_dir / LEASE_NAME).exists()          # the lease taken meanwhile is given back


# ------------------------------------------------------------------------------- sharded parity

def test_shard_ranges_cover_every_sample_once():
    assert shard_ranges(8, 3) == [range(0, 2), range(2, 5), range(5, 8)]
    assert shard_ranges(2, 5) == [range(0, 1), range(1, 2)]
    whole_ssc = shard_ranges(20382, 64)           # SSC's test split
    assert sum(len(r) for r in whole_ssc) == 20382 and {len(r) for r in whole_ssc} == {318, 319}
    assert all(a.stop == b.start for a, b in zip(whole_ssc, whole_ssc[1:]))
    with pytest.raises(ToolchainError, match="--shards 0"):
        shard_ranges(8, 0)


@pytest.fixture(scope="module")
def small_net(tmp_path_factory):
    return export(small_model(), tmp_path_factory.mktemp("shards"), 100 + MAX_DELAY)


def test_sharded_parity_names_the_same_first_difference_as_one_process(small_net, monkeypatch):
    """A Lava stand-in with one spike flipped in test sample 5 (the third shard's; found by its
    input, since each shard's runner sees only its own samples): the merged report's verdict,
    first difference and counts are the one-process report's."""
    target = dataset_samples("shd", 8, read_net(small_net).time_steps)[0][5]

    def one_spike_off(network, *, samples, synapse):
        found = [k for k, sample in enumerate(samples) if np.array_equal(sample, target)]
        return _OneSpikeOffRunner(network, samples, (found[0] if found else -1, 0, 17, 3))

    monkeypatch.setattr(parity, "build_lava_network", one_spike_off)
    whole = parity.parity_check(small_net, "shd", 8, progress=False)
    sharded = sharded_parity_check(small_net, "shd", 8, shards=3, log=_quiet)
    _assert_same_report(sharded, whole)
    assert whole.mismatched_samples == [5] and whole.first_difference["sample"] == 5
    assert whole.verdict().startswith("PARITY FAILED: emulator vs Lava: first difference at sample 5, layer 1, step 17")
    assert merge_reports([whole]).verdict() == whole.verdict()     # one shard: the report as it is


def _assert_same_report(sharded, whole) -> None:
    assert sharded.verdict() == whole.verdict()
    for field in ("samples", "labels", "predictions", "accuracy", "spike_counts", "spikes_identical",
                  "readout_identical", "scores_identical", "predictions_identical", "mismatched_samples",
                  "first_difference", "deployed_identical", "deployed_first_difference", "float_fixed_agreement",
                  "validation", "layer_sizes", "run_steps"):
        assert getattr(sharded, field) == getattr(whole, field), field


def one_process_parity(net: str, checkpoints: list) -> list:
    """The reference: parity_check over the 8 samples in one process, for each checkpoint."""
    return [parity.parity_check(net, "shd", 8, checkpoint=c, progress=False) for c in checkpoints]


# ------------------------------------------------------------------------------------------ CLI

def test_the_cluster_options_are_refused_in_one_line_where_they_cannot_apply(tmp_path, capsys):
    base = ["sweep", "--hidden", "8", "--epochs", "1", "--seeds", "1", "--variants", "LIF", "--run-dir",
            str(tmp_path / "sweep")]
    assert cli_main([*base, "--task-cpus", "2"]) == 2
    one_line_error(capsys, "--task-cpus: size the tasks of a cluster; give --cluster ADDRESS too")
    assert cli_main([*base, "--cluster", "auto", "--parallel", "2"]) == 2
    one_line_error(capsys, "--parallel 2 with --cluster", "drop --parallel")
    started = time.monotonic()
    assert cli_main([*base, "--cluster", "127.0.0.1:1"]) == 2      # nothing listens there: at once, not in minutes
    one_line_error(capsys, "--cluster 127.0.0.1:1: no Ray cluster answers there", "ray start --head")
    assert time.monotonic() - started < 30
    assert not (tmp_path / "sweep").exists()


def test_without_ray_the_option_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)       # `import ray` raises ImportError
    assert cli_main(["frontier", "--hidden", "8", "--epochs", "1", "--seeds", "1", "--strengths", "0,1",
                     "--cluster", "auto", "--run-dir", str(tmp_path / "frontier")]) == 2
    one_line_error(capsys, "--cluster needs Ray", "pip install 'snn-toolchain[cluster]'")


# ------------------------------------------------------------------------- on a real Ray cluster

@pytest.fixture(scope="module")
def ray_cluster():
    with local_ray_cluster(workers=1) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """The reference: the same sweep on this machine, in this process, with the tasks' 1 thread."""
    out = tmp_path_factory.mktemp("local") / "sweep"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_sweep(TrainConfig(**SWEEP), out, seeds=2, variants=["LIF", "AdLIF"], data=DataSource("shd"), log=_quiet)
    finally:
        torch.set_num_threads(threads)
    return json.loads((out / "sweep.json").read_text())


def test_sharded_parity_on_the_cluster_equals_one_process(ray_cluster, small_net, tmp_path):
    """8 samples in 3 shards, each a Ray task running Lava: with the .net's own checkpoint (PARITY
    OK) and with another model's (the model differs from the emulator: PARITY FAILED, naming the
    first difference), the verdict and every count are the one-process run's."""
    other = Path(export(small_model(seed=1), tmp_path, 100 + MAX_DELAY)).parent / "model.pt"
    checkpoints = [None, str(other)]
    whole = run_isolated("test_cluster:one_process_parity", (small_net, checkpoints), tmp_path / "one", timeout_s=300)
    lines = []
    for reference, checkpoint in zip(whole, checkpoints):
        sharded = sharded_parity_check(small_net, "shd", 8, shards=3, checkpoint=checkpoint,
                                       cluster=ClusterSpec(ray_cluster.address), log=lines.append)
        _assert_same_report(sharded, reference)
    assert whole[0].ok and not whole[1].ok and whole[1].deployed_first_difference is not None
    assert whole[1].verdict().startswith("PARITY FAILED: emulator vs model: first difference at sample 0")
    assert sum("done on" in line for line in lines) == 6 and "3/3 done, 0 running, 0 failed, 0 waiting" in lines[-1]


def test_a_task_no_machine_can_hold_is_refused_at_once_on_a_fixed_cluster(ray_cluster):
    """Two machines of 1 CPU and no GPU, started with `ray start` (no autoscaler): a task of 1 GPU,
    or of 2 CPUs, would wait forever; it is refused at once in one line naming the cluster's
    resources and the option to lower."""
    import ray

    assert engine.autoscaling(ray) is False
    for spec, option in ((ClusterSpec(ray_cluster.address, task_gpus=1), "lower --task-gpus,"),
                         (ClusterSpec(ray_cluster.address, task_cpus=2), "lower --task-cpus,")):
        started = time.monotonic()
        with pytest.raises(ToolchainError) as refused:
            engine.run_tasks([engine.Task("k", "sleep", time.sleep, (0,))], spec, log=_quiet)
        assert time.monotonic() - started < 10
        message = str(refused.value)
        assert "\n" not in message and "no machine of the cluster can hold a task of" in message
        assert "(a fixed cluster, no autoscaler to add machines; 2 machines: CPU 2, GPU 0 in all; at most CPU 1, " \
               "GPU 0 on one)" in message and option in message


@pytest.mark.parametrize("scaling, how", [(True, "the cluster autoscales"),
                                          (None, "whether this cluster adds machines cannot be told")])
def test_a_task_no_machine_can_hold_waits_a_bounded_time_where_machines_may_join(ray_cluster, monkeypatch,
                                                                                  scaling, how):
    """On a cluster that autoscales, or cannot be told fixed, the task is sent (an autoscaler
    adds machines for waiting tasks) with a warning, and stopped when no machine for it has
    joined within the wait (here 1 s; the product's: AUTOSCALING_WAIT_S, NO_SLOT_WAIT_S)."""
    monkeypatch.setattr(engine, "autoscaling", lambda ray: scaling)
    monkeypatch.setattr(engine, "AUTOSCALING_WAIT_S", 1.0)
    monkeypatch.setattr(engine, "NO_SLOT_WAIT_S", 1.0)
    monkeypatch.setattr(engine, "SLOT_CHECK_S", 0.2)
    lines = []
    started = time.monotonic()
    with pytest.raises(ToolchainError, match="no machine of the cluster can hold a task of --task-cpus 1 --task-gpus 1 "
                                             "\\(none joined in 1 s; 2 machines: .*\\); lower --task-gpus,"):
        engine.run_tasks([engine.Task("k", "sleep", time.sleep, (0,))], ClusterSpec(ray_cluster.address, task_gpus=1),
                         tag="t", log=lines.append)
    assert 1.0 <= time.monotonic() - started < 10
    assert lines[0].startswith("[t] 1 tasks to the Ray cluster") and "(0 at a time" in lines[0]
    assert lines[1].startswith("[t] warning: --cluster ")
    assert f"; {how}: waiting up to 1 s for such a machine to join" in lines[1]


def test_frontier_init_from_goes_to_the_workers_absolute(tmp_path, monkeypatch):
    """``frontier --init-from DIR --cluster`` with a relative DIR: a worker does not start in this
    folder, so the tasks get the checkpoint's absolute path (captured where Ray would be called)."""
    from snn_toolchain.export.frontier import run_frontier

    for seed in range(2):
        (tmp_path / "base" / f"seed{seed}").mkdir(parents=True)
        (tmp_path / "base" / f"seed{seed}" / "best.pt").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    sent = []

    class Captured(Exception):
        pass

    def capture(tasks, spec, **_):
        sent.extend(tasks)
        raise Captured

    monkeypatch.setattr(engine, "run_tasks", capture)
    with pytest.raises(Captured):
        run_frontier(TrainConfig(**SWEEP), Path("frontier"), [0.0, 1.0], seeds=2, init_from=Path("base"),
                     log=_quiet, cluster=ClusterSpec("auto"))
    starts = {task.args[0]["init_checkpoint"] for task in sent}
    assert len(sent) == 4 and starts == {str(tmp_path / "base" / f"seed{seed}" / "best.pt") for seed in range(2)}
    assert all(Path(task.args[1]).is_absolute() for task in sent)


def test_a_failed_run_is_reported_with_its_log_and_the_others_go_on(ray_cluster, tmp_path):
    out = tmp_path / "sweep"
    lines = []
    # LIF seed 0's folder is held (an flock of this machine): that task fails, seed 1 trains on
    with exclusive_folder_lock(out / "LIF" / "seed0", "training run"):
        with pytest.raises(ToolchainError, match="1 of 2 runs failed \\(LIF seed 0 .*run the same command again"):
            run_sweep(TrainConfig(**{**SWEEP, "epochs": 1}), out, seeds=2, variants=["LIF"], data=DataSource("shd"),
                      cluster=ClusterSpec(ray_cluster.address), log=lines.append)
    failed = next(line for line in lines if "FAILED" in line)
    assert "FAILED LIF seed 0" in failed and "in use by another training run" in failed
    assert f"last lines of {out / 'LIF' / 'seed0' / 'train.log'}" in failed and "| [train] preset" in failed
    assert (out / "LIF" / "seed1" / "result.json").exists() and not (out / "sweep.json").exists()
    assert lines[-1].startswith("[sweep] 1/2 done, 0 running, 1 failed, 0 waiting")


def test_a_sweep_whose_worker_dies_completes_with_the_local_table(ray_cluster, local_sweep, tmp_path):
    """The worker node is SIGKILLed (raylet and task workers) while one of its runs is between two
    epochs' checkpoints; Ray runs that task again on the head, which resumes it from the run
    folder's checkpoint (its dead holder's lease replaced at once: same machine). The sweep's table
    and runs equal the local run's; the same command again trains nothing."""
    out = tmp_path / "sweep"
    worker = ray_cluster.nodes[1]
    killed: list = []

    def kill_the_worker_mid_run():
        deadline = time.monotonic() + KILL_TIMEOUT_S
        while time.monotonic() < deadline:
            for lease in out.glob("*/seed*/" + LEASE_NAME):
                with contextlib.suppress(OSError, ValueError, KeyError):
                    pid = json.loads(lease.read_bytes().rstrip(b"\0 \n"))["pid"]
                    run = lease.parent
                    if pid in node_processes(worker) and (run / "checkpoint.pt").exists() \
                            and not (run / "result.json").exists():
                        ray_cluster.kill_node(worker)
                        killed.append(run)
                        return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_worker_mid_run, daemon=True)
    killer.start()
    lines = []
    run_sweep(TrainConfig(**SWEEP), out, seeds=2, variants=["LIF", "AdLIF"], data=DataSource("shd"),
              cluster=ClusterSpec(ray_cluster.address), log=lines.append)
    killer.join(timeout=1)
    assert killed, "no run was seen on the worker node: " + "\n".join(lines)
    # Ray marks a killed node dead after its health checks miss (seconds): a quick sweep can end first
    deadline = time.monotonic() + 60
    while ray_cluster.alive_nodes() != 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ray_cluster.alive_nodes() == 1 and worker.poll() is not None
    assert "resuming" in (killed[0] / "train.log").read_text()       # the second attempt resumed
    swept = json.loads((out / "sweep.json").read_text())
    assert swept["table"] == local_sweep["table"]
    assert _without_timings(swept["runs"]) == _without_timings(local_sweep["runs"])
    lines.clear()
    run_sweep(TrainConfig(**SWEEP), out, seeds=2, variants=["LIF", "AdLIF"], data=DataSource("shd"),
              cluster=ClusterSpec(ray_cluster.address), log=lines.append)
    assert sum("done earlier" in line for line in lines) == 4 and not any("tasks to the Ray" in x for x in lines)
    assert json.loads((out / "sweep.json").read_text())["table"] == local_sweep["table"]


def _without_timings(value):
    """The runs' results less the wall-clock seconds of their epochs."""
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k != "epoch_seconds"}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def test_the_parity_command_on_the_cluster_gives_the_one_process_verdict(ray_cluster, small_net, tmp_path, capsys):
    """``train-export parity --cluster``: each task reads the embedded set itself (no samples travel
    with the tasks); the verdict line and the counts are those of the command without it."""
    one, sharded = tmp_path / "one.json", tmp_path / "sharded.json"
    assert cli_main(["parity", "--net", small_net, "--samples", "6", "--report", str(one)]) == 0
    verdict = [line for line in capsys.readouterr().out.splitlines() if "PARITY" in line]
    assert cli_main(["parity", "--net", small_net, "--samples", "6", "--report", str(sharded), "--shards", "2",
                     "--cluster", ray_cluster.address]) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if "PARITY" in line] == verdict and "PARITY OK" in verdict[0]
    whole, merged = json.loads(one.read_text()), json.loads(sharded.read_text())
    for field in ("samples", "predictions", "accuracy", "spike_counts", "mismatched_samples", "first_difference"):
        assert merged[field] == whole[field], field
    assert any("run as 2 shards on the Ray cluster" in note for note in merged["notes"])


def test_parity_shards_refuse_the_traces_of_one_run(small_net, tmp_path, capsys):
    assert cli_main(["parity", "--net", small_net, "--samples", "2", "--shards", "2",
                     "--nir-traces", str(tmp_path / "t.h5")]) == 2
    one_line_error(capsys, "--nir-traces records one run's spikes")
    assert not (tmp_path / "t.h5").exists()


def test_the_parity_command_gives_the_tasks_absolute_data_folders(small_net, tmp_path, monkeypatch):
    """``parity --cluster --data-dir data``: a worker's working folder is not ours, so each task's
    loader gets the folders made absolute (the run itself is stood in for)."""
    from snn_toolchain.cli import commands_run

    sent = {}
    monkeypatch.setattr(commands_run, "_network_and_splits", lambda args: (read_net(small_net), None))
    monkeypatch.setattr(commands_run, "run_parity", lambda *args, **options: sent.update(options) or {"ok": True})
    monkeypatch.chdir(tmp_path)
    assert cli_main(["parity", "--net", small_net, "--cluster", "auto", "--data-dir", "data",
                     "--cache-dir", "cache"]) == 0
    loader = sent["load_dataset"]
    assert loader.args[1] == tmp_path / "data" and loader.keywords["cache_dir"] == tmp_path / "cache"
