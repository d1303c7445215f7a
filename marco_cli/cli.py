"""The `marco` command line: a thin Typer shell over the registry, engine and search."""

from __future__ import annotations

import typer

from marco_cli import cli_bench, cli_models, cli_solve

app = typer.Typer(
    name="marco",
    help="Marco-o1-style MCTS reasoning over local GGUF models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
cli_models.register(app)
cli_solve.register(app)
cli_bench.register(app)


def main() -> None:
    app()
