"""Training configuration and the paper's presets (Deckers et al., appendix Table 3)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from snn_toolchain.constants import SYNAPSE_LATENCY_STEPS
from snn_toolchain.errors import ToolchainError
from snn_toolchain.input_encoding import DEFAULT_INPUT_BITS, MAX_INPUT_BITS
from snn_toolchain.network import FIELD_LIMITS
from snn_toolchain.neuron_dynamics import VARIANTS, resolve_bounds
from snn_toolchain.train.augment import parse_augment
from snn_toolchain.train.datasets import DATASET_SPECS, dataset_spec
from snn_toolchain.train.recurrence import INITIAL_STATE_MODES
from snn_toolchain.train.regularization import ActivityRegularizer, parse_prune


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
    # steps each connection adds on top of its delays: Lava's synapses add 1, so the model trains
    # with 1 and computes what the deployed network computes (docs/fixed_point.md "One timing");
    # 0 is the paper's timing, whose deployed network integrates its biases before its input arrives
    latency: int = SYNAPSE_LATENCY_STEPS
    input_bits: int = DEFAULT_INPUT_BITS  # GSC: graded spike payload bits of the encoded features
    lr_factor: float = 0.7           # ReduceLROnPlateau factor, applied to both learning rates
    lr_patience: int = 5             # epochs without a better validation accuracy before reducing
    train_init_state: str = "uniform"
    eval_init: str = "zero"          # initial state when evaluating: "zero" (what Lava and the chip do) or "uniform"
    norm: str = "batchnorm"          # "batchnorm" on each hidden layer's synaptic current (SparCH), or "none"
    protocol: str = "valid"          # model selection: "valid" (honest) or "paper" (on the test split, as the paper)
    augment: str = ""                # data augmentation, e.g. "time-shift=5,time-mask=10" (train/augment.py)
    delay_rounding_epochs: int = 0   # last N epochs train on rounded delays (straight-through), as deployed
    zero_start_epochs: int = 0       # last N epochs train from the zero state, as deployed (docs/model.md)
    # activity regularisation (train/regularization.py), off at 0: per million hidden synaptic
    # operations per sample; firing-rate bounds "LOW:HIGH" (spikes per neuron per step) and their strength
    synops_penalty: float = 0.0
    rate_bounds: str = ""
    rate_penalty: float = 0.0
    # pruning (train/regularization.py:SynapsePruner), off when empty: fractions of each connection's
    # synapses, from the input's on ("0.6" prunes 60% of the input layer's), reached over
    # prune_epochs epochs (0: the first half of the run)
    prune: str = ""
    prune_epochs: int = 0
    seed: int = 0
    valid_fraction: float = 0.1
    num_workers: int = 0
    shuffle: bool = True             # reshuffle the train split every epoch (off: fixed order, for checks)
    max_train_batches: int = 0       # 0 = all; a positive number caps each epoch (smoke runs)
    device: str = "auto"
    # replay each training step as a CUDA graph: on by default (the fastest path, same kernels); it
    # acts on CUDA only, without DDP, and a resumed graphed run is equivalent, not bit-for-bit (step.py)
    cuda_graphs: bool = True
    qat: bool = False                # quantization-aware: train the deployed network itself (its integers, straight-through)
    init_checkpoint: str = ""        # start from this checkpoint's weights (e.g. a float run's best.pt)
    bounds: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def differences(self, stored: dict, ignore: tuple = ()) -> list[str]:
        """The settings in which ``stored`` (an earlier run's ``to_dict()``) differs from this one.
        A setting the earlier run did not know yet counts as the value such runs had
        (``LEGACY_SETTINGS``), else as its default; how a run executes (``RUNTIME_SETTINGS``) is
        not a difference of what it computes."""
        defaults = {**TrainConfig().to_dict(), **LEGACY_SETTINGS}
        return sorted(k for k, v in self.to_dict().items()
                      if k not in ignore and k not in RUNTIME_SETTINGS and stored.get(k, defaults[k]) != v)

    def validate(self) -> "TrainConfig":
        """Refuse settings that cannot train, with one line naming the option."""

        checks = [
            (self.neuron in VARIANTS, f"--neuron {self.neuron}: choose one of {', '.join(VARIANTS)}"),
            (self.train_init_state in INITIAL_STATE_MODES,
             f"--train-init-state {self.train_init_state}: choose one of {', '.join(INITIAL_STATE_MODES)}"),
            (self.eval_init in INITIAL_STATE_MODES,
             f"--eval-init {self.eval_init}: choose one of {', '.join(INITIAL_STATE_MODES)}"),
            (self.norm in NORMALIZATIONS, f"--norm {self.norm}: choose one of {', '.join(NORMALIZATIONS)}"),
            (self.protocol in PROTOCOLS, f"--protocol {self.protocol}: choose one of {', '.join(PROTOCOLS)}"),
            (self.delay_rounding_epochs >= 0, f"--delay-rounding-epochs {self.delay_rounding_epochs}: must be 0 or more"),
            (self.zero_start_epochs >= 0, f"--zero-start-epochs {self.zero_start_epochs}: must be 0 or more"),
            (self.latency in (0, SYNAPSE_LATENCY_STEPS),
             f"--latency {self.latency}: 0 (the paper's timing) or {SYNAPSE_LATENCY_STEPS} (Lava's, the default)"),
            (not (self.qat and (self.latency != SYNAPSE_LATENCY_STEPS or self.zero_start_epochs)),
             "--qat trains the deployed network, which runs Lava's latency from a zero state: drop --latency 0 "
             "and --zero-start-epochs"),
            (self.hidden >= 1, f"--hidden {self.hidden}: must be at least 1"),
            (self.epochs >= 1, f"--epochs {self.epochs}: must be at least 1"),
            (self.batch_size >= 1, f"--batch-size {self.batch_size}: must be at least 1"),
            (0.0 <= self.dropout < 1.0, f"--dropout {self.dropout}: must be in [0, 1)"),
            (self.lr_weights > 0 and self.lr_delays > 0, "--lr-weights and --lr-delays must be positive"),
            (0.0 < self.lr_factor < 1.0, f"--lr-factor {self.lr_factor}: must be in (0, 1)"),
            (self.lr_patience >= 0, f"--lr-patience {self.lr_patience}: must be 0 or more"),
            (0 <= self.synops_penalty < math.inf and 0 <= self.rate_penalty < math.inf,
             "--synops-penalty and --rate-penalty must be 0 (off) or a finite positive number"),
            (self.prune_epochs >= 0, f"--prune-epochs {self.prune_epochs}: must be 0 (half the run) or more"),
            (isinstance(self.input_bits, int) and 1 <= self.input_bits <= MAX_INPUT_BITS,
             f"--input-bits {self.input_bits}: must be in 1..{MAX_INPUT_BITS} (graded spike payload bits)"),
            (0 <= self.max_delay <= FIELD_LIMITS["delay"].high,
             f"--max-delay {self.max_delay}: must be in 0..{FIELD_LIMITS['delay'].high} (Loihi 2 delays)"),
            (0.0 < self.valid_fraction < 0.5, f"--valid-fraction {self.valid_fraction}: must be in (0, 0.5)"),
            (self.num_workers >= 0, f"--num-workers {self.num_workers}: must be 0 or more"),
            (self.max_train_batches >= 0, f"--max-train-batches {self.max_train_batches}: must be 0 or more"),
            (self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
             f"--device {self.device}: use auto, cpu, cuda or cuda:N"),
        ]
        for ok, message in checks:
            if not ok:
                raise ToolchainError(message)
        ActivityRegularizer.from_config(self)    # one-line errors for bad --rate-bounds / --rate-penalty
        parse_prune(self.prune)
        try:
            parse_augment(self.augment)
        except ValueError as err:
            raise ToolchainError(f"--augment: {err}") from None
        try:
            resolve_bounds(self.neuron, self.bounds or None)
        except ValueError as err:
            raise ToolchainError(f"--bounds: {err}") from None
        return self


# Settings added after runs were first written whose value in those runs was not today's default:
# such a run trained with latency 0 (the paper's timing). Their one home; the trainer rebuilds
# such a run's model with them too (train/trainer.py: LEGACY_MODEL_CONFIG).
LEGACY_SETTINGS = {"latency": 0}

# How a run executes, not what it computes: a resumed run may change it (its default changed from
# off to on, so older runs recorded False).
RUNTIME_SETTINGS = ("cuda_graphs",)

NORMALIZATIONS = ("batchnorm", "none")
# "valid": select the epoch on the validation split, report test (the default, honest);
# "paper": select on the test split, as the paper (and SparCH on SHD) did. Both figures are always
# reported; the protocol decides which model is kept as best.pt and exported.
PROTOCOLS = ("valid", "paper")

class _Presets(Mapping):
    """Dataset name -> its preset's values, read from the dataset registry (``train/datasets.py``:
    each ``DatasetSpec.preset``; the paper's Table 3 for SHD, SSC and GSC)."""

    def __getitem__(self, name: str) -> dict:
        if name not in DATASET_SPECS:
            raise KeyError(name)
        return dict(DATASET_SPECS[name].preset)

    def __iter__(self):
        return iter(DATASET_SPECS)

    def __len__(self) -> int:
        return len(DATASET_SPECS)


PRESETS: Mapping[str, dict] = _Presets()

# The five rows of the paper's Table 1, as (neuron, delays).
TABLE1_VARIANTS: dict[str, tuple[str, bool]] = {
    "LIF": ("lif", False),
    "AdLIF": ("adlif", False),
    "AdLIF+": ("adlif+", False),
    "delay-LIF": ("lif", True),
    "delay-AdLIF+": ("adlif+", True),
}


def preset_config(dataset: str, *, embedded: bool = False, **overrides) -> TrainConfig:
    """The paper's preset for ``dataset`` with ``overrides`` (None values are ignored) applied.
    ``embedded``: the run uses the dataset's embedded stand-in (no ``--data-dir``), whose own
    preset values (``DatasetSpec.embedded_preset``) then replace the paper's."""
    spec = dataset_spec(dataset)
    values = dict(spec.preset, dataset=dataset)
    if embedded:
        values.update(spec.embedded_preset)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**values).validate()
