"""Compute-matched comparison: strategies at budgets in one bench run, the accuracy-vs-tokens
frontier with dominated configurations marked, as text and as SVG."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from marco_cli.cli.app import app
from marco_cli.record.results import Figures
from marco_cli.runs.summary import dominated
from marco_cli.ui.charts import frontier_chart, frontier_svg
from tests.helpers import runner

COMPUTE_MATCHED = Path(__file__).parent.parent / "benchmarks" / "compute_matched.py"


def compute_matched(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(COMPUTE_MATCHED), *map(str, args)], capture_output=True, text=True
    )


def _row(accuracy: float, tokens: float, n: int = 10) -> Figures:
    return Figures(n, round(accuracy * n), accuracy, (0.0, 1.0), 0.0, tokens, 1.0, tokens)


def test_dominated_means_as_accurate_for_fewer_tokens() -> None:
    table = {
        "a": _row(0.3, 100),
        "b": _row(0.3, 200),  # a is as accurate for fewer tokens
        "c": _row(0.5, 300),
        "d": _row(0.4, 400),  # c is more accurate for fewer tokens
        "e": _row(0.5, 300),  # a tie with c dominates neither
        "f": _row(0.9, 50, n=0),  # ran nothing: not on the plot, dominates nobody
    }
    marked = {name: dominated(name, table) for name in table}
    assert marked == {
        "a": False,
        "b": True,
        "c": False,
        "d": True,
        "e": False,
        "f": None,
    }
    chart = frontier_chart({name: replace(row, dominated=marked[name]) for name, row in table.items()})
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


def test_configurations_carry_flags_of_their_own(scripted_session, tmp_path: Path) -> None:
    """`[LABEL=]STRATEGY[@BUDGET][[FLAGS]]`: flags are solve's search options over the command
    line's; a comma inside the brackets does not split configurations."""
    out = tmp_path / "out"
    specs = "mcts@2,wide=mcts@3[--root-children 4 --select branch --stop-agree 0],mcts[--first-tokens 3]"
    result = runner.invoke(
        app,
        ["bench", str(_dataset(tmp_path)), "--strategy", specs, "--seed", "5", "--out", str(out), "--json"],
    )
    assert result.exit_code == 0, result.output
    names = ["mcts/step@2", "wide", "mcts/step[--first-tokens 3]"]
    assert list(json.loads(result.stdout)["configs"]) == names
    settings = json.loads((out / "run.json").read_text())["settings"]
    wide = settings["wide"]
    picked = (wide["iterations"], wide["root_children"], wide["select"], wide["stop_agree"])
    assert picked == (3, 4, "branch", None)
    default = settings["mcts/step@2"]
    assert default["root_children"] is None and default["select"] == "deepconf"
    assert settings["mcts/step[--first-tokens 3]"]["first_tokens"] == 3
    assert all(s["seed"] == 5 for s in settings.values())  # the command line's own, under each


