"""PyDelayDenseRingModel against Lava's stock bit-accurate DelayDense model.

Two levels:
- the group-sum kernel against the stock ``calc_act`` directly, for many random cases (no Lava
  runtime, milliseconds each);
- both ProcessModels run in Lava (``Loihi2SimCfg(select_tag='fixed_pt')``, RingBuffer source and
  sink) on the same inputs: ``a_out`` every step, ``a_buff`` after the run, and a second run after
  ``a_buff.set(0)`` must agree, and must equal a numpy transcription of the stock algorithm
  started from an empty buffer.

A ValueError inside a Lava ProcessModel hangs the run instead of raising, so every Lava run
happens in one worker subprocess (this file run as a script) under a timeout; its whole process
group is killed if it overruns.
"""

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from lava.proc.dense.models import AbstractPyDelayDenseModel
from lava.utils.weightutils import SignMode, clip_weights, determine_sign_mode, truncate_weights

from lava_support import run_killable
from snn_toolchain.lava_models.processes.delay_ring import (
    apply_weight_exp,
    build_delay_tables,
    delayed_accumulation,
)

LAVA_WORKER_TIMEOUT_S = 150


# ---------------------------------------------------------------------------------------------
# The stock arithmetic, transcribed
# ---------------------------------------------------------------------------------------------

def prepare_weights(weights, sign_mode=None, num_weight_bits=8):
    """The stock model's first-step weight preparation (lava.proc.dense.models)."""
    sign_mode = sign_mode or determine_sign_mode(weights)
    weights = clip_weights(weights, sign_mode, num_bits=8)
    return truncate_weights(weights, sign_mode, num_weight_bits)


def stock_calc_act(weights, delays, max_delay, s_in):
    """Calls Lava's own ``calc_act`` on a stand-in for the model instance."""
    model = types.SimpleNamespace(weights=weights, delays=delays,
                                  a_buff=np.zeros((weights.shape[0], max_delay + 1), np.int32),
                                  get_delay_wgts_mat=AbstractPyDelayDenseModel.get_delay_wgts_mat)
    return AbstractPyDelayDenseModel.calc_act(model, s_in)


def reference_a_out(prepared_weights, delays, max_delay, weight_exp, inputs, graded):
    """a_out (n_out, steps) of the stock algorithm from an empty buffer; inputs (n_in, steps)."""
    a_buff = np.zeros((prepared_weights.shape[0], max_delay + 1), np.int32)
    sent = []
    for step in range(inputs.shape[1]):
        sent.append(a_buff[:, 0].copy())
        s_in = inputs[:, step].astype(np.int32) if graded else inputs[:, step].astype(bool)
        group_sums = np.stack([np.where(delays == k, prepared_weights, 0) @ s_in
                               for k in range(max_delay + 1)], axis=1).astype(np.int64)
        a_buff[:, 0] = 0
        a_buff = np.roll(a_buff, -1, axis=1)
        a_buff += apply_weight_exp(group_sums, weight_exp)
    return np.stack(sent, axis=1).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Kernel level: no Lava runtime
# ---------------------------------------------------------------------------------------------

def random_weights(rng, shape, signs):
    magnitude = rng.integers(1, 300, size=shape)      # beyond 8 bits too, so clipping matters
    if signs == "excitatory":
        weights = magnitude
    elif signs == "inhibitory":
        weights = -magnitude
    else:
        weights = magnitude * rng.choice([-1, 1], size=shape)
    weights[rng.random(shape) < 0.2] = 0               # absent synapses
    return weights


@pytest.mark.parametrize("seed", range(40))
def test_group_sums_equal_stock_calc_act(seed):
    rng = np.random.default_rng(seed)
    n_in, n_out = int(rng.integers(1, 40)), int(rng.integers(1, 30))
    signs = ["mixed", "excitatory", "inhibitory"][seed % 3]
    weights = prepare_weights(random_weights(rng, (n_out, n_in), signs),
                              num_weight_bits=int(rng.integers(4, 9)))
    delay_limit = int(rng.choice([0, 5, 62]))
    delays = rng.integers(0, delay_limit + 1, size=(n_out, n_in))
    delays.flat[0], delays.flat[-1] = 0, delay_limit
    # A max_delay below the largest delay drops those synapses in the stock model.
    max_delay = delay_limit if seed % 4 else max(delay_limit - 3, 0)
    tables = build_delay_tables(weights, delays, max_delay)
    for trial in range(6):
        if trial % 2 == 0:
            s_in = rng.random(n_in) < rng.choice([0.0, 0.05, 0.5, 1.0])
        else:
            payload_bits = int(rng.choice([8, 16, 24]))
            s_in = rng.integers(-(1 << (payload_bits - 1)), 1 << (payload_bits - 1), size=n_in,
                                dtype=np.int32)
            s_in[rng.random(n_in) < 0.5] = 0
        expected = stock_calc_act(weights, delays, max_delay, s_in)
        got = delayed_accumulation(tables, s_in)
        got = np.zeros_like(expected) if got is None else got
        assert got.dtype == expected.dtype == np.int64
        np.testing.assert_array_equal(got, expected)
        for weight_exp in (-3, -1, 0, 2):
            np.testing.assert_array_equal(apply_weight_exp(got, weight_exp),
                                          apply_weight_exp(expected, weight_exp))


