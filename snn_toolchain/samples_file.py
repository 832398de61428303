"""Your own samples: a ``.npz`` or ``.h5`` file of spike trains for any ``.net`` file, in place of a
registered dataset (``train-export run|parity|report|deploy --samples-file FILE``; docs/parity.md,
"Your own samples").

The layout (the same names in both kinds of file; in an ``.h5`` file, datasets at its root):

- ``spikes`` (or ``inputs``, not both): ``(samples, steps, inputs)``, one row per time step, each
  value the spikes of one input in that step: bool, or whole numbers >= 0 of any integer dtype (a
  float array is taken where every value is a whole number). ``0``/``1`` are binary spikes, a larger
  count travels as a graded spike (the first synapse multiplies weight x count, as for SHD's counts
  per bin), at most ``LARGEST_VALUE`` (2^31 - 1, Lava's int32 input messages); a stock lava-dl
  file takes 0/1 only (stock NetX's first synapse is binary unless built with
  ``input_message_bits``). For a network with a graded input encoding (GSC) the values are its
  integer payloads, at most its levels. ``(samples, inputs, steps)`` is read too, transposed, but only where the
  documented layout cannot be meant (axis 2 is not the network's input count and axis 1 is).
- ``values``, for a network with NetX's input neuron stage (lava-dl's bootstrap MNIST; its
  ``input`` layer has neurons) and only for one: ``(samples, inputs)`` finite data values (e.g.
  pixels as the network was trained on them), each held for the whole sample; the stage's neurons
  turn them into spikes (``snn_toolchain/input_stage.py``). :func:`read_values_file` reads them.
- ``labels`` (optional): ``(samples,)`` class indices, ``0 .. classes - 1``, the classes being the
  network's own (its readout layer's size). Without labels there is no accuracy: predictions, spikes
  and the parity are the same.

Steps: samples shorter than the network's ``time_steps`` are zero-padded at the end (the sample
contract, ``snn_toolchain/samples.py``: a file of ours stores ``time_steps``, the data's steps plus
the delay padding); longer ones are refused unless the extra steps are empty. A stock lava-dl file
stores no ``time_steps``: :func:`padded_time_steps` gives the samples' steps plus its largest delay,
the padding every export adds, so that a spike delayed by the largest delay still reaches the next
layer inside the run (:func:`stock_file_time_steps` refuses samples too long for that).

Every problem is one :class:`SamplesFileError` line naming the file and the fix. Core module:
numpy (and h5py inside :func:`read_samples_file` for ``.h5`` files); a :class:`SamplesFile` is a
map-style dataset of ``(x, label)`` that torch's ``DataLoader`` takes without torch being imported
here.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from snn_toolchain import constants as C
from snn_toolchain.errors import DataFormatError
from snn_toolchain.quantized_network import NetworkError, QuantizedNetwork
from snn_toolchain.samples import is_splits

SAMPLE_KEYS = ("spikes", "inputs")
VALUES_KEY = "values"           # data values for a network with an input neuron stage
LABELS_KEY = "labels"
NPZ_SUFFIXES = (".npz",)
HDF5_SUFFIXES = (".h5", ".hdf5")
NO_LABEL = -1          # what __getitem__ gives as the label of a sample of a file without labels
# the largest spike count or payload a step may hold: Lava's source sends the inputs as int32 messages
LARGEST_VALUE = int(np.iinfo(np.int32).max)
_FIX_LAYOUT = "save (samples, steps, inputs) spike counts as 'spikes' (docs/parity.md, 'Your own samples')"


class SamplesFileError(DataFormatError):
    """A samples file that cannot be used: one line naming the file, what is wrong and the fix."""


@dataclass
class SamplesFile:
    """The samples of a file, checked: a dataset of ``(x, label)`` with ``x`` int64 (steps, inputs).

    samples: (samples, steps, inputs) as the file holds them (its integer dtype kept: a uint8 file
    stays one byte a value in memory); labels: (samples,) int64 class indices, None where the file
    has none (``__getitem__`` then gives :data:`NO_LABEL`). ``time_steps``: the steps ``x`` is
    zero-padded to (set by :meth:`fit`; None: the file's own). ``notes``: one-line remarks for the
    user (a transposed layout read, a missing ``labels``, an empty tail trimmed).
    """

    path: Path
    samples: np.ndarray
    labels: np.ndarray | None
    key: str = "spikes"
    time_steps: int | None = None
    notes: list = field(default_factory=list)

    @property
    def labelled(self) -> bool:
        return self.labels is not None

    @property
    def steps(self) -> int:
        """Input steps per sample in the file (before any padding)."""
        return int(self.samples.shape[1])

    @property
    def n_inputs(self) -> int:
        return int(self.samples.shape[2])

    def __len__(self) -> int:
        return int(self.samples.shape[0])

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        x = np.asarray(self.samples[index], dtype=np.int64)
        extra = 0 if self.time_steps is None else self.time_steps - x.shape[0]
        if extra > 0:
            x = np.pad(x, ((0, extra), (0, 0)))
        return x, NO_LABEL if self.labels is None else int(self.labels[index])

    def first(self, count: int) -> "SamplesFile":
        """The first ``count`` samples (all of them if there are fewer); 0 gives an empty file."""
        return self.part(range(max(int(count), 0)))

    def part(self, samples: range) -> "SamplesFile":
        """The samples ``samples`` (a range of sample indices, clipped to the file's) holding copies of
        their own arrays, not views of the file's: what a cluster task receives pickled, so that it
        carries its shard and not the whole file."""
        chosen = slice(samples.start, samples.stop)
        return replace(self, samples=self.samples[chosen].copy(),
                       labels=None if self.labels is None else self.labels[chosen].copy(), notes=list(self.notes))

    def fit(self, network: QuantizedNetwork) -> "SamplesFile":
        """These samples checked against ``network`` and padded to its ``time_steps`` on access:
        one input per network input, payloads within its graded input encoding, at most its
        ``time_steps`` steps (beyond them only empty steps, which are dropped), labels below its
        class count. Raises :class:`SamplesFileError`."""
        samples, notes = self.samples, list(self.notes)
        if samples.shape[2] != network.n_inputs:
            raise self._error(f"'{self.key}' has {samples.shape[2]} inputs per step but the network takes "
                              f"{network.n_inputs}", f"give {network.n_inputs} inputs per step, "
                              "or the .net file these samples were made for")
        if samples.shape[1] > network.time_steps:
            if samples[:, network.time_steps:].any():
                raise self._error(f"the samples have {samples.shape[1]} steps but the network runs "
                                  f"{network.time_steps} input steps (its time_steps, delay padding included)",
                                  f"trim the samples to {network.time_steps} steps")
            notes.append(f"{self.path}: steps {network.time_steps}..{samples.shape[1] - 1} are empty: dropped "
                         f"(the network runs {network.time_steps} input steps)")
            samples = samples[:, :network.time_steps]
        try:
            network.check_input_payloads(samples)
        except NetworkError as err:
            raise SamplesFileError(f"{self.path}: {err}") from None
        if self.labels is not None and len(self.labels) and int(self.labels.max()) >= network.n_classes:
            index = int(np.argmax(self.labels >= network.n_classes))
            raise self._error(f"label {int(self.labels[index])} (sample {index}) is beyond the network's "
                              f"{network.n_classes} classes (its readout layer has {network.n_classes} neurons)",
                              f"give labels 0..{network.n_classes - 1}, or the .net file of these classes")
        return replace(self, samples=samples, time_steps=network.time_steps, notes=notes)

    def check_for_stock_file(self, network: QuantizedNetwork, net_path) -> None:
        """Refuse (:class:`SamplesFileError`) counts above 1 for ``network`` read from a stock
        lava-dl file (no root ``format`` of ours) that declares no graded input: stock NetX makes the
        first synapse binary unless the network is built with ``input_message_bits`` set (every
        count becomes 1), so a run of such counts here would not be what NetX or Loihi run."""
        if network.input_encoding is not None or not len(self.samples):
            return
        over = self.samples > 1
        if over.any():
            raise self._error(f"a spike count of {self.samples[over][0]} at {_first_index(over)} for {net_path}, a "
                              "stock lava-dl file: stock NetX makes its first synapse binary (every count becomes 1) "
                              "unless the network is built with input_message_bits set, so the results would not be "
                              "NetX's or Loihi's", "give 0/1 spikes (spread larger counts over steps or inputs)")

    def _error(self, what: str, fix: str) -> SamplesFileError:
        return SamplesFileError(f"{self.path}: {what}; {fix}")


def has_labels(dataset) -> bool:
    """Whether ``dataset`` (a DatasetSplits, whose test split counts, a torch ``Subset`` or any
    dataset) has labels: False only for samples of a file without them (:class:`SamplesFile`)."""
    while not isinstance(dataset, SamplesFile):
        # a DatasetSplits: its test split; a Subset (of a Subset...): what it takes samples from
        inner = dataset.test if is_splits(dataset) else getattr(dataset, "dataset", None)
        if inner is None or inner is dataset:
            return True
        dataset = inner
    return dataset.labelled


def padded_time_steps(steps: int, network: QuantizedNetwork) -> int:
    """Input steps to run samples of ``steps`` steps for, on a network that stores none (a stock
    lava-dl file): ``steps`` plus its largest synaptic delay, the padding an export adds (a spike
    of the last input step delayed by it still reaches the next layer inside the run)."""
    return int(steps) + _largest_delay(network)


def _largest_delay(network: QuantizedNetwork) -> int:
    return max((int(np.max(layer.delay, initial=0)) for layer in network.layers), default=0)


def stock_file_time_steps(samples: SamplesFile, network: QuantizedNetwork, net_path) -> int:
    """:func:`padded_time_steps` for ``samples`` on ``network`` (read from ``net_path``, a stock
    lava-dl file), refused (:class:`SamplesFileError` naming the samples file) when the samples'
    steps plus the delay padding exceed ``MAX_TIME_STEPS``: the samples are too long, not the file."""
    padding = _largest_delay(network)
    if samples.steps + padding <= C.MAX_TIME_STEPS:
        return samples.steps + padding
    raise SamplesFileError(f"{samples.path}: {samples.steps} steps per sample + {padding} of delay padding (the "
                           f"largest delay of {net_path}) = {samples.steps + padding} input steps, beyond the "
                           f"{C.MAX_TIME_STEPS} a run may have (MAX_TIME_STEPS); trim the samples to "
                           f"{C.MAX_TIME_STEPS - padding} steps")


# ------------------------------------------------------------------------------------------ reading

def read_samples_file(path, n_inputs: int) -> SamplesFile:
    """The samples (and labels) of an ``.npz`` or ``.h5`` file, in the layout of this module's
    docstring, for a network of ``n_inputs`` inputs (which picks the layout). Checks what needs no
    network beyond that: the keys, the shape, the dtype, NaN, negative and fractional values, the
    labels' shape, count and sign. :meth:`SamplesFile.fit` checks the rest against the network.
    Raises :class:`SamplesFileError`."""
    path = Path(path)
    key, raw, labels = _read_arrays(path, SAMPLE_KEYS)
    samples, notes = _samples_array(path, key, raw, n_inputs)
    labels = _labels_array(path, labels, len(samples))
    if labels is None:
        notes.append(f"{path}: no '{LABELS_KEY}': predictions and spikes only, no accuracy")
    return SamplesFile(path, samples, labels, key, None, notes)


def read_values_file(path, n_inputs: int) -> tuple[np.ndarray, np.ndarray | None, list]:
    """The ``values`` (samples, ``n_inputs``) float64 and the labels of an ``.npz`` or ``.h5`` file,
    for a network with NetX's input neuron stage, and the notes for the user. Raises
    :class:`SamplesFileError` (wrong shape, not finite, bad labels)."""
    path = Path(path)
    key, raw, labels = _read_arrays(path, (VALUES_KEY,))
    values = np.asarray(raw)
    if values.ndim != 2 or values.shape[1] != n_inputs:
        raise SamplesFileError(f"{path}: '{key}' has shape {values.shape}; the network's input stage takes "
                               f"(samples, {n_inputs}), one value an input, held for the sample")
    if values.shape[0] == 0:
        raise SamplesFileError(f"{path}: '{key}' has shape {values.shape}: no samples; give at least one sample")
    if not np.issubdtype(values.dtype, np.number) or np.iscomplexobj(values):
        raise SamplesFileError(f"{path}: '{key}' has dtype {values.dtype}; give real numbers")
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        index = ", ".join(f"{name} {int(i)}" for name, i in zip(("sample", "input"), np.argwhere(~np.isfinite(values))[0]))
        raise SamplesFileError(f"{path}: '{key}' holds NaN or infinity ({index}); give finite data values")
    labels = _labels_array(path, labels, len(values))
    notes = [] if labels is not None else [f"{path}: no '{LABELS_KEY}': predictions and spikes only, no accuracy"]
    return values, labels, notes


def _read_arrays(path: Path, keys):
    """(the samples' key, its array, the labels or None) of an .npz or .h5 file."""
    if not path.is_file():
        raise SamplesFileError(f"{path}: samples file not found; check the path "
                               f"({'it is a folder' if path.is_dir() else 'no such file'})")
    suffix = path.suffix.lower()
    if suffix in NPZ_SUFFIXES:
        return _read_npz(path, keys)
    if suffix in HDF5_SUFFIXES:
        return _read_hdf5(path, keys)
    raise SamplesFileError(f"{path}: unknown kind of samples file '{path.suffix}'; give an .npz "
                           f"(numpy.savez) or .h5 file holding a '{keys[0]}' array (docs/parity.md, 'Your own samples')")


def _pick_keys(path: Path, names, keys=SAMPLE_KEYS) -> tuple[str, bool]:
    """The samples' key among ``names`` (one of ``keys``; refused when none or two), and whether
    labels exist."""
    names = list(names)
    found = [key for key in keys if key in names]
    if not found and keys == (VALUES_KEY,):
        raise SamplesFileError(f"{path}: no 'values' array (it holds {', '.join(map(repr, names)) or 'none'}); the "
                               "network has NetX's input neuron stage, which takes data values: save them (samples, "
                               "inputs) as 'values' (docs/parity.md, 'Your own samples')")
    if not found:
        hint = ("; 'values' are for a network with an input neuron stage, and this one has none"
                if VALUES_KEY in names else "")
        raise SamplesFileError(f"{path}: no 'spikes' or 'inputs' array (it holds {', '.join(map(repr, names)) or 'none'}); "
                               f"{_FIX_LAYOUT}{hint}")
    if len(found) > 1:
        raise SamplesFileError(f"{path}: holds both 'spikes' and 'inputs'; keep one of them, the samples")
    return found[0], LABELS_KEY in names


def _read_npz(path: Path, keys=SAMPLE_KEYS):
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):     # a bare .npy saved under an .npz name
            raise SamplesFileError(f"{path}: a single array, not an .npz archive of named arrays; "
                                   "save it with numpy.savez(path, spikes=..., labels=...)")
        with archive:
            key, labelled = _pick_keys(path, archive.files, keys)
            return key, archive[key], archive[LABELS_KEY] if labelled else None
    except SamplesFileError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        # ValueError: pickled object arrays (refused: allow_pickle=False), a damaged member
        raise SamplesFileError(f"{path}: not a readable .npz file ({type(err).__name__}: {str(err)[:120]}); "
                               "save it with numpy.savez(path, spikes=..., labels=...)") from None


def _read_hdf5(path: Path, keys=SAMPLE_KEYS):
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            key, labelled = _pick_keys(path, handle.keys(), keys)
            arrays = []
            for name in (key, LABELS_KEY) if labelled else (key,):
                if not isinstance(handle[name], h5py.Dataset):
                    raise SamplesFileError(f"{path}: '{name}' is a group, not a dataset; store the array itself "
                                           f"at the file's root as '{name}'")
                arrays.append(handle[name][()])
            return key, arrays[0], arrays[1] if labelled else None
    except SamplesFileError:
        raise
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as err:
        raise SamplesFileError(f"{path}: not a readable HDF5 file ({type(err).__name__}: {str(err)[:120]}); "
                               "write it with h5py: f['spikes'] = array") from None


def _first_index(mask: np.ndarray) -> str:
    return ", ".join(f"{name} {int(i)}" for name, i in zip(("sample", "step", "input"), np.argwhere(mask)[0]))


def _samples_array(path: Path, key: str, raw, n_inputs: int) -> tuple[np.ndarray, list]:
    """``raw`` checked and, where only (samples, inputs, steps) fits ``n_inputs``, transposed."""
    raw = np.asarray(raw)
    notes = []
    if raw.ndim != 3:
        single = " (one sample: save spikes[None])" if raw.ndim == 2 else ""
        raise SamplesFileError(f"{path}: '{key}' has shape {raw.shape}, {raw.ndim} dimension(s); expected 3, "
                               f"(samples, steps, {n_inputs}){single}")
    if raw.shape[2] != n_inputs:
        if raw.shape[1] != n_inputs:
            raise SamplesFileError(f"{path}: '{key}' has shape {raw.shape} but the network takes {n_inputs} inputs; "
                                   f"expected (samples, steps, {n_inputs}): give one value per network input "
                                   "per step, or the .net file these samples were made for")
        raw = raw.transpose(0, 2, 1)
        notes.append(f"{path}: '{key}' read as (samples, inputs, steps): its axis 1, not 2, has the network's "
                     f"{n_inputs} inputs")
    if raw.shape[0] == 0 or raw.shape[1] == 0:
        raise SamplesFileError(f"{path}: '{key}' has shape {raw.shape}: no samples or no steps; give at least one "
                               "sample of at least one step")
    kind = raw.dtype.kind
    if kind == "b":
        return raw, notes
    if kind not in "iuf":
        raise SamplesFileError(f"{path}: '{key}' has dtype {raw.dtype}; give bool or integer spike counts "
                               "(uint8 is enough for 0/1 spikes)")
    if kind == "f":
        finite = np.isfinite(raw)
        if not finite.all():
            raise SamplesFileError(f"{path}: '{key}' holds NaN or infinite values (first at {_first_index(~finite)}); "
                                   "give whole spike counts >= 0")
    if kind in "if" and raw.min() < 0:
        negative = raw < 0
        raise SamplesFileError(f"{path}: '{key}' holds negative values ({raw[negative][0]} at "
                               f"{_first_index(negative)}); spike counts are >= 0 (an event camera's OFF events: "
                               "give them their own inputs)")
    too_large = raw > LARGEST_VALUE       # before any cast to int64: 1e30 or 2^63 would wrap round
    if too_large.any():
        raise SamplesFileError(f"{path}: '{key}' holds {raw[too_large][0]} at {_first_index(too_large)}, beyond "
                               f"{LARGEST_VALUE} (Lava's source sends each step's values as int32 messages); give "
                               "spike counts per step (a count this large is not one)")
    if kind == "f":
        fractional = raw != np.round(raw)
        if fractional.any():
            raise SamplesFileError(f"{path}: '{key}' holds {raw[fractional][0]} at {_first_index(fractional)}, not a "
                                   "whole number; give spike counts per step (graded features: round them to the "
                                   "network's integer payloads)")
        raw = raw.astype(np.int64)
    return raw, notes


def _labels_array(path: Path, labels, count: int) -> np.ndarray | None:
    if labels is None:
        return None
    labels = np.asarray(labels)
    if labels.ndim != 1:
        hint = " (one-hot? save labels.argmax(1))" if labels.ndim == 2 else ""
        raise SamplesFileError(f"{path}: '{LABELS_KEY}' has shape {labels.shape}; expected ({count},), one class "
                               f"index per sample{hint}")
    if len(labels) != count:
        raise SamplesFileError(f"{path}: {len(labels)} labels for {count} samples; give one label per sample, "
                               "or leave 'labels' out")
    if labels.dtype.kind not in "biuf" or (labels.dtype.kind == "f" and not (
            np.isfinite(labels).all() and (labels == np.round(labels)).all())):
        raise SamplesFileError(f"{path}: '{LABELS_KEY}' has dtype {labels.dtype} and is not whole class indices; "
                               "give integer class indices 0..classes-1")
    if len(labels) and labels.max() > LARGEST_VALUE:      # before the cast to int64, which would wrap it round
        index = int(np.argmax(labels > LARGEST_VALUE))
        raise SamplesFileError(f"{path}: label {labels[index]} (sample {index}) is not a class index; give class "
                               "indices 0..classes-1, or leave 'labels' out")
    labels = labels.astype(np.int64)
    if len(labels) and labels.min() < 0:
        index = int(np.argmax(labels < 0))
        raise SamplesFileError(f"{path}: label {int(labels[index])} (sample {index}) is negative; give class "
                               "indices 0..classes-1, or leave 'labels' out")
    return labels
