"""A Loihi 2 chip against fixed point: spike parity, and measured power and time per inference.

Runs where lava-loihi imports and a Loihi 2 system is reachable (an INRC cloud node through
SLURM, or a board named by NXSDKHOST); conftest.py skips every test elsewhere. Settings, from the
environment:

- ``PARTITION`` / ``BOARD``: the SLURM selection on the INRC cloud (lava.utils.loihi.use_slurm_host);
- ``SNN_TOOLCHAIN_ADLIF_NC_MODEL``: 'package.module:ClassName' of the AdLIF NcProcessModel (the
  microcoded neuron program of docs/deploy_loihi2.md). Without it the AdLIF case is skipped, saying
  so; the LIF case needs no custom neuron;
- ``SNN_TOOLCHAIN_HW_TIMEOUT_S``: how long one chip job may take, queueing and compiling included
  (default 1800 s); a job that overruns is killed with its whole process group;
- ``SNN_TOOLCHAIN_HW_RESULTS``: a folder for ``loihi2_measurements.json`` (default: pytest's tmp).

The networks are built here with fixed seeds (no training), written as ``.net`` files, and run
through the simulator's own builder (``build_lava_network``) with ``Loihi2HwCfg`` swapped in by
``snn_toolchain.lava_models.loihi2.build_hardware_runner``; the reference is the same builder on
``Loihi2SimCfg(select_tag='fixed_pt')`` and the batched emulator.

Not verified where this was written (no lava-loihi, no chip): whether lava-loihi connects host
RingBuffers to neuro-core processes without explicit embedded-IO adapters; whether a Dense's
``a_out`` can feed a host sink directly (the readout); the profiler's attribute names
(``Loihi2Power.total_power`` / ``static_total_power`` in W, ``Loihi2ExecutionTime.avg_time_per_step``
in microseconds, as lava-dl's Loihi 2 benchmark tutorials use them); and how those loggers behave
over several ``run`` calls (one per sample). A failure in any of these shows up here as an error
with lava-loihi's own message, which is the point of these tests.
"""

import json
import math
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from snn_toolchain.export.netfile import read_net, write_net
from snn_toolchain.quantized_network import QuantizedLayer, QuantizedNetwork
from snn_toolchain.neurons.dynamics import CubaFixedParams, FixedNeuronParams

HW_TIMEOUT_S = int(os.environ.get("SNN_TOOLCHAIN_HW_TIMEOUT_S", "1800"))
THRESHOLD = 64 << 6


def random_network(variant: str, n_inputs=16, hidden=12, classes=4, max_delay=6, time_steps=30, seed=0):
    """A seeded 3-connection network with per-synapse delays, in the quantizer's integers."""
    rng = np.random.default_rng(seed)
    sizes = [n_inputs, hidden, hidden, classes]
    layers = []
    for index in range(3):
        n_out, n_in = sizes[index + 1], sizes[index]
        weight = rng.integers(-60, 70, (n_out, n_in)).astype(np.int64)
        delay = rng.integers(0, max_delay + 1, (n_out, n_in)).astype(np.int64)
        bias = np.zeros(n_out, dtype=np.int64)
        layer = QuantizedLayer(str(index), weight, delay, bias, 64)
        if index < 2:
            if variant == "lif":
                layer.neuron = CubaFixedParams(np.full(n_out, 4096), rng.integers(500, 3000, n_out), bias,
                                               np.full(n_out, THRESHOLD))
                layer.neuron_variant = "cuba"
            else:
                layer.neuron = FixedNeuronParams(rng.integers(1000, 3500, n_out), rng.integers(0, 4000, n_out),
                                                 rng.integers(0, 2000, n_out), rng.integers(0, THRESHOLD, n_out),
                                                 bias, np.full(n_out, THRESHOLD))
                layer.neuron_variant = variant
        layers.append(layer)
    return QuantizedNetwork(layers, time_steps, variant)


def random_samples(network, count=4, seed=1):
    rng = np.random.default_rng(seed)
    if network.input_encoding is not None:   # graded payloads, as GSC's encoded features
        return rng.integers(0, network.input_encoding.levels + 1,
                            (count, network.time_steps, network.n_inputs)).astype(np.int64)
    return rng.poisson(0.5, (count, network.time_steps, network.n_inputs)).astype(np.int64)


def graded_network(seed=0):
    """The LIF network fed 8-bit graded payloads through a first layer with an input shift of 3
    (Lava's weight exponent -3), as GSC's deployed networks are (docs/fixed_point.md)."""
    from snn_toolchain.input_encoding import GradedInputEncoding

    network = random_network("lif", seed=seed)
    first = network.layers[0]
    first.weight = np.random.default_rng(seed + 7).integers(-20, 24, first.weight.shape).astype(np.int64)
    first.input_shift = 3
    network.input_encoding = GradedInputEncoding(8, np.zeros(network.n_inputs), np.ones(network.n_inputs))
    return network.validate()


# ----------------------------------------------------------------------------- the chip worker

