"""Run test files with pytest, or with a small stand-in where pytest is not installed.

    python benchmarks/_run_tests.py tests/test_gpu_recurrence.py tests/test_recurrence.py [-- PYTEST ARGS]

The package is made importable from this checkout first (``_bootstrap``), so nothing needs to be
installed. With pytest available this is ``pytest.main([files..., args...])``. Without it (e.g. a GPU
machine with only torch), a stand-in ``pytest`` module is installed that covers what our tests use:
``mark.parametrize`` (stacked, with ``ids``), ``mark.skipif``, other marks (tests marked ``long`` are
skipped, as in the default run), ``skip``, ``fail``, ``raises(match=)``, ``approx``, ``importorskip``,
``param``, ``warns``, ``@fixture`` functions (module or conftest, generator fixtures included) and the
``monkeypatch``, ``tmp_path``, ``tmp_path_factory`` fixtures. It prints one line per test and exits
non-zero when a test fails. Anything else it does not know makes that test fail with a clear message.
"""

import _bootstrap  # noqa: F401  (first: makes snn_toolchain importable from this checkout)

import contextlib
import importlib.util
import inspect
import itertools
import math
import os
import re
import shutil
import sys
import tempfile
import traceback
import types
import warnings
from pathlib import Path


def main(argv):
    files, extra = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    try:
        import pytest
    except ImportError:
        print("[tests] pytest is not installed: using the small stand-in runner (benchmarks/_run_tests.py)")
        return MiniRunner().run(files)
    return int(pytest.main(files + extra))


# ------------------------------------------------------------------------------------------------
# Stand-in pytest module
# ------------------------------------------------------------------------------------------------

class Skipped(Exception):
    pass


class Failed(AssertionError):
    pass


class Mark:
    """``pytest.mark.NAME`` (bare) or ``pytest.mark.NAME(args)`` (configured); either decorates a test."""

    def __init__(self, name, args=None, kwargs=None):
        self.name, self.args, self.kwargs = name, args, kwargs or {}

    def __call__(self, *args, **kwargs):
        if len(args) == 1 and not kwargs and (inspect.isfunction(args[0]) or inspect.isclass(args[0])):
            target = args[0]   # used as a decorator
            target.__dict__.setdefault("_mini_marks", []).append(Mark(self.name, self.args or (), self.kwargs))
            return target
        return Mark(self.name, args, kwargs)


class MarkFactory:
    def __getattr__(self, name):
        return Mark(name)


class Param:
    def __init__(self, *values, marks=(), id=None):
        self.values, self.marks, self.id = values, marks, id


class RaisesContext:
    def __init__(self, expected, match):
        self.expected, self.match, self.value, self.type = expected, match, None, None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            raise Failed(f"DID NOT RAISE {self.expected}")
        if not issubclass(exc_type, self.expected):
            return False
        if self.match is not None and not re.search(self.match, str(exc)):
            raise Failed(f"{exc_type.__name__}({exc!s}) does not match {self.match!r}")
        self.value, self.type = exc, exc_type
        return True


def raises(expected, *args, match=None, **kwargs):
    context = RaisesContext(expected, match)
    if args:
        with context:
            args[0](*args[1:], **kwargs)
        return context
    return context


class Approx:
    def __init__(self, expected, rel=None, abs=None):
        self.expected, self.rel, self.abs = expected, rel, abs

    def _close(self, actual, expected):
        rel = 1e-6 if self.rel is None else self.rel
        tolerance = max(rel * math.fabs(expected), 1e-12 if self.abs is None else self.abs)
        return math.fabs(float(actual) - float(expected)) <= tolerance

    def __eq__(self, actual):
        if isinstance(self.expected, (list, tuple)):
            return len(actual) == len(self.expected) and all(self._close(a, e) for a, e in zip(actual, self.expected))
        return self._close(actual, self.expected)

    def __repr__(self):
        return f"approx({self.expected!r})"


