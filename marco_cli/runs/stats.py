"""The statistics a bench table reports: an interval for each accuracy, a paired test for each
pair of configurations run on the same problems."""

from __future__ import annotations

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
