from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from marco_cli.cli.app import app
from marco_cli.errors import MarcoError
from marco_cli.record.results import ResultRow
from marco_cli.runs import bench
from marco_cli.runs.bench import grade, load_dataset
from marco_cli.runs.stats import mcnemar_p, wilson
from marco_cli.runs.summary import summarize
from marco_cli.search.answers import extract_output
from tests.helpers import runner

# six one-step word problems the tests own (question<TAB>answer), so the end-to-end run never skips
ARITH = Path(__file__).parent / "data" / "arith6.tsv"


@pytest.mark.parametrize(
    ("response", "gold", "value", "correct"),
    [
        ("<Thought>...</Thought><Output>$1,234.00</Output>", "1234", 1234.0, True),
        ("<Output>18 dollars</Output>", "18", 18.0, True),
        ("Let me see: 3 + 4 = 7. The answer is 7.", "7", 7.0, True),
        ("<Output>答案是１８</Output>", "18", 18.0, True),
        ("<Output>70,000</Output>", "70000", 70000.0, True),
        ("<Output>5.0</Output>", "5", 5.0, True),
        ("<Thought>10 - 2 = 8</Thought><Output>I am not sure</Output>", "8", None, False),
        ("no number at all", "3", None, False),
        ("<Output>12</Output> then 13", "13", 12.0, False),
        ("She has 20 - 8 = 12 stickers left.\nThis is the answer to the question.", "12", 12.0, True),
        ("7 * 6 = 42\n#### 42", "42", 42.0, True),
    ],
)
def test_grading(response: str, gold: str, value: float | None, correct: bool) -> None:
    """bench grades the answer `solve` would print: the same extraction rule."""
    assert grade(extract_output(response, numeric=True), gold) == (value, correct)


def test_wilson_interval() -> None:
    low, high = wilson(42, 50)
    assert low == pytest.approx(0.7148, abs=1e-3) and high == pytest.approx(0.9165, abs=1e-3)
    assert wilson(0, 0) == (0.0, 0.0)


def test_summary_pairs_and_delta() -> None:
    rows = [
        ResultRow("cot", i, c, 10, 1.0, 1.0 if c else None) for i, c in enumerate([True, False, False, True])
    ] + [ResultRow("mcts/step", i, c, 30, 2.0, 1.0) for i, c in enumerate([True, True, False, False])]
    summary = summarize(rows, ["cot", "mcts/step"])
    cot, search = summary.configs["cot"], summary.configs["mcts/step"]
    assert cot.accuracy == 0.5 and cot.no_answer == 0.5 and cot.delta_vs_cot == 0.0
    assert search.tokens_per_second == 15.0 and search.delta_vs_cot == 0.0
    assert [p.to_json() for p in summary.pairs] == [
        {
            "from": "cot",
            "to": "mcts/step",
            "problems": 4,
            "right_to_wrong": 1,
            "wrong_to_right": 1,
            "p_exact": 1.0,
        }
    ]


def test_dataset_formats_and_errors(tmp_path: Path) -> None:
    tsv = tmp_path / "d.tsv"
    tsv.write_text("What is 1+1?\t2\n\nWhat is 2+2?\t4\n")
    assert [p.answer for p in load_dataset(tsv)] == ["2", "4"]
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"question": "q1", "answer": 3}\n{"question": "q2", "answer": "5"}\n')
    assert [p.question for p in load_dataset(jsonl)] == ["q1", "q2"]
    (tmp_path / "bad.tsv").write_text("no tab here\n")
    with pytest.raises(MarcoError, match=r"bad\.tsv:1: expected question<TAB>answer"):
        load_dataset(tmp_path / "bad.tsv")
    with pytest.raises(MarcoError, match="dataset not found"):
        load_dataset(tmp_path / "missing.tsv")


