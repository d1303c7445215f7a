"""`marco log` and `marco show`: past runs from the history."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from marco_cli.cli.flags import HideThought, Json
from marco_cli.files import write_text
from marco_cli.runs import history
from marco_cli.ui.console import err_console, out_console, visible


def log_cmd(
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=history.MAX_ID, clamp=True, help="How many runs.")
    ] = 20,
    as_json: Json = False,
) -> None:
    """List recent runs."""
    rows = history.recent(limit)
    if as_json:
        print(json.dumps([row.to_json() for row in rows], ensure_ascii=False, indent=2))
        return
    if not rows:  # said on stderr: a pipe still reads no lines
        err_console().print("no runs yet: `marco solve QUESTION` records one", highlight=False)
        return
    if not sys.stdout.isatty():  # a pipe gets every field whole, one run per line
        for row in _cells(rows):
            print("\t".join(row))
        return
    console = out_console()
    console.print(log_table(rows, console.size.width))


COLUMNS = ("id", "when", "command", "model", "strategy", "question", "answer", "conf", "time")


def _cells(rows: list[history.RunRow]) -> list[tuple[str, ...]]:
    return [
        (
            str(row.id),
            datetime.fromtimestamp(row.created).strftime("%Y-%m-%d %H:%M"),
            visible(row.command),
            visible(row.model),
            visible(row.strategy),
            visible(" ".join(row.question.split())),
            visible(" ".join(row.answer.split())),
            "-" if row.confidence is None else f"{row.confidence:.3f}",
            f"{row.seconds:.1f}s",
        )
        for row in rows
    ]


def log_table(rows: list[history.RunRow], width: int) -> Table:
    """Fits `width` (80 columns and up): the question and answer get what the other columns
    leave and shrink first; id, date and time are never cut; below 110 columns the command
    and strategy columns are left out."""
    names = [c for c in COLUMNS if width >= 110 or c not in ("command", "strategy")]
    cells = [tuple(c[COLUMNS.index(n)] for n in names) for c in _cells(rows)]
    longest = {n: max([len(n), *(len(c[i]) for c in cells)]) for i, n in enumerate(names)}
    widths = {n: min(longest[n], 12) if n == "model" else longest[n] for n in names}
    others = sum(w for n, w in widths.items() if n not in ("question", "answer"))
    room = max(16, width - others - 3 * len(names))  # a space each side and a separator per column
    widths["question"] = min(longest["question"], max(8, room * 3 // 5))
    widths["answer"] = min(longest["answer"], max(8, room - widths["question"]))
    table = Table(title="marco runs", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in names:
        table.add_column(name, no_wrap=True, overflow="ellipsis", width=widths[name])
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))  # stored text is never read as markup
    return table


def show_cmd(
    run_id: Annotated[int, typer.Argument(help="A run id from 'marco log'.")],
    as_json: Json = False,
    hide_thought: HideThought = False,
    html: Annotated[Path | None, typer.Option(help="Write the run as a self-contained HTML page.")] = None,
) -> None:
    """Show a past run: its tree and answer, or its JSON record, or an HTML page."""
    # imported here so `marco log` starts without the page and tree renderers
    from marco_cli.ui.html import run_page
    from marco_cli.ui.tree_view import TreeSnapshot, final_view, render_tree

    record = history.load(run_id)
    if html is not None:
        write_text(html, run_page(record, f"marco run {run_id}"))
        err_console().print(f"tree page: {html}", highlight=False)
        return
    if as_json:
        print(json.dumps(record.to_json(), ensure_ascii=False))
        return
    console = out_console()
    tree = TreeSnapshot.from_record(record)
    hint = f"; 'marco show {run_id} --json' has them all"
    console.print(render_tree(tree, width=console.size.width, max_lines=60, hint=hint))
    console.print(final_view(record, hide_thought))


COMMANDS = {"log": log_cmd, "show": show_cmd}
