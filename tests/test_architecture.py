"""The dependency direction of the product folders, checked on the source (an AST walk, no imports):

    core (snn_toolchain/)  <-  train/  <-  export/  <-  lava_models/  <-  cli, api (snn_toolchain/cli/, api.py)

A module may import its own layer and the layers to its left, never one to its right, not even
inside a function, through a relative import or through an ``import_module("...")`` string. Only
lava_models/ (and the CLI above it) import the Lava runtime: training and export must run where Lava
cannot be installed. No two modules of one layer import each other, directly or round a longer
cycle. docs/architecture.md explains the layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYER_ORDER = ("core", "train", "export", "lava_models", "cli")
TOP_MODULES = ("cli", "api")   # the top layer, under snn_toolchain/: the CLI package and the flat public API (api.py)
FOLDER_LAYERS = {"snn_toolchain": "core", "train": "train", "export": "export", "lava_models": "lava_models"}


def layer_of_file(path: Path, root: Path = REPO) -> str:
    """``snn_toolchain/api.py`` and every file under ``snn_toolchain/cli/`` are the top layer."""
    parts = path.relative_to(root).parts
    if parts[0] == "snn_toolchain" and len(parts) > 1 and Path(parts[1]).stem in TOP_MODULES:
        return "cli"
    return FOLDER_LAYERS[parts[0]]


def layer_of_module(module: str) -> str | None:
    """The layer of an absolute import of the project, None for anything else."""
    parts = module.split(".")
    if parts[0] != "snn_toolchain":
        return None
    if len(parts) > 1 and parts[1] in ("train", "export", "lava_models"):
        return parts[1]
    if len(parts) > 1 and parts[1] in TOP_MODULES:
        return "cli"
    return "core"


PACKAGE_OF_FOLDER = {"snn_toolchain": "snn_toolchain", "train": "snn_toolchain.train",
                     "export": "snn_toolchain.export", "lava_models": "snn_toolchain.lava_models"}


def module_of_file(path: Path, root: Path = REPO) -> str:
    """The import name of a product file (``train/model/blocks.py`` -> ``snn_toolchain.train.model.blocks``)."""
    relative = path.relative_to(root).with_suffix("")
    parts = [part for part in relative.parts[1:] if part != "__init__"]
    return ".".join([PACKAGE_OF_FOLDER[relative.parts[0]], *parts])


def _absolute(node: ast.ImportFrom, importer: str | None, is_package: bool) -> str | None:
    if node.level == 0:
        return node.module
    if importer is None:
        return None
    base = importer.split(".")
    base = base[:len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_modules(tree: ast.AST, importer: str | None = None, is_package: bool = False):
    """(line, module) of every import in ``tree``, at any depth (inside functions too): relative
    imports resolved against ``importer`` (the file's module), ``from pkg import name`` also as
    ``pkg.name`` (it may be a module), and the literal of every ``import_module("...")`` call."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, importer, is_package)
            if not module:
                continue
            yield node.lineno, module
            if module.split(".")[0] == "snn_toolchain":
                for alias in node.names:
                    yield node.lineno, f"{module}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name == "import_module":
                yield node.lineno, node.args[0].value


def _product_files(root: Path):
    """Every product file once, under its card folder: ``train/`` is a link to
    ``snn_toolchain/train/`` (and so on), whose files belong to their own layer, not to the core."""
    for folder in FOLDER_LAYERS:
        for path in sorted((root / folder).rglob("*.py")):
            parts = path.relative_to(root).parts
            if folder == "snn_toolchain" and parts[1] in FOLDER_LAYERS:
                continue
            yield path, module_of_file(path, root), path.name == "__init__.py"


def violations(root: Path = REPO) -> list[str]:
    found = []
    for path, module_name, is_package in _product_files(root):
        layer = layer_of_file(path, root)
        tree = ast.parse(path.read_text(), filename=str(path))
        reported = set()   # (line, layer): "from pkg import name" also yields pkg.name; say it once
        for line, module in imported_modules(tree, module_name, is_package):
            target = layer_of_module(module)
            where = f"{path.relative_to(root)}:{line}"
            if target is not None and LAYER_ORDER.index(target) > LAYER_ORDER.index(layer) \
                    and (line, target) not in reported:
                reported.add((line, target))
                found.append(f"{where}: {layer} imports {module} ({target} is above it)")
            if module.split(".")[0] == "lava" and layer in ("core", "train", "export"):
                found.append(f"{where}: {layer} imports the Lava package ({module})")
    return sorted(set(found))


def import_cycles(root: Path = REPO) -> list[list[str]]:
    """The sets of product modules that import each other round a cycle (imports inside functions
    count: a lazy import is still a dependency), each sorted; Tarjan's strongly connected components."""
    files = list(_product_files(root))
    known = {name for _, name, _ in files}
    graph = {name: set() for name in known}
    for path, name, is_package in files:
        for _, module in imported_modules(ast.parse(path.read_text()), name, is_package):
            if module in known and module != name and not name.startswith(module + "."):
                graph[name].add(module)
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


def test_no_modules_import_each_other():
    assert import_cycles() == []


def test_every_import_points_down_the_layers():
    assert violations() == []


def test_the_check_fails_on_a_wrong_import(tmp_path):
    # a copy of the layout with one deliberate violation of each kind
    for folder in FOLDER_LAYERS:
        (tmp_path / folder).mkdir()
    (tmp_path / "snn_toolchain" / "constants.py").write_text("X = 1\n")
    (tmp_path / "train" / "blocks.py").write_text(
        "from snn_toolchain import constants\n\ndef quantize():\n    from snn_toolchain.export.netfile import write_net\n")
    (tmp_path / "export" / "netfile.py").write_text("import snn_toolchain.train.model.blocks\n")
    (tmp_path / "lava_models" / "net.py").write_text("from snn_toolchain import cli\n")
    (tmp_path / "snn_toolchain" / "errors.py").write_text(
        "def main():\n    from snn_toolchain.cli.parser import build_parser\n")
    # the top layer may import every layer, and Lava: no violation in these
    (tmp_path / "snn_toolchain" / "cli").mkdir()
    (tmp_path / "snn_toolchain" / "cli" / "commands_run.py").write_text(
        "import snn_toolchain.lava_models.net\nfrom lava.magma.core.run_configs import Loihi2SimCfg\n")
    (tmp_path / "snn_toolchain" / "api.py").write_text("from snn_toolchain.lava_models import net\n")
    (tmp_path / "train" / "sim.py").write_text("from lava.magma.core.run_configs import Loihi2SimCfg\n")
    (tmp_path / "export" / "plan.py").write_text("import lava.magma.core\n")
    (tmp_path / "train" / "up.py").write_text("from ..export import netfile\n")
    (tmp_path / "train" / "late.py").write_text(
        "import importlib\n\ndef f():\n    return importlib.import_module('snn_toolchain.lava_models.net')\n")
    found = violations(tmp_path)
    assert found == sorted([
        "lava_models/net.py:1: lava_models imports snn_toolchain.cli (cli is above it)",
        "snn_toolchain/errors.py:2: core imports snn_toolchain.cli.parser (cli is above it)",
        "train/blocks.py:4: train imports snn_toolchain.export.netfile (export is above it)",
        "train/sim.py:1: train imports the Lava package (lava.magma.core.run_configs)",
        "export/plan.py:1: export imports the Lava package (lava.magma.core)",
        "train/up.py:1: train imports snn_toolchain.export (export is above it)",
        "train/late.py:4: train imports snn_toolchain.lava_models.net (lava_models is above it)",
    ])


def test_the_cycle_check_finds_a_lazy_cycle_inside_a_layer(tmp_path):
    for folder in FOLDER_LAYERS:
        (tmp_path / folder).mkdir()
    (tmp_path / "train" / "recurrence.py").write_text("def f():\n    from snn_toolchain.train import fast  # lazy\n")
    (tmp_path / "train" / "fast.py").write_text("from .recurrence import f\n")
    (tmp_path / "train" / "alone.py").write_text("from snn_toolchain.train import recurrence\n")
    assert import_cycles(tmp_path) == [["snn_toolchain.train.fast", "snn_toolchain.train.recurrence"]]


@pytest.mark.parametrize("module, layer", [("snn_toolchain", "core"), ("snn_toolchain.quantized_network", "core"),
                                           ("snn_toolchain.train.model.blocks", "train"), ("snn_toolchain.cli", "cli"),
                                           ("snn_toolchain.cli.parser", "cli"), ("snn_toolchain.api", "cli"),
                                           ("snn_toolchain.lava_models", "lava_models"), ("torch", None)])
def test_layer_of_module(module, layer):
    assert layer_of_module(module) == layer


@pytest.mark.parametrize("file, layer", [("snn_toolchain/cli/__init__.py", "cli"), ("snn_toolchain/cli/parser.py", "cli"),
                                         ("snn_toolchain/api.py", "cli"), ("snn_toolchain/atomic.py", "core"),
                                         ("snn_toolchain/neurons/adlif.py", "core"), ("export/netfile.py", "export")])
def test_layer_of_file(file, layer):
    assert layer_of_file(REPO / file) == layer


def unexplained_function_imports(root: Path = REPO) -> list[str]:
    """Imports of the project's own modules inside functions without a reason on their line (a
    ``# ...`` comment): allowed only for heavy optional dependencies (Lava, Triton, matplotlib,
    torchaudio) and start-up time. The CLI and the API import lazily by design (their docstrings
    say why) and are not checked."""
    found = []
    for folder in FOLDER_LAYERS:
        for path in sorted((root / folder).rglob("*.py")):
            if layer_of_file(path, root) == "cli":
                continue
            source = path.read_text()
            lines = source.splitlines()
            for function in ast.walk(ast.parse(source)):
                if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                for node in ast.walk(function):
                    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("snn_toolchain") \
                            and "#" not in lines[node.end_lineno - 1]:
                        found.append(f"{path.relative_to(root)}:{node.lineno}: {node.module}")
    return sorted(set(found))


def test_imports_inside_functions_say_why():
    assert unexplained_function_imports() == []


def test_the_function_import_check_leaves_out_only_the_top_layer(tmp_path):
    for folder in FOLDER_LAYERS:
        (tmp_path / folder).mkdir()
    (tmp_path / "snn_toolchain" / "cli").mkdir()
    lazy = "def f():\n    from snn_toolchain.errors import ToolchainError\n"
    for file in ("snn_toolchain/cli/commands_run.py", "snn_toolchain/api.py", "snn_toolchain/atomic.py", "train/late.py"):
        (tmp_path / file).write_text(lazy)
    (tmp_path / "export" / "said.py").write_text(lazy.replace("ToolchainError", "ToolchainError  # start-up time"))
    assert unexplained_function_imports(tmp_path) == ["snn_toolchain/atomic.py:2: snn_toolchain.errors",
                                                      "train/late.py:2: snn_toolchain.errors"]


