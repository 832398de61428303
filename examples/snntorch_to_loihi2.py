"""A network trained in snnTorch, taken to Lava (and Loihi 2) through NIR, checked spike for spike.

1. Train a 140-128-20 network of snnTorch ``Leaky`` neurons (zero reset, as NIR's LIF) on the
   embedded spoken digits (SHD layout), with snnTorch's own surrogate gradient.
2. Write it with snnTorch's own ``export_to_nir`` (snnTorch's time step: dt = 1e-4 s).
3. ``train-export import-nir model.nir --dt 1e-4 --time-steps 100``: a ``.net`` file in Loihi 2 fixed point.
4. ``train-export parity``: the emulator against Lava's CPU simulator on the test samples, every
   spike; and the accuracies of snnTorch (float) and of Lava on the same samples.

    .venv/bin/python examples/snntorch_to_loihi2.py [OUT_FOLDER] [--epochs 15]

About 5 minutes on 2 CPU cores (training 3, Lava 2). docs/nir.md shows its output.
"""

import argparse
import contextlib
import io
import subprocess
import sys
import tempfile
from pathlib import Path

import nir
import numpy as np
import snntorch as snn
import snntorch.utils
import torch
from snntorch import surrogate
from snntorch.export_nir import export_to_nir

from snn_toolchain import api

HIDDEN = 128


def build(n_inputs: int, n_classes: int) -> torch.nn.Sequential:
    torch.manual_seed(0)
    spike_grad = surrogate.fast_sigmoid(slope=25)
    return torch.nn.Sequential(
        torch.nn.Linear(n_inputs, HIDDEN),
        snn.Leaky(beta=torch.full((HIDDEN,), 0.9), learn_beta=True, threshold=torch.ones(HIDDEN), init_hidden=True,
                  reset_mechanism="zero", spike_grad=spike_grad),
        torch.nn.Linear(HIDDEN, n_classes),
        snn.Leaky(beta=torch.full((n_classes,), 0.9), learn_beta=True, threshold=torch.ones(n_classes),
                  init_hidden=True, output=True, reset_mechanism="zero", spike_grad=spike_grad))


def spike_counts(net, x: torch.Tensor) -> torch.Tensor:
    """Output spike counts (batch, classes) of a batch (batch, steps, inputs)."""
    snntorch.utils.reset(net)
    total = 0
    for t in range(x.shape[1]):
        out, _ = net(x[:, t])
        total = total + out
    return total


def accuracy(net, dataset, n: int | None = None) -> float:
    x = torch.stack([dataset[i][0] for i in range(n or len(dataset))])
    y = torch.tensor([dataset[i][1] for i in range(n or len(dataset))])
    with torch.no_grad():
        return float((spike_counts(net, x).argmax(1) == y).float().mean())


def main(out: Path, epochs: int) -> int:
    splits = api.build_datasets("shd", pad_steps=0)          # 100 steps x 140 channels, 20 classes
    net = build(splits.n_inputs, splits.n_classes)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    loader = api.make_loader(splits.train, 32, shuffle=True, seed=0)
    best, best_state = -1.0, None
    for epoch in range(epochs):
        net.train()
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(spike_counts(net, x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        net.eval()
        valid = accuracy(net, splits.valid)
        if valid > best:       # selected on validation, never on test
            best, best_state = valid, {k: v.clone() for k, v in net.state_dict().items()}
        print(f"[snntorch] epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}, valid {100 * valid:.1f}%", flush=True)
    net.load_state_dict(best_state)
    net.eval()
    for module in net.modules():     # learned betas may leave [0, 1); Lava's decays cannot
        if isinstance(module, snn.Leaky):
            module.beta.data.clamp_(0.0, 0.999)
    test_float = accuracy(net, splits.test)
    print(f"[snntorch] float test accuracy {100 * test_float:.2f}% ({len(splits.test)} samples, "
          f"validation-selected {100 * best:.1f}%)")

    graph_path = out / "snntorch.nir"
    with contextlib.redirect_stdout(io.StringIO()):
        nir.write(graph_path, export_to_nir(net, torch.zeros(1, splits.n_inputs), ignore_dims=[0]))
    cli = [sys.executable, "-m", "snn_toolchain.cli"]
    net_path = out / "snntorch.net"
    steps = str(splits.time_steps)
    for argv in (["import-nir", str(graph_path), "--dt", "1e-4", "--time-steps", steps, "--out", str(net_path)],
                 ["parity", "--net", str(net_path), "--samples", str(len(splits.test))]):
        done = subprocess.run(cli + argv, text=True)
        if done.returncode != 0:
            return done.returncode
    print(f"[snntorch] float accuracy on the same {len(splits.test)} test samples: {100 * test_float:.2f}% "
          "(the parity line above gives the emulator's and Lava's)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    folder = args.out or Path(tempfile.mkdtemp(prefix="snntorch_to_loihi2_"))
    folder.mkdir(parents=True, exist_ok=True)
    sys.exit(main(folder, args.epochs))
