"""The `marco` command line: a thin Typer shell over the registry, engine and search."""

from marco_cli.cli.app import app, main

__all__ = ["app", "main"]
