"""The search's settings and the result every strategy returns (the model it talks to is
marco_cli/contract.py's `Model`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from marco_cli.contract import GRANULARITIES, Sampling, StopRule
from marco_cli.search.events import StopWhy
from marco_cli.search.rewards import parse_reward
from marco_cli.search.rules import RULE_NAMES
from marco_cli.search.settings import (
    BeamSettings,
    DeepConfSettings,
    MctsSettings,
    Reward,
    RolloutScope,
    SamplingSettings,
    Select,
    SharedSettings,
    StepSettings,
    Strategy,
    declared,
)
from marco_cli.search.tree import Rollout, Tree

__all__ = ["Reward", "RolloutScope", "SearchConfig", "SearchResult", "Select", "Strategy"]

SELECTS: tuple[Select, ...] = RULE_NAMES
# the order the settings were always saved in (a run's record and bench's run.json keep it)
SAVED_ORDER = (
    "strategy", "iterations", "children", "root_children", "first_tokens", "exploration",
    "granularity", "step_break", "max_tokens", "temperature", "top_p", "top_k", "min_p",
    "greedy_first", "rollout_temperature", "reward", "select", "loop_guard", "numeric_answer",
    "rollouts", "reflection", "dynamic_reflection", "reflection_threshold", "max_time",
    "stop_confidence", "stop_agree", "samples", "deepconf_keep", "deepconf_window",
    "deepconf_warmup", "seed",
)  # fmt: skip


@dataclass(frozen=True)
class SearchConfig(
    SharedSettings, StepSettings, MctsSettings, BeamSettings, SamplingSettings, DeepConfSettings
):
    """Every setting of a run, flat (settings.py declares each in its group, with its help and
    bounds, checked here). Defaults are explained in docs/search.md ("Search defaults, and
    why"). `strategy` names an entry of strategies.py's table, checked there (config_from,
    run_search)."""

    def __post_init__(self) -> None:
        values = vars(self)  # the fields' own values (asdict would copy them all)
        for name, declared_setting in declared(SearchConfig).items():
            problem = declared_setting.problem(name, values[name])
            if problem is not None:
                raise ValueError(problem)
        reward_problem = _reward_error(self.reward)
        checks = [
            (self.granularity in GRANULARITIES, f"granularity must be one of {', '.join(GRANULARITIES)}"),
            (reward_problem is None, reward_problem or ""),
            (self.select is None or self.select in SELECTS, f"select must be one of {', '.join(SELECTS)}"),
            (self.rollouts in ("one", "all"), "rollouts must be one or all"),
            (self.step_break in ("line", "blank"), "step break must be line or blank"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def sampling(self, seed: int, greedy: bool = False, first_rank: int | None = None) -> Sampling:
        """A child's sampling: greedy (the first child), the k-th first token then greedy
        (`first_rank`, CoT-decoding), or sampled at the temperature."""
        if first_rank is not None:
            return Sampling(seed=seed, first_rank=first_rank)
        if greedy or self.temperature == 0:
            return Sampling(seed=seed)
        return Sampling(self.temperature, self.top_p, self.top_k, self.min_p, seed)

    def rollout_sampling(self, seed: int) -> Sampling:
        if self.rollout_temperature == 0:
            return Sampling(seed=seed)
        return Sampling(self.rollout_temperature, self.top_p, self.top_k, self.min_p, seed)

    def action_stop(self, budget: int) -> StopRule:
        return StopRule(self.granularity, budget, step_break=self.step_break, loop_guard=self.loop_guard)

    def rollout_stop(self, budget: int) -> StopRule:
        return StopRule("rollout", budget, loop_guard=self.loop_guard)


@dataclass
class SearchResult:
    """What every strategy returns: the chosen answer and everything needed to explain it."""

    strategy: Strategy
    answer: str
    thought: str
    text: str
    reward: float | None
    rollout: int | None
    path: list[int]
    tree: Tree
    iterations: int
    generated_tokens: int
    evaluated_tokens: int
    seconds: float
    stopped: StopWhy
    votes: dict[str, int] = field(default_factory=dict)
    error: str | None = None  # why the search stopped early when stopped == "error"

    @property
    def rollouts(self) -> list[Rollout]:
        return self.tree.rollouts


def _reward_error(spec: str) -> str | None:
    try:
        parse_reward(spec)
    except ValueError as exc:
        return str(exc)
    return None
