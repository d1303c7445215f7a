"""The option table: every search, engine and output option declared once, with its help,
bounds and help panel, as typed data (what `with_options` in options.py hands to commands).
`--help` leaves out the ADVANCED ones; `--help-all` shows them."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperOption

from marco_cli.cli.flags import HideThought, Json, ModelOpt, Verbose, Yes, real, url_option, whole
from marco_cli.contract import Granularity, StepBreak
from marco_cli.search import strategies
from marco_cli.search.config import Reward, RolloutScope, SearchConfig, Strategy
from marco_cli.search.rewards import parse_reward
from marco_cli.search.rules import rule_name


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


# the search settings, named as SearchConfig's fields; their defaults are SearchConfig's. Any:
# the values are Annotated type forms for Typer, and the parsed values come out of Click
# untyped (Options.search); config_from checks them by building the SearchConfig
SEARCH_TYPES: dict[str, Any] = {
    "strategy": Annotated[
        Strategy,
        typer.Option(
            callback=strategy_option,
            metavar=f"<{'|'.join(strategies.names())}>",
            help="mcts, or a baseline over the same model.",
        ),
    ],
    "iterations": Annotated[
        int, typer.Option("--iterations", "-n", min=1, max=100_000, help="MCTS iterations.")
    ],
    "granularity": Annotated[
        Granularity, typer.Option(help="Action size: a step, or a 64/32-token mini-step.")
    ],
    "children": Annotated[int, typer.Option(min=1, max=64, help="Children per expansion.")],
    "root_children": Annotated[
        int | None, typer.Option(min=1, max=64, help="Children of the root (default: --children).")
    ],
    "first_tokens": Annotated[
        int,
        typer.Option(
            min=0,
            max=64,
            help="CoT-decoding: the root's children start with the K likeliest first tokens, then "
            "greedy (0: off).",
        ),
    ],
    "exploration": Annotated[float, typer.Option(callback=real(0.0), help="UCT exploration constant c.")],
    "temperature": Annotated[
        float,
        typer.Option(callback=real(0.0), help="Sampling temperature (sampled children, samples)."),
    ],
    "top_p": Annotated[
        float,
        typer.Option(callback=real(0.0, 1.0), help="Nucleus sampling of sampled children."),
    ],
    "top_k": Annotated[
        int, typer.Option(min=0, max=100_000, help="Top-k sampling of sampled children (0: off).")
    ],
    "min_p": Annotated[
        float,
        typer.Option(callback=real(0.0, 1.0), help="Min-p sampling of sampled children."),
    ],
    "greedy_first": Annotated[
        bool,
        typer.Option(
            "--greedy-first/--no-greedy-first", help="The first child (and first sample) is greedy."
        ),
    ],
    "step_break": Annotated[
        StepBreak,
        typer.Option(help="Where a step action ends: a 'line' break or a 'blank' line."),
    ],
    "rollouts": Annotated[
        RolloutScope,
        typer.Option(help="Roll out 'one' new child per expansion, or 'all' of them."),
    ],
    "rollout_temperature": Annotated[
        float,
        typer.Option(callback=real(0.0), help="Sampling temperature of rollouts (0: greedy)."),
    ],
    "samples": Annotated[int, typer.Option(min=1, max=1024, help="Samples (best-of-n, vote, deepconf).")],
    "deepconf_keep": Annotated[
        float,
        typer.Option(
            callback=real(0.01, 1.0),
            help="deepconf: share of the most confident samples.",
        ),
    ],
    "deepconf_warmup": Annotated[
        int, typer.Option(min=1, max=1024, help="deepconf-online: samples that set the threshold.")
    ],
    "deepconf_window": Annotated[
        int, typer.Option(min=1, max=100_000, help="deepconf: tokens per group confidence window.")
    ],
    "seed": Annotated[int, typer.Option(help="Random seed: same seed, same tree.")],
    "max_time": Annotated[
        float | None,
        typer.Option(callback=real(0.0), help="Stop searching after this many seconds."),
    ],
    "max_tokens": Annotated[
        int, typer.Option(min=1, max=1_000_000, help="Generated tokens allowed on one answer path.")
    ],
    "reward": Annotated[
        Reward,
        typer.Option(
            metavar="REWARD",
            callback=reward_option,
            help="The rollout's value: finished, paper, path, answer or answered, times gates: +check "
            "(wrong arithmetic scores 0), +judge (a verifier's P(Yes)), +judge-steps. docs/search.md.",
        ),
    ],
    "select": Annotated[
        str | None,
        typer.Option(
            callback=rule_option,
            metavar="RULE",
            show_default=False,
            help="The answer rule, for every strategy (default: the strategy's own): deepconf[-high|"
            "-low|-online], majority, reward-vote, reward, visits, branch, trace, mbr, "
            "answer-conf|-vote|-branch, checked (docs/search.md).",
        ),
    ],
    "stop_confidence": Annotated[
        float | None,
        typer.Option(
            callback=real(0.0, 1.0),
            help="Stop once a finished rollout's reward reaches this.",
        ),
    ],
    "stop_agree": Annotated[
        int | None,
        typer.Option(min=0, max=100_000, help="Stop once this many finished rollouts agree (0: never)."),
    ],
    "loop_guard": Annotated[
        bool, typer.Option("--loop-guard/--no-loop-guard", help="Stop generations that loop.")
    ],
    "reflection": Annotated[
        bool,
        typer.Option("--reflection/--no-reflection", help="Add a 'Wait! ...' branch where a thought ends."),
    ],
    "dynamic_reflection": Annotated[
        bool, typer.Option(help="Add a 'Wait! ...' branch under low-confidence steps.")
    ],
    "reflection_threshold": Annotated[
        float,
        typer.Option(
            callback=real(0.0, 1.0),
            help="--dynamic-reflection: a step's confidence below this.",
        ),
    ],
}
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
        "seed",
        "loop_guard",
        "reflection",
        "dynamic_reflection",
        "reflection_threshold",
    ),
    "Budgets and early stops": ("iterations", "max_tokens", "max_time", "stop_confidence", "stop_agree"),
    "Answer rule and reward": ("select", "reward", "deepconf_keep", "deepconf_warmup", "deepconf_window"),
}
OTHER_PANELS = {
    "Model and engine": ("gpu_layers", "cpu", "ctx", "threads", "verbose", "repack"),
    "Remote": ("backend", "parallel", "timeout"),
    "Answer rule and reward": ("verifier", "verifier_backend"),  # with the search's own
}


# options most runs leave alone: `--help` leaves them out and `--help-all` shows them (every one
# is in docs/options.md), so a command's help fits a terminal
# fmt: off
ADVANCED = frozenset((
    "root_children", "first_tokens", "exploration", "top_p", "top_k", "min_p", "greedy_first",
    "step_break", "rollouts", "rollout_temperature", "loop_guard", "dynamic_reflection",
    "reflection_threshold", "stop_confidence", "stop_agree", "deepconf_keep", "deepconf_warmup",
    "deepconf_window", "gpu_layers", "cpu", "ctx", "threads", "repack", "parallel", "timeout",
    "verifier_backend",
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
    """The Python type an option parses to: `Annotated[int | None, ...]` -> int, a Literal -> str."""
    kind = typing.get_args(annotation)[0]
    if typing.get_origin(kind) is typing.Literal:
        return str
    return next(k for k in (typing.get_args(kind) or (kind,)) if isinstance(k, type) and k is not type(None))


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
