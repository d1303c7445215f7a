"""The value of a partial path: a `StepValue` judges one new step, given the question, the
response before it and the step with its token confidences, with a value in [0, 1], and says
why when the step cannot be right. The implementations are the signals marco already has:

- `confidence`: the step's mean top-5 confidence (the paper's c_i, over the step's tokens);
- `check`: 0 for a step that writes a wrong equation, else its confidence;
- `judge`: a verifier's P(Yes) that the step is right (`judged_by`), refuting below 0.5.

The reward's step gates are these values (`step_value`): `+check` is `check`, `+judge-steps` is
`judge`, the equations first so a step they refute costs the verifier nothing. The tree search
uses a step's value as the node's first value only where it refutes the step: the node is backed
up with 0 as its first visit in place of a rollout (AlphaZero's leaf evaluation, here a gate),
exactly as the gates always did. Used as a prior on every node it would change each measured
default, and nothing has measured it to help on the 135M model; the step searches (issue 49:
beam search, DVTS) rank partial paths by it instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from marco_cli.search.rewards import Judge, RewardGate, parse_reward, refuted_equations
from marco_cli.search.settings import ValueName

STEP_DOUBT = 0.5  # `judge` refutes a step the verifier gives a lower P(Yes)
PRM_MISSING = "--value prm needs a process reward model: --prm MODEL (or --prm-backend URL)"
GUT_WEIGHT = 0.25  # the novelty bonus's share of a `gut` value: (1 - w) * confidence + w * novelty


@dataclass(frozen=True)
class Step:
    """A step as its value sees it: its text, the confidence of each of its tokens, and the
    texts of the steps before it on its path (empty where the search does not say: a PRM
    then splits the response before at its lines)."""

    text: str
    confidences: Sequence[float] = ()
    earlier: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepValued:
    """A step's value in [0, 1]; why it cannot be right (empty: nothing refutes it); the
    verifier's P(Yes) where one was asked."""

    value: float
    refuted: tuple[str, ...] = ()
    judged: float | None = None


class StepValue(Protocol):
    def __call__(self, question: str, before: str, step: Step) -> StepValued: ...


def confidence(question: str, before: str, step: Step) -> StepValued:
    """The step's mean top-5 confidence (0 for a step with no scored token)."""
    scores = list(step.confidences)
    return StepValued(sum(scores) / len(scores) if scores else 0.0)


def check(question: str, before: str, step: Step) -> StepValued:
    """0 for a step that writes a wrong equation (each named with its true value), else its
    confidence."""
    wrong = refuted_equations(step.text)
    return StepValued(0.0, wrong) if wrong else confidence(question, before, step)


def judged_by(judge: Judge) -> StepValue:
    """The verifier's P(Yes) that the step is right after the response before it."""

    def judged(question: str, before: str, step: Step) -> StepValued:
        p_yes = judge("step", before, step.text)
        doubt = (f"judge: P(Yes) {p_yes:.2f}",) if p_yes < STEP_DOUBT else ()
        return StepValued(p_yes, doubt, p_yes)

    return judged


def in_turn(values: Sequence[StepValue]) -> StepValue:
    """Several values of one step, in order: the first that refutes it decides (the ones after
    it are not asked); else the last one's value, with the verifier's P(Yes) if one was asked."""

    def valued(question: str, before: str, step: Step) -> StepValued:
        found = StepValued(0.0)
        p_yes: float | None = None
        for value in values:
            found = value(question, before, step)
            p_yes = found.judged if found.judged is not None else p_yes
            if found.refuted:
                break
        return StepValued(found.value, found.refuted, p_yes)

    return valued


def _judge_gate(judge: Judge | None) -> StepValue:
    if judge is None:
        raise ValueError("reward judge-steps needs a verifier")
    return judged_by(judge)


# the reward gates that judge steps as they are generated, each made from the run's verifier
STEP_GATES: dict[RewardGate, Callable[[Judge | None], StepValue]] = {
    "check": lambda judge: check,
    "judge-steps": _judge_gate,
}


def step_value(reward: str, judge: Judge | None = None) -> StepValue | None:
    """What judges a step under the reward `reward`: its step gates' values in turn, the
    equations first (None: no gate judges steps)."""
    gates = parse_reward(reward).gates
    values = [make(judge) for gate, make in STEP_GATES.items() if gate in gates]
    return in_turn(values) if values else None


def named(name: ValueName, judge: Judge | None = None, prm: StepValue | None = None) -> StepValue:
    """The step value `--value` names (`gut` is the confidence here: its novelty bonus compares
    a step with its siblings, which the step search adds, beam.py; `prm` is the process reward
    model the run opened, prm.py)."""
    if name == "prm":
        if prm is None:
            raise ValueError(PRM_MISSING)
        return prm
    if name == "judge":
        if judge is None:
            raise ValueError("--value judge needs a verifier (the searching model, or --verifier)")
        return judged_by(judge)
    return check if name == "check" else confidence