def test_group_sums_wrap_like_stock_for_32_bit_products():
    """A graded payload of 2**23 times weight -256 is -2**31 in int32; -(-2**31) wraps."""
    weights = np.array([[-256, -256, 254], [-256, 2, 0]], np.int32)
    delays = np.array([[3, 3, 0], [1, 0, 0]])
    s_in = np.array([-(1 << 23), -(1 << 23), (1 << 23) - 1], np.int32)
    expected = stock_calc_act(weights, delays, 3, s_in)
    got = delayed_accumulation(build_delay_tables(weights, delays, 3), s_in)
    np.testing.assert_array_equal(got, expected)


def test_int64_payloads_use_exact_integer_sums():
    weights = np.array([[200, -150]], np.int32)
    delays = np.array([[2, 2]])
    s_in = np.array([(1 << 40) + 1, 3], np.int64)
    expected = stock_calc_act(weights, delays, 2, s_in)
    got = delayed_accumulation(build_delay_tables(weights, delays, 2), s_in)
    np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------------------------------------
# Lava level: both ProcessModels in the runtime
# ---------------------------------------------------------------------------------------------

def lava_cases():
    """Networks and two input blocks each (n_in, steps); the second block runs after a reset."""
    specs = [
        # name, n_in, n_out, signs, weight_exp, extra DelayDense kwargs, delay limit, steps, graded
        ("mixed_exp0_binary", 24, 16, "mixed", 0, {}, 62, 80, 0),
        ("excitatory_exp-3_6bit", 20, 12, "excitatory", -3, {"num_weight_bits": 6}, 62, 70, 0),
        ("inhibitory_exp2", 18, 10, "inhibitory", 2, {}, 40, 40, 0),
        ("mixed_exp-2_graded8", 16, 12, "mixed", -2, {}, 62, 60, 8),
        ("mixed_exp1_graded24", 12, 8, "mixed", 1, {}, 20, 30, 24),
        ("mixed_as_excitatory_exp-1", 20, 10, "mixed", -1,
         {"sign_mode": SignMode.EXCITATORY}, 62, 50, 0),
        ("max_delay_below_delays", 16, 8, "mixed", -1, {"max_delay": 10}, 20, 40, 0),
        ("no_delay", 16, 8, "mixed", -2, {}, 0, 30, 0),
        ("new_weights_and_delays", 20, 10, "mixed", -1, {}, 30, 50, 0),
    ]
    cases = []
    for seed, (name, n_in, n_out, signs, weight_exp, extra, delay_limit, steps, message_bits) \
            in enumerate(specs):
        rng = np.random.default_rng(1000 + seed)
        weights = random_weights(rng, (n_out, n_in), signs)
        delays = rng.integers(0, delay_limit + 1, size=(n_out, n_in))
        delays.flat[0], delays.flat[-1] = 0, delay_limit
        blocks = []
        for _ in range(2):
            if message_bits:
                limit = 1 << min(message_bits - 1, 20)
                block = rng.integers(-limit, limit, size=(n_in, steps)).astype(np.int32)
                block[rng.random((n_in, steps)) < 0.6] = 0
            else:
                block = (rng.random((n_in, steps)) < 0.25).astype(np.int32)
            block[:, -1] = block[:, -1] if block[:, -1].any() else 1   # something still pending
            blocks.append(block)
        kwargs = dict(weight_exp=weight_exp, num_message_bits=message_bits, **extra)
        case = dict(name=name, weights=weights, delays=delays, kwargs=kwargs,
                    inputs=blocks, steps=steps)
        if name == "new_weights_and_delays":
            # Set between the runs. Both models use set weights as given (they prepare weights
            # only once), so these are already valid mixed-mode values: even, within 8 bits.
            case["second_weights"] = rng.integers(-128, 128, size=(n_out, n_in)) * 2
            case["second_delays"] = rng.integers(0, delay_limit + 1, size=(n_out, n_in))
        cases.append(case)
    return cases


