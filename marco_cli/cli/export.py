"""`marco export`: runs from the history or a `marco bench` folder, as JSONL training data."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from marco_cli.cli.flags import finite, real, span
from marco_cli.errors import MarcoError
from marco_cli.files import write_text
from marco_cli.runs import bench, export, history
from marco_cli.ui.console import err_console, warn, warn_bad_line

MAX_IDS = 100_000


def id_list(ids: list[int], most: int = 10) -> str:
    """Ids for a message: the first few, then how many more (never a line of 100,000 ids)."""
    shown = ", ".join(map(str, ids[:most]))
    return shown + (f" and {len(ids) - most:,} more" if len(ids) > most else "")


def parse_ids(values: list[str]) -> list[int]:
    """`--run 3 --run 7-9` (or `3,7-9`) as run ids (at most MAX_IDS of them)."""
    ids: list[int] = []
    for value in values:
        for part in value.split(","):
            low, _, high = part.strip().partition("-")
            try:
                first, last = int(low), int(high or low)
            except ValueError:
                raise MarcoError(f"'{part}' is not a run id or a range like 3-7", code=2) from None
            if first > last:
                raise MarcoError(f"the range {part} is empty", code=2)
            if first < 1:
                raise MarcoError(f"run ids start at 1, not {first}", code=2)
            if len(ids) + last - first + 1 > MAX_IDS:
                raise MarcoError(f"--run names more than {MAX_IDS:,} runs; use --all or --since", code=2)
            ids.extend(range(first, last + 1))
    return ids


def _since(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise MarcoError(
            f"--since wants a date like 2026-11-25 or 2026-11-25T14:30, not '{value}'", code=2
        ) from None


def runs_from_history(ids: list[int], everything: bool, since: str | None) -> list[export.Run]:
    if not ids and not everything and since is None:
        raise MarcoError(
            "say which runs: --run ID (or a range), --all, --since DATE, or a bench folder", code=2
        )
    rows, damaged = history.records(ids or None, _since(since))
    if damaged:
        warn(f"run {id_list(damaged)} skipped: the record in the history is damaged")
    missing = sorted(set(ids) - {run_id for run_id, _ in rows} - set(damaged))
    if missing:
        raise MarcoError(f"no run {id_list(missing)} in the history; 'marco log' lists them", code=2)
    if not rows:
        raise MarcoError("no run in the history matches; 'marco log' lists them", code=2)
    return [export.Run(record, None, f"run {run_id}") for run_id, record in rows]


def runs_from_bench(folder: Path) -> list[export.Run]:
    if not folder.is_dir():
        raise MarcoError(f"{folder} is not a folder: give a marco bench --out folder", code=2)
    kept = bench.read_records(folder, warn_bad_line)
    if not kept:
        raise MarcoError(
            f"{folder} holds no search records (records.jsonl): is it a marco bench folder?", code=2
        )
    return [export.Run(k.record, k.gold, f"{folder} {k.config} #{k.index}") for k in kept]


def export_cmd(
    bench_dir: Annotated[
        Path | None, typer.Argument(help="A marco bench --out folder (it has gold answers).")
    ] = None,
    fmt: Annotated[export.ExportFormat, typer.Option("--format", help="Training data format.")] = "sft",
    run: Annotated[list[str] | None, typer.Option("--run", help="Run id or range (3-7); repeat.")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Every run in the history.")] = False,
    since: Annotated[str | None, typer.Option(help="Runs since this date (ISO).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
    correct_only: Annotated[
        bool, typer.Option(help="sft: only rollouts that match the gold answer.")
    ] = False,
    min_reward: Annotated[
        float | None, typer.Option(callback=finite, help="sft: only rollouts with at least this reward.")
    ] = None,
    length: Annotated[
        export.LengthFilter, typer.Option(help="sft: all, or the shortest/longest third per question.")
    ] = "all",
    chosen_only: Annotated[
        bool, typer.Option(help="sft: only the rollout the search answered with.")
    ] = False,
    margin: Annotated[
        float,
        typer.Option(
            callback=real(0.0),
            metavar=span(0.0),
            help="dpo without gold: the reward gap a pair needs; step-dpo: the value gap.",
        ),
    ] = 0.0,
    prefer_short: Annotated[bool, typer.Option(help="dpo: also the shorter of two correct sides.")] = False,
    prefer_checked: Annotated[
        bool, typer.Option(help="dpo: a side whose arithmetic holds over one with a wrong equation.")
    ] = False,
    max_pairs_per_question: Annotated[
        int | None, typer.Option(min=1, help="dpo, step-dpo: at most this many.")
    ] = None,
) -> None:
    """Export search trees as training data: SFT conversations, DPO pairs, or raw trees (JSONL)."""
    runs = (
        runs_from_bench(bench_dir)
        if bench_dir
        else runs_from_history(parse_ids(run or []), everything, since)
    )
    options = export.Filters(
        correct_only=correct_only,
        min_reward=min_reward,
        length=length,
        chosen_only=chosen_only,
        margin=margin,
        prefer_short=prefer_short,
        prefer_checked=prefer_checked,
        max_pairs=max_pairs_per_question,
    )
    lines, report = export.export(runs, fmt, options)
    text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    if out is not None:
        write_text(out, text)
    else:
        print(text, end="", flush=True)
    what = {"sft": "examples", "dpo": "pairs", "step-dpo": "step pairs", "tree": "trees"}[fmt]
    skipped = "; ".join(f"{n} skipped: {why}" for why, n in report.skipped.most_common()) or "none skipped"
    err_console().print(
        f"{report.runs} runs read, {report.written} {what} written ({skipped})", highlight=False
    )


COMMANDS = {"export": export_cmd}
