"""Training configuration and the paper's presets (Deckers et al., appendix Table 3)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    """Everything a training run depends on. Every field can be set from the command line.

    Learning rates are per optimizer step; epochs, batch and patience are counts; ``max_delay`` is
    in time steps (10 ms each).
    """

    dataset: str = "shd"
    neuron: str = "adlif+"           # "lif", "adlif" or "adlif+"
    delays: bool = True              # learn a delay per synapse (else all delays stay 0)
    hidden: int = 128
    epochs: int = 100
    batch_size: int = 128
    dropout: float = 0.5
    lr_weights: float = 0.01
    lr_delays: float = 0.1
    max_delay: int = 25
    lr_factor: float = 0.7           # ReduceLROnPlateau factor, applied to both learning rates
    lr_patience: int = 5             # epochs without a better validation accuracy before reducing
    train_init_state: str = "uniform"
    seed: int = 0
    valid_fraction: float = 0.1
    num_workers: int = 0
    shuffle: bool = True             # reshuffle the train split every epoch (off: fixed order, for checks)
    max_train_batches: int = 0       # 0 = all; a positive number caps each epoch (smoke runs)
    device: str = "auto"
    cuda_graphs: bool = False        # replay each training step as a CUDA graph (CUDA only; see step.py)
    bounds: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# (hidden, epochs, batch, dropout, lr weights, lr delays) from the paper's Table 3.
PRESETS: dict[str, dict] = {
    "shd": dict(hidden=128, epochs=100, batch_size=128, dropout=0.5, lr_weights=0.01, lr_delays=0.1),
    "ssc": dict(hidden=512, epochs=200, batch_size=32, dropout=0.25, lr_weights=0.001, lr_delays=0.01),
    "gsc": dict(hidden=512, epochs=200, batch_size=32, dropout=0.25, lr_weights=0.001, lr_delays=0.01),
}

# The five rows of the paper's Table 1, as (neuron, delays).
TABLE1_VARIANTS: dict[str, tuple[str, bool]] = {
    "LIF": ("lif", False),
    "AdLIF": ("adlif", False),
    "AdLIF+": ("adlif+", False),
    "delay-LIF": ("lif", True),
    "delay-AdLIF+": ("adlif+", True),
}


def preset_config(dataset: str, **overrides) -> TrainConfig:
    """The paper's preset for ``dataset`` with ``overrides`` (None values are ignored) applied."""
    values = dict(PRESETS[dataset], dataset=dataset)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**values)
