"""The house rules of the tree, checked by reading the source (issue 17's "done when").

* no module of ``nstjax/`` over 400 lines: a longer one holds two ideas;
* no function of ``nstjax/cli/`` over 80 lines: a command is glue, its skeleton is
  :mod:`nstjax.cli.session`;
* no ``_private`` name imported from another module, and no ``module._private`` reached
  across modules;
* each layer imports only from the layers below it (``model`` < ``io`` < ``losses`` <
  ``objective`` < ``solve`` < ``run`` < ``large`` < ``evaluate`` < ``cli``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nstjax"
MODULES = sorted(PACKAGE.rglob("*.py"))
LAYERS = ("model", "io", "losses", "objective", "solve", "run", "large", "evaluate", "video",
          "serve", "cli")


def _name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def _tree(path: Path):
    return ast.parse(path.read_text(), filename=str(path))


def test_there_are_modules_to_check():
    assert len(MODULES) > 40 and (PACKAGE / "cli" / "stylize.py") in MODULES


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_module_is_at_most_400_lines(path):
    assert len(path.read_text().splitlines()) <= 400


@pytest.mark.parametrize("path", sorted((PACKAGE / "cli").glob("*.py")), ids=_name)
def test_command_functions_are_at_most_80_lines(path):
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(_tree(path))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > 80]
    assert not long, long


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_no_private_name_crosses_a_module(path):
    own = _name(path)
    bad = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nstjax"):
            bad += [f"from {node.module} import {a.name}" for a in node.names
                    if a.name.startswith("_") and node.module != own]
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") \
                and not node.attr.startswith("__") and isinstance(node.value, ast.Name) \
                and node.value.id not in ("self", "cls") and node.attr != "_replace" \
                and node.attr != "_asdict" and node.attr != "_fields":
            bad.append(f"{node.value.id}.{node.attr}")
    # the standard library's own private helpers (os._exit, argparse's parser._actions)
    bad = [b for b in bad if b not in ("os._exit", "parser._actions")]
    assert not bad, bad


@pytest.mark.parametrize("path", [p for p in MODULES if p.parent.name in LAYERS], ids=_name)
def test_layers_import_only_downwards(path):
    layer = LAYERS.index(path.parent.name)
    upward = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nstjax."):
            target = node.module.split(".")[1]
            if target in LAYERS and LAYERS.index(target) > layer:
                upward.append(node.module)
    assert not upward, upward


# --------------------------------------------------------------------------- the tests' own tree

TESTS = Path(__file__).resolve().parent
TEST_FILES = sorted(TESTS.rglob("test_*.py"))


def test_a_modules_tests_are_found_by_its_package():
    """``tests/<package>/test_<module>.py`` for each subpackage of ``nstjax``; the tests of
    the public surface as a whole stay at the top.  Basenames are unique, since the test
    modules are imported by name (pytest's default ``prepend`` import mode)."""
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    folders = {f.parent.name for f in TEST_FILES if f.parent != TESTS}
    assert folders <= packages, folders - packages
    names = [f.name for f in TEST_FILES]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: str(p.relative_to(TESTS)))
def test_test_module_is_at_most_650_lines(path):
    assert len(path.read_text().splitlines()) <= 650


def _marks(decorators) -> set:
    """The ``pytest.mark.NAME`` names among a function's decorators or a ``pytestmark``."""
    out = set()
    for d in decorators:
        for node in ast.walk(d):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                    and node.value.attr == "mark"):
                out.add(node.attr)
    return out


def subprocess_tests_outside_the_integration_tier(path: Path) -> list:
    """The test functions of ``path`` that start a process (they name ``subprocess``, or call
    a function of the module that does) without the ``integration`` mark on themselves or
    on the module."""
    tree = _tree(path)
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}

    def names(fn):
        return {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)}

    starts = {name for name, fn in functions.items() if "subprocess" in names(fn)}
    module_marks = _marks([n.value for n in tree.body if isinstance(n, ast.Assign)
                           and any(getattr(t, "id", "") == "pytestmark" for t in n.targets)])
    if "integration" in module_marks:
        return []
    return [name for name, fn in functions.items() if name.startswith("test")
            and (name in starts or names(fn) & starts)
            and "integration" not in _marks(fn.decorator_list)]


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: str(p.relative_to(TESTS)))
def test_tests_that_start_a_process_are_in_the_integration_tier(path):
    """Real-weight and browser tests join the tier by their own marks (tests/conftest.py);
    a test that starts a Python process says so with ``pytest.mark.integration``."""
    assert subprocess_tests_outside_the_integration_tier(path) == []
