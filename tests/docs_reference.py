"""docs/options.md, written from the CLI itself: every command's options, grouped as `--help`
groups them, with their defaults. `tests/test_docs.py` checks the page equals this text;
`python -m tests.docs_reference` rewrites it after an option changes."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import typer

from marco_cli.cli.app import app
from marco_cli.cli.option_table import ADVANCED

PAGE = Path(__file__).resolve().parents[1] / "docs" / "options.md"
SHARED = ("solve", "translate", "bench", "serve")  # the commands that take the search's options
HEAD = """# Every option

Written from the CLI by `python -m tests.docs_reference` and checked by `tests/test_docs.py`, so it
is what `marco COMMAND --help-all` prints. `--help` leaves out the options marked *more*;
`--help-all` shows them (on the commands that have more). `solve`, `translate`, `bench` and
`serve` share the search, model, output and remote options (the first table, with `solve`'s
defaults); each command's own options, and the shared ones whose default differs, follow. What
the search options do, and why the defaults are what they are: [search.md](search.md).
"""


def commands() -> dict[str, typer.core.TyperCommand]:
    """Every command, loaded as `marco NAME` loads it (the group imports a command when asked)."""
    group = typer.main.get_command(app)
    ctx = typer.Context(group)
    return {name: group.get_command(ctx, name) for name in group.list_commands(ctx)}  # type: ignore[attr-defined]


def _names(param: typer.core.TyperOption) -> str:
    names = " / ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
    return names + (" *more*" if param.name in ADVANCED else "")


def _default(param: typer.core.TyperOption) -> str:
    value = param.default
    if param.is_flag and not param.secondary_opts:
        return "off" if not value else "on"
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None or value == []:
        return "-"
    return f"`{value}`"


def _row(param: typer.core.TyperOption) -> str:
    help_text = " ".join((param.help or "").split()).replace("|", "\\|")
    return f"| {_names(param)} | {_default(param)} | {help_text} |"


def _options(command: typer.core.TyperCommand) -> list[typer.core.TyperOption]:
    return [p for p in command.params if isinstance(p, typer.core.TyperOption) and p.name != "help_all"]


def _table(params: list[typer.core.TyperOption]) -> list[str]:
    panels: dict[str, list[str]] = defaultdict(list)
    for param in params:
        panels[param.rich_help_panel or "Options"].append(_row(param))
    lines: list[str] = []
    for panel, rows in panels.items():
        lines += [f"**{panel}**", "", "| option | default | what it does |", "|---|---|---|", *rows, ""]
    return lines


def _strategies() -> list[str]:
    """The strategy table (search/strategies.py), as `--strategy` and bench's `NAME@N` read it."""
    from dataclasses import fields

    from marco_cli.search import strategies
    from marco_cli.search.settings import DeepConfSettings

    rows = []
    for name in strategies.names():
        spec = strategies.strategy(name)
        reads = ", ".join(
            f"`--{f.name.replace('_', '-')}`"
            for g in spec.settings
            if g is not DeepConfSettings
            for f in fields(g)
        )
        budget = f"`{name}@N`: `--{spec.budget}`" if spec.budget else "-"
        rows.append(f"| `{name}` | {spec.help} | `{spec.own_rule}` | {budget} | {reads or '-'} |")
    head = "| strategy | what it does | answer rule | budget in bench | its own settings |"
    note = (
        "Every strategy also reads the shared options below and the DeepConf rules' "
        "(`--deepconf-keep`, `--deepconf-window`, `--deepconf-warmup`: any answer may be chosen by "
        "a DeepConf rule); bench refuses a configuration's flag its strategy would not read."
    )
    return ["## Strategies", "", head, "|---|---|---|---|---|", *rows, "", note, ""]


def reference() -> str:
    by_name = commands()
    shared = {p.name: p for p in _options(by_name["solve"]) if p.rich_help_panel}
    top = [p for p in typer.main.get_command(app).params if isinstance(p, typer.core.TyperOption)]
    lines = [HEAD, *_strategies(), "## marco", "", "Before any command.", "", *_table(top)]
    lines += ["## Shared by solve, translate, bench and serve", "", *_table(list(shared.values()))]
    for name, command in by_name.items():
        own = [
            p
            for p in _options(command)
            if p.name not in shared or (name in SHARED and p.default != shared[p.name].default)
        ]
        summary = (command.help or "").strip().splitlines()[0]
        lines += [f"## marco {name}", "", summary, ""]
        lines += _table(own) if own else ["No options besides `--help`.", ""]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    PAGE.write_text(reference(), encoding="utf-8")
    print(f"wrote {PAGE}")
