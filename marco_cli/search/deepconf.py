"""DeepConf offline (Fu et al. 2025, "Deep Think with Confidence", facebookresearch/deepconf):
self-consistency over the most confident traces only, weighted by their confidence.

- Token confidence: C_i = -(1/k) * sum_{j=1..k} log P_i(j), the negative mean log-probability of
  the k most likely tokens at position i (k = 5 here, the engine's top-5; the paper uses the top
  tokens its server returns). A peaked distribution has one high and k-1 very low
  probabilities, so a large C_i means a confident position.
- Group confidence: the mean C_i over a sliding window of `window` consecutive tokens (the paper
  uses 2,048-token windows on traces of tens of thousands of tokens; marco's answers are
  hundreds of tokens long, so the default window is 32).
- Trace confidence: the lowest group confidence of the trace (a trace shorter than one window:
  its mean), the paper's "lowest group confidence", which catches a locally confused stretch.
- Offline filter and vote: keep the `keep` share of finished traces with the highest trace
  confidence (DeepConf-low keeps 10%, DeepConf-high 90%), then each kept trace adds its trace
  confidence to its answer's weight; the heaviest answer wins.
- Online: the first `warmup` traces run in full and set a threshold (`online_threshold`); every
  later trace stops as soon as a window's group confidence falls below it (the engines' stop
  rule `min_confidence`, reason `low_confidence`), so its tokens are not spent; the finished
  traces at or above the threshold vote, weighted by confidence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from marco_cli.search.answers import answer_key
from marco_cli.search.tree import Rollout

DEFAULT_WINDOW = 32
DEFAULT_KEEP = 0.9


def token_confidences(top_means: Sequence[float]) -> list[float]:
    """C_i from the mean top-k log-probability at each position."""
    return [-m for m in top_means]


def lowest_group_confidence(confidences: Sequence[float], window: int = DEFAULT_WINDOW) -> float | None:
    """The minimum over sliding windows of the mean token confidence (None: no tokens)."""
    if not confidences:
        return None
    if len(confidences) <= window:
        return sum(confidences) / len(confidences)
    total = sum(confidences[:window])
    lowest = total
    for i in range(window, len(confidences)):
        total += confidences[i] - confidences[i - window]
        lowest = min(lowest, total)
    return lowest / window


def filtered_vote(rollouts: Sequence[Rollout], keep: float = DEFAULT_KEEP) -> Rollout | None:
    """The answer of the confidence-weighted vote over the `keep` most confident finished
    traces (at least one), represented by its most confident kept trace."""
    scored = [r for r in rollouts if r.finished and r.answer and r.trace_confidence is not None]
    if not scored:
        return None
    scored.sort(key=lambda r: (-(r.trace_confidence or 0.0), r.id))
    kept = scored[: max(1, math.ceil(keep * len(scored)))]
    weight: dict[str, float] = {}
    for r in kept:
        weight[answer_key(r.answer)] = weight.get(answer_key(r.answer), 0.0) + (r.trace_confidence or 0.0)
    winner = max(weight, key=lambda k: (weight[k], -min(r.id for r in kept if answer_key(r.answer) == k)))
    return next(r for r in kept if answer_key(r.answer) == winner)


def online_threshold(warmup: Sequence[Rollout], keep: float = DEFAULT_KEEP) -> float | None:
    """DeepConf online's stopping threshold from the warm-up traces: the trace confidence that
    the `keep` share of finished warm-up traces reach (keep 0.1: the 90th percentile, the
    paper's DeepConf-low; keep 0.9: the 10th, DeepConf-high). None: no warm-up trace finished."""
    scored = sorted(
        (r.trace_confidence for r in warmup if r.finished and r.answer and r.trace_confidence is not None),
        reverse=True,
    )
    if not scored:
        return None
    return scored[max(1, math.ceil(keep * len(scored))) - 1]


def online_vote(rollouts: Sequence[Rollout], warmup: int, keep: float = DEFAULT_KEEP) -> Rollout | None:
    """The weighted vote of every finished trace at or above the warm-up threshold (the later
    traces that fell below it were stopped early and never finished)."""
    threshold = online_threshold(rollouts[:warmup], keep)
    if threshold is None:
        return filtered_vote(rollouts, keep)
    passing = [r for r in rollouts if r.trace_confidence is not None and r.trace_confidence >= threshold]
    return filtered_vote(passing, 1.0)
