"""Answers compared by similarity, for open-ended outputs (translations) where two good answers
rarely match exactly: chrF (Popović 2015) and the minimum-Bayes-risk choice over a tree's
finished rollouts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from marco_cli.search.tree import Rollout

CHRF_ORDER = 6  # character n-grams of 1..6, as chrF's standard setting (sacreBLEU's default)
CHRF_BETA = 2.0  # recall weighted twice as much as precision


def _ngrams(text: str, n: int) -> Counter[str]:
    squeezed = "".join(text.split())  # chrF ignores whitespace
    return Counter(squeezed[i : i + n] for i in range(len(squeezed) - n + 1))


def chrf(hypothesis: str, reference: str) -> float:
    """chrF in [0, 1]: the F-beta of character n-gram precision and recall, averaged over the
    orders both texts are long enough for (1.0 for two texts equal up to whitespace)."""
    precisions, recalls = [], []
    for n in range(1, CHRF_ORDER + 1):
        hyp, ref = _ngrams(hypothesis, n), _ngrams(reference, n)
        if not hyp or not ref:
            continue
        common = sum((hyp & ref).values())
        precisions.append(common / sum(hyp.values()))
        recalls.append(common / sum(ref.values()))
    if not precisions:
        return 1.0 if "".join(hypothesis.split()) == "".join(reference.split()) else 0.0
    p, r = sum(precisions) / len(precisions), sum(recalls) / len(recalls)
    if p + r == 0:
        return 0.0
    b2 = CHRF_BETA**2
    return (1 + b2) * p * r / (b2 * p + r)


def mbr_choice(rollouts: Sequence[Rollout]) -> Rollout | None:
    """The finished answer closest to all the others (minimum Bayes risk with chrF as the
    utility): argmax over i of the reward-weighted mean chrF to every other finished answer.
    Ties, and a single answer: the higher reward. None without a finished answer."""
    finished = [r for r in rollouts if r.finished and r.answer]
    if not finished:
        return None
    if len(finished) == 1:
        return finished[0]

    def expected_utility(candidate: Rollout) -> float:
        others = [r for r in finished if r is not candidate]
        weight = sum(r.reward for r in others) or float(len(others))
        return sum((r.reward or 1.0) * chrf(candidate.answer, r.answer) for r in others) / weight

    return max(finished, key=lambda r: (round(expected_utility(r), 9), r.reward, -r.id))
