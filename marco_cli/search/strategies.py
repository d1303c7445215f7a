"""The strategy table: every strategy's spec (spec.py) by name, and the questions the rest of
marco asks of a strategy, answered from it (which rule answers, how many requests a step sends
together, which budget bench's `NAME@N` sets, whether granularity applies). Nothing outside a
strategy's own module and this table names a strategy.

Adding one is a module declaring its `StrategySpec` and an entry in `BUILT_IN`; code outside the
package (a test, a research script) calls `register` instead, and the command line, bench, serve
and the Python API offer it from then on. `run_search` runs the configured strategy after
resolving the run's scoring once (scoring.py). This module sits above mcts.py and baselines.py,
which share only core.py and spec.py below them, so the search package has no import circle.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict

from marco_cli.contract import Model
from marco_cli.search.baselines import BEST_OF_N, COT, DEEPCONF, DEEPCONF_ONLINE, VOTE
from marco_cli.search.beam import BEAM, DVTS
from marco_cli.search.config import SAVED_ORDER, SearchConfig, SearchResult
from marco_cli.search.events import Listener, ignore
from marco_cli.search.mcts import MCTS
from marco_cli.search.rewards import Judge, needs_judge, parse_reward
from marco_cli.search.rules import RuleName
from marco_cli.search.scoring import scoring
from marco_cli.search.settings import BeamSettings
from marco_cli.search.spec import RunContext, StrategySpec
from marco_cli.search.values import StepValue

BUILT_IN: tuple[StrategySpec, ...] = (MCTS, COT, BEST_OF_N, VOTE, DEEPCONF, DEEPCONF_ONLINE, BEAM, DVTS)
_TABLE: dict[str, StrategySpec] = {spec.name: spec for spec in BUILT_IN}


def names() -> tuple[str, ...]:
    """Every strategy's name, built-in ones first, in the table's order."""
    return tuple(_TABLE)


def strategy(name: str) -> StrategySpec:
    """The spec named `name`; ValueError naming the choices."""
    found = _TABLE.get(name)
    if found is None:
        raise ValueError(f"strategy must be one of {', '.join(_TABLE)}")
    return found


def granular(name: str) -> bool:
    """Whether the granularity applies to the strategy named `name` (False for a name not in
    the table: a saved run of a strategy not registered now)."""
    found = _TABLE.get(name)
    return found is not None and found.granular


def register(spec: StrategySpec) -> None:
    """Offer another strategy by its name (a name already taken is a ValueError)."""
    if spec.name in _TABLE:
        raise ValueError(f"a strategy named '{spec.name}' is already registered")
    _TABLE[spec.name] = spec


def unregister(name: str) -> None:
    """Take back a strategy `register` added (built-in ones stay)."""
    if any(spec.name == name for spec in BUILT_IN):
        raise ValueError(f"'{name}' is built in")
    _TABLE.pop(name, None)


def own_rule(name: str, reward: str) -> RuleName:
    """The answer rule a strategy uses unless told otherwise: its own, or, when the reward
    carries a gate, a rule that reads it (a gate the rule ignored would buy nothing)."""
    spec = strategy(name)
    try:
        gates = parse_reward(reward).gates
    except ValueError:
        gates = ()
    return next((rule for gate, rule in spec.gated_rules.items() if gate in gates), spec.own_rule)


def answer_rule(config: SearchConfig) -> RuleName:
    """The rule that answers: `select`, else the strategy's own for this reward."""
    return config.select or own_rule(config.strategy, config.reward)


def branches(config: SearchConfig) -> int:
    """Requests one search step sends together: the engine's parallel sequences."""
    return strategy(config.strategy).branches(config)


def saved_settings(config: SearchConfig) -> dict[str, object]:
    """The settings as saved, in the order they always were (`SAVED_ORDER`, newer ones after):
    `select` is the rule that answered, never None."""
    values = {**asdict(config), "select": answer_rule(config)}
    return {**{name: values[name] for name in SAVED_ORDER if name in values}, **values}


def reads_value(config: SearchConfig) -> bool:
    """Whether the configured strategy ranks steps by `--value` (a step search)."""
    return BeamSettings in strategy(config.strategy).settings


def needs_verifier(config: SearchConfig) -> bool:
    """Whether the run asks a verifier: its reward has a `judge` gate, or it ranks steps by
    `--value judge`."""
    return needs_judge(config.reward) or (reads_value(config) and config.value == "judge")


def needs_prm(config: SearchConfig) -> bool:
    """Whether the run asks a process reward model: a step search ranking by `--value prm`."""
    return reads_value(config) and config.value == "prm"


def context(
    model: Model,
    prompt: Sequence[int],
    config: SearchConfig,
    listener: Listener = ignore,
    clock: Callable[[], float] = time.monotonic,
    judge: Judge | None = None,
    question: str = "",
    prm: StepValue | None = None,
) -> RunContext:
    """A run's context with its scoring resolved from the config's strings: the edge below
    which nothing parses a name. ValueError for a reward that asks a verifier and no `judge`,
    or for `--value prm` and no `prm`."""
    value = config.value if reads_value(config) else "confidence"
    resolved = scoring(config.reward, answer_rule(config), judge, value, prm)
    return RunContext(model, prompt, resolved, listener, clock, question)


def run_search(
    model: Model,
    prompt: Sequence[int],
    config: SearchConfig,
    listener: Listener = ignore,
    clock: Callable[[], float] = time.monotonic,
    judge: Judge | None = None,
    question: str = "",
    prm: StepValue | None = None,
) -> SearchResult:
    """Run the configured strategy. A reward that asks a verifier (`judge`, `judge-steps`)
    needs `judge` (search/verifier.py builds one); `--value prm` needs `prm` (search/prm.py)."""
    ctx = context(model, prompt, config, listener, clock, judge, question, prm)
    return strategy(config.strategy).run(ctx, config)
