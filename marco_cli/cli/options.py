"""The typed values the command-line options fill (the options themselves are declared once,
in option_table.py).

Commands take option groups instead of spelling the same options out again: `with_options`
appends a group's parameters to a command's signature (Typer reads the signature) and hands the
command one frozen `Options` value. `config_from` turns its search settings into a `SearchConfig`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, cast

import typer

from marco_cli.cli.flags import ClickException, ModelOpt
from marco_cli.cli.option_table import ENGINE, OUTPUT, SEARCH, HelpAll
from marco_cli.contract import PrmFormat
from marco_cli.errors import MarcoError, UsageError
from marco_cli.search import strategies
from marco_cli.search.config import SearchConfig


class ParsedOptions(Protocol):
    """A Click context over parsed arguments, as `search_parser` users read it."""

    params: dict[str, object]

    def __enter__(self) -> ParsedOptions: ...

    def __exit__(self, *exc: object) -> None: ...


class SearchParser(Protocol):
    """The Click command `search_parser` builds: parse arguments over defaults, then run its
    callback on them (the search options as `solve` reads them)."""

    def make_context(
        self, info_name: str, args: list[str], *, default_map: dict[str, object]
    ) -> ParsedOptions: ...

    def callback(self, **params: object) -> Mapping[str, object]: ...


class SettingsParser(Protocol):
    """The Click command `options_from` parses with: the search and engine options."""

    def make_context(self, info_name: str, args: list[str]) -> ParsedOptions: ...

    def callback(self, **params: object) -> Options: ...


@dataclass(frozen=True)
class EngineOptions:
    gpu_layers: int | None = None
    cpu: bool = False
    ctx: int | None = None
    threads: int | None = None
    verbose: bool = False
    backend: str | None = None
    parallel: int | None = None  # None: 1 locally, the children/samples count remotely
    timeout: float = 120.0
    repack: bool | None = None  # None: MARCO_REPACK, else probed on AMX CPUs (engine/repack.py)
    verifier: str | None = None  # the model `--reward judge` asks (None: the searching one)
    verifier_backend: str | None = None  # the server it runs on (None: in-process)
    prm: str | None = None  # the process reward model `--value prm` asks
    prm_backend: str | None = None  # the server it runs on (None: in-process)
    prm_format: PrmFormat | None = None  # how it reads a path (None: its registry entry's)


@dataclass(frozen=True)
class OutputOptions:
    as_json: bool = False
    hide_thought: bool = False
    quiet: bool = False
    yes: bool = False
    no_log: bool = False
    html: Path | None = None


@dataclass(frozen=True)
class Options:
    """What a command's shared options hold: the model, search settings, engine and output."""

    model: str = "marco-o1"
    search: Mapping[str, Any] = field(default_factory=dict)
    engine: EngineOptions = EngineOptions()
    output: OutputOptions = OutputOptions()


_CONFIG_FIELDS = {f.name for f in fields(SearchConfig)}


def config_from(search: Mapping[str, Any], **overrides: Any) -> SearchConfig:
    """The search settings as a SearchConfig; a bad combination is a usage error."""
    chosen = {k: v for k, v in search.items() if k in _CONFIG_FIELDS} | overrides
    if chosen.get("stop_agree") == 0:
        chosen["stop_agree"] = None
    try:
        config = SearchConfig(**chosen)
        strategies.strategy(config.strategy)  # a name in the table
    except ValueError as exc:
        raise MarcoError(str(exc), code=2) from None
    return config


def with_options(
    defaults: Mapping[str, Any] | None = None,
    exclude: tuple[str, ...] = (),
    output: bool = True,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the model, search, engine (and output) options.

    The command declares its own parameters plus `options: Options`; the decorated function
    has the command's parameters followed by every shared option (`defaults` overrides a
    group's default, `exclude` drops options the command declares itself).
    """
    groups = {
        "model": {"model": (ModelOpt, "marco-o1")},
        "search": SEARCH,
        "engine": ENGINE,
        "help": {"help_all": (HelpAll, False)},  # eager: it exits before the command runs
    }
    if output:
        groups["output"] = OUTPUT
    defaults = dict(defaults or {})

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        hints = inspect.get_annotations(command, eval_str=True)
        own = [
            p.replace(annotation=hints.get(p.name, p.annotation))
            for p in inspect.signature(command).parameters.values()
            if p.name != "options"
        ]
        shared = [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=defaults.get(name, default)
            )
            for group in groups.values()
            for name, (kind, default) in group.items()
            if name not in exclude
        ]

        @functools.wraps(command)
        def run(**kwargs: Any) -> Any:
            values = {
                g: {n: kwargs.pop(n) for n in group if n in kwargs and n not in exclude}
                for g, group in groups.items()
            }
            options = Options(
                model=values["model"].get("model", "marco-o1"),
                search=values["search"],
                engine=EngineOptions(**values["engine"]),
                output=OutputOptions(**values.get("output", {})),
            )
            return command(**kwargs, options=options)

        run.__signature__ = inspect.Signature([*own, *shared])  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in (*own, *shared)}
        del run.__wrapped__  # Typer must read the signature above, not the command's
        return run

    return decorate


@functools.cache
def search_parser() -> SearchParser:
    """A Click command holding exactly the search options, as `solve` declares them: what
    `serve` checks a request's settings with and `bench` a configuration's flags."""

    @with_options(output=False, exclude=("model", *ENGINE))
    def search(*, options: Options) -> Mapping[str, Any]:
        return options.search

    app = typer.Typer()
    app.command()(search)
    # the boundary: Typer returns Click's Command, of which SearchParser declares what is used
    return cast(SearchParser, typer.main.get_command(app))


@functools.cache
def _settings_parser() -> SettingsParser:
    @with_options(output=False, exclude=("model",))
    def settings(*, options: Options) -> Options:
        return options

    app = typer.Typer()
    app.command()(settings)
    return cast(SettingsParser, typer.main.get_command(app))


def options_from(argv: list[str], command: str) -> Options:
    """The search and engine options `argv` sets (the rest at their defaults), checked as the
    command line checks them; a bad one is a UsageError saying what Click says."""
    parser = _settings_parser()
    try:
        with parser.make_context(command, argv) as ctx:
            return parser.callback(**ctx.params)
    except ClickException as exc:
        raise UsageError(exc.format_message()) from None
