"""A strategy as data: `StrategySpec` (its name, run function, own answer rule, which budget it
spends, whether granularity applies, its help line) and `RunContext`, everything a run needs
besides its settings. The table of specs is strategies.py; a strategy's own module declares
its spec, so adding one is a module and a table entry (or `strategies.register` from outside
the package, as the tests do). Like mctx, what varies is handed to the search, not chosen by
if-chains on names."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from marco_cli.contract import Model
from marco_cli.search.config import SearchConfig, SearchResult
from marco_cli.search.events import Listener, ignore
from marco_cli.search.rewards import RewardGate
from marco_cli.search.rules import RuleName
from marco_cli.search.scoring import Scoring
from marco_cli.search.settings import DeepConfSettings

Budget = Literal["iterations", "samples", "beams"]  # the setting `bench`'s NAME@N sets


@dataclass(frozen=True)
class RunContext:
    """What a run is given besides its settings: the model and prompt, the resolved scoring,
    who hears its events, the clock it reads, and the question as asked (what a step value is
    told)."""

    model: Model
    prompt: Sequence[int]
    scoring: Scoring
    listener: Listener = ignore
    clock: Callable[[], float] = time.monotonic
    question: str = ""


RunFn = Callable[[RunContext, SearchConfig], SearchResult]


def tree_width(config: SearchConfig) -> int:
    """Requests one expansion sends together: the widest level of a tree search."""
    return max(config.children, config.root_children or 0, config.first_tokens)


def sample_count(config: SearchConfig) -> int:
    return config.samples


@dataclass(frozen=True)
class StrategySpec:
    """One strategy. `settings` are the settings groups (settings.py) it reads besides the
    shared ones (every strategy may answer by a DeepConf rule). `own_rule` answers unless
    `--select` says otherwise, `gated_rules` in its place where the reward carries that gate
    (the first listed gate the reward has decides);
    `budget` is what `NAME@N` sets in bench (None: it takes none); `granular`: bench runs it at
    every `--granularity` given; `branches` gives the requests one step sends together (the
    engine's parallel sequences)."""

    name: str
    run: RunFn
    help: str
    own_rule: RuleName
    settings: tuple[type, ...] = (DeepConfSettings,)  # the groups it reads besides the shared ones
    budget: Budget | None = None
    granular: bool = False
    branches: Callable[[SearchConfig], int] = tree_width
    gated_rules: Mapping[RewardGate, RuleName] = field(default_factory=dict)
