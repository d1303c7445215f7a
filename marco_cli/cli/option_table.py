"""The option table: every search, engine and output option declared once, with its help,
bounds and help panel, as typed data (what `with_options` in options.py hands to commands).
`--help` leaves out the ADVANCED ones; `--help-all` shows them."""

from __future__ import annotations

import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperOption

from marco_cli.cli.flags import HideThought, Json, ModelOpt, Verbose, Yes, real, url_option, whole
from marco_cli.contract import PrmFormat
from marco_cli.search import strategies
from marco_cli.search.config import SearchConfig
from marco_cli.search.rewards import parse_reward
from marco_cli.search.rules import rule_name
from marco_cli.search.settings import Setting, Vocabulary, declared


def reward_option(value: str) -> str:
    """A reward spec (VALUE[+GATE...]), checked here so a wrong one is a usage error."""
    try:
        parse_reward(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


def strategy_option(value: str) -> str:
    """A strategy's name, one of the table's (strategies.py) when the command runs, so a
    strategy registered from outside the package is accepted too; said as Click says a choice."""
    if value not in strategies.names():
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(map(repr, strategies.names()))}.")
    return value


def rule_option(value: str | None) -> str | None:
    """An answer rule's name (an old one read through the rules' aliases); None: the strategy's."""
    if value is None:
        return None
    try:
        return rule_name(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


# the help's panels: each option under the heading a user looks for it by
PANELS = {
    "Search": (
        "strategy",
        "granularity",
        "children",
        "root_children",
        "first_tokens",
        "exploration",
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "greedy_first",
        "step_break",
        "rollouts",
        "rollout_temperature",
        "samples",
        "beams",
        "beam_width",
        "value",
        "aggregate",
        "seed",
        "loop_guard",
        "reflection",
        "dynamic_reflection",
        "reflection_threshold",
    ),
    "Budgets and early stops": (
        "iterations",
        "max_tokens",
        "max_depth",
        "max_time",
        "stop_confidence",
        "stop_agree",
    ),
    "Answer rule and reward": ("select", "reward", "deepconf_keep", "deepconf_warmup", "deepconf_window"),
}

_VOCABULARIES: dict[Vocabulary, tuple[Callable[[Any], Any], str]] = {
    "strategy": (strategy_option, "NAME"),
    "reward": (reward_option, "REWARD"),
    "rule": (rule_option, "RULE"),
}


def _search_option(name: str, kind: object, declared: Setting) -> Any:
    """A search setting as Typer reads it: its type, its spellings, its help and bounds, all
    from its declaration (search/settings.py). Any: an Annotated type form for Typer."""
    flags = (f"--{name.replace('_', '-')}", declared.short) if declared.short else ()
    optional = type(None) in typing.get_args(kind)
    base = next((k for k in (typing.get_args(kind) or (kind,)) if k is not type(None)), kind)
    low, high = declared.low, declared.high
    if declared.vocabulary is not None:  # read against its own table, not as Click choices
        check, metavar = _VOCABULARIES[declared.vocabulary]
        option = typer.Option(
            *flags, callback=check, metavar=metavar, show_default=not optional, help=declared.help
        )
        return Annotated[str | None if optional else str, option]
    if base is float and low is not None:
        option = typer.Option(*flags, callback=real(low, high, above=declared.above), help=declared.help)
    elif base is int and (low is not None or high is not None):
        option = typer.Option(*flags, min=low, max=high, help=declared.help)
    else:
        option = typer.Option(*flags, help=declared.help)
    return Annotated[kind, option]


_KINDS = typing.get_type_hints(SearchConfig)
# the search settings, named as SearchConfig's fields, in the help's order; their defaults are
# SearchConfig's. Any: the values are Annotated type forms for Typer, and the parsed values come
# out of Click untyped (Options.search); config_from checks them by building the SearchConfig
SEARCH_TYPES: dict[str, Any] = {
    name: _search_option(name, _KINDS[name], declared(SearchConfig)[name])
    for names in PANELS.values()
    for name in names
}


OTHER_PANELS = {
    "Model and engine": ("gpu_layers", "cpu", "ctx", "threads", "verbose", "repack"),
    "Remote": ("backend", "parallel", "timeout"),
    "Answer rule and reward": ("verifier", "verifier_backend", "prm", "prm_backend", "prm_format"),
}


# options most runs leave alone: `--help` leaves them out and `--help-all` shows them (every one
# is in docs/options.md), so a command's help fits a terminal
# fmt: off
ADVANCED = frozenset((
    "root_children", "first_tokens", "exploration", "top_p", "top_k", "min_p", "greedy_first",
    "step_break", "rollouts", "rollout_temperature", "loop_guard", "dynamic_reflection",
    "reflection_threshold", "stop_confidence", "stop_agree", "deepconf_keep", "deepconf_warmup",
    "deepconf_window", "gpu_layers", "cpu", "ctx", "threads", "repack", "parallel", "timeout",
    "verifier_backend", "prm", "prm_backend", "prm_format", "beams", "beam_width", "value",
    "aggregate", "max_depth",
))
# fmt: on


def show_every_option(ctx: typer.Context, value: bool) -> None:
    """`--help-all`: the help with the options `--help` leaves out."""
    if not value:
        return
    for param in ctx.command.params:
        if isinstance(param, TyperOption):
            param.hidden = False
    text = ctx.get_help()  # Typer's rich help prints itself and returns ""
    if text:
        print(text)
    raise typer.Exit()


HelpAll = Annotated[
    bool,
    typer.Option(
        "--help-all",
        is_eager=True,
        callback=show_every_option,
        metavar="",
        help="Show every option and exit.",
    ),
]


def option_type(annotation: object) -> type:
    """The Python type an option parses to: `Annotated[int | None, ...]` -> int, a Literal (or
    an optional one) -> str."""
    kind = typing.get_args(annotation)[0]
    if typing.get_origin(kind) is typing.Literal:
        return str
    parts = [k for k in (typing.get_args(kind) or (kind,)) if k is not type(None)]
    if parts and typing.get_origin(parts[0]) is typing.Literal:  # an optional Literal
        return str
    return next(k for k in parts if isinstance(k, type))


def _panel(name: str, annotation: object, panel: str) -> None:
    """Put an option under its help panel (hidden from `--help` when ADVANCED), with a short
    metavar so the help column has room (N for counts, NUM for reals, nothing for flags; Click or
    `real` still checks the bounds)."""
    info = typing.get_args(annotation)[1]
    info.rich_help_panel = panel
    info.hidden = name in ADVANCED
    kind = option_type(annotation)
    if info.metavar is None and kind in (int, float, bool):
        info.metavar = {int: "N", float: "NUM", bool: ""}[kind]
    if kind is bool:
        info.show_default = False  # a flag's help says what it does; off unless given
    if kind is int and info.callback is None and (info.min is not None or info.max is not None):
        # the same bounds checked by `whole` instead of Click, whose range would fill the type column
        info.callback, info.min, info.max = whole(info.min, info.max), None, None


_DEFAULT_CONFIG = SearchConfig()
SEARCH: dict[str, tuple[Any, Any]] = {
    name: (kind, getattr(_DEFAULT_CONFIG, name)) for name, kind in SEARCH_TYPES.items()
}
ENGINE: dict[str, tuple[Any, Any]] = {
    "gpu_layers": (
        Annotated[
            int | None,
            typer.Option(min=0, max=100_000, help="Layers to offload (default: all when supported)."),
        ],
        None,
    ),
    "cpu": (Annotated[bool, typer.Option(help="Force CPU even when a GPU build is installed.")], False),
    "ctx": (
        Annotated[
            int | None, typer.Option(min=64, max=10_000_000, help="Cap the context length (default 8192).")
        ],
        None,
    ),
    "threads": (
        Annotated[
            int | None, typer.Option(min=1, max=1024, help="CPU threads (default: the physical cores).")
        ],
        None,
    ),
    "verbose": (Verbose, False),
    "backend": (
        Annotated[
            str | None,
            typer.Option(
                envvar="MARCO_BACKEND", callback=url_option, help="Search on a server (llama-server, vLLM)."
            ),
        ],
        None,
    ),
    "parallel": (
        Annotated[
            int | None,
            typer.Option(
                min=1,
                max=256,  # llama.cpp holds at most 256 sequences
                help="Branches decoded together (local) or requests in flight (remote).",
            ),
        ],
        None,
    ),
    "repack": (
        Annotated[
            bool | None,
            typer.Option(
                "--repack/--no-repack",
                help="Weight repacking into the CPU's extra buffer types (AMX); default: probed once.",
            ),
        ],
        None,
    ),
    "verifier": (
        Annotated[
            str | None,
            typer.Option(
                metavar="MODEL",
                help="The model --reward judge asks (default: -m).",
            ),
        ],
        None,
    ),
    "verifier_backend": (
        Annotated[
            str | None,
            typer.Option(callback=url_option, metavar="URL", help="Ask the verifier on this server."),
        ],
        None,
    ),
    "prm": (
        Annotated[
            str | None,
            typer.Option(
                metavar="MODEL",
                help="The process reward model --value prm asks (e.g. math-shepherd-7b-prm).",
            ),
        ],
        None,
    ),
    "prm_backend": (
        Annotated[
            str | None,
            typer.Option(
                callback=url_option, metavar="URL", help="Ask the process reward model on this server."
            ),
        ],
        None,
    ),
    "prm_format": (
        Annotated[
            PrmFormat | None,
            typer.Option(
                help="How the PRM reads a path (default: its registry entry's format).",
                case_sensitive=False,
            ),
        ],
        None,
    ),
    "timeout": (
        Annotated[
            float,
            typer.Option(
                callback=real(0.1, 86_400),
                help="Seconds one request to the server may take, its answer read in full.",
            ),
        ],
        120.0,
    ),
}
OUTPUT: dict[str, tuple[Any, Any]] = {
    "as_json": (Json, False),
    "hide_thought": (HideThought, False),
    "quiet": (Annotated[bool, typer.Option("--quiet", "-q", help="No live view: just the answer.")], False),
    "yes": (Yes, False),
    "no_log": (Annotated[bool, typer.Option("--no-log", help="Do not save this run in the history.")], False),
    "html": (
        Annotated[Path | None, typer.Option(help="Also write the search as a self-contained HTML page.")],
        None,
    ),
}


for _heading, _names in PANELS.items():
    for _name in _names:
        _panel(_name, SEARCH_TYPES[_name], _heading)
for _heading, _names in OTHER_PANELS.items():
    for _name in _names:
        _panel(_name, ENGINE[_name][0], _heading)
for _name in OUTPUT:
    _panel(_name, OUTPUT[_name][0], "Output")
_panel("model", ModelOpt, "Model and engine")
