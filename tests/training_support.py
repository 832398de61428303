"""What the tests of training share: the settings of a tiny training run, and the same few training
steps in one process and under torchrun with two ranks (tests/test_trainer.py,
tests/test_regularization.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

TINY = dict(hidden=16, batch_size=8, max_delay=5, epochs=2, dropout=0.0, device="cpu")

DDP_SCRIPT = r"""
import json, sys, torch
from snn_toolchain.train.loop.config import TrainConfig
from snn_toolchain.train.data.loading import build_datasets
from snn_toolchain.train.loop.trainer import train
folder, out = sys.argv[1], sys.argv[2]
extra = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
splits = build_datasets("shd", folder, pad_steps=5, seed=0)
config = TrainConfig(**{**dict(hidden=64, batch_size=8, max_delay=5, epochs=1, dropout=0.0, device="cpu",
                               shuffle=False, train_init_state="zero", max_train_batches=3,
                               norm="none"), **extra})  # CPU BatchNorm is per rank
result = train(config, out, splits=splits, progress=False, make_plots=False, log=lambda *_: None)
import torch.distributed as dist
if not dist.is_initialized() or dist.get_rank() == 0:
    torch.save(torch.load(out + "/checkpoint.pt")["model"], out + "/final_weights.pt")
"""


def run_single_and_ddp(tiny_folder, tmp_path, extra: dict | None = None):
    """The same 3-step training in one process and under torchrun with 2 gloo ranks; returns the
    final weights of both."""
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    overrides = [json.dumps(extra or {})]
    single = subprocess.run([sys.executable, str(script), str(tiny_folder), str(tmp_path / "single"), *overrides],
                            env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(script), str(tiny_folder), str(tmp_path / "ddp"), *overrides],
                         env=env, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    return torch.load(tmp_path / "single" / "final_weights.pt"), torch.load(tmp_path / "ddp" / "final_weights.pt")
