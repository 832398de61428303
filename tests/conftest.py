"""Shared setup of the test suite (the fixtures several test files use: a tiny SHD folder and a
finished training run in two sizes), and the tier every test is sorted into. Which test file tests
which product module: tests/README.md.

Tiers are markers (registered in pyproject.toml) that this file sets on every collected test (those
of hardware_tests/ too); no test file sets them. ``scripts/test.sh --quick`` runs
``-m "unit and not long"``.

- ``lava``: the test needs the Lava runtime. Its reach (below) imports from ``lava``, or uses code of
  ``snn_toolchain.lava_models`` that does; or it runs the command line with a command that runs
  Lava: a command list whose first word is ``pipeline``, ``parity`` or ``deploy``, ``run`` without
  ``emulator`` in the list, or a list holding ``--parity-samples`` (the default pipeline's closing
  parity check).
- ``e2e``: the test drives the toolchain end to end: it calls the command line (``main`` of
  ``snn_toolchain.cli``, the ``cli_support`` helpers, or ``snn_toolchain.cli`` / ``train-export`` run
  in a subprocess) or a training loop (``train``, ``run_sweep``, ``train_runs`` or ``run_frontier``
  of the ``snn_toolchain`` package: whole epochs, with data loading, checkpoints and metrics).
  Hand-written optimiser steps inside a test do not count.
- ``unit``: neither of the two.

A test may be ``lava`` and ``e2e`` at once (the CLI's pipeline, a parity check of a trained model):
it carries both. ``unit`` goes with neither. ``long`` is independent of the tiers, set in the files.

**Reach** of a test, read from the source with ``ast`` at collection (nothing is imported or run
for it): the test function; every fixture it uses (its whole closure, autouse included) that is
defined in this repository; the functions, classes and constants of their own files that they name,
transitively; the helpers of other files of tests/ they import (``lava_support``, ``training_support``);
worker functions named ``"module:function"`` in a string (``lava_support.run_isolated``); and,
where the reach uses ``subprocess``: Python source held in a string (a script a test writes,
``python -c``), the ``.py`` programs of examples/ and scripts/ it names, its own file's
``if __name__ == "__main__"`` block when it runs ``__file__``, and the programs of PROGRAM_TIERS
(whose tiers the reading cannot see). A name counts by what it is bound to (``cli_main`` is
``snn_toolchain.cli.main``); docstrings do not count.

**Inside** ``snn_toolchain.lava_models`` (which imports Lava lazily, inside functions) the same
reading decides whether a name the test uses needs Lava: importing a module runs its top-level
imports; using a function or class runs its body and whatever of lava_models it names. What the code
only registers (a builder in a table) does not count, nor does a name the test swaps out with
``monkeypatch.setattr(obj, "name", ...)`` (a stand-in for the Lava runner keeps a test off ``lava``).
Otherwise the rule errs toward ``lava``: code that would reach Lava counts even where the test
expects a refusal before it does, and a lava_models module that cannot be found counts as Lava.
The tier is a test's own, not its file's: test_lava_adlif.py holds ``unit`` tests of its references.

A tier marker written on a test wins over the rule (none is written now). A test whose source cannot
be read gets ``lava`` and ``e2e`` (kept out of the quick tier).
"""

from __future__ import annotations

import ast
import inspect
import re
import signal
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parent

# A suite started in the background of a non-interactive shell (`cmd &`, nohup) inherits SIGINT
# ignored, and every process it starts keeps it ignored: the Ctrl-C tests (test_shutdown.py,
# test_sweep.py) would fail for the runner's reason, not the product's. Python's own handler is
# restored; an exec in a child turns it back into the default, which the child's Python handles.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Makes the test helpers in this folder (official_layout.py) importable from every test module.
sys.path.insert(0, str(TESTS_DIR))

from cli_support import small_train_args  # noqa: E402  (importable once the folder is on the path)
from official_layout import write_shd_folder  # noqa: E402
from snn_toolchain.cli import main as cli_main  # noqa: E402

