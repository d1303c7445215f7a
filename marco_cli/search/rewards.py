"""Every rollout reward once, in one table keyed by `--reward`: a pure function from what a
rollout is (its mean confidence, how it ended, its answer and text) to its value. Adding a reward
is one function and one entry; the search, re-scoring and the docs read this table.

- `paper`: Marco-o1's reward, the mean top-5 confidence c_i of the rollout's tokens, as is.
- `path`: the same mean over the whole path from the root (computed by the caller).
- `finished`: `paper`, or 0 for a rollout that did not finish with an answer (the default: a
  loop or a cut-off scores high under `paper` and would win).
- `answer`: the confidence of the answer's own tokens (CoT-decoding, Wang & Zhou 2024), 0 when
  unfinished.
- `check`: `finished`, or 0 when an equation the rollout wrote is wrong (search/arithmetic.py):
  arithmetic that can be checked is checked, outside the model's own confidence.

A reward may also judge a step the moment it is generated (`STEP_CHECKS`): a step it refutes
gets value 0 at once, backed up as that node's first visit in place of a rollout, so UCT turns
away from it before a rollout is paid for (AlphaZero's leaf evaluation, here a gate). `check`
refutes a step that writes a wrong equation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

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


def check(r: Scored) -> float:
    return 0.0 if wrong(r.text) else finished(r)


def refuted_equations(step: str) -> tuple[str, ...]:
    """The wrong equations a step writes, each with its true value: `56 + 31 = 97 (is 87)`."""
    return tuple(f"{e.text} (is {_shown(e.true)})" for e in wrong(step))


def _shown(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.6g}"


RewardFn = Callable[[Scored], float]
StepCheck = Callable[[str], tuple[str, ...]]  # what refutes a step (empty: nothing)
REWARD_FUNCTIONS: dict[str, RewardFn] = {
    "finished": finished,
    "paper": paper,
    "path": paper,
    "answer": answer,
    "check": check,
}
STEP_CHECKS: dict[str, StepCheck] = {"check": refuted_equations}
