"""The typed run record: its JSON form round-trips, records of earlier schemas still load, show,
export and render, and nothing outside record.py and saved.py reads a record by string keys."""

from __future__ import annotations

import ast
import json
import sqlite3
import time
from dataclasses import fields, is_dataclass, replace
from pathlib import Path

import pytest
from rich.console import Console

from marco_cli.cli.app import app
from marco_cli.record.record import Message, ModelInfo, Record, RecordError
from marco_cli.runs import export, history
from marco_cli.runs.bench import answer_by
from marco_cli.search.config import SearchConfig
from marco_cli.search.strategies import run_search
from marco_cli.ui.html import run_page
from marco_cli.ui.tree_view import TreeSnapshot, final_view, render_tree
from tests.helpers import runner
from tests.scripted import ScriptedModel

SCHEMA1 = Path(__file__).parent / "golden" / "record_schema1.json"
PACKAGE = Path(__file__).parent.parent / "marco_cli"


def _searched() -> Record:
    model = ScriptedModel(
        actions={},
        rollouts={},
        fallback=lambda s: (f"<Output>{len(s) % 3}</Output>", 0.5 + (len(s) % 5) / 10),
        more_actions=lambda s: [(f"{s[-1:] or 'x'}{k}\n", 0.5 + 0.2 * k) for k in range(2)],
    )
    config = SearchConfig(iterations=6, stop_agree=None)
    messages = (Message("system", "sys"), Message("user", "Q?"))
    result = run_search(model, model.prompt, config)
    record = Record.of(result, "Q?", ModelInfo("scripted", None, None, "test", "plain"), config, messages)
    return record.with_engine({"threads": 2, "repack": True}).with_run_id(4)


def test_a_record_round_trips_through_its_json() -> None:
    record = _searched()
    saved = json.loads(json.dumps(record.to_json()))
    again = Record.from_json(saved)
    assert again == record
    assert again.to_json() == saved
    assert saved["settings"]["threads"] == 2 and saved["settings"]["iterations"] == 6
    assert saved["confidence"] == record.reward and saved["run_id"] == 4
    assert sum(saved["rollout_stats"].values()) == len(saved["rollouts"]) > 0


def _unset(value: object, where: str = "record") -> list[str]:
    """Every field left None (or empty) anywhere in a record, by path."""
    if value is None or value == "" or value == {} or value == ():
        return [where]
    if is_dataclass(value) and not isinstance(value, type):
        return [p for f in fields(value) for p in _unset(getattr(value, f.name), f"{where}.{f.name}")]
    if isinstance(value, tuple):
        return [p for i, item in enumerate(value) for p in _unset(item, f"{where}[{i}]")]
    return []


def _everything_set(record: Record) -> Record:
    """The sample record with every optional field holding a value (values exact in 6 decimals,
    as the JSON rounds them)."""
    rollouts = tuple(
        replace(
            r,
            trace_confidence=1.25 + r.id,
            answer_confidence=0.5,
            reward=0.75,
            confidence=0.625,
            judged=0.375,
        )
        for r in record.rollouts
    )
    nodes = tuple(
        replace(n, confidence=0.5, value=0.25, refuted=("1 + 1 = 3 (is 2)",), judged=0.125)
        for n in record.nodes
    )
    model = ModelInfo("scripted", "model.gguf", "Q4_1", "local", "chatml")
    search = replace(
        record.search, root_children=3, max_time=60.5, stop_confidence=0.875, stop_agree=2, select="branch"
    )
    return replace(
        record,
        tokens=replace(record.tokens, verifier=17),
        search=search,
        rollouts=rollouts,
        nodes=nodes,
        model=model,
        error="the model failed: out of memory",
        reward=0.75,
    )


