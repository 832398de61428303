"""What the Loihi 2 resource plan (``loihi2_plan.py``) assumes about the chip and its compiler:
:data:`LOIHI2_LIMITS`, each figure with its source (a file and commit, "fitted to ...", or
"ASSUMPTION"), and :data:`COMPILER_PROFILES`, one set of figures per lava-loihi compiler whose
output is public (docs/deploy_loihi2.md, "Grounded in real compiles").

The ground truth is the compile output lava-dl and lava-optimization committed from runs on
Loihi 2 boards: lava-loihi's per-core tables and its synaptic-memory violations. The chip's
synaptic memory is counted in 64-bit words, as lava-loihi's cost database counts it ("SynMem").
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Optional

from snn_toolchain import constants as C
from snn_toolchain.quantized_network import FIELD_LIMITS

WORD_BITS = 64   # one SynMem word; synapse lists are rounded up to whole words (fitted below)

_LAVA_DL = "github.com/lava-nc/lava-dl @ d825ac506eb9bb91ea2b945116fb45a40e775451"
OXFORD_RUN = (f"{_LAVA_DL}, tutorials/lava/lib/dl/netx/oxford/run.ipynb (output of a board run, committed in "
              "b79bc88, 2022-09-22, unchanged since): Oxford 200-256-200 on 3 + 2 cores, 'SynMem allocation=16200' "
              "and '16128', 'registers=12000'")
PILOTNET_RUNS = (f"{_LAVA_DL}, tutorials/lava/lib/dl/netx/pilotnet_snn/benchmark.ipynb and pilotnet_sdnn/"
                 "benchmark.ipynb (board runs committed in 76c8fbb 2022-10-25, baa23ad, b9e3691 2023-01-10, identical "
                 "tables): dense 2560-100-50-10-1 on 12 + 1 + 1 + 1 cores, 'allocation=61440' (SNN), '66560' (SDNN), "
                 "then '12800', 'max_ratio=6', 'registers=12000'; per core 1300/1500, 150, 10 words")
MNIST_RUN = (f"{_LAVA_DL}, tutorials/lava/lib/dl/netx/mnist/run.ipynb (board run committed in e435b45, "
             "2024-04-25): 784-128-64-10 on 3 + 1 + 1 cores; per-core Synapses 78.40% / 16.80% / 1.60%, Neurons "
             "1.22% / 1.56% / 0.24%, AxonIn 4.90% / 0.80% / 0.40%, Total 67.14% / 14.72% / 1.71%")
YOLO_RUN = (f"{_LAVA_DL}, tutorials/lava/lib/dl/netx/yolo_kp/run.ipynb (board run, 642e6ab 2024-07-26): "
            "2688 neurons = 65.64%, 3584 neurons = 87.52% of a core")
NENGO_LOIHI = ("github.com/nengo/nengo-loihi @ 001283ad7beddacaa2f4254727d8369eb318d131, nengo_loihi/block.py, "
               "SynapseConfig (Loihi 1): WEIGHT_BITS_MAP [0, 1, 2, 3, 4, 5, 6, 8], bits_per_axon = synapses x bits + "
               "4 + 6 header bits, rounded up to 64-bit words")


@dataclass(frozen=True)
class Loihi2Limits:
    """What the planner assumes; every field has a source (:meth:`source`, :meth:`to_dict`).

    Memory is in SynMem words (64 bits) or, for the whole core, in the cost database's units
    (one per word, neuron, input axon). Delays are in time steps. There is no per-chip synapse
    budget: a chip holds what its cores hold (cores_per_chip x synmem_words_per_core words; Intel's
    "120M synapses" per chip, i.e. 937,500 per core, is far above what the public compiles allow:
    about 6.5M 8-bit dense synapses per chip by the fitted cost).

    Cost of one core of a dense layer (all weights stored, zeros included):
      SynMem words = input axons x ceil((neurons x bits per synapse + header bits) / 64)
      bits per synapse = stored weight width + synapse_overhead_bits (+ delay_field_bits with delays)
    """

    compiler: str = "2024-04"
    chips: int = 1
    cores_per_chip: int = 128
    neurons_per_core: int = 4095
    input_axons_per_core: int = 16_000
    synmem_words_per_core: int = 16_000
    split_rule: str = "fill"
    synmem_fill_words: Optional[float] = 12_800
    core_memory_units: Optional[int] = 20_000
    synapse_overhead_bits: int = 12
    synapse_list_header_bits: int = 10
    weight_widths: tuple = (1, 2, 3, 4, 5, 6, 8)
    delay_field_bits: int = 6
    accumulator_words_per_row: float = 1.0
    adlif_neuron_units: float = 2.0
    weight_bits: int = C.WEIGHT_BITS            # shown in the plan; checked by the network description
    max_delay: int = FIELD_LIMITS["delay"].high  # shown in the plan; checked by the network description
    overridden: frozenset = field(default=frozenset(), repr=False, compare=False)

    SOURCES = {
        "compiler": "the lava-loihi compiler whose public output the figures are fitted to (COMPILER_PROFILES)",
        "chips": "configuration: chips the network may use (Oheo Gulch boards carry 1 chip, Kapoho Point 8)",
        "cores_per_chip": ("Intel, 'Taking Neuromorphic Computing to the Next Level with Loihi 2' (technology "
                           "brief, 2021): 128 neuro-cores per chip"),
        "neurons_per_core": (f"fitted: one CUBA neuron is one unit of a 4095-unit neuron budget ({YOLO_RUN}; "
                             f"{MNIST_RUN}: 10, 64 and 50 neurons). Intel's brief says 'up to 8192' per core"),
        "input_axons_per_core": f"fitted: AxonIn is 1 unit per input of 16000 ({MNIST_RUN}: 784, 128, 64 inputs)",
        "synmem_words_per_core": (f"fitted: the Synapses column is SynMem words of 16000 per core ({MNIST_RUN}: "
                                  "12544, 2688 and 256 words by the cost formula)"),
        "split_rule": (f"fitted: 'fill' = as many neurons per core as keep SynMem within synmem_fill_words "
                       f"({MNIST_RUN}: its first layer holds 50 neurons per core, 50 + 50 + 28)"),
        "synmem_fill_words": (f"fitted: 80% of the 16000 SynMem words; any budget in [12544, 13328) gives "
                              f"{MNIST_RUN.split(' (')[0]}'s 50 neurons per core"),
        "core_memory_units": (f"fitted: the Total column is AxonIn + neuron groups + Neurons + SynMem + AxonMap + "
                              f"AxonMem over 20000 units ({MNIST_RUN}; {YOLO_RUN}); the plan also puts the "
                              "delay accumulators here (accumulator_words_per_row)"),
        "synapse_overhead_bits": (f"fitted: bits per dense synapse = stored weight width + 12, exact for every "
                                  f"allocation printed in {PILOTNET_RUNS}, {OXFORD_RUN} and {MNIST_RUN} (what "
                                  "the 12 bits hold is not public)"),
        "synapse_list_header_bits": (f"{NENGO_LOIHI} (Loihi 1); consistent with every Loihi 2 allocation above "
                                     "(any header of 2..22 bits fits them)"),
        "weight_widths": (f"{NENGO_LOIHI} (Loihi 1 has no 7-bit weight); fitted on Loihi 2: Oxford's second layer "
                          f"(7 bits by NetX) costs 16128 words, as 8-bit weights do ({OXFORD_RUN.split(' (')[0]})"),
        "delay_field_bits": ("ASSUMPTION: a synapse with its own delay (DelayDense) stores a 6-bit delay field on "
                             "top of the 12 overhead bits (Loihi 1's synapse format adds delay bits per synapse, "
                             f"{NENGO_LOIHI}); no public Loihi 2 compile of a DelayDense exists, and the 12 "
                             "bits may already hold it (then set 0)"),
        "accumulator_words_per_row": ("ASSUMPTION: a neuron that receives delays up to D keeps D + 1 dendritic "
                                      "accumulator rows (one per pending arrival step), each one unit of the core's "
                                      "memory; where Loihi 2 keeps them and at what width is not public"),
        "adlif_neuron_units": ("ASSUMPTION: an AdLIF neuron (our microcode, two 24-bit states and per-neuron "
                               "parameters) takes 2 units of the neuron budget where a CUBA neuron takes 1"),
        "weight_bits": ("Intel's Loihi 2 brief (2021): synaptic weights up to 8 bits plus a per-layer exponent "
                        "(constants.WEIGHT_BITS)"),
        "max_delay": ("lava-dl 0.6 NetX (lava/lib/dl/netx/hdf5.py) builds every DelayDense with max_delay=62 "
                      "(constants.LOIHI_MAX_DELAY)"),
    }

    def __post_init__(self):
        for name in ("chips", "cores_per_chip", "neurons_per_core", "input_axons_per_core", "synmem_words_per_core"):
            if getattr(self, name) < 1:
                raise ValueError(f"Loihi2Limits.{name} must be at least 1, got {getattr(self, name)}")
        if self.split_rule not in ("fill", "ratio"):
            raise ValueError(f"Loihi2Limits.split_rule must be 'fill' or 'ratio', got {self.split_rule!r}")
        if self.split_rule == "fill" and not (self.synmem_fill_words and self.synmem_fill_words > 0):
            raise ValueError("Loihi2Limits.synmem_fill_words must be positive with split_rule='fill'")
        if self.core_memory_units is not None and self.core_memory_units < 1:
            raise ValueError("Loihi2Limits.core_memory_units must be positive (or None: not checked)")
        for name in ("synapse_overhead_bits", "synapse_list_header_bits", "delay_field_bits",
                     "accumulator_words_per_row", "adlif_neuron_units"):
            if getattr(self, name) < 0:
                raise ValueError(f"Loihi2Limits.{name} must be >= 0, got {getattr(self, name)}")
        if not self.weight_widths or list(self.weight_widths) != sorted(set(self.weight_widths)):
            raise ValueError("Loihi2Limits.weight_widths must be increasing widths in bits, e.g. (1, 2, 3, 4, 5, 6, 8)")

    @property
    def total_cores(self) -> int:
        return self.chips * self.cores_per_chip

    @property
    def synmem_budget_words(self) -> float:
        """SynMem words the planner lets one core use: the fill budget, or the whole register."""
        return float(self.synmem_fill_words if self.split_rule == "fill" else self.synmem_words_per_core)

    def stored_weight_bits(self, weight_bits: int) -> int:
        """The width a synapse stores for a layer of ``weight_bits`` (NetX's num_weight_bits):
        the next width the synapse format has (7 -> 8). Wider than every width (NetX gives 9 bits to
        odd weights beyond +-127): counted as ``weight_bits``; no public compile shows such a layer."""
        for width in self.weight_widths:
            if width >= weight_bits:
                return width
        return int(weight_bits)

    def source(self, name: str) -> str:
        if name in self.overridden:
            return "user setting"
        return COMPILER_PROFILES[self.compiler]["sources"].get(name, self.SOURCES[name])

    def to_dict(self) -> dict:
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "overridden"}
        values["weight_widths"] = list(self.weight_widths)
        return {name: {"value": value, "source": self.source(name)} for name, value in values.items()}

    @classmethod
    def from_overrides(cls, overrides: Optional[dict] = None) -> "Loihi2Limits":
        """A compiler profile (``overrides["compiler"]``, default the newest) with the other
        ``overrides`` (field name -> value) applied; unknown names and profiles are refused."""
        overrides = dict(overrides or {})
        known = {f.name for f in fields(cls)} - {"overridden"}
        unknown = sorted(set(overrides) - known)
        fixed = sorted(set(overrides) & {"max_delay", "weight_bits"})
        if fixed:
            raise ValueError(f"Loihi 2 limit(s) {', '.join(fixed)} are field ranges of the network description "
                             "(snn_toolchain.quantized_network.FIELD_LIMITS), not planner settings")
        if unknown:
            raise ValueError(f"unknown Loihi 2 limit(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        compiler = overrides.pop("compiler", LOIHI2_LIMITS.compiler)
        base = compiler_limits(compiler)
        if "weight_widths" in overrides:
            overrides["weight_widths"] = tuple(overrides["weight_widths"])
        return replace(base, **overrides, overridden=frozenset(overrides))


# Three lava-loihi versions left public compile output; their figures and split rules differ, so
# each is a profile, fitted to its own runs. Where a run does not show a figure, the newest
# profile's stands in and the source says so.
_FROM_NEWEST = "not shown by this compiler's output: the 2024-04 profile's figure"
COMPILER_PROFILES = {
    "2024-04": {
        "description": "lava-loihi of the 2024 runs (MNIST, YOLO-KP): percentages of 16000 SynMem words",
        "values": {},
        "sources": {},
    },
    "2022-10": {
        "description": "lava-loihi of the 2022-10..2023-01 PilotNet runs: SynMem register 12000, split by ratio",
        "values": dict(synmem_words_per_core=12_000, split_rule="ratio", synmem_fill_words=None,
                       core_memory_units=None),
        "sources": {
            "synmem_words_per_core": f"{PILOTNET_RUNS}: 'registers=12000'",
            "split_rule": (f"fitted: 'ratio' = split a layer's neurons by ceil(SynMem words / register) until every "
                           f"core fits ({PILOTNET_RUNS}: 61440 words -> ratio 6 -> 17 neurons, 12800 words -> ratio "
                           "2 -> 9 neurons, 12 cores = 11 x 9 + 1; its 7253 words per core on average)"),
            "synmem_fill_words": "not used by split_rule='ratio'",
            "core_memory_units": "not shown by this compiler's output: not checked",
            "neurons_per_core": _FROM_NEWEST, "input_axons_per_core": _FROM_NEWEST,
        },
    },
    "2022-09": {
        "description": "lava-loihi of the 2022-09 Oxford run: SynMem register 12000, fills 8192 words",
        "values": dict(synmem_words_per_core=12_000, split_rule="fill", synmem_fill_words=8_192,
                       core_memory_units=None),
        "sources": {
            "synmem_words_per_core": f"{OXFORD_RUN}: 'registers=12000'",
            "split_rule": f"fitted to {OXFORD_RUN.split(' (')[0]} only (2 layers): fill",
            "synmem_fill_words": ("fitted to the Oxford run only: any budget in [8192, 8200) gives its 3 + 2 cores "
                                  "(8200 words for 128 neurons of the first layer, 8192 for 100 of the second); "
                                  "the public log does not show why the compiler stopped below its register"),
            "core_memory_units": "not shown by this compiler's output: not checked",
            "neurons_per_core": _FROM_NEWEST, "input_axons_per_core": _FROM_NEWEST,
        },
    },
}


# The public compiles the profiles are fitted to: the network's dense layers as (neurons, inputs),
# and the cores lava-loihi gave each layer. A plan of a network of the same layer shapes under the
# profile fitted to its compile reproduces that compile; under any other profile, or for any other
# network, its core counts are predictions (docs/deploy_loihi2.md, "Which profile to use").
@dataclass(frozen=True)
class PublicCompile:
    name: str
    layers: tuple         # (neurons, inputs) of each dense layer, in order
    cores: tuple          # cores per layer in the compile output
    compiler: str         # the profile fitted to this compile (a key of COMPILER_PROFILES)
    source: str


PUBLIC_COMPILES = (
    PublicCompile("lava-dl's Oxford 200-256-200", ((256, 200), (200, 256)), (3, 2), "2022-09", OXFORD_RUN),
    PublicCompile("lava-dl's MNIST 784-128-64-10", ((128, 784), (64, 128), (10, 64)), (3, 1, 1), "2024-04", MNIST_RUN),
    PublicCompile("lava-dl's PilotNet dense layers 2560-100-50-10-1", ((100, 2560), (50, 100), (10, 50), (1, 10)),
                  (12, 1, 1, 1), "2022-10", PILOTNET_RUNS),
)

# Why the default profile is 2024-04 (docs/deploy_loihi2.md says the same, with what each profile predicts)
DEFAULT_PROFILE_REASON = ("the newest lava-loihi whose output is public (2024), so the closest to what an INRC member "
                          "installs today; fitted to MNIST alone, it plans Oxford at 2 + 2 = 4 cores (real 5 under "
                          "the 2022 compiler) and PilotNet's dense layers at 5 + 1 + 1 + 1 (real 12 + 1 + 1 + 1)")


def public_compile_of(layer_shapes) -> Optional[PublicCompile]:
    """The public compile of a network whose dense layers have these (neurons, inputs), None if none."""
    shapes = tuple((int(n), int(i)) for n, i in layer_shapes)
    return next((run for run in PUBLIC_COMPILES if run.layers == shapes), None)


def compiler_limits(compiler: str) -> Loihi2Limits:
    """The limits of one compiler profile (a key of :data:`COMPILER_PROFILES`)."""
    if compiler not in COMPILER_PROFILES:
        raise ValueError(f"unknown lava-loihi compiler profile {compiler!r}; known: {', '.join(COMPILER_PROFILES)}")
    return replace(Loihi2Limits(), compiler=compiler, **COMPILER_PROFILES[compiler]["values"])


LOIHI2_LIMITS = Loihi2Limits()
