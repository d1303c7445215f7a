"""How well each value signal tells right answers from wrong ones, on saved bench trees: for
every finished rollout with an answer (graded against the gold answer), the signal's AUROC,
the probability that a right answer scores above a wrong one. A search can only rank branches
as well as its value signal does, so this is measured before any search is (DeepConf, rStar and
PRM-guided search win by ranking with something other than the policy's confidence).

The signals are a table, each a function of a saved rollout (None where the run did not record
it): the paper's mean confidence, the answer tokens' confidence (CoT-decoding), DeepConf's
lowest group confidence, the arithmetic check (1 when every equation holds, else 0: a signal
with two values, its AUROC counts the ties), and the verifier's P(Yes) (runs under `judge`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from marco_cli.record.saved import RolloutRecord
from marco_cli.runs.bench import Kept, grade
from marco_cli.runs.stats import auroc, auroc_interval
from marco_cli.search.rewards import GATES

SignalName = Literal["confidence", "answer-confidence", "trace-confidence", "check", "judge"]
Signal = Callable[[RolloutRecord], float | None]
SIGNALS: dict[SignalName, Signal] = {
    "confidence": lambda r: r.confidence,
    "answer-confidence": lambda r: r.answer_confidence,
    "trace-confidence": lambda r: r.trace_confidence,
    "check": lambda r: GATES["check"](r.scored()),  # the reward's own gate
    "judge": lambda r: r.judged,
}


@dataclass(frozen=True)
class SignalFigures:
    """One signal over one set of rollouts."""

    signal: SignalName
    right: int  # graded right rollouts the signal scored
    wrong: int
    auroc: float | None  # None: no right or no wrong rollout scored
    interval: tuple[float, float] | None = None  # its approximate 95% interval


def graded_rollouts(kept: Iterable[Kept]) -> list[tuple[RolloutRecord, bool]]:
    """Every finished rollout with an answer in the saved runs, with whether it is right."""
    return [
        (r, grade(r.answer, run.gold)[1])
        for run in kept
        for r in run.record.rollouts
        if r.finished and r.answer
    ]


def signal_figures(graded: list[tuple[RolloutRecord, bool]]) -> list[SignalFigures]:
    """Each signal's AUROC over the rollouts it scored (a signal a run did not record is left out)."""
    figures = []
    for name, signal in SIGNALS.items():
        scored = [(value, right) for r, right in graded if (value := signal(r)) is not None]
        right = [v for v, ok in scored if ok]
        wrong_ = [v for v, ok in scored if not ok]
        area = auroc(right, wrong_)
        interval = None if area is None else auroc_interval(area, len(right), len(wrong_))
        figures.append(SignalFigures(name, len(right), len(wrong_), area, interval))
    return figures