def test_a_bad_configuration_is_one_usage_line(scripted_session, tmp_path: Path) -> None:
    for spec, said in [
        ("mcts[--children 0]", "--children"),
        ("mcts[--no-such-flag]", "no-such-flag"),
        ("a=mcts,a=vote", "two configurations are named 'a'"),
        ("mcts@3@4", "budget after @"),
        ("MCTS!", "a configuration is [LABEL=]STRATEGY"),
        ("wander", "strategy must be one of"),
    ]:
        result = runner.invoke(app, ["bench", str(_dataset(tmp_path)), "--strategy", spec])
        assert result.exit_code == 2 and said in result.stderr, (spec, result.output)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_compute_matched_reads_a_bench_folder_and_says_each_target(scripted_session, tmp_path: Path) -> None:
    out = tmp_path / "out"
    ran = runner.invoke(
        app, ["bench", str(_dataset(tmp_path)), "--strategy", "cot,mcts,vote@4", "--out", str(out)]
    )
    assert ran.exit_code == 0, ran.output
    shown = compute_matched(out)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("3 problems every configuration finished")
    # the scripted model answers 4 everywhere: 2 of 3 right for all, greedy the cheapest
    assert any(line.startswith("| cot | 2 (66.7%) |") and line.endswith("| on it |") for line in lines)
    assert "mcts/step >= every vote@k at >= 0.9x its tokens (vote@4): True" in lines
    assert "mcts/step beats cot, exact McNemar p < 0.05: False (+0 -0, p 1)" in lines
    # --search names the configuration under test, --skip leaves one out, --budget sets the limit
    flags = ["--search", "vote@4", "--skip", "mcts/step", "--budget", "10"]
    other = compute_matched(out, *flags)
    assert other.returncode == 0, other.stderr
    lines = other.stdout.splitlines()
    assert not any(line.startswith("| mcts/step ") for line in lines)
    assert "vote@4 beats cot, exact McNemar p < 0.05: False (+0 -0, p 1)" in lines
    assert any(line.startswith("vote@4 tokens ") and "<= 1.5 x 10 = 15: False" in line for line in lines)
    assert "mcts configurations on the frontier: none" in lines
    # --rule: the search's saved trees answered by another rule, at the search's tokens
    rescored = compute_matched(out, "--rule", "mcts/step=trace", "--search", "mcts/step:trace")
    assert rescored.returncode == 0, rescored.stderr
    lines = rescored.stdout.splitlines()
    row = next(line for line in lines if line.startswith("| mcts/step:trace |"))
    search = next(line for line in lines if line.startswith("| mcts/step |"))
    assert row.split("|")[2:4] == search.split("|")[2:4]  # 2 of 3, the same tokens: every answer is 4
    assert "mcts configurations on the frontier: " in rescored.stdout
    for bad in ("mcts/step=nonsense", "nothing=trace"):
        refused = compute_matched(out, "--rule", bad)
        assert refused.returncode != 0 and f"--rule {bad}: needs" in refused.stderr


def test_compute_matched_joins_a_comparison_made_in_pieces(scripted_session, tmp_path: Path) -> None:
    data = _dataset(tmp_path)
    pieces = [
        ("first", ["--strategy", "cot,mcts", "--limit", "2"]),
        ("rest", ["--strategy", "cot,mcts", "--offset", "2"]),
        ("votes", ["--strategy", "vote@4"]),
        ("other", ["--strategy", "mcts", "-n", "2"]),
    ]
    for name, flags in pieces:
        ran = runner.invoke(app, ["bench", str(data), *flags, "--out", str(tmp_path / name)])
        assert ran.exit_code == 0, ran.output

    def show(*names: str) -> subprocess.CompletedProcess[str]:
        return compute_matched(*(tmp_path / n for n in names))

    joined = show("first", "rest", "votes", "first").stdout.splitlines()  # a folder twice counts once
    assert joined[0].startswith("3 problems every configuration finished")
    assert any(line.startswith("| mcts/step | 2 (66.7%) |") for line in joined)
    assert any(line.startswith("| vote@4 | 2 (66.7%) |") for line in joined)
    assert show("first", "votes").stdout.startswith("2 problems every configuration finished")
    clash = show("first", "other")
    assert clash.returncode != 0 and "mcts/step ran with other settings" in clash.stderr
    # no greedy run: flips against the search only, and the greedy target says it was not measured
    no_cot = show("other", "votes")
    assert no_cot.returncode == 0, no_cot.stderr
    lines = no_cot.stdout.splitlines()
    assert "| config | right | tokens/problem | x search | vs mcts/step +/- (p) | frontier |" in lines
    assert any(line.startswith("| vote@4 | 2 (66.7%) |") and "| +0 -0 (1) |" in line for line in lines)
    assert "mcts/step beats cot: not measured (no cot configuration in these folders)" in lines
    missing = compute_matched(tmp_path / "votes", "--search", "mcts/step")
    assert missing.returncode != 0 and "--search mcts/step: not a configuration of the run" in missing.stderr
