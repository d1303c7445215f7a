"""`marco bench` logic: datasets, grading, and the resumable run itself (its figures and
paired statistics: summary.py).

`run` is the core: it emits typed events (a problem started or was graded) and the command
line folds them into its progress bar; nothing here draws.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from marco_cli import tasks
from marco_cli.contract import ChatEngine
from marco_cli.errors import MarcoError, PromptTooLong, clip
from marco_cli.files import make_folder, read_utf8, replace_text, write_text
from marco_cli.record.record import ModelInfo, Record
from marco_cli.record.results import RESULT_FIELDS, ResultRow
from marco_cli.record.saved import JsonObject, RecordError
from marco_cli.search import strategies
from marco_cli.search.answers import extract_number
from marco_cli.search.config import SearchConfig
from marco_cli.search.rules import RULE_NAMES, Ballot, choose, rule_name

RESULTS = "results.jsonl"
SUMMARY = "summary.json"
META = "run.json"
RECORDS = "records.jsonl"


@dataclass(frozen=True)
class Problem:
    index: int
    question: str
    answer: str


def load_dataset(path: Path) -> list[Problem]:
    """A TSV of `question<TAB>answer`, or a JSONL with `question` and `answer` fields."""
    if not path.is_file():
        raise MarcoError(f"dataset not found: {path}", code=2)
    problems: list[Problem] = []
    lines = read_utf8(path).splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if path.suffix in (".jsonl", ".json"):
            try:
                item = json.loads(line)
                question, answer = str(item["question"]), str(item["answer"])
            except (json.JSONDecodeError, KeyError, TypeError, RecursionError):
                raise MarcoError(f"{path}:{number}: needs a JSON object with question and answer") from None
        else:
            parts = line.rsplit("\t", 1)
            if len(parts) != 2 or not parts[0].strip():
                raise MarcoError(f"{path}:{number}: expected question<TAB>answer")
            question, answer = parts
        problems.append(Problem(len(problems), question.strip(), answer.strip()))
    if not problems:
        raise MarcoError(f"{path} holds no problems")
    return problems


def grade(answer: str, gold: str) -> tuple[float | None, bool]:
    """Grade the answer a search chose (extracted by the rule `solve` uses; "" when no rollout
    finished): its number against the gold number. None is the "no answer" outcome."""
    value = extract_number(answer)
    target = extract_number(gold)
    if value is None or target is None:
        return value, False
    return value, math.isclose(value, target, rel_tol=0, abs_tol=1e-6)


def config_name(strategy: str, granularity: str) -> str:
    return f"{strategy}/{granularity}" if strategies.granular(strategy) else strategy


BadLine = Callable[[Path, int, str], None]


def _ignore(path: Path, number: int, why: str) -> None:
    return None


def read_jsonl(
    path: Path, need: tuple[str, ...] = (), on_bad: BadLine = _ignore, objects: tuple[str, ...] = ()
) -> list[JsonObject]:
    """The JSON-object lines of a bench file that hold the `need` fields (those in `objects`
    as objects); any other line (one cut by a kill, one edited by hand) is left out and told to
    `on_bad(path, line, why)`."""
    return [row for _, row in _numbered_rows(path, need, on_bad, objects)]


def _numbered_rows(
    path: Path, need: tuple[str, ...], on_bad: BadLine, objects: tuple[str, ...]
) -> list[tuple[int, JsonObject]]:
    if not path.exists():
        return []
    rows = []
    for number, line in enumerate(read_utf8(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            on_bad(path, number, "not complete JSON (cut by a kill?)")
            continue
        missing = [k for k in need if not isinstance(row, dict) or k not in row]
        if not isinstance(row, dict) or missing:
            on_bad(path, number, "not an object" if not isinstance(row, dict) else f"no {missing[0]}")
            continue
        if any(not isinstance(row[k], dict) for k in objects):
            on_bad(path, number, f"its {', '.join(objects)} is not an object")
            continue
        rows.append((number, row))
    return rows


RECORD_FIELDS = ("config", "index", "gold", "record")


def read_results(out: Path, on_bad: BadLine = _ignore) -> list[ResultRow]:
    """The graded rows of a bench folder; a row that is not one is told to `on_bad`."""
    rows = []
    for number, row in _numbered_rows(out / RESULTS, RESULT_FIELDS, on_bad, ()):
        try:
            rows.append(ResultRow.from_json(row))
        except RecordError as exc:
            on_bad(out / RESULTS, number, str(exc))
    return rows


def _cut_torn_tail(path: Path) -> None:
    """A line a kill cut short has no newline: drop it, so the next row starts a line of its
    own instead of being glued to it (only the last byte is read when nothing is torn)."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "r+b") as handle:
        handle.seek(-1, 2)
        if handle.read(1) == b"\n":
            return
        handle.seek(0)
        handle.truncate(handle.read().rfind(b"\n") + 1)


