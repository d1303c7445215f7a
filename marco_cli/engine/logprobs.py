"""Per-token log-probabilities in the shapes servers return them, read into one form.

- OpenAI's completions shape (llama-cpp-python's server, vLLM): `logprobs` with parallel lists
  `tokens`, `token_logprobs` and `top_logprobs` (one {token: logprob} mapping per position).
- The chat-style shape some completions routes use: `logprobs.content` = [{token, logprob,
  top_logprobs: [{token, logprob}]}].
- llama.cpp's `llama-server` native `/completion`: `completion_probabilities` = [{id, token,
  logprob, top_logprobs: [{id, token, logprob}]}] (older builds: `probs` = [{tok_str, prob}]
  instead, probabilities rather than logs).

Each becomes a list of `Scored` (piece text, token id when the server gave one, the chosen
token's logprob, the top-k logprobs), from which the confidence is computed by the same formula
as locally: c = exp(lp) / sum(exp(top-k lps)).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# a servers' logprobs object, decoded: JSON in, Any until each field is checked
ServerJson = dict[str, Any]


@dataclass(frozen=True)
class Scored:
    text: str
    token: int | None
    logprob: float | None
    top: tuple[float, ...]  # the top-k logprobs at this position (the chosen one among them)

    @property
    def top_mean(self) -> float:
        """The mean of the top-k logprobs (DeepConf's token confidence is its negative)."""
        return sum(self.top) / len(self.top) if self.top else 0.0

    @property
    def confidence(self) -> float | None:
        if self.logprob is None or not self.top:
            return None
        return math.exp(self.logprob) / sum(math.exp(v) for v in self.top)


class ShapeError(ValueError):
    """The answer holds no per-token logprobs in a shape marco reads."""


def _log(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float, str)):
        return _lp(value)
    raise ShapeError(f"a logprob that is not a number: {value!r:.40}")


def _lp(value: object) -> float:
    """A log-probability as a server sent it: a number that is not NaN or +inf (-inf is a
    probability of 0). A NaN would reach every reward and answer rule downstream."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ShapeError(f"a logprob that is not a number: {value!r:.40}")
    number = float(value)  # a string that is no number: ValueError, a ShapeError's base
    if math.isnan(number) or number == math.inf:
        raise ShapeError(f"a logprob that is not a number: {value!r:.40}")
    return number


def _log_prob(value: object) -> float:
    """A probability (llama-server's older form) as its log; 0 stays finite (1e-30)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ShapeError(f"a probability that is not a number: {value!r:.40}")
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise ShapeError(f"a probability outside 0..1: {value!r:.40}")
    return math.log(max(number, 1e-30))


def from_openai(logprobs: ServerJson) -> list[Scored]:
    """`logprobs` of an OpenAI-style completions choice (either shape)."""
    content = logprobs.get("content")
    if isinstance(content, list):
        return [
            Scored(
                str(item.get("token", "")),
                item.get("id"),
                _log(item.get("logprob")),
                tuple(_lp(t["logprob"]) for t in item.get("top_logprobs") or []),
            )
            for item in content
        ]
    pieces, chosen, tops = (
        logprobs.get("tokens"),
        logprobs.get("token_logprobs"),
        logprobs.get("top_logprobs"),
    )
    if pieces is None or chosen is None or tops is None:
        raise ShapeError("no tokens/token_logprobs/top_logprobs")
    return [
        Scored(str(piece), None, _log(lp), tuple(_lp(v) for v in (top or {}).values()))
        for piece, lp, top in zip(pieces, chosen, tops, strict=True)
    ]


def from_native(items: Iterable[ServerJson]) -> list[Scored]:
    """llama-server's `completion_probabilities` (logprob form, or the older prob form)."""
    scored = []
    for item in items:
        if "top_logprobs" in item:
            top = tuple(_lp(t["logprob"]) for t in item["top_logprobs"])
            scored.append(Scored(str(item.get("token", "")), item.get("id"), _log(item.get("logprob")), top))
            continue
        probs = item.get("probs") or []
        text = str(item.get("content", item.get("token", "")))
        top = tuple(_log_prob(p["prob"]) for p in probs)
        chosen = next((_log_prob(p["prob"]) for p in probs if p.get("tok_str") == text), None)
        scored.append(Scored(text, item.get("id"), chosen, top))
    return scored


@dataclass(frozen=True)
class Alternative:
    """One candidate at a position: its piece, its token id when the server gave one, its
    log-probability under the raw distribution."""

    text: str
    token: int | None
    logprob: float


def _alternative(item: ServerJson) -> Alternative:
    """A {token, id, logprob} candidate (llama-server's and the chat-style shape)."""
    return Alternative(str(item.get("token", "")), item.get("id"), _lp(item["logprob"]))


def _ranked(alternatives: list[Alternative]) -> list[Alternative]:
    return sorted(alternatives, key=lambda a: -a.logprob)


def native_alternatives(items: list[ServerJson]) -> list[Alternative]:
    """The first position's candidates in llama-server's `completion_probabilities`, likeliest
    first (logprob form, or the older prob form)."""
    if not items:
        raise ShapeError("no completion_probabilities")
    first = items[0]
    if "top_logprobs" in first:
        return _ranked([_alternative(t) for t in first["top_logprobs"]])
    return _ranked(
        [
            Alternative(str(p.get("tok_str", "")), p.get("id"), _log_prob(p["prob"]))
            for p in first.get("probs") or []
        ]
    )


def openai_alternatives(logprobs: ServerJson) -> list[Alternative]:
    """The first position's candidates in an OpenAI-style choice's `logprobs` (either shape),
    likeliest first."""
    content = logprobs.get("content")
    if isinstance(content, list):
        if not content:
            raise ShapeError("no logprobs content")
        return _ranked([_alternative(t) for t in content[0].get("top_logprobs") or []])
    tops = logprobs.get("top_logprobs")
    if not tops or not isinstance(tops[0], dict):
        raise ShapeError("no top_logprobs")
    return _ranked([Alternative(str(text), None, _lp(lp)) for text, lp in tops[0].items()])
