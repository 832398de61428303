"""From a training run to a .net file (export/exporter.py; docs/reliability.md): an unfinished run is
refused, an earlier export is replaced only with ``--force`` (a file that is not ours never), and
the dataset comes from the run, not from options.
"""

from __future__ import annotations

import json

import pytest

from cli_support import one_line_error, small_train_args as _train_args
from snn_toolchain.cli import main as cli_main
from snn_toolchain.export import netfile


def test_an_unfinished_run_is_marked_and_export_refuses_it(tiny_folder, tmp_path, capsys, monkeypatch):
    """A resumed run removes its earlier result.json first: killed midway, the folder is clearly
    unfinished (no result.json beside a newer checkpoint), and export says so."""
    run_dir = tmp_path / "run"
    assert cli_main(_train_args(tiny_folder, run_dir)) == 0
    from snn_toolchain.train.loop import trainer
    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "evaluate_model", crash)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(trainer.TrainConfig(**json.loads((run_dir / "config.json").read_text()) | {"epochs": 2}),
                      run_dir, data_dir=tiny_folder, resume=True, progress=False, make_plots=False, log=lambda *_: None)
    monkeypatch.undo()
    assert not (run_dir / "result.json").exists() and (run_dir / "best.pt").exists()
    capsys.readouterr()
    assert cli_main(["export", "--run-dir", str(run_dir), "--data-dir", str(tiny_folder)]) == 2
    one_line_error(capsys, "the training run did not finish (no result.json)", "--checkpoint")
    assert cli_main(["export", "--run-dir", str(run_dir), "--data-dir", str(tiny_folder),
                     "--checkpoint", str(run_dir / "best.pt")]) == 0


def test_export_replaces_an_earlier_export_only_with_force(finished_run, tiny_folder, tmp_path, capsys):
    net = finished_run / "model.net"
    before = net.read_bytes()
    args = ["export", "--run-dir", str(finished_run), "--data-dir", str(tiny_folder)]
    capsys.readouterr()
    assert cli_main(args) == 2
    one_line_error(capsys, str(net), "exists; --force replaces it")
    assert net.read_bytes() == before
    assert cli_main(args + ["--force"]) == 0
    report = json.loads((finished_run / "export.json").read_text())
    assert report["net_sha256"] == netfile.stored_checksum(net)
    # a file that is not ours is never replaced, --force or not
    theirs = tmp_path / "theirs.net"
    theirs.write_text("a file of the user's")
    capsys.readouterr()
    assert cli_main(args + ["--out", str(theirs), "--force"]) == 2
    one_line_error(capsys, "is not a .net file of train-export's; it is never replaced")
    assert theirs.read_text() == "a file of the user's"
    # the NIR graph likewise
    assert cli_main(["export", "--run-dir", str(finished_run), "--format", "nir"]) == 0
    capsys.readouterr()
    assert cli_main(["export", "--run-dir", str(finished_run), "--format", "nir"]) == 2
    one_line_error(capsys, "model.nir: exists; --force replaces it")


def test_export_takes_the_dataset_from_the_run_and_refuses_other_data_options(finished_run, capsys):
    for option in (["--dataset", "ssc"], ["--seed", "3"], ["--max-delay", "10"], ["--valid-fraction", "0.2"]):
        with pytest.raises(SystemExit) as exit_info:
            cli_main(["export", "--run-dir", str(finished_run), *option])
        last = capsys.readouterr().err.splitlines()[-1]
        assert exit_info.value.code == 2 and last.startswith("train-export: error: unrecognized arguments")
        assert option[0] in last