def test_a_record_with_every_field_set_round_trips() -> None:
    record = _everything_set(_searched())
    assert _unset(record) == ["record.nodes[0].parent", "record.nodes[0].text"]  # the root has neither
    saved = json.loads(json.dumps(record.to_json()))
    assert Record.from_json(saved) == record
    assert saved["error"] == "the model failed: out of memory"
    assert all(r["trace_confidence"] == 1.25 + r["id"] for r in saved["rollouts"])


def test_a_record_with_every_optional_field_empty_round_trips() -> None:
    record = replace(
        _searched(), error=None, reward=None, chosen_rollout=None, run_id=None, model=ModelInfo("scripted")
    )
    record = replace(
        record,
        rollouts=tuple(replace(r, trace_confidence=None, answer_confidence=None) for r in record.rollouts),
    )
    saved = json.loads(json.dumps(record.to_json()))
    assert Record.from_json(saved) == record


def test_a_schema_1_record_loads_with_todays_meanings() -> None:
    record = Record.from_json(json.loads(SCHEMA1.read_text()))
    assert record.schema == 1 and record.search.reward == "paper"  # schema 1's "rollout"
    assert [r.status for r in record.rollouts] == ["finished", "finished", "budget"]
    assert record.rollout_stats["finished"] == 2 and record.rollout_stats["budget"] == 1
    assert record.chosen is not None and record.chosen.answer == record.answer == "7"
    assert record.engine == {"threads": 2, "n_ctx": 4096}
    assert [m.role for m in record.messages] == ["user"]  # schema 1 kept no messages
    assert record.to_json()["schema"] == 1  # what it was written as, not what reads it


def test_a_schema_1_record_renders_and_exports() -> None:
    record = Record.from_json(json.loads(SCHEMA1.read_text()))
    console = Console(width=100, record=True, color_system=None)
    console.print(render_tree(TreeSnapshot.from_record(record), width=100, max_lines=40))
    console.print(final_view(record, hide_thought=False))
    shown = console.export_text()
    assert "Tom had 3 apples." in shown and "smollm2-135m · mcts · 3 iterations" in shown
    page = run_page(record)
    assert "<title>marco search: Tom has 3 apples" in page and "3 nodes · 3 rollouts" in page
    run = export.Run(record, "7", "old")
    sft = list(export.sft_examples(run, export.Filters(correct_only=True), export.Report()))
    assert [e["messages"][-1]["content"].count("<Output>7</Output>") for e in sft] == [1]
    pairs = list(export.dpo_pairs(run, export.Filters(), export.Report()))
    # 7 over 8 (they part at the root) and over the cut-off loop (they share node 1's text)
    assert sorted(p["shared_prefix_chars"] for p in pairs) == [0, len("Tom had 3 apples.\n")]


def test_old_history_rows_show_and_export_through_the_cli(isolated_home: Path) -> None:
    raw = SCHEMA1.read_text()
    history.save("solve", _searched())  # creates the database, run 1
    with sqlite3.connect(history.db_path()) as conn:
        conn.execute(
            "INSERT INTO runs (created, command, model, strategy, question, answer, confidence, seconds, "
            "record) VALUES (?, 'solve', 'smollm2-135m', 'mcts', 'q', '7', 0.9, 1.2, ?)",
            (time.time(), raw),
        )
        conn.execute(
            "INSERT INTO runs (created, command, model, strategy, question, answer, confidence, seconds, "
            "record) VALUES (?, 'solve', 'm', 'cot', 'q', '', NULL, 0.1, ?)",
            (time.time(), json.dumps({"answer": "no question, no record"})),
        )
    shown = runner.invoke(app, ["show", "2"])
    assert shown.exit_code == 0, shown.output
    assert "Tom had 3 apples." in shown.stdout
    as_json = json.loads(runner.invoke(app, ["show", "2", "--json"]).stdout)
    assert as_json["rollouts"][2]["status"] == "budget" and as_json["answer"] == "7"
    trees = runner.invoke(app, ["export", "--all", "--format", "tree"])
    assert trees.exit_code == 0, trees.output
    assert [json.loads(line)["source"] for line in trees.stdout.splitlines()] == ["run 1", "run 2"]
    assert "run 3 skipped: the record in the history is damaged" in trees.stderr
    damaged = runner.invoke(app, ["show", "3"])
    assert damaged.exit_code == 1 and "damaged (not a run record)" in damaged.stderr