@contextlib.contextmanager
def warns(category=Warning, match=None):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
    hits = [w for w in caught if issubclass(w.category, category)
            and (match is None or re.search(match, str(w.message)))]
    if not hits:
        raise Failed(f"DID NOT WARN {category.__name__}" + (f" matching {match!r}" if match else ""))


def skip(reason=""):
    raise Skipped(reason)


def fail(reason=""):
    raise Failed(reason)


def importorskip(name, reason=None):
    try:
        return importlib.import_module(name)
    except ImportError:
        raise Skipped(reason or f"could not import {name!r}") from None


def fixture(*args, **kwargs):
    def decorate(function):
        function._mini_fixture = True
        return function

    if len(args) == 1 and callable(args[0]) and not kwargs:
        return decorate(args[0])
    return decorate


def make_stand_in_module():
    module = types.ModuleType("pytest")
    module.__dict__.update(mark=MarkFactory(), param=lambda *v, marks=(), id=None: Param(*v, marks=marks, id=id),
                           raises=raises, approx=Approx, warns=warns, skip=skip, fail=fail,
                           importorskip=importorskip, fixture=fixture, __mini_stand_in__=True)
    skip.Exception = Skipped
    fail.Exception = Failed
    return module


class MonkeyPatch:
    _missing = object()

    def __init__(self):
        self._undo = []

    def setattr(self, target, name, value=_missing, raising=True):
        if value is self._missing:   # setattr("package.module.attribute", value)
            path, value = target, name
            module_name, name = path.rsplit(".", 1)
            target = importlib.import_module(module_name)
        old = getattr(target, name, self._missing)
        if old is self._missing and raising:
            raise AttributeError(f"{target!r} has no attribute {name!r}")
        self._undo.append(lambda: delattr(target, name) if old is self._missing else setattr(target, name, old))
        setattr(target, name, value)

    def delattr(self, target, name, raising=True):
        if not hasattr(target, name):
            if raising:
                raise AttributeError(name)
            return
        old = getattr(target, name)
        self._undo.append(lambda: setattr(target, name, old))
        delattr(target, name)

    def setitem(self, mapping, key, value):
        old = mapping.get(key, self._missing)
        self._undo.append(lambda: mapping.pop(key, None) if old is self._missing else mapping.__setitem__(key, old))
        mapping[key] = value

    def setenv(self, name, value, prepend=None):
        self.setitem(os.environ, name, str(value))

    def delenv(self, name, raising=True):
        if name not in os.environ:
            if raising:
                raise KeyError(name)
            return
        old = os.environ[name]
        self._undo.append(lambda: os.environ.__setitem__(name, old))
        del os.environ[name]

    def syspath_prepend(self, path):
        sys.path.insert(0, str(path))
        self._undo.append(lambda: sys.path.remove(str(path)))

    def chdir(self, path):
        old = os.getcwd()
        os.chdir(path)
        self._undo.append(lambda: os.chdir(old))

    def undo(self):
        while self._undo:
            self._undo.pop()()


class TmpPathFactory:
    def __init__(self, root):
        self.root = root

    def mktemp(self, name, numbered=True):
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.root))

    def getbasetemp(self):
        return self.root


