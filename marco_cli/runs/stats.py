"""The statistics a bench table reports: an interval for each accuracy, a paired test for each
pair of configurations run on the same problems."""

from __future__ import annotations

import bisect
import math


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion."""
    if n == 0:
        return 0.0, 0.0
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_p(right_to_wrong: int, wrong_to_right: int) -> float:
    """Exact two-sided McNemar test on paired flips: the binomial probability, at p = 1/2, of a
    split at least as uneven as this one (1.0 when nothing flipped)."""
    n, low = right_to_wrong + wrong_to_right, min(right_to_wrong, wrong_to_right)
    tail: float = sum(math.comb(n, k) for k in range(low + 1)) / 2**n
    return min(1.0, 2 * tail)


def auroc(right: list[float], wrong: list[float]) -> float | None:
    """The probability that a right answer's score is above a wrong one's (ties count half):
    the Mann-Whitney form of the area under the ROC curve. 0.5 is a coin; None without both."""
    if not right or not wrong:
        return None
    ordered = sorted(wrong)
    # for each right score: the wrong ones below it count 1, the tied ones 1/2
    below = [bisect.bisect_left(ordered, s) for s in right]
    tied = [bisect.bisect_right(ordered, s) - b for s, b in zip(right, below, strict=True)]
    return (sum(below) + sum(tied) / 2) / (len(right) * len(wrong))


def auroc_interval(area: float, right: int, wrong: int, z: float = 1.96) -> tuple[float, float]:
    """An approximate 95% interval for an AUROC from `right` and `wrong` scores (Hanley and
    McNeil 1982's standard error), clipped to [0, 1]."""
    q1, q2 = area / (2 - area), 2 * area * area / (1 + area)
    variance = (area * (1 - area) + (right - 1) * (q1 - area**2) + (wrong - 1) * (q2 - area**2)) / (
        right * wrong
    )
    half = z * math.sqrt(max(variance, 0.0))
    return max(0.0, area - half), min(1.0, area + half)
