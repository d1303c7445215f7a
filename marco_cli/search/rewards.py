"""Every rollout reward once, in one table keyed by `--reward`: pure functions from what a
rollout is (its mean confidence, how it ended, its answer and text) to its value. Adding a reward
is one function and one entry; the search, re-scoring and the docs read these tables.

A reward is a value, optionally times gates: `VALUE[+GATE...]`, the product of the parts.

Values:
- `paper`: Marco-o1's reward, the mean top-5 confidence c_i of the rollout's tokens, as is.
- `path`: the same mean over the whole path from the root (computed by the caller).
- `finished`: `paper`, or 0 for a rollout that did not finish with an answer (the default: a
  loop or a cut-off scores high under `paper` and would win).
- `answer`: the confidence of the answer's own tokens (CoT-decoding, Wang & Zhou 2024), 0 when
  unfinished.
- `answered`: 1 for a rollout that finished with an answer, else 0: a neutral value, so that the
  gates alone rank (`judge` alone is `answered+judge`, the verifier's P(Yes) as the reward).

Gates (each in [0, 1], multiplying the value):
- `check`: 0 when an equation the rollout wrote is wrong (search/arithmetic.py), else 1:
  arithmetic that can be checked is checked, outside the model's own confidence. A product and
  not a mean, because one wrong equation makes the answer that follows it untrustworthy however
  confident the model was (the pilot in docs/results.md: half the default trees' rollouts held
  one). `--reward check` alone means `finished+check`.
- `judge`: a generative verifier's P(Yes) that the rollout's answer is correct (outcome
  judging; search/verifier.py asks the question and holds its prompts). A rollout without an
  answer is not judged and gets 0.
- `judge-steps`: the verifier judges each step instead (process judging), below; its factor on
  a rollout is 1.

A gate may also judge a step the moment it is generated (search/values.py): a step it refutes gets
value 0 at once, backed up as that node's first visit in place of a rollout, so UCT turns away
from it before a rollout is paid for (AlphaZero's leaf evaluation, here a gate). `check` refutes
a step that writes a wrong equation; `judge-steps` one the verifier gives P(Yes) < 0.5.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, get_args

from marco_cli.errors import clip
from marco_cli.search.arithmetic import wrong


@dataclass(frozen=True)
class Scored:
    """What a reward sees of one rollout."""

    confidence: float  # mean c_i (over the path for `path`)
    finished: bool  # ended by itself with an answer
    answer: str
    answer_confidence: float | None  # of the answer's tokens; None where they cannot be found
    text: str  # the whole response, path and tail
    judged: float | None = None  # the verifier's P(Yes) for the answer (`judge`); None: not asked


def paper(r: Scored) -> float:
    return r.confidence


def finished(r: Scored) -> float:
    return r.confidence if r.finished and r.answer else 0.0


def answer(r: Scored) -> float:
    if not (r.finished and r.answer):
        return 0.0
    return r.answer_confidence if r.answer_confidence is not None else r.confidence


def answered(r: Scored) -> float:
    return 1.0 if r.finished and r.answer else 0.0


def arithmetic_holds(r: Scored) -> float:
    return 0.0 if wrong(r.text) else 1.0


def judged(r: Scored) -> float:
    return r.judged if r.judged is not None else 0.0


def steps_only(r: Scored) -> float:
    return 1.0


def refuted_equations(step: str) -> tuple[str, ...]:
    """The wrong equations a step writes, each with its true value: `56 + 31 = 97 (is 87)`."""
    return tuple(f"{e.text} (is {_shown(e.true)})" for e in wrong(step))


def _shown(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.6g}"


JudgeKind = Literal["answer", "step"]  # outcome or process judging
# the verifier as the search calls it: (what is judged, the response before it, the text judged)
# -> P(Yes); search/verifier.py builds one over a model
Judge = Callable[[JudgeKind, str, str], float]


RewardFn = Callable[[Scored], float]
RewardValue = Literal["finished", "paper", "path", "answer", "answered"]
RewardGate = Literal["check", "judge", "judge-steps"]
VALUES: dict[RewardValue, RewardFn] = {
    "finished": finished,
    "paper": paper,
    "path": paper,
    "answer": answer,
    "answered": answered,
}
GATES: dict[RewardGate, RewardFn] = {"check": arithmetic_holds, "judge": judged, "judge-steps": steps_only}
JUDGED: frozenset[RewardGate] = frozenset(("judge", "judge-steps"))  # the gates that need a verifier
# a gate named alone: `check` gates the default value, `judge` is the verifier's P(Yes) itself
ALONE: dict[str, str] = {
    "check": "finished+check",
    "judge": "answered+judge",
    "judge-steps": "finished+judge-steps",
}


@dataclass(frozen=True)
class RewardSpec:
    """A parsed `--reward`: one value and the gates that multiply it."""

    value: RewardValue
    gates: tuple[RewardGate, ...] = ()

    @property
    def name(self) -> str:
        return "+".join((self.value, *self.gates))

    @property
    def judges_answers(self) -> bool:
        """The verifier is asked about each rollout's answer (`judge`; `judge-steps` asks about steps)."""
        return "judge" in self.gates


def _value(name: str) -> RewardValue | None:
    return next((v for v in get_args(RewardValue) if v == name), None)


def _gate(name: str) -> RewardGate | None:
    return next((g for g in get_args(RewardGate) if g == name), None)


@functools.cache  # read for every rollout scored: parsed once per spec
def parse_reward(spec: str) -> RewardSpec:
    """`finished`, `check`, `answer+check`, ...; ValueError says what is wrong."""
    head, *rest = ALONE.get(spec.strip(), spec).split("+")
    value = _value(head.strip())
    shown = clip(spec, 60)  # a 120 KB reward is not echoed back whole
    if value is None and head.strip() in ALONE:
        alone = ALONE[head.strip()]
        raise ValueError(
            f"reward '{shown}': {head.strip()} alone stands for {alone}; with more gates, name the "
            f"value first ({alone}+{'+'.join(g.strip() for g in rest)})"
        )
    if value is None:
        raise ValueError(
            f"reward '{shown}': starts with one of {', '.join(get_args(RewardValue))} "
            f"(then +{' +'.join(get_args(RewardGate))}), or is one gate alone ({', '.join(ALONE)})"
        )
    gates = [_gate(g.strip()) for g in rest]
    known = [g for g in gates if g is not None]
    if len(known) != len(rest) or len(set(known)) != len(known):
        gate_names = ", ".join(get_args(RewardGate))
        raise ValueError(f"reward '{shown}': after the value come distinct gates: {gate_names}")
    return RewardSpec(value, tuple(known))


@functools.cache
def reward_function(spec: str) -> RewardFn:
    """The reward `spec` names: its value times each gate."""
    parsed = parse_reward(spec)
    parts = [VALUES[parsed.value], *(GATES[g] for g in parsed.gates)]

    def reward(r: Scored) -> float:
        total = 1.0
        for part in parts:
            total *= part(r)
            if total == 0.0:
                break  # a closed gate: the rest need not run
        return total

    return reward


def needs_judge(spec: str) -> bool:
    """Does the reward ask a verifier (so a run must bring one)?"""
    return any(g in JUDGED for g in parse_reward(spec).gates)