@pytest.mark.parametrize(
    ("broken", "why"),
    [
        ({}, "question"),
        ({"question": "q", "stopped": "sleepy"}, "unknown stop reason"),
        ({"question": "q", "rollouts": [{"id": 0, "node": 0, "status": "lost"}]}, "unknown rollout status"),
        ({"question": "q", "settings": {"iterations": 0}}, "iterations must be at least 1"),
        ({"question": "q", "nodes": [{"parent": None}]}, "id"),
    ],
)
def test_what_is_not_a_record_is_said_in_one_error(broken: dict[str, object], why: str) -> None:
    with pytest.raises(RecordError, match=why):
        Record.from_json(broken)


def _string_key_reads(tree: ast.AST) -> list[int]:
    """Lines that read a record's JSON form by key: `x[...]` or `x.get(...)` where `x` is named
    like a record, or was bound to a record's `.to_json()` (whatever its name)."""
    from_json: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            if isinstance(func, ast.Attribute) and func.attr in ("to_json", "tree_json"):
                from_json |= {t.id for t in node.targets if isinstance(t, ast.Name)}

    def json_like(value: ast.expr) -> bool:
        name = (
            value.id
            if isinstance(value, ast.Name)
            else value.attr
            if isinstance(value, ast.Attribute)
            else ""
        )
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute):
            return value.func.attr in ("to_json", "tree_json")
        return name in from_json or name.lower() in ("record", "saved_record", "raw_record")

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and json_like(node.value):
            lines.append(node.lineno)
        func = node.func if isinstance(node, ast.Call) else None
        if isinstance(func, ast.Attribute) and func.attr == "get" and json_like(func.value):
            lines.append(node.lineno)
    return lines


def test_no_string_key_reads_of_a_record_outside_its_module() -> None:
    """The schema is written and read in record.py (and saved.py, its nodes and rollouts)
    alone: elsewhere a record is typed."""
    offenders = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] != "record"
        for number in _string_key_reads(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert offenders == []


def test_the_string_key_scan_catches_a_renamed_reader() -> None:
    """What the scan missed once (export read `saved = run.record.to_json()` by key)."""
    code = "def f(run):\n    saved = run.record.to_json()\n    return saved['question']\n"
    assert _string_key_reads(ast.parse(code)) == [3]
    assert _string_key_reads(ast.parse("def f(record):\n    return record.get('answer')\n")) == [2]
    assert _string_key_reads(ast.parse("def f(run):\n    return run.record.answer\n")) == []


@pytest.mark.parametrize("schema", [1, 2])
def test_an_old_select_vote_record_rescores_to_its_answer(schema: int) -> None:
    """`select: vote` in schema 1 and 2 meant the summed-reward vote (now `reward-vote`), not the
    plain count (`majority`). The golden tree plus two cheap 8s: 8 is said three times (0.4 +
    0.1 + 0.1 = 0.6), 7 once (0.91): the summed reward answers 7, as the run did; a count would
    answer 8."""
    saved = json.loads(SCHEMA1.read_text())
    saved["schema"] = schema
    saved["settings"]["select"] = "vote"
    cheap = {**saved["rollouts"][0], "reward": 0.1, "confidence": 0.1}
    saved["rollouts"] += [{**cheap, "id": 3}, {**cheap, "id": 4}]
    if schema == 2:
        for rollout in saved["rollouts"]:
            rollout["status"] = "finished" if rollout["answer"] else "budget"
    record = Record.from_json(saved)
    assert record.search.select == "reward-vote"
    assert answer_by(record, record.search.select) == answer_by(record, "vote") == record.answer == "7"
    assert answer_by(record, "majority") == "8"
