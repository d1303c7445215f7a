"""The search's settings, each declared once: its default, help and bounds (`setting`), in the
dataclass of the strategies that read it. `SharedSettings` every strategy reads; `MctsSettings`
the tree search; `SamplingSettings` the strategies that draw whole samples; `DeepConfSettings`
the DeepConf rules and strategies (any strategy may answer by a DeepConf rule, so every one
reads them); `StepSettings` what a step is (mcts, beam, dvts); `BeamSettings` the step searches'.
`SearchConfig` (config.py) is all of them, flat, so a run's settings stay one record;
a strategy's spec names the groups it reads (spec.py), and bench refuses a configuration's flag
that its strategy would ignore. The command line's options are derived from these fields
(cli/option_table.py) and SearchConfig checks the same bounds, so a bound is written once."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields
from typing import Literal, TypeVar

from marco_cli.contract import Granularity, StepBreak
from marco_cli.search.rules import RuleName

Strategy = str  # a strategy's name: an open vocabulary, the names in strategies.py's table
Reward = str  # VALUE[+GATE...], read by search/rewards.py's parse_reward
Select = RuleName  # any answer rule (rules.py)
RolloutScope = Literal["one", "all"]  # roll out one new child per expansion, or all of them
Vocabulary = Literal["strategy", "reward", "rule"]  # a string option checked against its own table
ValueName = Literal["confidence", "gut", "check", "judge", "prm"]  # a step's value (values.py)
Aggregate = Literal["last", "min", "prod"]  # a path's value from its steps' (search-and-learn's three)

_T = TypeVar("_T")
SETTING = "setting"  # the field metadata key


@dataclass(frozen=True)
class Setting:
    """One option, declared once: its help, its bounds (`above`: the low bound is excluded),
    a one-letter spelling, and the vocabulary a string option is read against."""

    help: str
    low: float | None = None
    high: float | None = None
    above: bool = False
    short: str | None = None
    vocabulary: Vocabulary | None = None

    def problem(self, name: str, value: object) -> str | None:
        """What is wrong with `value` for the setting `name` (None: within its bounds)."""
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        label = name.replace("_", " ")
        if self.low is not None and self.above and value <= self.low:
            return f"{label} must be above {self.low:g}, not {value:g}"
        if self.low is not None and value < self.low:
            return f"{label} must be at least {self.low:g}, not {value:g}"
        if self.high is not None and value > self.high:
            return f"{label} must be at most {self.high:g}, not {value:g}"
        return None


def setting(
    default: _T,
    help: str,
    *,
    low: float | None = None,
    high: float | None = None,
    above: bool = False,
    short: str | None = None,
    vocabulary: Vocabulary | None = None,
) -> _T:
    """A dataclass field holding its option's declaration in its metadata."""
    declared = Setting(help, low, high, above, short, vocabulary)
    return field(default=default, metadata={SETTING: declared})


@functools.cache  # read by every SearchConfig built: its fields never change
def declared(cls: type) -> dict[str, Setting]:
    """The settings a dataclass declares, by field name (fields without one are internal)."""
    return {f.name: f.metadata[SETTING] for f in fields(cls) if SETTING in f.metadata}


@dataclass(frozen=True)
class SharedSettings:
    """What every strategy reads: the budget of one path, sampling, the reward and the rule."""

    strategy: Strategy = setting(
        "mcts",
        "mcts, beam, dvts, or a baseline.",
        vocabulary="strategy",
    )
    max_tokens: int = setting(512, "Generated tokens allowed on one answer path.", low=1, high=1_000_000)
    temperature: float = setting(0.6, "Sampling temperature (sampled children, samples).", low=0)
    top_p: float = setting(0.95, "Nucleus sampling of sampled children.", low=0, above=True, high=1)
    top_k: int = setting(40, "Top-k sampling of sampled children (0: off).", low=0, high=100_000)
    min_p: float = setting(0.0, "Min-p sampling of sampled children.", low=0, high=1)
    greedy_first: bool = setting(True, "The first child (and first sample) is greedy.")
    reward: Reward = setting(
        "finished",
        "The rollout's value: finished, paper, path, answer or answered, times gates: +check (wrong "
        "arithmetic scores 0), +judge (a verifier's P(Yes)), +judge-steps. docs/search.md.",
        vocabulary="reward",
    )
    # the answer rule (None: the strategy's own, strategies.own_rule); every rule applies to every strategy
    select: Select | None = setting(
        None,
        "The answer rule, for every strategy (default: the strategy's own): deepconf[-high|-low|-online], "
        "majority, reward-vote, reward, visits, branch, trace, mbr, answer-conf|-vote|-branch, checked "
        "(docs/search.md).",
        vocabulary="rule",
    )
    loop_guard: bool = setting(True, "Stop generations that loop.")
    numeric_answer: bool = False  # the question wants a number (answer extraction prefers one)
    seed: int = setting(0, "Random seed: same seed, same tree.")