def repair(out: Path) -> set[tuple[str, int]]:
    """Before a resume: cut torn last lines, and keep one record per graded problem (a record
    whose result row was lost is redone, not duplicated). Returns the graded (config, index)."""
    for name in (RESULTS, RECORDS):
        _cut_torn_tail(out / name)
    done = {(r.config, r.index) for r in read_results(out)}
    kept: dict[tuple[str, int], JsonObject] = {}
    records = read_jsonl(out / RECORDS, RECORD_FIELDS)
    for item in records:
        key = (item["config"], item["index"])
        if key in done:
            kept[key] = item
    if len(kept) != len(records):
        replace_text(out / RECORDS, "".join(json.dumps(i, ensure_ascii=False) + "\n" for i in kept.values()))
    return done


def append_line(path: Path, row: JsonObject) -> None:
    """One row, appended and flushed. A failed write (a full disk) is one line naming the
    folder: the rows before it stay valid, and a row cut short is dropped on resume."""
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()
    except OSError as exc:
        raise MarcoError(
            f"cannot write to {path.parent}: {exc.strerror or exc}; the rows already written are "
            "kept: rerun the same command to resume once it can be written"
        ) from None


def append_result(out: Path, row: ResultRow) -> None:
    append_line(out / RESULTS, row.to_json())


@dataclass(frozen=True)
class BenchStarted:
    total: int  # problem-configurations in this run
    done: int  # of them already in the results folder (resumed)


@dataclass(frozen=True)
class ProblemGraded:
    config: str
    index: int
    correct: bool


@dataclass(frozen=True)
class ProblemSkipped:
    config: str
    index: int
    why: str


BenchEvent = BenchStarted | ProblemGraded | ProblemSkipped
BenchListener = Callable[[BenchEvent], None]


def same_settings(old: object, new: Mapping[str, object]) -> bool:
    """A configuration's saved settings match: a setting the older folder does not have (added
    since) counts as its default then."""
    return isinstance(old, dict) and all(old.get(k, v) == v for k, v in new.items())