TIERS = ("unit", "lava", "e2e")
LAVA_MODELS_DIR = REPO / "snn_toolchain" / "lava_models"
TRAINING_LOOPS = {"train", "run_sweep", "train_runs", "run_frontier"}
CLI_PROGRAM_NAMES = {"snn_toolchain.cli", "snn_toolchain", "train-export"}   # what a subprocess is told to run
LAVA_COMMANDS = {"pipeline", "parity", "deploy"}                              # and "run", unless on the emulator
# Programs a test may run in a subprocess whose tiers the reading cannot see: a shell script, and an
# example that reaches Lava through the lazy re-exports of snn_toolchain.api.
PROGRAM_TIERS = {
    "demo.sh": {"e2e", "lava"},          # train-export --dataset shd: the pipeline, with its Lava parity check
    "quickstart.py": {"e2e", "lava"},    # trains, exports, then api.parity_check on Lava
}
_WORKER = re.compile(r"^([A-Za-z_]\w*):([A-Za-z_]\w*)$")


# ------------------------------------------------------------------------------ reading source

class _Source:
    """One file (or a string of Python source): its top-level definitions and imports."""

    def __init__(self, text: str, name: str, path: Path | None = None, namespace: dict | None = None):
        self.name, self.path, self.namespace = name, path, namespace or {}
        self.tree = ast.parse(text, name)
        self.defs: dict[str, list] = {}        # name -> def / class / assignment nodes
        self.imports: dict[str, str] = {}      # bound name -> dotted target
        self.top_imports: list[str] = []       # what importing the module imports
        self.main_blocks: list = []            # the bodies of `if __name__ == "__main__"`
        self.functions: dict[tuple, ast.AST] = {}   # (name, first line) -> def, anywhere in the file
        for node in _top_level(self.tree.body):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.defs.setdefault(node.name, []).append(node)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                for target in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                    for leaf in ast.walk(target):
                        if isinstance(leaf, ast.Name):
                            self.defs.setdefault(leaf.id, []).append(node)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                self.imports.update(_bindings(node))
                self.top_imports.extend(_imported(node))
            elif isinstance(node, ast.If) and "__main__" in ast.dump(node.test):
                self.main_blocks.append(node)
        for node in ast.walk(self.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                self.functions.setdefault((node.name, first), node)
                self.functions.setdefault((node.name, None), node)


def _top_level(body):
    for node in body:
        yield node
        if isinstance(node, (ast.If, ast.Try, ast.With)) and not (
                isinstance(node, ast.If) and "__main__" in ast.dump(node.test)):
            for part in ("body", "orelse", "finalbody"):
                yield from _top_level(getattr(node, part, []))
            for handler in getattr(node, "handlers", []):
                yield from _top_level(handler.body)


def _bindings(node) -> dict:
    """bound name -> dotted target, of an import statement (``import a.b`` binds ``a``)."""
    bound = {}
    for alias in node.names:
        if isinstance(node, ast.Import):
            bound[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        elif node.level == 0 and node.module and alias.name != "*":
            bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return bound


def _imported(node) -> list:
    """Every dotted name an import statement imports (``import a.b`` imports ``a.b``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    return list(_bindings(node).values())


_FILES: dict = {}


def _file(path: Path) -> _Source | None:
    path = Path(path).resolve()
    if path not in _FILES:
        try:
            text = path.read_text()
            module = sys.modules.get(path.stem)
            same = module is not None and getattr(module, "__file__", None) and Path(module.__file__).resolve() == path
            _FILES[path] = _Source(text, str(path), path, vars(module) if same else None)
        except (OSError, SyntaxError, ValueError):
            _FILES[path] = None
    return _FILES[path]


def _test_helper(dotted: str) -> _Source | None:
    """The test file a dotted name lives in (``lava_support.run_isolated``), if any."""
    head = dotted.split(".")[0]
    for folder in (TESTS_DIR, REPO / "hardware_tests"):
        if (folder / f"{head}.py").is_file():
            return _file(folder / f"{head}.py")
    return None


_FUNCTION_NODES: dict = {}


def _function_node(function):
    """(source, def node) of a test or fixture function defined in this repository, else None."""
    function = inspect.unwrap(function)
    key = (getattr(function, "__qualname__", None), getattr(function, "__code__", function))
    if key not in _FUNCTION_NODES:
        _FUNCTION_NODES[key] = _find_function_node(function)
    return _FUNCTION_NODES[key]


def _find_function_node(function):
    try:
        path = Path(inspect.getsourcefile(function)).resolve()
    except TypeError:
        return None
    if REPO not in path.parents:
        return None               # pytest's own fixtures (tmp_path, capsys, ...)
    source = _file(path)
    if source is None:
        return None
    node = (source.functions.get((function.__name__, function.__code__.co_firstlineno))
            or source.functions.get((function.__name__, None)))
    return (source, node) if node is not None else None


# ------------------------------------------------------------------------------ Lava, inside lava_models

def _is_lava_runtime(dotted: str) -> bool:
    return dotted == "lava" or dotted.startswith("lava.")


def _lava_models_part(dotted: str):
    parts = dotted.split(".")
    if parts[:2] == ["snn_toolchain", "lava_models"]:
        return parts[2:]
    if parts[0] == "lava_models":
        return parts[1:]
    return None


def _lava_models_file(rest: list):
    """(source, names inside it) of a dotted name below lava_models; None if no such file."""
    for cut in range(len(rest), -1, -1):
        folder = LAVA_MODELS_DIR.joinpath(*rest[:cut])
        for path in ([folder.with_suffix(".py")] if cut else []) + [folder / "__init__.py"]:
            if path.is_file():
                source = _file(path)
                return (source, rest[cut:]) if source is not None else None
    return None


_NEEDS_LAVA: dict = {}


def _needs_lava(dotted: str, replaced: frozenset = frozenset(), active: frozenset = frozenset()) -> bool:
    """Whether importing (a module) or using (a function, a class) ``dotted`` imports Lava; names in
    ``replaced`` (swapped out by the test) are not followed."""
    if _is_lava_runtime(dotted):
        return True
    rest = _lava_models_part(dotted)
    if rest is None:
        return False
    found = _lava_models_file(rest)
    if found is None:
        return True                                  # not found (moved?): count it
    source, names = found
    if names and names[0] in replaced:
        return False
    key = (source.name, names[0] if names else None, replaced)
    if key in _NEEDS_LAVA:
        return _NEEDS_LAVA[key]
    if key in active:
        return False
    active = active | {key}
    if not names:      # importing the module: its top-level imports, loaded in turn
        result = any(_is_lava_runtime(t) for t in source.top_imports) or any(
            _needs_lava(_module_of(t), replaced, active) for t in source.top_imports if _lava_models_part(t) is not None)
    else:
        result = _needs_lava(".".join(["snn_toolchain", "lava_models"] + _relative(source)), replaced, active) or \
            _body_needs_lava(source, source.defs.get(names[0], []), replaced, active)
    _NEEDS_LAVA[key] = result
    return result


def _relative(source: _Source) -> list:
    parts = list(Path(source.path).relative_to(LAVA_MODELS_DIR).with_suffix("").parts)
    return parts[:-1] if parts and parts[-1] == "__init__" else parts


def _module_of(dotted: str) -> str:
    """The module part of a dotted import target below lava_models (``...build.LavaRunner`` -> ``...build``)."""
    found = _lava_models_file(_lava_models_part(dotted))
    return dotted if found is None else ".".join(["snn_toolchain", "lava_models"] + _relative(found[0]))


def _body_needs_lava(source: _Source, nodes: list, replaced: frozenset, active: frozenset) -> bool:
    todo, seen = list(nodes), set()
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for sub in ast.walk(node):
            targets = []
            if isinstance(sub, (ast.Import, ast.ImportFrom)):
                targets = _imported(sub)
            elif isinstance(sub, ast.Name) and sub.id in replaced:
                continue
            elif isinstance(sub, ast.Name) and sub.id in source.defs:
                todo.extend(source.defs[sub.id])
            elif isinstance(sub, ast.Name) and sub.id in source.imports:
                targets = [source.imports[sub.id]]
            if any(_needs_lava(target, replaced, active) for target in targets):
                return True
    return False


# ------------------------------------------------------------------------------ the reach

class _Scan:
    """What one node of a test file names, read once and kept."""

    def __init__(self, source: _Source, node):
        self.facts, self.strings, self.command_lists, self.replaced = set(), set(), [], set()
        self.next, self.embedded, self.programs, self.runs_own_file = [], [], set(), False
        docstrings = set()       # bare string statements; ast.walk reaches a statement before its value
        bindings, attributes = dict(source.imports), []
        for sub in ast.walk(node):
            if isinstance(sub, ast.Expr) and isinstance(sub.value, ast.Constant):
                docstrings.add(id(sub.value))
            elif isinstance(sub, (ast.Import, ast.ImportFrom)):
                self.facts.update(_imported(sub))
                bindings.update(_bindings(sub))
            elif isinstance(sub, ast.Name):
                if sub.id == "__file__":
                    self.runs_own_file = True
                self._name(source, sub.id)
            elif isinstance(sub, ast.Attribute):
                attributes.append(_dotted(sub))
            elif isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and sub.func.attr == "setattr" \
                    and _dotted(sub.func) and _dotted(sub.func).split(".")[0] == "monkeypatch":
                names = [a.value for a in sub.args[:2] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
                self.replaced.update(name.rsplit(".", 1)[-1] for name in names)
            elif isinstance(sub, (ast.List, ast.Tuple)):
                words = {e.value for e in sub.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
                firsts = [e for e in sub.elts if not isinstance(e, ast.Starred)]
                first = firsts[0].value if firsts and isinstance(firsts[0], ast.Constant) else None
                self.command_lists.append((first, words))
            elif isinstance(sub, ast.Constant) and isinstance(sub.value, str) and id(sub) not in docstrings:
                self._string(sub.value)
        for dotted in attributes:            # module.name, once the imports inside the code are known too
            head, _, rest = (dotted or "").partition(".")
            if head in bindings and rest:
                self.facts.add(f"{bindings[head]}.{rest}")

    def _name(self, source: _Source, name: str) -> None:
        if name in source.defs:
            self.next.extend((source, node) for node in source.defs[name])
            return
        if name not in source.imports:
            return
        target = source.imports[name]
        self.facts.add(target)
        value = source.namespace.get(name)
        if inspect.ismodule(value):
            self.facts.add(value.__name__)
        elif isinstance(getattr(value, "__module__", None), str) and isinstance(getattr(value, "__qualname__", None), str):
            self.facts.add(f"{value.__module__}.{value.__qualname__}")     # what a re-export really is
        helper = _test_helper(target)
        if helper is not None and "." in target:
            self.next.extend((helper, node) for node in helper.defs.get(target.split(".", 1)[1], []))

    def _string(self, text: str) -> None:
        self.strings.add(text)
        worker = _WORKER.match(text)
        if worker:
            helper = _test_helper(worker.group(1))
            if helper is not None:
                self.next.extend((helper, node) for node in helper.defs.get(worker.group(2), []))
            return
        if "import" in text:
            try:
                embedded = _Source(text, f"<string {hash(text)}>")
            except (SyntaxError, ValueError):
                pass
            else:
                self.embedded.append((embedded, embedded.tree))
                return
        name = text.rsplit("/", 1)[-1]
        if name in PROGRAM_TIERS or (name.endswith(".py") and "\n" not in name):
            for folder in (REPO / "examples", REPO / "scripts"):
                if (folder / name).is_file():
                    self.programs.add(folder / name)


_SCANS: dict = {}


class _Reach:
    def __init__(self):
        self.facts: set[str] = set()
        self.strings: set[str] = set()
        self.command_lists: list = []
        self.programs: set[Path] = set()
        self.replaced: set[str] = set()       # names the test swaps out with monkeypatch.setattr
        self._run_later: list = []
        self._seen: set = set()

    def walk(self, source: _Source, node) -> None:
        todo = [(source, node)]
        while todo:
            source, node = todo.pop()
            key = (source.name, id(node))
            if key in self._seen:
                continue
            self._seen.add(key)
            scan = _SCANS.get(key)
            if scan is None:
                scan = _SCANS[key] = _Scan(source, node)
            self.facts |= scan.facts
            self.strings |= scan.strings
            self.command_lists.extend(scan.command_lists)
            self.programs |= scan.programs
            self.replaced |= scan.replaced
            todo.extend(scan.next)
            self._run_later.extend(scan.embedded)
            if scan.runs_own_file:
                self._run_later.extend((source, block) for block in source.main_blocks)

    def runs_subprocess(self) -> bool:
        return any(fact == "subprocess" or fact.startswith("subprocess.") for fact in self.facts)

    def read_what_it_runs(self) -> None:
        """Code in strings, programs and main blocks count only where the test runs a subprocess."""
        done = set()
        while self.runs_subprocess() and (self._run_later or self.programs - done):
            later, self._run_later = self._run_later, []
            for source, node in later:
                self.walk(source, node)
            for path in self.programs - done:
                done.add(path)
                source = _file(path) if path.suffix == ".py" else None
                if source is not None:
                    self.walk(source, source.tree)


def _dotted(node) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id] + parts[::-1]) if isinstance(node, ast.Name) else None


# ------------------------------------------------------------------------------ the rule

def _is_cli_main(fact: str) -> bool:
    parts = fact.split(".")
    return (parts[0] == "snn_toolchain" and "cli" in parts and parts[-1] == "main") or parts[0] == "cli_support"


def _is_training_loop(fact: str) -> bool:
    parts = fact.split(".")
    return parts[0] == "snn_toolchain" and len(parts) > 2 and parts[-1] in TRAINING_LOOPS


def _runs_lava_command(first, words: set) -> bool:
    return first in LAVA_COMMANDS or (first == "run" and "emulator" not in words) or "--parity-samples" in words


def tiers_of(reach: _Reach) -> set:
    tiers = set()
    runs_subprocess = reach.runs_subprocess()
    cli = any(_is_cli_main(fact) for fact in reach.facts) or (
        runs_subprocess and any(s in CLI_PROGRAM_NAMES or s.endswith("/train-export") for s in reach.strings))
    replaced = frozenset(reach.replaced)
    if any(_needs_lava(fact, replaced) for fact in reach.facts):
        tiers.add("lava")
    if cli and any(_runs_lava_command(first, words) for first, words in reach.command_lists):
        tiers.add("lava")
    if cli or any(_is_training_loop(fact) for fact in reach.facts):
        tiers.add("e2e")
    if runs_subprocess:
        for program in reach.programs:
            tiers |= PROGRAM_TIERS.get(program.name, set())
    return tiers or {"unit"}


_TIERS_OF: dict = {}


def _tiers_of_item(item) -> set:
    function = getattr(item, "function", None)
    found = _function_node(function) if function is not None else None
    if found is None:
        return {"lava", "e2e"}
    starts = [found]
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    for name in getattr(item, "fixturenames", ()):
        if definitions.get(name):
            fixture = _function_node(definitions[name][-1].func)
            if fixture is not None:
                starts.append(fixture)
    key = tuple((source.name, id(node)) for source, node in starts)
    if key not in _TIERS_OF:
        reach = _Reach()
        for source, node in starts:
            reach.walk(source, node)
        reach.read_what_it_runs()
        _TIERS_OF[key] = tiers_of(reach)
    return _TIERS_OF[key]


def pytest_collection_modifyitems(config, items):
    # the hook sees the whole session's items (hardware_tests/ too): one rule for all
    for item in items:
        written = {mark.name for mark in item.iter_markers() if mark.name in TIERS}
        for tier in sorted((written or _tiers_of_item(item)) - written):
            item.add_marker(getattr(pytest.mark, tier))


# ------------------------------------------------------------------------------ shared fixtures
# Module-scoped: each test file that uses one gets its own, as when each file defined it.

@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    # dense enough (2-4k spikes per sample) that every layer spikes and every parameter gets gradient
    return write_shd_folder(tmp_path_factory.mktemp("shd"), n_train=48, n_test=16, n_speakers=6, spikes=(2000, 4000))


@pytest.fixture(scope="module")
def trained_run(tiny_folder, tmp_path_factory):
    """A 2-epoch run and its exported .net file."""
    run_dir = tmp_path_factory.mktemp("faults") / "run"
    args = ["train", "--dataset", "shd", "--data-dir", str(tiny_folder), "--run-dir", str(run_dir), "--hidden", "16",
            "--batch-size", "8", "--max-delay", "5", "--epochs", "2", "--device", "cpu"]
    assert cli_main(args) == 0
    assert cli_main(["export", "--run-dir", str(run_dir), "--data-dir", str(tiny_folder)]) == 0
    return run_dir


@pytest.fixture(scope="module")
def finished_run(tiny_folder, tmp_path_factory):
    """A smaller 1-epoch run (``small_train_args``) and its exported .net file."""
    run_dir = tmp_path_factory.mktemp("outputs") / "run"
    assert cli_main(small_train_args(tiny_folder, run_dir)) == 0
    assert cli_main(["export", "--run-dir", str(run_dir), "--data-dir", str(tiny_folder)]) == 0
    return run_dir
