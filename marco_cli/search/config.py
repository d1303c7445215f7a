"""The search's settings and the result every strategy returns (the model it talks to is
marco_cli/contract.py's `Model`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from marco_cli.contract import GRANULARITIES, Granularity, Sampling, StepBreak, StopRule
from marco_cli.search.events import StopWhy
from marco_cli.search.rewards import parse_reward
from marco_cli.search.rules import RULE_NAMES, RuleName
from marco_cli.search.tree import Rollout, Tree

# a strategy's name: an open vocabulary, the names in strategies.py's table (checked there)
Strategy = str
Reward = str  # VALUE[+GATE...], read by search/rewards.py's parse_reward
Select = RuleName  # any answer rule (rules.py)
RolloutScope = Literal["one", "all"]  # roll out one new child per expansion, or all of them
SELECTS: tuple[Select, ...] = RULE_NAMES


@dataclass(frozen=True)
class SearchConfig:
    """Defaults are explained in docs/search.md ("Search defaults, and why"). `strategy` names an
    entry of strategies.py's table, checked there (config_from, run_search)."""

    strategy: Strategy = "mcts"
    iterations: int = 4
    children: int = 2
    root_children: int | None = None  # children of the root (None: `children`)
    # CoT-decoding at the root: its children start with the k most likely first tokens and
    # continue greedily (0: off; overrides root_children)
    first_tokens: int = 4
    exploration: float = 1.414
    granularity: Granularity = "step"
    step_break: StepBreak = "line"
    max_tokens: int = 512  # generated tokens on one path, root to answer
    temperature: float = 0.6  # for sampled children and samples
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.0
    greedy_first: bool = True  # the first child (and first sample) is greedy
    rollout_temperature: float = 0.0
    reward: Reward = "finished"  # docs/search.md: the reward
    # the answer rule (None: the strategy's own, strategies.own_rule); every rule applies to every strategy
    select: Select | None = None
    loop_guard: bool = True  # stop generations that end in a repetition loop
    numeric_answer: bool = False  # the question wants a number (answer extraction prefers one)
    rollouts: RolloutScope = "one"  # one new child rolled out per expansion, or "all"
    reflection: bool = False  # v1: a "Wait! ..." sibling where a thought ends
    dynamic_reflection: bool = False  # a "Wait! ..." child under low-confidence steps
    reflection_threshold: float = 0.6
    max_time: float | None = None
    stop_confidence: float | None = None
    stop_agree: int | None = 3  # finished rollouts (select branch/trace/deepconf: branches) that agree end it
    samples: int = 8  # best-of-n, vote and deepconf
    deepconf_keep: float = 0.9  # deepconf (strategy and rule): the share of most confident traces that vote
    deepconf_window: int = 32  # deepconf: tokens per group (sliding window)
    deepconf_warmup: int = 4  # deepconf-online: samples run in full to set the threshold
    seed: int = 0

    def __post_init__(self) -> None:
        reward_problem = _reward_error(self.reward)
        checks = [
            (self.granularity in GRANULARITIES, f"granularity must be one of {', '.join(GRANULARITIES)}"),
            (self.iterations >= 1, "iterations must be at least 1"),
            (self.children >= 1, "children must be at least 1"),
            (self.root_children is None or self.root_children >= 1, "root children must be at least 1"),
            (0 <= self.first_tokens <= 64, "first tokens must be from 0 to 64"),
            (self.samples >= 1, "samples must be at least 1"),
            (0 < self.deepconf_keep <= 1, "deepconf keep must be in (0, 1]"),
            (self.deepconf_window >= 1, "deepconf window must be at least 1"),
            (self.deepconf_warmup >= 1, "deepconf warmup must be at least 1"),
            (self.max_tokens >= 1, "max tokens must be at least 1"),
            (self.exploration >= 0, "exploration must be >= 0"),
            (self.temperature >= 0 and self.rollout_temperature >= 0, "temperature must be >= 0"),
            (0 < self.top_p <= 1, "top-p must be in (0, 1]"),
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
