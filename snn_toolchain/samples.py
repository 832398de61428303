"""The sample contract: what a batch of samples is to a deployed network, and how its class scores
are read. The emulator (``export/emulator.py``), the activity report (``export/activity.py``) and
the Lava builder (``lava_models/build.py``, ``lava_models/lava_backend.py``) all go through here.

- A batch is ``(samples, steps, inputs)`` of **non-negative whole numbers**: spike counts per time
  bin, or the graded payloads of the network's input encoding (``DatasetSplits.deployed()`` rounds
  encoded features to them). Graded payloads must fit the encoding's bits.
- ``steps`` are input steps, at most the network's ``time_steps`` (the data's steps plus the delay
  padding it was exported with). Shorter samples are zero-padded at the end; longer ones are refused,
  or trimmed where what lies beyond ``time_steps`` is empty and the caller allows it.
- A backend runs ``run_steps = time_steps + L`` steps a sample (one step of latency per connection
  layer, ``L`` of them): the input is zero after it ends.
- **Scores.** A summing readout (this toolchain's networks): its synaptic input summed over all run
  steps, plus ``time_steps`` x its bias (the bias acts once per input step, as the trained model's
  readout). A spiking output layer (stock lava-dl networks, NIR graphs): its spike counts over the
  last ``time_steps`` steps (:meth:`QuantizedNetwork.output_spike_counts`).

Works on numpy arrays and torch tensors alike (torch is never imported here). Samples from a user's
file (``--samples-file``) meet the same contract: ``snn_toolchain/samples_file.py`` checks them
against a network and pads them to its ``time_steps``.
"""

from __future__ import annotations

import numpy as np

from snn_toolchain.quantized_network import NetworkError, QuantizedNetwork


class SampleError(NetworkError):
    """A batch of samples breaks the contract above (one line, naming what and how to fix it)."""


def is_splits(dataset) -> bool:
    """Whether ``dataset`` is the splits of a dataset (``train/data/splits.DatasetSplits``, or a
    stand-in of its shape such as a parity shard's ``ShardSplits``): samples are then taken from its
    ``test`` split (and its ``valid`` split, its ``deployed()`` payloads). Tested by shape, not by
    type, because this core module may not import ``train/`` (docs/architecture.md)."""
    return hasattr(dataset, "n_classes") and hasattr(dataset, "test")


def _is_numpy(samples) -> bool:
    return isinstance(samples, np.ndarray)


def whole_samples(samples, network: QuantizedNetwork | None = None, *, trim_empty_tail: bool = False):
    """``samples`` (samples, steps, inputs) checked against the contract and returned as int64 (the
    same library as given). With ``network``: its input count, its graded payload bits and its
    ``time_steps`` (with ``trim_empty_tail``, steps beyond it are dropped when they hold nothing).
    Raises :class:`SampleError`."""
    if samples.ndim != 3 or (network is not None and samples.shape[2] != network.n_inputs):
        expected = network.n_inputs if network is not None else "inputs"
        raise SampleError(f"samples must be (samples, steps, {expected}) spike counts or graded payloads, "
                          f"got shape {tuple(samples.shape)}")
    if _is_numpy(samples):
        as_float = samples.astype(np.float64)
        finite, size = np.isfinite(as_float).all(), as_float.size
    else:
        as_float = samples.double()
        finite, size = bool(as_float.isfinite().all()), as_float.numel()
    rounded = as_float.round()
    if not finite or not (rounded == as_float).all() or (size and rounded.min() < 0):
        raise SampleError("the samples are not non-negative whole numbers (spike counts or graded payloads); "
                          "pass the DatasetSplits, whose deployed() splits round encoded features")
    counts = rounded.astype(np.int64) if _is_numpy(rounded) else rounded.long()
    if network is None:
        return counts
    if trim_empty_tail and counts.shape[1] > network.time_steps and not counts[:, network.time_steps:].any():
        counts = counts[:, :network.time_steps]
    try:
        network.check_input_steps(counts.shape[1])
        network.check_input_payloads(counts)
    except NetworkError as err:
        raise SampleError(str(err)) from None
    return counts


def zero_padded(samples, steps: int):
    """``samples`` (samples, steps', inputs) with zero steps appended up to ``steps`` (as given when
    they are already that long)."""
    extra = int(steps) - samples.shape[1]
    if extra <= 0:
        return samples
    if _is_numpy(samples):
        return np.pad(samples, ((0, 0), (0, extra), (0, 0)))
    import torch.nn.functional as F   # only reached with a tensor: torch is already imported

    return F.pad(samples, (0, 0, 0, extra))


def class_scores(network: QuantizedNetwork, readout_input, output_spikes=None):
    """The class scores of runs with ``readout_input`` (..., run_steps, classes), the last synapse's
    output; ``output_spikes`` (..., run_steps, classes) for a spiking output layer."""
    if network.readout == "sum":
        bias = network.layers[-1].bias
        if not _is_numpy(readout_input):
            bias = readout_input.new_tensor(np.asarray(bias, dtype=np.int64))
        return readout_input.sum(-2) + network.time_steps * bias
    if output_spikes.ndim == 2:
        return network.output_spike_counts(output_spikes[None])[0]
    return network.output_spike_counts(output_spikes)
