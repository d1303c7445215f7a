"""Planted bugs, and whether the test written for each behaviour catches it.

    python benchmarks/mutations.py [--only NAME ...] [--list]

Each mutant is one small edit to the package (a plausible slip: a swapped tie-break, an
off-by-one, the wrong count), applied to a fresh copy of the repository; the tests named for
that behaviour then run in the copy (PYTHONPATH points there, so subprocesses such as the
`marco` command and `marco serve` run the mutated code too). A mutant is *caught* when those
tests fail. The unmutated copy runs the same tests first: they must pass, or the row says so.
Prints a table and exits 1 when any mutant survives. The tables are benchmarks/planted.py (the
older core), planted_newer.py (the stores, the checker, the rules, the datasets, the signals) and
planted_wide.py (one in every other module that branches; tests/test_benchmarks.py fails when a
module has none). About thirteen minutes on 2 cores for all of them (123 mutants, 2026-12-07:
most take 2-6 s, the terminal, server and real-model ones 10-60 s).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from planted import MUTANTS, Mutant
from planted_newer import NEWER
from planted_wide import SMALL, WIDE

ALL = MUTANTS + NEWER + WIDE + SMALL
ROOT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(
    ".venv",
    ".git",
    "__pycache__",
    "*.egg-info",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "test-artifacts",
)


def _copy(into: Path) -> Path:
    copy = into / "repo"
    shutil.copytree(ROOT, copy, ignore=SKIP)
    return copy


def _pytest(copy: Path, tests: tuple[str, ...]) -> tuple[int, float]:
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode, time.monotonic() - started


def _imports_the_copy(copy: Path) -> bool:
    env = {**os.environ, "PYTHONPATH": str(copy)}
    where = subprocess.run(
        [sys.executable, "-c", "import marco_cli; print(marco_cli.__file__)"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return where.startswith(str(copy))


def run(mutant: Mutant) -> tuple[str, float]:
    """The verdict for one mutant: caught, survived, or why it could not be judged."""
    with tempfile.TemporaryDirectory(prefix="marco-mutant-") as tmp:
        copy = _copy(Path(tmp))
        if not _imports_the_copy(copy):
            return "not judged: the copy's package is not the one imported", 0.0
        clean, _ = _pytest(copy, mutant.tests)
        if clean != 0:
            return f"not judged: the tests fail unmutated (exit {clean})", 0.0
        target = copy / mutant.path
        source = target.read_text(encoding="utf-8")
        if source.count(mutant.old) != 1:
            return f"not judged: the text to mutate occurs {source.count(mutant.old)} times", 0.0
        target.write_text(source.replace(mutant.old, mutant.new), encoding="utf-8")
        code, seconds = _pytest(copy, mutant.tests)
    if code == 1:
        return "caught", seconds
    return ("survived" if code == 0 else f"not judged: pytest exit {code}"), seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="mutant names (substrings) to run")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    args = parser.parse_args()
    chosen = [m for m in ALL if args.only is None or any(o in m.name for o in args.only)]
    if args.list:
        for m in chosen:
            print(f"{m.name}: {m.path} -> {', '.join(m.tests)}")
        return 0
    print("| planted bug | file | guarding test | verdict | seconds |")
    print("|---|---|---|---|---|")
    survived = 0
    for mutant in chosen:
        verdict, seconds = run(mutant)
        survived += verdict != "caught"
        tests = ", ".join(t.split("::", 1)[-1] for t in mutant.tests)
        print(f"| {mutant.name} | {mutant.path} | {tests} | {verdict} | {seconds:.1f} |", flush=True)
    print(f"\n{len(chosen) - survived} of {len(chosen)} planted bugs caught by the test written for them")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