class MiniRunner:
    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="mini-pytest-"))
        self.results = {"passed": 0, "failed": 0, "skipped": 0}

    def run(self, files):
        sys.modules["pytest"] = make_stand_in_module()
        try:
            for path in files:
                self.run_file(Path(path))
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
        print(f"[tests] {self.results['passed']} passed, {self.results['failed']} failed, "
              f"{self.results['skipped']} skipped")
        return 1 if self.results["failed"] else 0

    def run_file(self, path):
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        fixtures = {}
        for source in (path.resolve().parent / "conftest.py", path):
            if not source.exists():
                continue
            name = source.stem if source.name != "conftest.py" else "conftest"
            try:
                module = sys.modules.get(name) if name == "conftest" and name in sys.modules else _load(source, name)
            except Skipped as skipped:
                self.report(f"{path}", "skipped", str(skipped))
                return
            except Exception:
                self.report(f"{path} (import)", "failed", traceback.format_exc())
                return
            fixtures.update({k: v for k, v in vars(module).items() if getattr(v, "_mini_fixture", False)})
        shared = {"tmp_path_factory": TmpPathFactory(self.root)}
        for name, function in list(vars(module).items()):
            if name.startswith("test_") and callable(function) and inspect.isfunction(function):
                for case_name, arguments, marks in expand(name, function):
                    self.run_test(f"{path}::{case_name}", function, arguments, marks, fixtures, shared)

    def run_test(self, name, function, arguments, marks, fixtures, shared):
        for mark in marks:
            if mark.name == "skipif" and mark.args and mark.args[0]:
                return self.report(name, "skipped", mark.kwargs.get("reason", ""))
            if mark.name == "skip":
                return self.report(name, "skipped", mark.kwargs.get("reason", mark.args[0] if mark.args else ""))
            if mark.name == "long":
                return self.report(name, "skipped", "marked long (excluded from the default run)")
        monkeypatch = MonkeyPatch()
        teardowns = []
        try:
            values = dict(arguments)
            for parameter in inspect.signature(function).parameters:
                if parameter not in values:
                    values[parameter] = self.fixture_value(parameter, fixtures, shared, monkeypatch, teardowns)
            function(**values)
        except Skipped as skipped:
            self.report(name, "skipped", str(skipped))
        except Exception:
            self.report(name, "failed", traceback.format_exc())
        else:
            self.report(name, "passed")
        finally:
            for teardown in reversed(teardowns):
                with contextlib.suppress(StopIteration):
                    next(teardown)
            monkeypatch.undo()

    def fixture_value(self, name, fixtures, shared, monkeypatch, teardowns):
        if name == "monkeypatch":
            return monkeypatch
        if name == "tmp_path":
            return Path(tempfile.mkdtemp(dir=self.root))
        if name in shared:
            return shared[name]
        if name not in fixtures:
            raise Failed(f"fixture {name!r} is not known to the stand-in runner; install pytest")
        function = fixtures[name]
        arguments = {p: self.fixture_value(p, fixtures, shared, monkeypatch, teardowns)
                     for p in inspect.signature(function).parameters}
        value = function(**arguments)
        if inspect.isgenerator(value):
            generator, value = value, next(value)
            teardowns.append(generator)
        shared[name] = value   # module scope is the common case in our tests; reuse within the file
        return value

    def report(self, name, outcome, detail=""):
        self.results[outcome] += 1
        label = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}[outcome]
        print(f"{label} {name}" + (f" ({detail})" if outcome == "skipped" and detail else ""), flush=True)
        if outcome == "failed":
            print(detail, flush=True)


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def expand(name, function):
    """(case name, {argument: value}, marks) for every combination of stacked parametrize marks."""
    marks = list(getattr(function, "_mini_marks", []))
    axes = []
    for mark in marks:
        if mark.name != "parametrize":
            continue
        names, values = mark.args[0], mark.args[1]
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        ids = mark.kwargs.get("ids")
        axis = []
        for index, value in enumerate(values):
            extra_marks, case_id = (), None
            if isinstance(value, Param):
                extra_marks, case_id, value = value.marks, value.id, value.values
                value = value if len(names) > 1 else value[0]
            row = tuple(value) if len(names) > 1 else (value,)
            if case_id is None:
                case_id = ids[index] if isinstance(ids, (list, tuple)) else (
                    ids(value) if callable(ids) else "-".join(str(v) for v in row))
            extra = list(extra_marks) if isinstance(extra_marks, (list, tuple)) else [extra_marks]
            axis.append((case_id, dict(zip(names, row)), extra))
        axes.append(axis)
    other_marks = [m for m in marks if m.name != "parametrize"]
    if not axes:
        return [(name, {}, other_marks)]
    cases = []
    for combination in itertools.product(*reversed(axes)):   # the decorator nearest the function varies last
        arguments, case_marks = {}, list(other_marks)
        for _, values, extra in combination:
            arguments.update(values)
            case_marks += extra
        cases.append((f"{name}[{'-'.join(c[0] for c in combination)}]", arguments, case_marks))
    return cases


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
