"""The command line (snn_toolchain/cli/): its errors are one line, ``train-export: error: ...``, with
exit 2 (argparse's own errors keep the usage above that line; file-system errors name the option
and the path), SIGTERM ends a training run with exit 143 and one line, a Lava command passes on no
notice of lava-dl's import, and ``train`` trains, resumes and prints both evaluation protocols.
docs/reliability.md lists the faults.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from cli_support import CLI, one_line_error, train_args as _train_args
from process_support import wait_for as _wait_for
from snn_toolchain.cli import main as cli_main
from snn_toolchain.train.model.checkpoint import load_checkpoint


def test_argparse_errors_keep_the_usage_and_end_with_the_cli_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["train", "--epochs", "x"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: train-export train")
    assert err.strip().splitlines()[-1] == "train-export: error: argument --epochs: invalid int value: 'x'"


def test_bad_options_and_an_occupied_run_folder_are_one_line_errors(tiny_folder, tmp_path, capsys):
    base = ["train", "--dataset", "shd", "--data-dir", str(tiny_folder), "--run-dir", str(tmp_path / "run")]
    for extra, message in [(["--neuron", "gru"], "--neuron gru"), (["--batch-size", "0"], "--batch-size 0"),
                           (["--dropout", "2"], "--dropout 2"), (["--bounds", "alpha=1:0"], "--bounds"),
                           (["--max-delay", "70"], "--max-delay 70"), (["--device", "tpu"], "--device tpu")]:
        assert cli_main(base + extra) == 2, extra
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and err.count("\n") == 1, err
    assert cli_main(base + ["--epochs", "1", "--hidden", "8", "--max-delay", "3"]) == 0
    capsys.readouterr()
    assert cli_main(base + ["--epochs", "1", "--hidden", "8", "--max-delay", "3"]) == 2
    assert "holds a training run already" in capsys.readouterr().err


def test_file_system_errors_are_one_line_user_errors(trained_run, tiny_folder, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    net = trained_run / "model.net"
    data = ["--data-dir", str(tiny_folder)]
    cases = [
        (["train", "--dataset", "shd", "--data-dir", str(tiny_folder), "--out", str(a_file), "--epochs", "1"],
         ["--out", "is a file"]),
        (_train_args(tiny_folder, a_file / "run", 1), ["--run-dir", "is a file, not a folder"]),
        (_train_args(tiny_folder, Path("/proc/no/run"), 1), ["/proc/no/run", "cannot be created"]),
        (["export", "--run-dir", str(trained_run), *data, "--out", str(a_file / "x.net")], ["x.net", "is a file"]),
        (["export", "--run-dir", str(trained_run), *data, "--out", str(tmp_path)], ["--out", "is a folder"]),
        (["report", "--net", str(net), *data, "--samples", "2", "--out", "/proc/no/report"], ["--out", "cannot be created"]),
        (["deploy", "--net", str(net), *data, "--samples", "2", "--out", "/proc/no/deploy"], ["--out", "cannot be created"]),
        (["report", "--net", str(net), *data, "--samples", "2", "--out", str(a_file)], ["--out", "is a file"]),
    ]
    for argv, fragments in cases:
        assert cli_main(argv) == 2, argv
        one_line_error(capsys, *fragments)
    assert a_file.read_text() == "not a folder"


def test_sigterm_stops_a_training_run_with_exit_143_and_one_line(tiny_folder, tmp_path):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(CLI + _train_args(tiny_folder, run_dir, 1000), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: (run_dir / "checkpoint.pt").exists(), process=process)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143 and err.strip().splitlines()[-1] == "train-export: interrupted", err
    assert "Traceback" not in err
    load_checkpoint(run_dir / "checkpoint.pt")   # what was written survives


def test_a_lava_command_prints_no_cuda_notice(trained_run, tiny_folder):
    """torch's cpp_extension prints "No CUDA runtime is found" on stderr when lava-dl is imported on
    a machine without CUDA; a Lava command must not pass that notice on to the user."""
    done = subprocess.run([*CLI, "run", "--net", str(trained_run / "model.net"), "--data-dir", str(tiny_folder),
                           "--samples", "1", "--backend", "lava-sim"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "No CUDA runtime" not in done.stderr + done.stdout
    assert "Prophesee" not in done.stderr + done.stdout
    assert "accuracy" in done.stdout.lower(), done.stdout


# ------------------------------------------------------------------------------------------- train

def test_cli_train_and_resume(tiny_folder, tmp_path, capsys):
    args = ["train", "--dataset", "shd", "--data-dir", str(tiny_folder), "--hidden", "8", "--batch-size", "8",
            "--max-delay", "3", "--dropout", "0", "--device", "cpu", "--run-dir", str(tmp_path / "run")]
    assert cli_main(args + ["--epochs", "1"]) == 0
    assert cli_main(args + ["--epochs", "2", "--resume"]) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "test accuracy" in out
    rows = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2]
    assert cli_main(["train", "--dataset", "shd", "--data-dir", str(tiny_folder), "--resume"]) == 2
    assert "--resume needs --run-dir" in capsys.readouterr().err


def test_cli_train_prints_both_protocols(tiny_folder, tmp_path, capsys):
    code = cli_main(["train", "--dataset", "shd", "--data-dir", str(tiny_folder), "--epochs", "1", "--hidden", "8",
                     "--batch-size", "8", "--max-delay", "3", "--device", "cpu", "--run-dir", str(tmp_path / "run"),
                     "--norm", "none", "--eval-init", "uniform", "--bounds", "beta-appendix"])
    out = capsys.readouterr().out
    assert code == 0
    assert "test accuracy of that model" in out and "test-selected (paper protocol):" in out
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["norm"] == "none" and config["eval_init"] == "uniform" and config["bounds"]["beta"] == [0.0, 1.0]
    code = cli_main(["train", "--dataset", "shd", "--data-dir", str(tiny_folder), "--epochs", "1", "--latency", "2",
                     "--run-dir", str(tmp_path / "latency")])
    assert code == 2 and "--latency 2: 0 (the paper's timing) or 1" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["parity", "--help"], ["train", "--bogus"]])
def test_help_and_a_bad_option_answer_without_torch_or_lava(args):
    """The parser reads the dataset registry and the training fields, whose modules load no torch:
    --help and an option mistake answer at once (start-up time, the CLI's docstring)."""
    import sys

    probe = ("import sys\nfrom snn_toolchain.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in ('torch', 'lava', 'h5py') if m in sys.modules), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=60)
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr[-500:]
    assert "usage:" in done.stdout + done.stderr
