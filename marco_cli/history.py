"""Run history: every run's JSON record in one SQLite database in MARCO_HOME."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from marco_cli.errors import MarcoError
from marco_cli.registry import marco_home

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    command TEXT NOT NULL,
    model TEXT NOT NULL,
    strategy TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    confidence REAL,
    seconds REAL NOT NULL,
    record TEXT NOT NULL
)
"""


def db_path() -> Path:
    return marco_home() / "history.db"


def _connect() -> sqlite3.Connection:
    path = db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute(_SCHEMA)
    return conn


def save(command: str, record: dict[str, Any]) -> int:
    with closing(_connect()) as conn, conn:
        cur = conn.execute(
            "INSERT INTO runs (created, command, model, strategy, question, answer, confidence, seconds, "
            "record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                time.time(),
                command,
                record["model"].get("name", "?"),
                record["settings"]["strategy"],
                record["question"],
                record["answer"],
                record["confidence"],
                record["seconds"],
                json.dumps(record, ensure_ascii=False),
            ),
        )
        return int(cur.lastrowid or 0)


def recent(limit: int) -> list[dict[str, Any]]:
    if not db_path().exists():
        return []
    with closing(_connect()) as conn:
        rows = conn.execute(
            "SELECT id, created, command, model, strategy, question, answer, confidence, seconds "
            "FROM runs ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
    keys = ("id", "created", "command", "model", "strategy", "question", "answer", "confidence", "seconds")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def load(run_id: int) -> dict[str, Any]:
    if not db_path().exists():
        raise MarcoError(f"no run {run_id}: the history is empty")
    with closing(_connect()) as conn:
        row = conn.execute("SELECT record FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise MarcoError(f"no run {run_id} in the history; 'marco log' lists them")
    return json.loads(row[0])
