"""What the run's strings (`--reward`, `--select`) resolve to, once, at the edge: the rollout
reward as a function, the step check, the answer rule and the verifier, handed to the strategy
in its `RunContext` (spec.py). Below the edge nothing parses a name again; the strings stay in
the record (`SearchConfig.reward`, `.select`)."""

from __future__ import annotations

from dataclasses import dataclass

from marco_cli.errors import clip
from marco_cli.search.rewards import (
    Judge,
    RewardFn,
    RewardSpec,
    needs_judge,
    parse_reward,
    reward_function,
)
from marco_cli.search.rules import RuleName
from marco_cli.search.settings import ValueName
from marco_cli.search.values import GUT_WEIGHT, StepValue, confidence, named, step_value


@dataclass(frozen=True)
class Scoring:
    """How one run values and chooses: `reward` scores a finished rollout, `step` values a step
    as it is generated and may refute it (values.py; None: no gate judges steps), `rule` picks
    the answer among the rollouts, `judge` is the verifier a `judge` gate asks (None: the reward
    asks none)."""

    spec: RewardSpec
    reward: RewardFn
    step: StepValue | None
    rule: RuleName
    judge: Judge | None = None
    value: StepValue = confidence  # what a step search ranks partial paths by (`--value`)
    novelty: float = 0.0  # the share of a step's value its novelty among its siblings is (`gut`)

    @property
    def whole_path(self) -> bool:
        """The reward's confidence spans the whole path (`path`), not the rollout's own tokens."""
        return self.spec.value == "path"

    @property
    def judges_answers(self) -> bool:
        return self.spec.judges_answers


def scoring(
    reward: str,
    rule: RuleName,
    judge: Judge | None = None,
    value: ValueName = "confidence",
    prm: StepValue | None = None,
) -> Scoring:
    """`reward` parsed and made into functions, `value` into the step value; ValueError for a
    bad spec, for a reward or value that asks a verifier when no `judge` is given, or for
    `prm` without the process reward model's value."""
    if judge is None and needs_judge(reward):
        raise ValueError(f"reward '{clip(reward, 60)}' needs a verifier (a judge) to ask")
    step, novelty = step_value(reward, judge), GUT_WEIGHT if value == "gut" else 0.0
    spec, function = parse_reward(reward), reward_function(reward)
    return Scoring(spec, function, step, rule, judge, named(value, judge, prm), novelty)