def fingerprint(problems: Sequence[Problem]) -> str:
    """The dataset's questions and gold answers as one sha256: a resume must read the same
    problems, whatever the dataset is called."""
    text = json.dumps([[p.question, p.answer] for p in problems], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _same_problems(out: Path, old: dict[str, object], meta: JsonObject) -> None:
    """Resuming into a folder that holds another dataset (or other problems under the same
    name: a file changed since) is a usage error naming both. A folder from before the
    fingerprint was kept is checked by the dataset's name alone."""
    before, now = old.get("dataset"), meta["dataset"]
    if before is not None and before != now:
        raise MarcoError(
            f"{out} holds results of dataset {clip(str(before), 60)}, not {clip(str(now), 60)}; "
            "pass another --out",
            code=2,
        )
    kept = old.get("problems_sha256")
    if kept is not None and kept != meta["problems_sha256"]:
        raise MarcoError(
            f"{out} holds results of other problems under the name {clip(str(now), 60)} "
            "(the dataset changed since); pass another --out",
            code=2,
        )


def prepare_run_dir(out: Path, meta: JsonObject) -> None:
    """Create the results folder, or check that it holds results of the same settings (then the
    run resumes); record the settings there."""
    make_folder(out)
    meta_path = out / META
    if meta_path.exists():
        try:
            old = json.loads(read_utf8(meta_path))
        except (ValueError, RecursionError):
            raise MarcoError(f"{meta_path} is damaged; pass another --out", code=2) from None
        if not isinstance(old, dict):
            raise MarcoError(f"{meta_path} is not a marco bench file; pass another --out", code=2)
        _same_problems(out, old, meta)
        if old.get("model") != meta["model"] or any(
            not same_settings(old.get("settings", {}).get(n, c), c) for n, c in meta["settings"].items()
        ):
            raise MarcoError(f"{out} holds results of other settings; pass another --out", code=2)
        meta = {**meta, "settings": {**old.get("settings", {}), **meta["settings"]}}
    write_text(meta_path, json.dumps(meta, indent=2))


def skipped_row(name: str, problem: Problem, why: str) -> ResultRow:
    """A problem that was not searched: graded as done (a resume does not retry it), counted
    as skipped, and outside every figure."""
    return ResultRow(name, problem.index, False, 0, 0.0, None, problem.question, problem.answer, skipped=why)


def result_row(name: str, problem: Problem, record: Record) -> ResultRow:
    extracted, correct = grade(record.answer, problem.answer)
    return ResultRow(
        config=name,
        index=problem.index,
        correct=correct,
        tokens=record.tokens.generated + record.tokens.verifier,
        seconds=record.seconds,
        extracted=extracted,
        question=problem.question,
        gold=problem.answer,
        reward=record.reward,
        answer=record.answer,
        response=record.response,
    )


@dataclass(frozen=True)
class Kept:
    """One search a bench run kept (records.jsonl): its configuration, problem, gold answer."""

    config: str
    index: int
    gold: str
    record: Record

    def to_json(self) -> JsonObject:
        return {
            "config": self.config,
            "index": self.index,
            "gold": self.gold,
            "record": self.record.to_json(),
        }


def read_records(out: Path, on_bad: BadLine = _ignore) -> list[Kept]:
    """The search records a bench run kept; a line whose record is not one is told to `on_bad`."""
    kept = []
    for number, row in _numbered_rows(out / RECORDS, RECORD_FIELDS, on_bad, ("record",)):
        try:
            record = Record.from_json(row["record"])
            kept.append(Kept(str(row["config"]), int(row["index"]), str(row["gold"]), record))
        except (RecordError, TypeError, ValueError) as exc:
            on_bad(out / RECORDS, number, str(exc))
    return kept


def run(
    engine: ChatEngine,
    style: str,
    info: ModelInfo,
    problems: list[Problem],
    configs: dict[str, SearchConfig],
    out: Path,
    listener: BenchListener,
    jobs: int = 1,
    aides: tasks.Aides = tasks.NO_AIDES,
) -> None:
    """Run every configuration on every problem not yet in `out`, appending each graded row
    (results.jsonl) and the search's record (records.jsonl, for `marco export`) as it finishes.
    `jobs` > 1 keeps that many problems in flight (for a server that batches). Ctrl-C
    propagates; finished rows stay. `aides`: the verifier a `judge` reward asks and the PRM
    `--value prm` asks."""
    done = repair(out)
    todo = [(p, n) for p in problems for n in configs if (n, p.index) not in done]
    total = len(problems) * len(configs)
    listener(BenchStarted(total, total - len(todo)))
    lock = threading.Lock()

    def work(item: tuple[Problem, str]) -> None:
        problem, name = item
        messages = tasks.solve_messages(problem.question)
        try:
            record = tasks.run_task(
                engine, style, info, problem.question, messages, configs[name], aides=aides
            )
        except PromptTooLong as exc:  # this problem cannot run; the others can
            row = skipped_row(name, problem, str(exc))
            with lock:
                append_result(out, row)
            listener(ProblemSkipped(name, problem.index, row.skipped))
            return
        if record.stopped == "interrupted":
            raise KeyboardInterrupt
        if record.stopped == "error":
            raise MarcoError(record.error or "the model failed")
        row = result_row(name, problem, record)
        kept = Kept(name, problem.index, problem.answer, record)
        with lock:
            append_line(out / RECORDS, kept.to_json())
            append_result(out, row)
        listener(ProblemGraded(name, problem.index, row.correct))

    if jobs > 1:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(work, todo))
    else:
        for item in todo:
            work(item)


RULES = RULE_NAMES  # what a saved tree can be re-scored by (bench's CONFIG=RULE, rescore.py)


def answer_by(record: Record, rule: str) -> str:
    """The answer a saved tree gives under `rule` (an old name through the rules' aliases),
    without generating again (re-scoring); DeepConf's share and warm-up are the run's own."""
    config = record.search
    ballot = Ballot.of(record.tree(), config.deepconf_keep, config.deepconf_warmup)
    chosen = choose(ballot, rule_name(rule))
    return chosen.answer if chosen else ""