@dataclass(frozen=True)
class StepSettings:
    """What one step is, for the strategies that grow paths step by step (mcts, beam, dvts)."""

    granularity: Granularity = setting("step", "Action size: a step, or a 64/32-token mini-step.")
    step_break: StepBreak = setting("line", "Where a step action ends: a 'line' break or a 'blank' line.")


@dataclass(frozen=True)
class MctsSettings:
    """The tree search's own: its iterations and shape, actions, rollouts, reflection, early stops."""

    iterations: int = setting(4, "MCTS iterations.", low=1, high=100_000, short="-n")
    children: int = setting(2, "Children per expansion.", low=1, high=64)
    root_children: int | None = setting(None, "Children of the root (default: --children).", low=1, high=64)
    # CoT-decoding at the root (overrides root_children)
    first_tokens: int = setting(
        4,
        "CoT-decoding: the root's children start with the K likeliest first tokens, then greedy (0: off).",
        low=0,
        high=64,
    )
    exploration: float = setting(1.414, "UCT exploration constant c.", low=0)
    rollout_temperature: float = setting(0.0, "Sampling temperature of rollouts (0: greedy).", low=0)
    rollouts: RolloutScope = setting("one", "Roll out 'one' new child per expansion, or 'all' of them.")
    reflection: bool = setting(False, "Add a 'Wait! ...' branch where a thought ends.")
    dynamic_reflection: bool = setting(False, "Add a 'Wait! ...' branch under low-confidence steps.")
    reflection_threshold: float = setting(
        0.6, "--dynamic-reflection: a step's confidence below this.", low=0, high=1
    )
    max_time: float | None = setting(None, "Stop searching after this many seconds.", low=0)
    stop_confidence: float | None = setting(
        None, "Stop once a finished rollout's reward reaches this.", low=0, high=1
    )
    # finished rollouts (select branch/trace/deepconf: branches) that agree end it
    stop_agree: int | None = setting(
        3, "Stop once this many finished rollouts agree (0: never).", low=0, high=100_000
    )


@dataclass(frozen=True)
class BeamSettings:
    """The step searches' own (beam, dvts): how many paths, how many next steps each, how a step
    is valued (values.py) and a path's value made from its steps'."""

    beams: int = setting(
        4, "beam: paths kept after each step; dvts: paths over all its subtrees.", low=1, high=256
    )
    beam_width: int = setting(2, "Next steps sampled from each kept path.", low=1, high=64)
    value: ValueName = setting(
        "confidence",
        "A step's value: confidence, gut (confidence plus a novelty bonus), check (0 on a wrong "
        "equation), judge (the verifier's P(Yes)) or prm (a process reward model's P(+), --prm).",
    )
    aggregate: Aggregate = setting(
        "last", "A path's value from its steps': the last step's, the min or the product."
    )
    max_depth: int = setting(40, "Steps at most on one path.", low=1, high=10_000)


@dataclass(frozen=True)
class SamplingSettings:
    """The sampling strategies' own (best-of-n, vote, deepconf, deepconf-online)."""

    samples: int = setting(8, "Samples (best-of-n, vote, deepconf).", low=1, high=1024)


@dataclass(frozen=True)
class DeepConfSettings:
    """The DeepConf rules' and strategies' (every strategy may answer by a DeepConf rule)."""

    deepconf_keep: float = setting(
        0.9, "deepconf: share of the most confident samples.", low=0, above=True, high=1
    )
    deepconf_window: int = setting(32, "deepconf: tokens per group confidence window.", low=1, high=100_000)
    deepconf_warmup: int = setting(4, "deepconf-online: samples that set the threshold.", low=1, high=1024)


GROUPS: tuple[type, ...] = (
    SharedSettings, StepSettings, MctsSettings, BeamSettings, SamplingSettings, DeepConfSettings
)  # fmt: skip
# how a message names each group
GROUP_NAMES: dict[type, str] = {
    SharedSettings: "shared",
    StepSettings: "step",
    MctsSettings: "tree search",
    BeamSettings: "beam",
    SamplingSettings: "sampling",
    DeepConfSettings: "DeepConf",
}


def group_of(name: str) -> type:
    """The settings dataclass that declares the field `name`."""
    return next(g for g in GROUPS if any(f.name == name for f in fields(g)))
