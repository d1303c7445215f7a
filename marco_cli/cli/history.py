"""`marco log` and `marco show`: past runs from the history."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from marco_cli import history
from marco_cli.cli.options import HideThought, Json
from marco_cli.ui.console import out_console
from marco_cli.ui.tree_view import TreeSnapshot, final_view, render_tree


def log_cmd(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many runs.")] = 20,
    as_json: Json = False,
) -> None:
    """List recent runs."""
    rows = history.recent(limit)
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table(title="marco runs", title_justify="left")
    for column in ("id", "when", "command", "model", "strategy", "question", "answer", "conf", "time"):
        table.add_column(column, overflow="ellipsis", no_wrap=column in ("question", "answer"))
    for row in rows:
        conf = "-" if row["confidence"] is None else f"{row['confidence']:.3f}"
        when = datetime.fromtimestamp(row["created"]).strftime("%Y-%m-%d %H:%M")
        table.add_row(
            str(row["id"]),
            when,
            row["command"],
            row["model"],
            row["strategy"],
            " ".join(row["question"].split())[:60],
            " ".join(row["answer"].split())[:60],
            conf,
            f"{row['seconds']:.1f}s",
        )
    out_console().print(table)


def show_cmd(
    run_id: Annotated[int, typer.Argument(help="A run id from 'marco log'.")],
    as_json: Json = False,
    hide_thought: HideThought = False,
) -> None:
    """Show a past run: its tree and answer, or its JSON record."""
    record = history.load(run_id)
    if as_json:
        print(json.dumps(record, ensure_ascii=False))
        return
    console = out_console()
    console.print(render_tree(TreeSnapshot.from_record(record), width=console.size.width, max_lines=60))
    console.print(final_view(record, hide_thought))


COMMANDS = {"log": log_cmd, "show": show_cmd}