@pytest.mark.slow
def test_bench_end_to_end_and_resume(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [
        "bench",
        str(ARITH),
        "-m",
        "smollm2-135m",
        "--strategy",
        "cot,mcts",
        "--granularity",
        "mini-32",
        "--limit",
        "5",
        "-n",
        "2",
        "--max-tokens",
        "96",
        "--out",
        str(out),
    ]
    first = runner.invoke(app, [*args, "--json"])
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(lines) == 10 and {r["config"] for r in lines} == {"cot", "mcts/mini-32"}
    for name, figures in summary["configs"].items():
        mine = [r for r in lines if r["config"] == name]
        assert figures["n"] == 5 and figures["correct"] == sum(r["correct"] for r in mine)
        assert figures["no_answer"] == sum(r["extracted"] is None for r in mine) / 5
        assert figures["mean_tokens"] == pytest.approx(sum(r["tokens"] for r in mine) / 5)
    gold = [line.split("\t")[1] for line in ARITH.read_text().splitlines()[:5]]
    assert [r["gold"] for r in lines if r["config"] == "cot"] == gold
    assert json.loads((out / "summary.json").read_text()) == summary
    again = runner.invoke(app, [*args, "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout) == summary
    assert len((out / "results.jsonl").read_text().splitlines()) == 10  # nothing ran twice
    more = runner.invoke(app, [*args, "--limit", "6", "--json"])  # the last --limit counts
    assert more.exit_code == 0
    assert len((out / "results.jsonl").read_text().splitlines()) == 12  # only problem 6 ran
    clash = runner.invoke(app, [*args[:-2], "--seed", "9", "--out", str(out)])
    assert clash.exit_code == 2 and "other settings" in clash.stderr


def test_exact_mcnemar_matches_hand_computed_binomial_tails() -> None:
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(1, 5) == pytest.approx(2 * 7 / 64)  # (C(6,0) + C(6,1)) / 2^6, both sides
    assert mcnemar_p(3, 14) == pytest.approx(2 * sum(math.comb(17, k) for k in range(4)) / 2**17)
    assert mcnemar_p(3, 14) == pytest.approx(0.0127, abs=1e-4)  # the vote@8 vs cot
    assert mcnemar_p(7, 6) == 1.0


def _dataset(tmp_path: Path) -> Path:
    data = tmp_path / "tiny.tsv"
    data.write_text("What is 2 + 2?\t4\nWhat is 3 + 1?\t4\nWhat is 1 + 1?\t2\n", encoding="utf-8")
    return data


def test_a_torn_bench_line_is_redone_once(scripted_session, tmp_path: Path) -> None:
    data, out = _dataset(tmp_path), tmp_path / "out"
    args = ["bench", str(data), "--strategy", "cot", "--out", str(out), "--json"]
    assert runner.invoke(app, args).exit_code == 0
    results = (out / bench.RESULTS).read_bytes()
    last = results.rstrip(b"\n").rsplit(b"\n", 1)[1]
    (out / bench.RESULTS).write_bytes(results[: len(results) - len(last) // 2 - 1])  # killed mid-line
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    rows = [json.loads(line) for line in (out / bench.RESULTS).read_text().splitlines()]
    kept = [json.loads(line) for line in (out / bench.RECORDS).read_text().splitlines()]
    assert sorted(r["index"] for r in rows) == [0, 1, 2]  # no row lost, none glued
    assert sorted(k["index"] for k in kept) == [0, 1, 2]  # no record duplicated
    assert json.loads(again.stdout)["configs"]["cot"]["n"] == 3


def test_damaged_bench_lines_are_skipped_with_a_word(scripted_session, tmp_path: Path) -> None:
    data, out = _dataset(tmp_path), tmp_path / "out"
    assert runner.invoke(app, ["bench", str(data), "--strategy", "cot", "--out", str(out)]).exit_code == 0
    with open(out / bench.RECORDS, "a", encoding="utf-8") as handle:
        handle.write('[1, 2]\n{"config": "cot", "index": 9, "gold": "1"}\n')
        handle.write('{"config": "cot", "index": 8, "gold": "1", "record": 5}\n{"torn": ')
    result = runner.invoke(app, ["export", str(out), "--format", "tree"])
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 3
    for said in ("not an object", "no record", "its record is not an object", "not complete JSON"):
        assert said in result.stderr
