"""The run history (runs/history.py, `marco log`, `marco show`): saved, listed and loaded; a
corrupt, locked or unwritable database costs no answer (the record is kept aside), one damaged
row blocks no other, and the log fits 80 columns."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from marco_cli.cli.app import app
from marco_cli.cli.history import log_table
from marco_cli.errors import MarcoError
from marco_cli.record.record import Record
from marco_cli.runs import history
from marco_cli.runs.history import RunRow
from tests.helpers import no_traceback, one_line_error, runner

Q = "What is 2 + 2?"


def _history_with_a_damaged_row() -> None:
    with sqlite3.connect(history.db_path()) as conn:
        conn.execute(
            "INSERT INTO runs (created, command, model, strategy, question, answer, confidence, seconds, "
            "record) VALUES (?, 'solve', 'm', 'cot', 'q', 'a', NULL, 0, '{not json')",
            (time.time(),),
        )


def test_one_damaged_history_row_blocks_no_other(scripted_session, tmp_path: Path) -> None:
    assert runner.invoke(app, ["solve", Q]).exit_code == 0
    _history_with_a_damaged_row()  # run 1 is good, run 2 damaged
    assert runner.invoke(app, ["show", "1", "--json"]).exit_code == 0
    assert "run 2's record in the history is damaged" in one_line_error(runner.invoke(app, ["show", "2"]), 1)
    out = tmp_path / "all.jsonl"
    exported = runner.invoke(app, ["export", "--all", "--format", "tree", "--out", str(out)])
    assert exported.exit_code == 0 and "run 2 skipped" in exported.stderr
    assert len(out.read_text().splitlines()) == 1


def test_a_locked_history_is_not_called_broken(
    scripted_session, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert runner.invoke(app, ["solve", Q]).exit_code == 0
    monkeypatch.setattr(history, "LOCK_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(isolated_home / "history.db")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        line = one_line_error(runner.invoke(app, ["log"]), 1)
    finally:
        holder.rollback()
        holder.close()
    assert "locked by another marco process" in line and "move it aside" not in line


def test_log_with_an_absurd_limit_lists_every_run(scripted_session) -> None:
    assert runner.invoke(app, ["solve", Q]).exit_code == 0
    result = runner.invoke(app, ["log", "-n", "100000000000000000000000", "--json"])
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 1


def test_missing_ids_are_listed_briefly(scripted_session) -> None:
    assert runner.invoke(app, ["solve", Q]).exit_code == 0
    line = one_line_error(runner.invoke(app, ["export", "--run", "1-100000"]), 2)
    assert "no run 2, 3, 4" in line and "99,989 more" in line


def test_a_corrupt_history_costs_no_answer(scripted_session, isolated_home: Path) -> None:
    (isolated_home / "history.db").write_bytes(b"this is not a database" * 100)
    result = runner.invoke(app, ["solve", Q, "--json"])
    no_traceback(result)
    assert result.exit_code == 0 and json.loads(result.stdout)["answer"] == "4"
    assert "warning:" in result.stderr and "is damaged (file is not a database)" in result.stderr
    kept = list(isolated_home.glob("unsaved-run-*.json"))
    assert len(kept) == 1 and str(kept[0]) in result.stderr.replace("\n", "")
    assert json.loads(kept[0].read_text())["answer"] == "4"
    for command in (["log"], ["show", "1"]):
        broken = runner.invoke(app, command)
        no_traceback(broken)
        assert broken.exit_code == 1 and "move it aside" in broken.stderr


def test_an_unwritable_history_keeps_the_record_aside(scripted_session, isolated_home: Path) -> None:
    (isolated_home / "history.db").mkdir()  # sqlite cannot open it (as root, chmod would not stop it)
    result = runner.invoke(app, ["solve", Q])
    no_traceback(result)
    assert result.exit_code == 0 and result.stdout == "4\n"
    assert "is a folder, not a database file" in result.stderr and list(
        isolated_home.glob("unsaved-run-*.json")
    )


def test_a_locked_history_waits_then_keeps_the_record_aside(
    scripted_session, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history, "LOCK_TIMEOUT_S", 0.3)
    history.save("solve", Record.from_json({"settings": {"strategy": "cot"}, "question": "q", "answer": "a"}))
    holder = sqlite3.connect(isolated_home / "history.db")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        start = time.monotonic()
        result = runner.invoke(app, ["solve", Q])
        waited = time.monotonic() - start
    finally:
        holder.rollback()
        holder.close()
    assert result.exit_code == 0 and result.stdout == "4\n" and waited >= 0.3
    assert "locked by another marco process" in result.stderr and list(
        isolated_home.glob("unsaved-run-*.json")
    )


def test_show_of_an_impossible_id_is_a_usage_error(scripted_session) -> None:
    assert runner.invoke(app, ["solve", Q]).exit_code == 0
    result = runner.invoke(app, ["show", "99999999999999999999999"])
    no_traceback(result)
    assert result.exit_code == 2 and "no run 99999999999999999999999" in result.stderr


def test_log_fits_80_columns_with_id_and_time_whole() -> None:
    rows = [
        RunRow(
            i,
            1.7e9,
            "translate",
            "smollm2-135m-instruct",
            "best-of-n",
            "Janet's ducks lay 16 eggs per day. " * 4,
            "She makes 18 dollars every day at the market.",
            0.912,
            49.2,
        )
        for i in (7, 123, 45678)
    ]
    console = Console(width=80, record=True, color_system=None)
    console.print(log_table(rows, 80))
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    for i in (7, 123, 45678):
        assert any(line.split()[:1] == [str(i)] and "49.2s" in line and "0.912" in line for line in lines)


def test_history_saves_lists_and_loads(isolated_home) -> None:
    assert history.recent(5) == []
    with pytest.raises(MarcoError, match="history is empty"):
        history.load(1)
    record = Record.from_json(
        {
            "model": {"name": "m"},
            "settings": {"strategy": "cot"},
            "question": "Q?",
            "answer": "4",
            "confidence": 0.5,
            "seconds": 1.0,
        }
    )
    first = history.save("solve", record)
    second = history.save("translate", replace(record, answer="vier"))
    assert [r.id for r in history.recent(5)] == [second, first]
    assert history.recent(1)[0].answer == "vier"
    assert history.load(first) == record
    with pytest.raises(MarcoError, match="no run 999"):
        history.load(999)
