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

Gates (each in [0, 1], multiplying the value):
- `check`: 0 when an equation the rollout wrote is wrong (search/arithmetic.py), else 1:
  arithmetic that can be checked is checked, outside the model's own confidence. A product and
  not a mean, because one wrong equation makes the answer that follows it untrustworthy however
  confident the model was (the pilot in docs/results.md: half the default trees' rollouts held
  one). `--reward check` alone means `finished+check`.

A gate may also judge a step the moment it is generated (`STEP_CHECKS`): a step it refutes gets
value 0 at once, backed up as that node's first visit in place of a rollout, so UCT turns away
from it before a rollout is paid for (AlphaZero's leaf evaluation, here a gate). `check` refutes
a step that writes a wrong equation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, get_args

from marco_cli.search.arithmetic import wrong


@dataclass(frozen=True)
class Scored:
    """What a reward sees of one rollout."""

    confidence: float  # mean c_i (over the path for `path`)
    finished: bool  # ended by itself with an answer
    answer: str
    answer_confidence: float | None  # of the answer's tokens; None where they cannot be found
    text: str  # the whole response, path and tail


def paper(r: Scored) -> float:
    return r.confidence


def finished(r: Scored) -> float:
    return r.confidence if r.finished and r.answer else 0.0


def answer(r: Scored) -> float:
    if not (r.finished and r.answer):
        return 0.0
    return r.answer_confidence if r.answer_confidence is not None else r.confidence


def arithmetic_holds(r: Scored) -> float:
    return 0.0 if wrong(r.text) else 1.0


def refuted_equations(step: str) -> tuple[str, ...]:
    """The wrong equations a step writes, each with its true value: `56 + 31 = 97 (is 87)`."""
    return tuple(f"{e.text} (is {_shown(e.true)})" for e in wrong(step))


def _shown(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.6g}"


RewardFn = Callable[[Scored], float]
StepCheck = Callable[[str], tuple[str, ...]]  # what refutes a step (empty: nothing)
RewardValue = Literal["finished", "paper", "path", "answer"]
RewardGate = Literal["check"]
VALUES: dict[RewardValue, RewardFn] = {"finished": finished, "paper": paper, "path": paper, "answer": answer}
GATES: dict[RewardGate, RewardFn] = {"check": arithmetic_holds}
STEP_CHECKS: dict[RewardGate, StepCheck] = {"check": refuted_equations}
ALONE: dict[str, str] = {"check": "finished+check"}  # a gate named alone gates the default value
REWARD_NAMES = (*get_args(RewardValue), *get_args(RewardGate))  # what --reward's parts may be


@dataclass(frozen=True)
class RewardSpec:
    """A parsed `--reward`: one value and the gates that multiply it."""

    value: RewardValue
    gates: tuple[RewardGate, ...] = ()

    @property
    def name(self) -> str:
        return "+".join((self.value, *self.gates))


def _value(name: str) -> RewardValue | None:
    return next((v for v in get_args(RewardValue) if v == name), None)


def _gate(name: str) -> RewardGate | None:
    return next((g for g in get_args(RewardGate) if g == name), None)


@functools.cache  # read for every rollout scored: parsed once per spec
def parse_reward(spec: str) -> RewardSpec:
    """`finished`, `check`, `answer+check`, ...; ValueError says what is wrong."""
    head, *rest = ALONE.get(spec.strip(), spec).split("+")
    value = _value(head.strip())
    if value is None:
        raise ValueError(
            f"reward {spec!r}: starts with one of {', '.join(get_args(RewardValue))} "
            f"(then +{' +'.join(get_args(RewardGate))})"
        )
    gates = [_gate(g.strip()) for g in rest]
    known = [g for g in gates if g is not None]
    if len(known) != len(rest) or len(set(known)) != len(known):
        gate_names = ", ".join(get_args(RewardGate))
        raise ValueError(f"reward {spec!r}: after the value come distinct gates: {gate_names}")
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


def step_check(spec: str) -> StepCheck | None:
    """What refutes a step under `spec`: its gates' step checks together (None: none has one)."""
    checks = [STEP_CHECKS[g] for g in parse_reward(spec).gates if g in STEP_CHECKS]
    if not checks:
        return None
    return lambda step: tuple(reason for check in checks for reason in check(step))
