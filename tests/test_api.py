"""The Python API (marco_cli/api.py, docs/api.md): the manual's example runs as written, the
settings are checked as the command line checks them, and a run is saved and observable."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import marco_cli
from marco_cli.cli.app import app
from marco_cli.errors import MarcoError, UsageError
from marco_cli.search.events import Event, Finished, RolloutScored
from tests.helpers import runner

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


@pytest.mark.slow
@pytest.mark.parametrize("block", [0, 1])
def test_the_manuals_examples_run_on_the_real_model(block: int, tmp_path: Path) -> None:
    code = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)[block]
    env = {**os.environ, "MARCO_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    if block == 0:
        assert done.stdout.splitlines()[1] == "majority" and done.stdout == done.stdout.strip() + "\n"


def test_import_marco_cli_loads_no_engine_and_no_cli() -> None:
    probe = (
        "import sys, marco_cli; print(sorted(m for m in ('llama_cpp', 'typer', 'numpy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]" and marco_cli.__all__ == ["bench", "solve"]


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"iterations": 0}, "0 is not in the range 1<=x"),
        ({"samples": "many"}, "'samples' must be a number, not \"many\""),
        ({"strategy": "magic"}, "'magic' is not one of"),
        ({"reflection": 1}, "'reflection' must be true or false, not 1"),
        ({"bogus": 1}, "unknown setting 'bogus'"),
        ({"select": "best"}, "unknown answer rule 'best'"),
        ({"ctx": 1.5}, "'ctx' must be a whole number"),
    ],
)
def test_a_bad_setting_is_a_usage_error_naming_it(
    scripted_session, settings: dict[str, object], said: str
) -> None:
    with pytest.raises(UsageError) as raised:
        marco_cli.solve("What is 2 + 2?", **settings)
    assert said in str(raised.value) and raised.value.code == 2
    assert not scripted_session  # nothing was opened


def test_an_empty_question_is_a_usage_error(scripted_session) -> None:
    with pytest.raises(UsageError, match="the prompt is empty"):
        marco_cli.solve("  \n")


def test_a_run_reaches_the_engine_is_told_to_the_listener_and_saved(scripted_session) -> None:
    seen: list[Event] = []
    record = marco_cli.solve("What is 2 + 2?", strategy="vote", samples=3, ctx=512, listener=seen.append)
    (options, branches, _engine) = scripted_session[0]
    assert options.engine.ctx == 512 and branches == 3 and options.model == "marco-o1"
    assert record.answer == "4" and record.search.samples == 3 and record.rule == "majority"
    assert sum(isinstance(e, RolloutScored) for e in seen) == 3 and isinstance(seen[-1], Finished)
    shown = runner.invoke(app, ["show", str(record.run_id), "--json"])
    assert shown.exit_code == 0 and '"answer": "4"' in shown.stdout
    unsaved = marco_cli.solve("What is 2 + 2?", strategy="cot", save=False)
    assert unsaved.run_id is None


def test_bench_runs_the_configurations_and_returns_the_summary(scripted_session, tmp_path: Path) -> None:
    data = tmp_path / "two.tsv"
    data.write_text("What is 2 + 2?\t4\nWhat is 3 + 3?\t6\n")
    out = tmp_path / "out"
    summary = marco_cli.bench(str(data), ["cot", "vote@3"], out=out, max_tokens=64)
    assert list(summary.configs) == ["cot", "vote@3"] and summary.problems == 2
    assert summary.configs["vote@3"].correct == 1 and summary.configs["vote@3"].n == 2  # "4" every time
    assert (out / "results.jsonl").is_file() and (out / "summary.json").is_file()
    options = scripted_session[0][0]
    assert options.search["max_tokens"] == 64 and options.output.quiet
    with pytest.raises(MarcoError, match="takes no budget") as refused:
        marco_cli.bench(str(data), ["cot@3"], out=tmp_path / "other")
    assert refused.value.code == 2
