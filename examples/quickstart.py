"""From spikes to Lava in one script, with the public API (``snn_toolchain.api``):
load the embedded spoken digits, train a small delay-AdLIF+ network for a few epochs, quantize it
to Loihi 2 fixed point, write the .net file, run it on the batched emulator and on Lava's CPU
simulator, and compare them spike by spike.

    .venv/bin/python examples/quickstart.py [OUT_FOLDER]

About a minute on 2 CPU cores. CI runs it (tests/test_example.py).
"""

import sys
import tempfile
from pathlib import Path

from snn_toolchain import api


def main(out: Path) -> int:
    splits = api.build_datasets("shd", pad_steps=10)                     # embedded set, SHD layout
    print(splits.summary())
    config = api.preset_config("shd", embedded=True, epochs=4, hidden=32, max_delay=10, device="cpu")
    result = api.train(config, out / "run", splits=splits, progress=False, make_plots=False, log=lambda *_: None)
    print(f"float: test {100 * result.test_acc:.1f}% (validation-selected, epoch {result.best_epoch}); "
          f"{100 * result.test_selected_acc:.1f}% test-selected (paper protocol)")

    network = api.quantize_model(result.model, splits.time_steps,
                                 settings={"source_checkpoint": str(out / "run" / "best.pt")})
    net_path = api.write_net(network, out / "model.net")
    fixed = api.Emulator(network).evaluate(splits.test)
    print(f"fixed point (emulator): test {100 * fixed['accuracy']:.1f}% on {fixed['samples']} samples")
    plan = api.plan_partition(network)
    print(f"Loihi 2 plan: {plan.total_cores} cores, {'fits' if plan.fits else 'does not fit'} one chip")

    report = api.parity_check(net_path, splits, 4, progress=False)      # emulator vs Lava fixed_pt
    print(report.verdict())
    return 0 if report.ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit(main(Path(sys.argv[1])))
    with tempfile.TemporaryDirectory() as folder:
        sys.exit(main(Path(folder)))
