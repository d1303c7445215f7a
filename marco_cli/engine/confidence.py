"""Token scores from one logit row: the Marco-o1 top-5 confidence, the log-probability, and the
top-5 mean log-probability (DeepConf).

c_i = exp(lp(t_i)) / sum_{k=1..5} exp(lp(t_k)) over the 5 most likely tokens at that position.
The softmax normaliser cancels in that ratio, so only the top-5 logits are needed for it; the
log-probability of the chosen token needs the log-sum-exp over the whole row (one pass, no
probability vector kept).
"""

from __future__ import annotations

import math

import numpy as np

TOP_K = 5


def two_way(a: float, b: float) -> float:
    """P(a) / (P(a) + P(b)) from the two tokens' logits or log-probabilities (the normaliser
    cancels, so either gives the same ratio)."""
    return 1.0 / (1.0 + math.exp(min(b - a, 700.0)))


def token_scores(logits: np.ndarray, token: int, k: int = TOP_K) -> tuple[float, float, float]:
    """(log-probability, top-k confidence) of `token` under the raw distribution `logits`, and
    the mean log-probability of the k most likely tokens there (DeepConf's token confidence is
    its negative)."""
    top = np.partition(logits, -k)[-k:]
    peak = float(top.max())
    chosen = float(logits[token]) - peak
    top_sum = float(np.exp(top - peak).sum())
    confidence = math.exp(chosen) / top_sum
    log_norm = math.log(float(np.exp(logits - peak).sum()))
    top_mean = float((top - peak).mean()) - log_norm
    return chosen - log_norm, confidence, top_mean
