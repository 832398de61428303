"""The default command, ``pipeline``: data, count baseline, training, export, Lava parity and report
in one run, each stage done by the same function as in its own command."""

from __future__ import annotations

from pathlib import Path

from snn_toolchain.cli.commands_run import print_report_summary, run_parity
from snn_toolchain.cli.commands_train import cmd_train, config_from_args, load_splits


def cmd_pipeline(args) -> dict:
    from snn_toolchain.atomic import write_json
    from snn_toolchain.train.data.baseline import logistic_regression_baseline

    config = config_from_args(args)
    splits = load_splits(args, config)
    baseline = logistic_regression_baseline(splits.train, splits.valid, splits.test, splits.n_classes, seed=config.seed)
    print(f"[baseline] logistic regression on per-channel spike counts: valid {100 * baseline.valid_accuracy:.1f}%, "
          f"test {100 * baseline.test_accuracy:.1f}%")
    result = cmd_train(args, splits)
    from snn_toolchain.export.exporter import export_run

    exported = export_run(result.run_dir, splits)
    net_path = Path(exported["net_file"])
    summary = {"stages_run": ["data", "baseline", "train", "export"], "data": splits.summary(),
               "count_baseline": baseline.__dict__, "best_valid_acc": result.best_valid_acc,
               "test_acc": result.test_acc, "fixed_point_test_acc": exported["test"]["fixed_accuracy"],
               "net_file": str(net_path), "run_dir": str(result.run_dir)}
    parity = run_parity(net_path, splits, args.parity_samples)
    summary["parity"] = {"ok": parity.get("ok"), "verdict": parity.get("verdict")}
    summary["stages_run"].append("parity")
    from snn_toolchain.export.report import build_report

    print_report_summary(build_report(net_path, splits, out_dir=result.run_dir / "report"))
    summary["report"] = str(result.run_dir / "report")
    summary["stages_run"].append("report")
    summary["test_selected_acc"] = result.test_selected_acc
    write_json(result.run_dir / "summary.json", summary)
    print(f"[pipeline] ran: {', '.join(summary['stages_run'])}.")
    from snn_toolchain.train.loop.selection import PAPER_PROTOCOL_LABEL

    # without a validation split (--valid-fraction 0) the two figures are one, test-selected
    selected = ("" if (result.summary or {}).get("validation_is_test") else
                f"{100 * result.test_acc:.2f}% validation-selected (epoch {result.best_epoch}), ")
    print(f"[pipeline] test accuracy: {selected}"
          f"{100 * result.test_selected_acc:.2f}% {PAPER_PROTOCOL_LABEL} (epoch {result.test_selected_epoch}); "
          f"deployed fixed point {100 * exported['test']['fixed_accuracy']:.2f}%"
          + (f"; {summary['parity']['verdict'].split(':')[0]}" if "parity" in summary else ""))
    print(f"[pipeline] outputs in {result.run_dir} (summary.json, metrics.csv, best.pt, model.net, report/, *.png)")
    return summary
