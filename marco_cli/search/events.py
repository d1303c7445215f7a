"""Typed events the search emits. The live view and the JSON record consume them; the search
knows nothing about either."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

# why a search stopped: its iteration budget, --max-time, --stop-confidence, --stop-agree, a
# tree with nothing left to expand, Ctrl-C, a baseline's samples all done, a failing model
StopWhy = Literal[
    "iterations", "time", "confidence", "agreement", "exhausted", "interrupted", "done", "error"
]
STOP_WHYS: tuple[StopWhy, ...] = get_args(StopWhy)


@dataclass(frozen=True)
class IterationStarted:
    iteration: int  # 1-based
    total: int


@dataclass(frozen=True)
class TokensGenerated:
    """n more tokens were sampled in a generation still running (live progress)."""

    n: int


@dataclass(frozen=True)
class NodeAdded:
    node: int
    parent: int | None
    depth: int
    text: str
    n_tokens: int
    confidence: float | None
    reflection: bool
    terminal: bool


@dataclass(frozen=True)
class RolloutScored:
    rollout: int
    node: int
    reward: float
    answer: str
    n_tokens: int
    finished: bool


@dataclass(frozen=True)
class BackedUp:
    nodes: tuple[int, ...]  # root first
    reward: float


@dataclass(frozen=True)
class StepJudged:
    """The reward's step check judged a new step: why it refuted it (each wrong equation and its
    true value, or the verifier's doubt; empty: kept), and the verifier's P(Yes) where asked."""

    node: int
    reasons: tuple[str, ...]
    judged: float | None = None


@dataclass(frozen=True)
class StepValued:
    """A step search valued a new step (`value`: its path's value) and kept it on the beam or
    pruned it."""

    node: int
    value: float
    pruned: bool


@dataclass(frozen=True)
class BestChanged:
    rollout: int
    reward: float
    answer: str
    path: tuple[int, ...]


@dataclass(frozen=True)
class Finished:
    reason: StopWhy
    iterations: int
    rollout: int | None


Event = (
    IterationStarted
    | TokensGenerated
    | NodeAdded
    | RolloutScored
    | BackedUp
    | StepJudged
    | StepValued
    | BestChanged
    | Finished
)
Listener = Callable[[Event], None]


def ignore(_event: Event) -> None:
    return None
