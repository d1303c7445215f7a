"""The `marco` Typer app: every command registered in one place, `--version`, and the one
mapping from errors to exit codes (0 answer, 1 runtime failure, 2 usage error, 130 Ctrl-C)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from marco_cli.cli import bench, export, history, models, serve, signals, solve
from marco_cli.cli.options import ClickException, UsageError
from marco_cli.errors import MarcoError
from marco_cli.ui.console import err_console, fail


class OneLineErrors(TyperGroup):
    """Click's own usage errors (a value out of range, an unknown option) as one line on
    stderr and exit 2, like every other marco error, instead of a framed box."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,  # Click's own keywords, passed on
    ) -> Any:  # Click's: the command's return value
        run = functools.partial(super().main, args, prog_name, complete_var, standalone_mode=False)
        if not standalone_mode:
            return run(windows_expand_args=windows_expand_args, **extra)
        try:
            code = run(windows_expand_args=windows_expand_args, **extra)
        except ClickException as exc:
            message = exc.format_message()
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `marco`: the help, as before
                print(message)
                sys.exit(0)
            if isinstance(exc, UsageError) and exc.ctx is not None:
                message += f" (see '{exc.ctx.command_path} --help')"
            fail(escape(message))
            sys.exit(exc.exit_code)
        except typer.Abort:
            fail("aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="marco",
    cls=OneLineErrors,
    help="Marco-o1-style MCTS reasoning over local GGUF models. The manual is docs/manual.md in "
    "marco's source (the README links it); `marco COMMAND --help` for each command.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


# Any: a Typer command's own signature, passed through untouched (the Click boundary)
def exit_codes(command: Callable[..., Any]) -> Callable[..., Any]:
    """MarcoError becomes one line on stderr and its exit code; Ctrl-C exits 130 (SIGTERM 143,
    SIGHUP 129)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        signals.install()
        try:
            return command(*args, **kwargs)
        except MarcoError as exc:
            fail(str(exc).replace("[", r"\["))
            raise typer.Exit(exc.code) from None
        except KeyboardInterrupt:
            err_console().print("interrupted")
            raise typer.Exit(signals.exit_code()) from None

    return run


def version() -> str:
    try:
        return metadata.version("marco-cli")
    except metadata.PackageNotFoundError:
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        try:  # the installed version, read without importing llama_cpp (and numpy)
            engine = metadata.version("llama-cpp-python")
        except metadata.PackageNotFoundError:
            engine = "not installed"
        print(f"marco {version()} (llama-cpp-python {engine})")
        raise typer.Exit()


@app.callback()
def main_options(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Marco-o1-style MCTS reasoning over local GGUF models."""


# a few examples under each command's help, as `llm` and `ollama` show them ("\b": keep lines)
EXAMPLES = {
    "solve": 'Examples:\n\n\b\nmarco solve -m smollm2-135m "What is 17 * 23?"\n'
    'marco solve -m ollama:marco-o1 --strategy vote --samples 8 "..."\n'
    'echo "What is 2 + 2?" | marco solve -q --json',
    "translate": 'Examples:\n\n\b\nmarco translate "That party was lit" --to French\n'
    "cat lines.txt | marco translate --to English -q",
    "bench": "Examples:\n\n\b\nmarco bench mgsm-en -m marco-o1 --strategy cot,mcts "
    "--granularity step,mini-64\n"
    "marco bench arith:300:11 -m smollm2-135m --strategy cot,vote@4,mcts@8 --limit 50\n"
    "marco datasets",
    "serve": "Examples:\n\n\b\nmarco serve -m marco-o1 --port 8000\n"
    'curl localhost:8000/v1/chat/completions -d \'{"model": "marco-o1", "messages": [...]}\'',
    "export": "Examples:\n\n\b\nmarco export --all --format sft > sft.jsonl\n"
    "marco export bench-out/mgsm-en-marco-o1 --format dpo",
    "models": "Examples:\n\n\b\nmarco models --all\nmarco pull marco-o1",
}
for module in (solve, bench, export, history, models, serve):
    for name, command in module.COMMANDS.items():
        app.command(name, epilog=EXAMPLES.get(name))(exit_codes(command))


def main() -> None:
    app()
