"""The public Python API, flat: everything a script needs from data to Lava, in one namespace.

    from snn_toolchain import api
    splits = api.build_datasets("shd")                        # the embedded set, SHD layout
    result = api.train(api.preset_config("shd", embedded=True, epochs=5), "runs/demo", splits=splits)
    network = api.quantize_model(result.model, splits.time_steps)
    api.write_net(network, "runs/demo/model.net")
    fixed = api.Emulator(network).evaluate(splits.test)
    report = api.parity_check("runs/demo/model.net", splits, 8)   # emulator vs Lava fixed_pt

``examples/quickstart.py`` runs exactly this (CI executes it); docs/api.md lists every name.
This module sits at the top of the layers (docs/architecture.md), beside the CLI: it may import
all of them. The names that need Lava are imported on first use, so ``import snn_toolchain.api``
works where Lava is not installed.
"""

from __future__ import annotations

from snn_toolchain.errors import DataFormatError, ToolchainError
from snn_toolchain.export.emulator import EmulationResult, Emulator
from snn_toolchain.export.exporter import export_run
from snn_toolchain.export.loihi2_plan import LOIHI2_LIMITS, Loihi2Limits, plan_partition
from snn_toolchain.export.netfile import NetFileError, read_net, write_net
from snn_toolchain.quantized_network import FIELD_LIMITS, NetworkError, QuantizedLayer, QuantizedNetwork
from snn_toolchain.neurons.interface import NeuronKind
from snn_toolchain.neurons.registry import NEURON_KINDS, register_neuron_kind
from snn_toolchain.neurons.dynamics import (
    BOUNDS_PRESETS,
    NEURON_BOUNDS,
    FixedNeuronParams,
    NeuronParams,
    NeuronState,
    adlif_fixed_step,
    adlif_float_step,
    resolve_bounds,
)
from snn_toolchain.train.model.delay_snn import DelaySNN
from snn_toolchain.train.model.model_evaluation import evaluate_model
from snn_toolchain.train.loop.config import PRESETS, TABLE1_VARIANTS, TrainConfig, preset_config
from snn_toolchain.evaluation import RunResult, compare_runs, evaluate_backend
from snn_toolchain.train.data.loading import DatasetSplits, build_datasets, make_loader
from snn_toolchain.train.data.registry import DatasetSpec, register_dataset
from snn_toolchain.train.model.float_backend import FloatModelBackend
from snn_toolchain.input_encoding import GradedInputEncoding, fit_encoding
from snn_toolchain.train.model.quantize import quantize_model
from snn_toolchain.train.loop.regularization import ActivityRegularizer, SynapsePruner
from snn_toolchain.train.sweeps.sweep import DataSource, run_sweep
from snn_toolchain.train.model.checkpoint import load_model
from snn_toolchain.train.loop.trainer import TrainResult, train

# name -> module, imported on first access (they import Lava or matplotlib)
_LAZY = {
    "run_lava": "snn_toolchain.lava_models.lava_backend",
    "build_lava_network": "snn_toolchain.lava_models.build",
    "LavaBackend": "snn_toolchain.lava_models.lava_backend",
    "register_lava_neuron_process": "snn_toolchain.lava_models.neuron_processes",
    "parity_check": "snn_toolchain.lava_models.parity",
    "ParityReport": "snn_toolchain.lava_models.parity",
    "deploy": "snn_toolchain.lava_models.loihi2",
    "build_report": "snn_toolchain.export.report",
    # NIR and the frontier (the nir package; matplotlib)
    "export_nir": "snn_toolchain.export.nir_export",
    "model_to_nir": "snn_toolchain.export.nir_export",
    "import_nir": "snn_toolchain.export.nir_import",
    "nir_to_network": "snn_toolchain.export.nir_import",
    "simulate_nir": "snn_toolchain.export.nir_simulate",
    "run_frontier": "snn_toolchain.export.frontier",
}

__all__ = sorted([
    "ActivityRegularizer", "SynapsePruner", "GradedInputEncoding", "fit_encoding", "BOUNDS_PRESETS", "DataFormatError", "DataSource", "DatasetSpec", "DatasetSplits", "DelaySNN", "EmulationResult", "Emulator",
    "FIELD_LIMITS", "FixedNeuronParams", "FloatModelBackend", "NEURON_KINDS", "NeuronKind", "RunResult",
    "compare_runs", "evaluate_backend", "register_dataset", "register_neuron_kind", "LOIHI2_LIMITS", "Loihi2Limits", "NEURON_BOUNDS", "NetFileError",
    "NetworkError", "NeuronParams", "NeuronState", "PRESETS", "QuantizedLayer", "QuantizedNetwork",
    "TABLE1_VARIANTS", "ToolchainError", "TrainConfig", "TrainResult", "adlif_fixed_step", "adlif_float_step",
    "build_datasets", "evaluate_model", "export_run", "load_model", "make_loader", "plan_partition",
    "preset_config", "quantize_model", "read_net", "resolve_bounds", "run_sweep", "train", "write_net",
    *_LAZY,
])


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
