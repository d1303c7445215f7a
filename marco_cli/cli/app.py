"""The `marco` Typer app: every command registered in one place, `--version`, and the one
mapping from errors to exit codes (0 answer, 1 runtime failure, 2 usage error, 130 Ctrl-C)."""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from marco_cli.cli import signals
from marco_cli.cli.flags import ClickException, UsageError
from marco_cli.errors import MarcoError, one_line
from marco_cli.ui.console import err_console, fail

# every command and the module under marco_cli.cli that defines it, in the help's order: a
# command's module (and what it imports: llama.cpp, numpy, the HTTP stack) loads only when that
# command runs, so `marco --version` and `marco log` start as fast as any Typer program
COMMAND_MODULES = {
    "solve": "solve",
    "translate": "solve",
    "bench": "bench",
    "datasets": "bench",
    "serve": "serve",
    "log": "history",
    "show": "history",
    "export": "export",
    "models": "models",
    "pull": "models",
    "rm": "models",
    "doctor": "models",
}


class OneLineErrors(TyperGroup):
    """Commands loaded when first asked for (`COMMAND_MODULES`), and Click's own usage errors
    (a value out of range, an unknown option) as one line on stderr and exit 2, like every other
    marco error, instead of a framed box."""

    def list_commands(self, ctx: object) -> list[str]:
        return list(COMMAND_MODULES)

    def get_command(self, ctx: object, cmd_name: str) -> TyperCommand | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            self.commands[cmd_name] = load_command(cmd_name)
        found = self.commands.get(cmd_name)
        return found if isinstance(found, TyperCommand) else None

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
            fail(escape(one_line(message)))  # a value quoted with its line break stays one line
            sys.exit(exc.exit_code)
        except typer.Abort:
            fail("aborted")
            sys.exit(1)
        except OSError as exc:  # Typer writes the shell's rc file itself: a read-only HOME, a folder
            if "--install-completion" not in (sys.argv[1:] if args is None else list(args)):
                raise
            where = f" ({exc.filename})" if exc.filename else ""
            fail(
                escape(f"cannot install shell completion: {exc.strerror or exc}{where}; ")
                + "`marco --show-completion` prints the script to add yourself"
            )
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="marco",
    cls=OneLineErrors,
    help="Marco-o1-style MCTS reasoning over local GGUF models. The manual is docs/manual.md in "
    "marco's source (the README links it); `marco COMMAND --help` for each command.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
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
    from importlib import metadata  # 20 ms: only `--version` and records read it

    try:
        return metadata.version("marco-cli")
    except metadata.PackageNotFoundError:
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        from importlib import metadata

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
    "solve": '\b\nExamples:\nmarco solve -m smollm2-135m "What is 17 * 23?"\n'
    'marco solve -m ollama:marco-o1 --strategy vote --samples 8 "..."\n'
    'echo "What is 2 + 2?" | marco solve -q --json',
    "translate": '\b\nExamples:\nmarco translate "That party was lit" --to French\n'
    "cat lines.txt | marco translate --to English -q",
    "bench": "\b\nExamples:\nmarco bench mgsm-en -m marco-o1 --strategy cot,mcts "
    "--granularity step,mini-64\n"
    "marco bench arith:300:11 -m smollm2-135m --strategy cot,vote@4,mcts@8 --limit 50\n"
    "marco datasets",
    "serve": "\b\nExamples:\nmarco serve -m marco-o1 --port 8000\n"
    'curl localhost:8000/v1/chat/completions -d \'{"model": "marco-o1", "messages": [...]}\'',
    "export": "\b\nExamples:\nmarco export --all --format sft > sft.jsonl\n"
    "marco export bench-out/mgsm-en-marco-o1 --format dpo",
    "models": "\b\nExamples:\nmarco models --all\nmarco pull marco-o1",
}


def load_command(name: str) -> TyperCommand:
    """The Click command `name`, built from its module's Typer function with the same wrapping
    (exit codes, examples) every command gets."""
    module = importlib.import_module(f"marco_cli.cli.{COMMAND_MODULES[name]}")
    single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    single.command(name, epilog=EXAMPLES.get(name))(exit_codes(module.COMMANDS[name]))
    command = typer.main.get_command(single)
    if not isinstance(command, TyperCommand):  # one command and no callback: Typer's own rule
        raise TypeError(f"{name}: Typer built a {type(command).__name__}, not one command")
    return command


def main() -> None:
    app()
