"""The `marco` command line: a thin Typer shell over the registry, engine and search. The app is
`marco_cli.cli.app.app`; this package imports nothing so a command loads only its own module."""
