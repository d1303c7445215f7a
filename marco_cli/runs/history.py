"""Run history: every run's JSON record in one SQLite database in MARCO_HOME.

The history never costs a user an answer: a search's record is kept even when the database
cannot take it (read-only, locked past the timeout, corrupt): `save_or_keep` writes it to a
fallback file and says where. Reading a broken history is one clear error.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import tempfile
import time
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from marco_cli.errors import MarcoError
from marco_cli.files import marco_home

if TYPE_CHECKING:  # `marco log` lists rows without loading the record's types (and the search's)
    from marco_cli.record.record import Record

LOCK_TIMEOUT_S = 5.0
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
MAX_ID = 2**63 - 1  # SQLite's largest integer


class HistoryError(MarcoError):
    """The history database cannot be read or written."""


def db_path() -> Path:
    return marco_home() / "history.db"


def _connect() -> sqlite3.Connection:
    path = db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=LOCK_TIMEOUT_S)
    conn.execute(_SCHEMA)
    return conn


_READ_ONLY = ("readonly", "read-only", "unable to open database file")
_DAMAGED = ("not a database", "malformed", "corrupt")


def _not_a_folder() -> HistoryError | None:
    """MARCO_HOME must be a folder (or not exist yet): a file there is said as such."""
    home = marco_home()
    if home.exists() and not home.is_dir():
        return HistoryError(f"MARCO_HOME ({home}) is a file, not a folder: set MARCO_HOME to a folder")
    return None


def _exists() -> bool:
    """Whether there is a history to read (a MARCO_HOME that is a file is an error, not an
    empty history)."""
    problem = _not_a_folder()
    if problem is not None:
        raise problem
    return db_path().exists()


def _broken(exc: Exception) -> HistoryError:
    """The history's failure by its cause: not a folder, locked, read-only, or damaged (only
    then is moving it aside the advice)."""
    reason = str(exc) or type(exc).__name__
    path = db_path()
    not_a_folder = _not_a_folder()
    if not_a_folder is not None:
        return not_a_folder
    if "locked" in reason:  # healthy, but another marco holds it
        return HistoryError(
            f"the history at {path} is locked by another marco process (waited "
            f"{LOCK_TIMEOUT_S:.0f} s); try again when it finishes"
        )
    if path.is_dir():
        return HistoryError(f"the history at {path} is a folder, not a database file: rename or remove it")
    errno_ = exc.errno if isinstance(exc, OSError) else None
    if errno_ in (errno.EROFS, errno.EACCES, errno.EPERM) or any(w in reason for w in _READ_ONLY):
        target = path if path.exists() else marco_home()
        if not os.access(target, os.W_OK):
            what = "file" if target == path else "folder"
            return HistoryError(f"the history cannot be written: its {what} {target} is read-only")
    if any(w in reason for w in _DAMAGED):
        return HistoryError(f"the history at {path} is damaged ({reason}); move it aside to start anew")
    return HistoryError(f"the history at {path} cannot be used ({reason})")


def _parse(text: str) -> Record | None:
    """A stored record, or None when the row is damaged (not JSON, or not a run record)."""
    from marco_cli.record.record import Record  # startup: see TYPE_CHECKING above
    from marco_cli.record.saved import RecordError

    try:
        return Record.from_json(json.loads(text))
    except (ValueError, TypeError, RecordError, RecursionError):
        return None


def save(command: str, record: Record) -> int:
    try:
        with closing(_connect()) as conn, conn:
            cur = conn.execute(
                "INSERT INTO runs (created, command, model, strategy, question, answer, confidence, "
                "seconds, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time(),
                    command,
                    record.model.name,
                    record.search.strategy,
                    record.question,
                    record.answer,
                    record.reward,
                    record.seconds,
                    json.dumps(record.to_json(), ensure_ascii=False),
                ),
            )
            return int(cur.lastrowid or 0)
    except (sqlite3.Error, OSError) as exc:
        raise _broken(exc) from None


def keep_aside(record: Record) -> Path:
    """Write the record to a fallback file: in MARCO_HOME when it is writable, else the temp dir."""
    name = f"unsaved-run-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**6}.json"
    text = json.dumps(record.to_json(), ensure_ascii=False, indent=1)
    for folder in (marco_home(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            continue
    raise HistoryError("the record could not be written anywhere")


def save_or_keep(command: str, record: Record) -> tuple[int | None, str | None]:
    """Save the record; on failure keep it in a fallback file. Returns (run id, warning)."""
    try:
        return save(command, record), None
    except HistoryError as exc:
        try:
            kept = keep_aside(record)
        except HistoryError:
            return None, f"{exc}; the record could not be kept either"
        return None, f"{exc}; the record is in {kept}"


@dataclass(frozen=True)
class RunRow:
    """One line of `marco log`: a run's summary columns (the record itself is `load(id)`)."""

    id: int
    created: float  # Unix time
    command: str
    model: str
    strategy: str
    question: str
    answer: str
    confidence: float | None  # the chosen rollout's reward
    seconds: float

    def to_json(self) -> dict[str, int | float | str | None]:
        return asdict(self)


def recent(limit: int) -> list[RunRow]:
    """The `limit` latest runs, newest first."""
    if not _exists():
        return []
    try:
        with closing(_connect()) as conn:
            rows = conn.execute(
                "SELECT id, created, command, model, strategy, question, answer, confidence, seconds "
                "FROM runs ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
    except (sqlite3.Error, OSError) as exc:
        raise _broken(exc) from None
    return [RunRow(*row) for row in rows]  # the columns are NOT NULL and typed (confidence may be NULL)


def records(
    ids: list[int] | None = None, since: float | None = None
) -> tuple[list[tuple[int, Record]], list[int]]:
    """(id, record) of the runs with these ids (all when None) created since `since`, and the ids
    of matching runs whose stored record is damaged (left out: one bad row blocks no other)."""
    if not _exists():
        return [], []
    query, args = "SELECT id, record FROM runs WHERE created >= ?", [since or 0.0]
    if ids is not None:
        wanted = [i for i in ids if 0 < i <= MAX_ID]
        query += f" AND id IN ({', '.join('?' * len(wanted)) or 'NULL'})"
        args.extend(wanted)
    try:
        with closing(_connect()) as conn:
            rows = conn.execute(query + " ORDER BY id", args).fetchall()
    except (sqlite3.Error, OSError) as exc:
        raise _broken(exc) from None
    parsed = [(int(run_id), _parse(text)) for run_id, text in rows]
    good = [(run_id, record) for run_id, record in parsed if record is not None]
    return good, [run_id for run_id, record in parsed if record is None]


def load(run_id: int) -> Record:
    """A run's record; an id that is not there is a usage error, a damaged record a runtime one."""
    if not _exists():
        raise MarcoError(f"no run {run_id}: the history is empty", code=2)
    if not 0 < run_id <= MAX_ID:
        raise MarcoError(f"no run {run_id} in the history; 'marco log' lists them", code=2)
    try:
        with closing(_connect()) as conn:
            row = conn.execute("SELECT record FROM runs WHERE id = ?", (run_id,)).fetchone()
    except (sqlite3.Error, OSError) as exc:
        raise _broken(exc) from None
    if row is None:
        raise MarcoError(f"no run {run_id} in the history; 'marco log' lists them", code=2)
    record = _parse(row[0])
    if record is None:
        raise MarcoError(f"run {run_id}'s record in the history is damaged (not a run record)")
    return record
