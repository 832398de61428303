"""Spiking Heidelberg Digits (SHD) and Spiking Speech Commands (SSC) in their official HDF5 layout.

One file per split (``shd_train.h5``, ``shd_test.h5``; ``ssc_train.h5``, ``ssc_valid.h5``,
``ssc_test.h5``), each holding

- ``spikes/times``: one variable-length float array per sample, spike times in **seconds**;
- ``spikes/units``: one variable-length unsigned array per sample, cochlea channel 0..699;
- ``labels``: one unsigned integer per sample;
- ``extra/speaker`` (optional here): the speaker id per sample; ``extra/keys``: class names.

Preprocessing (see docs/data.md for the reasons):

- channels: 700 -> 140 by summing 5 adjacent units (``unit // 5``);
- time: 10 ms bins over the first 1 s -> 100 steps (``floor(t / 0.010)``);
- spikes at or after 1 s are **dropped** (the window is configurable);
- the value of a bin is the **spike count** in it (not clipped to 1);
- the time axis is right-padded with ``pad_steps`` empty steps so that spikes delayed by up to
  the maximum synaptic delay still reach the readout.

Every sample is validated once when the file is read; anything off raises
:class:`~snn_toolchain.errors.DataFormatError` with one line naming the file and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snn_toolchain import constants as C
from snn_toolchain.errors import DataFormatError

HEIDELBERG_FIX = (
    "use the official file from the Zenke lab (or `--download`), and point --data-dir at its folder"
)


@dataclass(frozen=True)
class BinningConfig:
    """How raw spikes become a dense (time, channel) tensor.

    Attributes:
        time_bin_s: width of one time step, in seconds.
        duration_s: the binned window, in seconds; spikes at or after it are dropped.
        channels_per_bin: adjacent raw cochlea channels summed into one input channel.
        pad_steps: empty time steps appended after the window (the maximum synaptic delay, in steps).
    """

    time_bin_s: float = C.TIME_BIN_S
    duration_s: float = C.SAMPLE_DURATION_S
    channels_per_bin: int = C.CHANNELS_PER_BIN
    pad_steps: int = 0

    @property
    def window_steps(self) -> int:
        return int(round(self.duration_s / self.time_bin_s))

    @property
    def total_steps(self) -> int:
        return self.window_steps + self.pad_steps

    @property
    def channels(self) -> int:
        return -(-C.SHD_RAW_CHANNELS // self.channels_per_bin)


@dataclass
class HeidelbergSplit:
    """One split of SHD or SSC, kept sparse: per sample, the flat (step * channels + channel) index
    of every kept spike. Dense tensors are made per sample by :func:`densify`."""

    path: Path
    flat_indices: list[np.ndarray]
    labels: np.ndarray          # int64, (samples,)
    speakers: np.ndarray | None  # int64, (samples,), or None when the file has no extra/speaker
    class_names: list[str] | None
    binning: BinningConfig
    dropped_late_spikes: int    # spikes at or after duration_s, over the whole split
    total_spikes: int

    def __len__(self) -> int:
        return len(self.labels)


def _fail(path: Path, what: str, fix: str = HEIDELBERG_FIX) -> DataFormatError:
    return DataFormatError(f"{path}: {what}; {fix}")


def _require_dataset(h5file, path: Path, key: str):
    import h5py

    if key not in h5file:
        return_keys = sorted(h5file.keys())
        raise _fail(path, f"missing dataset '{key}' (found top-level keys {return_keys}); "
                          "expected the official SHD/SSC layout spikes/times, spikes/units, labels")
    node = h5file[key]
    if not isinstance(node, h5py.Dataset):
        raise _fail(path, f"'{key}' is a group, expected a dataset")
    return node


def _vlen_base(dataset) -> np.dtype | None:
    import h5py

    return h5py.check_vlen_dtype(dataset.dtype)


def read_heidelberg_file(path: Path, n_classes: int, binning: BinningConfig) -> HeidelbergSplit:
    """Read and validate one official SHD/SSC file, binning every sample.

    Args:
        path: the ``.h5`` file.
        n_classes: labels must lie in ``0 .. n_classes - 1``.
        binning: the time and channel binning.

    Raises:
        DataFormatError: missing or unreadable file, wrong layout or dtype, empty or malformed sample.
    """
    path = Path(path)
    all_times, all_units, labels, speakers, class_names = _read_split_arrays(path)
    bad_labels = np.flatnonzero((labels < 0) | (labels >= n_classes))
    if bad_labels.size:
        i = int(bad_labels[0])
        raise _fail(path, f"sample {i} has label {labels[i]}, expected 0..{n_classes - 1}")
    flat_indices, dropped, total = _bin_samples(path, all_times, all_units, binning)
    return HeidelbergSplit(path, flat_indices, labels, speakers, class_names, binning, dropped, total)


def _read_split_arrays(path: Path) -> tuple:
    """(spike times per sample, units per sample, labels, speakers or None, class names or None) of
    the file at ``path``, its layout and dtypes checked; labels and speakers as int64."""
    import h5py

    if not path.is_file():
        raise _fail(path, "file not found")
    try:
        h5file = h5py.File(path, "r")
    except OSError as err:
        raise _fail(path, f"not a readable HDF5 file, truncated or corrupt ({err.__class__.__name__})",
                    "download it again") from None
    with h5file:
        times_ds, units_ds, labels_ds = _checked_layout(h5file, path)
        n_samples = labels_ds.shape[0]
        try:
            all_times = times_ds[()]
            all_units = units_ds[()]
            labels = labels_ds[()].astype(np.int64)
            speakers = None
            if C.H5_SPEAKER in h5file:
                speakers = h5file[C.H5_SPEAKER][()].astype(np.int64)
                if speakers.shape != (n_samples,):
                    raise _fail(path, f"'{C.H5_SPEAKER}' has shape {speakers.shape}, expected ({n_samples},)")
            class_names = None
            if C.H5_KEYS in h5file:
                class_names = [k.decode() if isinstance(k, bytes) else str(k) for k in h5file[C.H5_KEYS][()]]
        except OSError as err:
            raise _fail(path, f"could not read the data, the file is truncated or corrupt ({err})",
                        "download it again") from None
    return all_times, all_units, labels, speakers, class_names


def _checked_layout(h5file, path: Path) -> tuple:
    """The times, units and labels datasets of an open file, once their dtypes and shapes are the
    official ones and the file holds at least one sample."""
    times_ds = _require_dataset(h5file, path, C.H5_TIMES)
    units_ds = _require_dataset(h5file, path, C.H5_UNITS)
    labels_ds = _require_dataset(h5file, path, C.H5_LABELS)

    times_base = _vlen_base(times_ds)
    units_base = _vlen_base(units_ds)
    if times_base is None or times_base.kind != "f":
        raise _fail(path, f"'{C.H5_TIMES}' has dtype {times_ds.dtype}, expected variable-length float (seconds)")
    if units_base is None or units_base.kind not in "ui":
        raise _fail(path, f"'{C.H5_UNITS}' has dtype {units_ds.dtype}, expected variable-length uint16")
    if labels_ds.dtype.kind not in "ui" or labels_ds.ndim != 1:
        raise _fail(path, f"'{C.H5_LABELS}' has dtype {labels_ds.dtype} and shape {labels_ds.shape}, "
                          "expected a 1-D unsigned integer array")
    n_samples = labels_ds.shape[0]
    if times_ds.shape != (n_samples,) or units_ds.shape != (n_samples,):
        raise _fail(path, f"'{C.H5_TIMES}' {times_ds.shape}, '{C.H5_UNITS}' {units_ds.shape} and "
                          f"'{C.H5_LABELS}' ({n_samples},) must hold one entry per sample")
    if n_samples == 0:
        raise _fail(path, "the file holds no samples")
    return times_ds, units_ds, labels_ds


def _bin_samples(path: Path, all_times, all_units, binning: BinningConfig) -> tuple[list[np.ndarray], int, int]:
    """(flat step * channels + channel index of every kept spike, per sample; spikes dropped at or
    after the window; all spikes), each sample checked: times in seconds, finite and >= 0, units
    raw cochlea channels."""
    window_steps = binning.window_steps
    channels = binning.channels
    flat_indices: list[np.ndarray] = []
    dropped = 0
    total = 0
    for i in range(len(all_times)):
        times = np.asarray(all_times[i], dtype=np.float64)
        units = np.asarray(all_units[i])
        if times.shape != units.shape:
            raise _fail(path, f"sample {i} has {times.size} spike times but {units.size} units")
        if times.size == 0:
            raise _fail(path, f"sample {i} has no spikes (an empty sample)",
                        "remove it or use an unmodified official file")
        if not np.all(np.isfinite(times)) or times.min() < 0:
            raise _fail(path, f"sample {i} has a negative or non-finite spike time")
        if units.min() < 0 or units.max() >= C.SHD_RAW_CHANNELS:
            raise _fail(path, f"sample {i} has unit {int(units.max())}, expected 0..{C.SHD_RAW_CHANNELS - 1}")
        steps = np.floor(times / binning.time_bin_s + 1e-9).astype(np.int64)
        kept = steps < window_steps
        total += times.size
        dropped += int(times.size - kept.sum())
        channel = units[kept].astype(np.int64) // binning.channels_per_bin
        flat_indices.append((steps[kept] * channels + channel).astype(np.int32))
    return flat_indices, dropped, total


def densify(flat_index: np.ndarray, binning: BinningConfig) -> np.ndarray:
    """Spike counts of one sample as a float32 array of shape (total_steps, channels)."""
    counts = np.bincount(flat_index, minlength=binning.window_steps * binning.channels)
    dense = np.zeros((binning.total_steps, binning.channels), dtype=np.float32)
    dense[: binning.window_steps] = counts.reshape(binning.window_steps, binning.channels)
    return dense
