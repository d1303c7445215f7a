"""Compute-matched comparison: strategies at budgets in one bench run, the accuracy-vs-tokens
frontier with dominated configurations marked, as text and as SVG."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from marco_cli.cli import app
from marco_cli.runs.bench import mark_frontier
from marco_cli.ui.charts import frontier_chart, frontier_svg

runner = CliRunner()


def _row(accuracy: float, tokens: float, n: int = 10) -> dict[str, float]:
    return {"n": n, "accuracy": accuracy, "mean_tokens": tokens}


def test_dominated_means_as_accurate_for_fewer_tokens() -> None:
    table = {
        "a": _row(0.3, 100),
        "b": _row(0.3, 200),  # a is as accurate for fewer tokens
        "c": _row(0.5, 300),
        "d": _row(0.4, 400),  # c is more accurate for fewer tokens
        "e": _row(0.5, 300),  # a tie with c dominates neither
        "f": _row(0.9, 50, n=0),  # ran nothing: not on the plot, dominates nobody
    }
    mark_frontier(table)
    assert {k: v.get("dominated") for k, v in table.items()} == {
        "a": False,
        "b": True,
        "c": False,
        "d": True,
        "e": False,
        "f": None,
    }
    chart = frontier_chart(table)
    assert "  A  a " in chart and "  b  b " in chart and "dominated" in chart and " f " not in chart
    svg = frontier_svg({"<b>x</b>": _row(0.5, 10)})
    assert "<b>x</b>" not in svg and "&lt;b&gt;x&lt;/b&gt;" in svg


def _dataset(tmp_path: Path) -> Path:
    data = tmp_path / "tiny.tsv"
    data.write_text("What is 2 + 2?\t4\nWhat is 3 + 1?\t4\nWhat is 1 + 1?\t2\n", encoding="utf-8")
    return data


def test_one_bench_run_compares_budgets(scripted_session, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["bench", str(_dataset(tmp_path)), "--strategy", "cot,vote@3,vote@5,mcts@2", "--out", str(out)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert list(summary["configs"]) == ["cot", "vote@3", "vote@5", "mcts/step@2"]
    settings = json.loads((out / "run.json").read_text())["settings"]
    assert settings["vote@3"]["samples"] == 3 and settings["vote@5"]["samples"] == 5
    assert settings["mcts/step@2"]["iterations"] == 2
    # every answer is 4 for the scripted model: cot is as accurate as anything, for the fewest tokens
    flags = {name: row["dominated"] for name, row in summary["configs"].items()}
    assert flags["cot"] is False and flags["vote@5"] is True
    shown = runner.invoke(app, args)
    assert "accuracy vs tokens per problem" in shown.stdout and "dominated" in shown.stdout


def test_a_bad_budget_is_a_usage_error(scripted_session, tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", str(_dataset(tmp_path)), "--strategy", "vote@many"])
    assert result.exit_code == 2 and "budget after @ must be a whole number" in result.stderr
