"""The end-of-run figures (train/loop/plots.py): learning curves, delays and neuron parameters are
written as PNG files.
"""

from snn_toolchain.train.data.loading import build_datasets
from snn_toolchain.train.loop.config import TrainConfig
from snn_toolchain.train.loop.trainer import train
from training_support import TINY


def test_plots_are_written(tiny_folder, tmp_path):
    splits = build_datasets("shd", tiny_folder, pad_steps=5, seed=0)
    train(TrainConfig(**{**TINY, "epochs": 1}), tmp_path, splits=splits, progress=False, log=lambda *_: None)
    for name in ("curves.png", "delays.png", "neuron_parameters.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
