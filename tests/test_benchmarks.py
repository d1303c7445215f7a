"""Every benchmark script imports (a script left behind by a rename once imported a function that
no longer existed, and nothing noticed); running them is their own job, not the tests'."""

from __future__ import annotations

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


def test_the_mutation_table_names_tests_that_exist() -> None:
    """Each planted bug's guarding test is a real test id (a rename would leave the table
    judging nothing)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        mutations = importlib.import_module("mutations")
    finally:
        sys.path.remove(str(BENCHMARKS))
    root = BENCHMARKS.parent
    for mutant in mutations.MUTANTS:
        source = (root / mutant.path).read_text(encoding="utf-8")
        assert source.count(mutant.old) == 1, mutant.name
        for test in mutant.tests:
            path, name = test.split("::")
            function = name.split("[")[0]
            assert f"def {function}(" in (root / path).read_text(encoding="utf-8"), test