def run_case_in_lava(case, use_ring_model):
    """Runs one case; returns a_out of both runs (n_out, steps) and a_buff after the first."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import DelayDense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    from snn_toolchain.lava_models.processes.delay_ring import PyDelayDenseRingModel

    steps = case["steps"]
    source = Source(data=case["inputs"][0])
    synapse = DelayDense(weights=case["weights"], delays=case["delays"], **case["kwargs"])
    sink = Sink(shape=(case["weights"].shape[0],), buffer=steps)
    source.s_out.connect(synapse.s_in)
    synapse.a_out.connect(sink.a_in)
    model_map = {DelayDense: PyDelayDenseRingModel} if use_ring_model else {}
    config = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=model_map)
    try:
        synapse.run(condition=RunSteps(num_steps=steps), run_cfg=config)
        first = sink.data.get().astype(np.int64)
        pending = synapse.a_buff.get().astype(np.int64)
        prepared_weights = synapse.weights.get().astype(np.int64)   # before any set
        synapse.a_buff.set(np.zeros(synapse.a_buff.shape))
        source.data.set(case["inputs"][1])
        if "second_weights" in case:
            synapse.weights.set(case["second_weights"])
            synapse.delays.set(case["second_delays"])
        synapse.run(condition=RunSteps(num_steps=steps), run_cfg=config)
        second = sink.data.get().astype(np.int64)
    finally:
        synapse.stop()
    return dict(first=first, pending=pending, second=second, prepared_weights=prepared_weights)


def _lava_worker(cases_path, results_dir):
    with open(cases_path, "rb") as handle:
        cases = pickle.load(handle)
    for case in cases:
        for model in ("stock", "ring"):
            result = run_case_in_lava(case, use_ring_model=model == "ring")
            with open(Path(results_dir) / f"{case['name']}.{model}.pkl", "wb") as handle:
                pickle.dump(result, handle)


@pytest.fixture(scope="module")
def lava_results(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("delay_ring")
    cases = lava_cases()
    with open(workdir / "cases.pkl", "wb") as handle:
        pickle.dump(cases, handle)
    returncode, log = run_killable([sys.executable, str(Path(__file__).resolve()), "--lava-worker",
                                    str(workdir / "cases.pkl"), str(workdir)], LAVA_WORKER_TIMEOUT_S)
    if returncode is None:
        log += f"\n[killed after {LAVA_WORKER_TIMEOUT_S} s: a Lava run hung]"
    results = {}
    for case in cases:
        for model in ("stock", "ring"):
            path = workdir / f"{case['name']}.{model}.pkl"
            if path.exists():
                with open(path, "rb") as handle:
                    results[case["name"], model] = pickle.load(handle)
    return cases, results, returncode, log[-4000:]


@pytest.mark.parametrize("case_index", range(len(lava_cases())))
def test_ring_model_matches_stock_in_lava(lava_results, case_index):
    cases, results, returncode, log = lava_results
    case = cases[case_index]
    name = case["name"]
    if (name, "stock") not in results or (name, "ring") not in results:
        pytest.fail(f"Lava worker (exit {returncode}) produced no result for {name}:\n{log}")
    stock, ring = results[name, "stock"], results[name, "ring"]

    for key in ("first", "pending", "second", "prepared_weights"):
        np.testing.assert_array_equal(ring[key], stock[key], err_msg=f"{name}: {key}")

    graded = case["kwargs"]["num_message_bits"] > 0
    max_delay = case["kwargs"].get("max_delay") or int(case["delays"].max())
    prepared = prepare_weights(case["weights"], case["kwargs"].get("sign_mode"),
                               case["kwargs"].get("num_weight_bits", 8))
    np.testing.assert_array_equal(stock["prepared_weights"], prepared)
    weight_exp = case["kwargs"]["weight_exp"]
    for key, block, weights, delays in (
            ("first", case["inputs"][0], prepared, case["delays"]),
            ("second", case["inputs"][1], case.get("second_weights", prepared),
             case.get("second_delays", case["delays"]))):
        expected = reference_a_out(weights, delays, max_delay, weight_exp, block, graded)
        np.testing.assert_array_equal(stock[key], expected, err_msg=f"{name}: {key} vs numpy")
    assert stock["first"].any(), "the network must produce activity"
    if max_delay > 0:
        # The reset had activations to discard, and 'second' (equal to a fresh run) shows it did.
        assert stock["pending"].any()


if __name__ == "__main__" and sys.argv[1:2] == ["--lava-worker"]:
    _lava_worker(sys.argv[2], sys.argv[3])
