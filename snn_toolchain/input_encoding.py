"""Real-valued input features as graded spikes: the integers Loihi 2 carries on input messages.

Loihi 2 sends a spike with an integer payload (a *graded* spike, up to 24 bits), and a synapse
multiplies its weight by that payload. SHD and SSC inputs are spike counts per bin, integers
already. GSC's inputs are log-mel energies (real numbers, about -16 to +21), so they are encoded:

    payload = clip((x - low[c]) / (high[c] - low[c]), 0, 1) * (2**bits - 1)      per channel c

``low`` and ``high`` are per-channel statistics of the training split (:func:`fit_encoding`), fixed
when a run starts and stored with it: in the checkpoint, and in the ``.net`` file's ``input``
group, so a deployed network encodes raw features exactly as in training. Training sees the
payload unrounded; the emulator, Lava and the chip get it rounded to integers
(:meth:`GradedInputEncoding.to_payloads`), and export measures what that rounding costs.

Silence is payload 0: the zero-padded end of a short clip (log-mel -15.9, below ``low``) clips to
0, and so does the delay padding appended to every sample, so the first layer sees no current of
either sign from padding.

Units: ``low``/``high`` in feature units (log-mel); payloads in integer steps 0..``levels``.
Core module: numpy, and torch where tensors are encoded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snn_toolchain.errors import ToolchainError

# Loihi 2 carries up to 24-bit payloads; 16 keeps the first layer's sums of weight x payload
# inside the int32 that Lava's synapses accumulate in (254 x 65535 x 40 inputs < 2^31).
MAX_INPUT_BITS = 16
DEFAULT_INPUT_BITS = 8
# Percentiles of the training split's non-silent values that map to payload 0 and to the top.
LOW_PERCENTILE = 1.0
HIGH_PERCENTILE = 99.9
# Frames sampled per channel to fit the percentiles (evenly spaced samples: deterministic).
FIT_MAX_VALUES = 400_000     # 4,000 GSC clips: about 130 MB in float64


def check_input_bits(bits) -> int:
    if not (isinstance(bits, (int, np.integer)) and 1 <= int(bits) <= MAX_INPUT_BITS):
        raise ToolchainError(f"--input-bits {bits}: must be an integer in 1..{MAX_INPUT_BITS} "
                             "(graded spike payload bits; Lava accumulates weight x payload in int32)")
    return int(bits)


@dataclass(frozen=True)
class GradedInputEncoding:
    """Features -> graded spike payloads, per channel (see the module docstring).

    bits: payload bits (payloads 0..2**bits - 1); low, high: float64 (channels,), the feature
    values that map to payload 0 and to the top payload.
    """

    bits: int
    low: np.ndarray
    high: np.ndarray

    def __post_init__(self):
        check_input_bits(self.bits)
        low, high = np.asarray(self.low, dtype=np.float64), np.asarray(self.high, dtype=np.float64)
        if low.ndim != 1 or low.shape != high.shape or not np.all(np.isfinite(low)) \
                or not np.all(np.isfinite(high)) or not np.all(high > low):
            raise ToolchainError("input encoding: low and high must be finite per-channel vectors with high > low")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @property
    def levels(self) -> int:
        """The top payload, 2**bits - 1."""
        return (1 << self.bits) - 1

    @property
    def channels(self) -> int:
        return int(self.low.shape[0])

    @property
    def gain(self) -> float:
        """What the float model multiplies payloads by, so that its first layer sees values in [0, 1]."""
        return 1.0 / self.levels

    def to_payload_units(self, features):
        """Unrounded payloads (what training sees) of features (..., channels), a new float tensor
        (a numpy array gives a numpy array)."""
        if isinstance(features, np.ndarray):
            import torch

            return self.encode_(torch.from_numpy(features.astype(np.float64))).numpy()
        return self.encode_(features.clone())

    def encode_(self, features):
        """:meth:`to_payload_units` in place, on a float torch tensor (..., channels); returns it."""
        import torch   # torch only where tensors are encoded; the core's other users need numpy only

        low = torch.as_tensor(self.low, dtype=features.dtype, device=features.device)
        span = torch.as_tensor(self.high - self.low, dtype=features.dtype, device=features.device)
        return features.sub_(low).div_(span).clamp_(0.0, 1.0).mul_(self.levels)

    def to_payloads(self, features):
        """Integer payloads 0..levels (what the chip receives), as float values of the same array type."""
        return self.to_payload_units(features).round()

    def to_dict(self) -> dict:
        return {"bits": int(self.bits), "low": self.low.tolist(), "high": self.high.tolist()}

    @classmethod
    def from_dict(cls, values: dict | None) -> "GradedInputEncoding | None":
        if not values:
            return None
        try:
            return cls(int(values["bits"]), np.asarray(values["low"], dtype=np.float64),
                       np.asarray(values["high"], dtype=np.float64))
        except (KeyError, TypeError, ValueError) as err:
            raise ToolchainError(f"input encoding {str(values)[:80]}: needs bits, low and high ({err})") from None

    def __eq__(self, other) -> bool:
        return (isinstance(other, GradedInputEncoding) and self.bits == other.bits
                and np.array_equal(self.low, other.low) and np.array_equal(self.high, other.high))

    __hash__ = None


def fit_encoding(features: np.ndarray, bits: int = DEFAULT_INPUT_BITS) -> GradedInputEncoding:
    """The encoding of a training split's features (samples, steps, channels).

    Per channel, the smallest value is taken as silence (log-mel of zero-padded audio) and left out;
    ``low`` and ``high`` are the LOW_PERCENTILE and HIGH_PERCENTILE of the rest, so silence and
    quiet background map to payload 0 and the loudest 0.1% saturate. At most FIT_MAX_VALUES
    values per channel are used, from evenly spaced samples (the result is deterministic).
    """
    bits = check_input_bits(bits)
    features = np.asarray(features)
    if features.ndim != 3 or features.shape[0] == 0:
        raise ToolchainError(f"input encoding: expected training features (samples, steps, channels), got {features.shape}")
    per_sample = features.shape[1]
    take = max(1, min(features.shape[0], FIT_MAX_VALUES // max(per_sample, 1)))
    chosen = features[np.unique(np.linspace(0, features.shape[0] - 1, take).astype(np.int64))]
    values = chosen.reshape(-1, features.shape[2]).astype(np.float64)
    low, high = np.empty(values.shape[1]), np.empty(values.shape[1])
    for c in range(values.shape[1]):
        column = values[:, c]
        column = column[np.isfinite(column)]
        silence = column.min() if column.size else 0.0
        sound = column[column > silence + 1e-6]
        if sound.size < 2:          # a channel that is silent (or constant) throughout
            low[c], high[c] = silence, silence + 1.0
            continue
        low[c], high[c] = np.percentile(sound, [LOW_PERCENTILE, HIGH_PERCENTILE])
        if not high[c] > low[c]:
            high[c] = low[c] + 1.0
    return GradedInputEncoding(bits, low, high)
