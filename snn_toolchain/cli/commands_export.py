"""The commands that write a network file: ``export`` (a trained run as a .net file or a NIR graph)
and ``import-nir`` (a NIR graph from another framework as a .net file). Each imports what it needs
inside its function (start-up time: snn_toolchain/cli/__init__.py)."""

from __future__ import annotations

import json

from snn_toolchain.atomic import check_replaceable
from snn_toolchain.errors import ToolchainError


def cmd_export(args, splits=None) -> dict:
    from snn_toolchain.export.exporter import export_run

    run_dir = args.run_dir
    if getattr(args, "format", "net") == "nir":
        from snn_toolchain.export.nir_export import export_nir

        if args.out is not None and args.out.is_dir():
            raise ToolchainError(f"--out {args.out}: is a folder; give the .nir file to write")
        if args.scales != "neuron":
            raise ToolchainError("--scales is a choice of the .net file's fixed point; a NIR graph holds the float "
                                 "network: drop --scales, or export with --format net")
        target = args.out or run_dir / "model.nir"
        check_replaceable(target, "NIR export", "--out", args.force)
        result = export_nir(args.checkpoint or run_dir / "best.pt", target, dt=args.nir_dt,
                            allow_large=args.allow_large_expansion, target=getattr(args, "nir_target", "spec"))
        step = "time constants in steps" if result["target"] == "sinabs" else f"dt {result['dt']:g} s"
        print(f"[export] wrote {result['nir_file']}: {result['variant']}, {result['nodes']} nodes, {step}"
              + (f", for {result['target']} ({result['load'].replace('FILE', str(result['nir_file']))})"
                 if result["target"] != "spec" else "")
              + (f"; per-synapse delay expansions {', '.join(result['delay_expansions'])}"
                 if result["delay_expansions"] else "")
              + (f"; AdLIF subgraphs {', '.join(result['adlif_subgraphs'])}" if result["adlif_subgraphs"] else ""))
        for note in result["notes"]:
            print(f"[export] note: {note}")
        return result
    if args.out is not None and args.out.is_dir():
        raise ToolchainError(f"--out {args.out}: is a folder; give the .net file to write, e.g. {args.out / 'model.net'}")
    config_file = run_dir / "config.json"
    if splits is None:
        if not config_file.is_file():
            raise ToolchainError(f"{config_file}: not found; --run-dir must be a training run folder")
        config = json.loads(config_file.read_text())
        missing = [k for k in ("dataset", "max_delay", "valid_fraction", "seed") if k not in config]
        if missing:
            raise ToolchainError(f"{config_file}: lacks {', '.join(missing)}; it was not written by train-export train")
        from snn_toolchain.input_encoding import GradedInputEncoding
        from snn_toolchain.train.data.loading import build_run_datasets
        from snn_toolchain.train.model.checkpoint import load_model

        # graded inputs are encoded as the run was trained, not fitted anew on the data found now
        checkpoint = args.checkpoint or run_dir / "best.pt"
        encoding = GradedInputEncoding.from_dict(load_model(checkpoint).config.get("input_encoding"))
        splits = build_run_datasets(config, args.data_dir, cache_dir=args.cache_dir, input_encoding=encoding)
    return export_run(run_dir, splits, out=args.out, checkpoint=args.checkpoint,
                      per_neuron_scales=getattr(args, "scales", "neuron") == "neuron", force=args.force)


def cmd_import_nir(args) -> dict:
    from snn_toolchain.export.nir_import import import_nir

    out = args.out or args.graph.with_suffix(".net")
    if out.is_dir():
        raise ToolchainError(f"--out {out}: is a folder; give the .net file to write")
    report = import_nir(args.graph, out, args.time_steps, args.dt, force=args.force,
                        source=getattr(args, "nir_source", None))
    network = report.network
    sizes = "-".join(str(n) for n in [network.n_inputs] + [layer.weight.shape[0] for layer in network.layers])
    step = "time constants in steps" if report.source == "sinabs" else f"dt {report.dt:g} s"
    print(f"[import-nir] {args.graph}: {sizes}, readout '{network.readout}', {step}")
    print(f"[import-nir] convention: {report.convention}")
    for change in report.changes:
        print(f"[import-nir] changed: {change}")
    print(f"[import-nir] wrote {out} ({network.time_steps} input steps per sample); run, parity, report and deploy "
          "take it like any .net file")
    return {"net_file": str(out), "changes": report.changes, "dt": report.dt, "convention": report.convention}