def hardware_worker(job_path: str, result_path: str) -> None:
    """Runs in a subprocess (a hung chip job must not hang pytest): one job, results pickled."""
    from snn_toolchain.lava_models.build import build_lava_network
    from snn_toolchain.lava_models.lava_loihi import configure_loihi_host, profiler_callbacks, summarize_measurements
    from snn_toolchain.lava_models.loihi2 import build_hardware_runner

    with open(job_path, "rb") as handle:
        job = pickle.load(handle)
    network = read_net(job["net"])
    samples = job["samples"]
    host = configure_loihi_host()
    result = {"host": host}
    if job["mode"] == "parity":
        chip = build_hardware_runner(network, samples).run(progress=False)
        simulated = build_lava_network(network, samples=samples, synapse="stock").run(progress=False)
        result["chip"] = [([np.asarray(s) for s in r.spikes], np.asarray(r.readout_input)) for r in chip]
        result["fixed_pt"] = [([np.asarray(s) for s in r.spikes], np.asarray(r.readout_input)) for r in simulated]
    else:
        power, timer = profiler_callbacks(len(samples) * network.run_steps)
        if power is None:
            result["error"] = "lava.utils.loihi2_profiler (Loihi2Power, Loihi2ExecutionTime) is not importable"
        else:
            import time

            runner = build_hardware_runner(network, samples, callback_fxs=[power, timer])
            started = time.perf_counter()
            runner.run(progress=False)
            result["wall_seconds"] = time.perf_counter() - started
            result["measured"] = summarize_measurements(power, timer, network.run_steps)
    with open(result_path, "wb") as handle:
        pickle.dump(result, handle)


def run_on_chip(tmp_path: Path, network, samples, mode: str) -> dict:
    net = write_net(network, tmp_path / f"{network.variant}.net")
    job, result_path = tmp_path / "job.pkl", tmp_path / "result.pkl"
    with open(job, "wb") as handle:
        pickle.dump({"net": str(net), "samples": samples, "mode": mode}, handle)
    worker = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--hw-worker", str(job),
                               str(result_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        log, _ = worker.communicate(timeout=HW_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        log, _ = worker.communicate()
        pytest.fail(f"the chip job did not finish within {HW_TIMEOUT_S} s (SNN_TOOLCHAIN_HW_TIMEOUT_S):\n"
                    f"{log.decode(errors='replace')[-4000:]}")
    if not result_path.exists():
        pytest.fail(f"the chip job exited {worker.returncode} without a result:\n{log.decode(errors='replace')[-4000:]}")
    with open(result_path, "rb") as handle:
        return pickle.load(handle)


def require_neuron_program(variant: str) -> None:
    if variant.startswith("lif"):
        return
    from snn_toolchain.lava_models.lava_loihi import HardwareUnavailable, adlif_hardware_model

    try:
        adlif_hardware_model()
    except HardwareUnavailable as err:
        pytest.skip(f"no AdLIF neuron program for the chip: {err}")


# ----------------------------------------------------------------------------------- the tests

@pytest.mark.parametrize("variant", ["lif", "adlif+", "lif-graded-inputs"])
def test_chip_spikes_equal_fixed_pt(tmp_path, variant):
    """Every spike of every hidden layer, and the readout's input at every step, equal Lava's
    fixed_pt simulation and the emulator on the same samples (with graded 8-bit inputs and an
    input shift too: GSC's case)."""
    import torch

    from snn_toolchain.export.emulator import Emulator

    require_neuron_program(variant)
    network = graded_network() if variant == "lif-graded-inputs" else random_network(variant)
    samples = random_samples(network)
    reference = Emulator(network)(torch.as_tensor(samples))
    assert all(int(s.sum()) > 0 for s in reference.spikes), "the test network must spike in every hidden layer"

    result = run_on_chip(tmp_path, network, samples, "parity")
    assert len(result["chip"]) == len(samples)
    for k, ((chip_spikes, chip_readout), (sim_spikes, sim_readout)) in enumerate(zip(result["chip"], result["fixed_pt"])):
        for layer, (chip, sim) in enumerate(zip(chip_spikes, sim_spikes)):
            np.testing.assert_array_equal(chip, sim, err_msg=f"sample {k}, hidden layer {layer + 1}: chip vs fixed_pt")
            np.testing.assert_array_equal(chip, reference.spikes[layer][k].numpy(),
                                          err_msg=f"sample {k}, hidden layer {layer + 1}: chip vs emulator")
        np.testing.assert_array_equal(chip_readout, sim_readout, err_msg=f"sample {k}: readout input")


def test_power_and_time_per_inference(tmp_path):
    """Measured with lava-loihi's profiler on the LIF network (no custom neuron program needed).

    Writes ``loihi2_measurements.json``, whose ``measured`` block can go into an energy figures
    file for ``build_report`` (docs/energy.md), next to the per-operation estimate.
    """
    network = random_network("lif")
    samples = random_samples(network, count=32)
    result = run_on_chip(tmp_path, network, samples, "profile")
    if "error" in result:
        pytest.skip(result["error"])
    measured = result["measured"]
    assert measured, "the profiler returned nothing"
    assert math.isfinite(measured["time_per_step_us"]) and measured["time_per_step_us"] > 0
    assert math.isfinite(measured["time_per_inference_ms"]) and measured["time_per_inference_ms"] > 0
    assert math.isfinite(measured["total_power_w"]) and measured["total_power_w"] > 0
    assert measured["total_energy_per_inference_uj"] > 0
    if "static_power_w" in measured:
        assert 0 <= measured["static_power_w"] <= measured["total_power_w"]
    folder = Path(os.environ.get("SNN_TOOLCHAIN_HW_RESULTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "loihi2_measurements.json").write_text(json.dumps({
        "label": f"Loihi 2, measured with lava-loihi's profiler on {result['host']}",
        "measured": {**measured, "samples": len(samples), "steps_per_inference": network.run_steps,
                     "network": "hardware_tests random LIF 16-12-12-4, delays 0..6"}}, indent=2))


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--hw-worker":
    hardware_worker(sys.argv[2], sys.argv[3])
