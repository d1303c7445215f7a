"""Every benchmark script imports (a script left behind by a rename once imported a function that
no longer existed, and nothing noticed); running them is their own job, not the tests'."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py"))


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_benchmark_script_imports_without_running(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the scripts import their neighbours by name
    module = importlib.import_module(name)
    sys.modules.pop(name, None)
    assert module.__doc__, f"benchmarks/{name}.py says what it measures in its docstring"


def _planted() -> list:  # type: ignore[type-arg]
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return list(importlib.import_module("mutations").ALL)
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_the_mutation_table_names_tests_that_exist() -> None:
    """Each planted bug's guarding test is a real test id (a rename would leave the table
    judging nothing)."""
    root = BENCHMARKS.parent
    for mutant in _planted():
        source = (root / mutant.path).read_text(encoding="utf-8")
        assert source.count(mutant.old) == 1, mutant.name
        for test in mutant.tests:
            path, _, name = test.partition("::")
            if not name:  # a whole test file
                assert (root / path).is_file(), test
                continue
            function = name.split("[")[0]
            assert f"def {function}(" in (root / path).read_text(encoding="utf-8"), test


def _branches(path: Path) -> int:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    kinds = (ast.If, ast.For, ast.While, ast.IfExp, ast.comprehension, ast.Try, ast.Match)
    return sum(isinstance(node, kinds) for node in ast.walk(tree))


def test_every_module_with_logic_has_a_planted_bug() -> None:
    """A module lands with at least one planted bug its tests catch (docs/architecture.md):
    every module of the package that branches has a row in benchmarks/planted*.py."""
    root = BENCHMARKS.parent
    planted = {mutant.path for mutant in _planted()}
    modules = {str(p.relative_to(root)) for p in (root / "marco_cli").rglob("*.py") if _branches(p)}
    assert not sorted(modules - planted), "plant a bug in each (benchmarks/planted_wide.py)"
