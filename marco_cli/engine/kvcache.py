"""Bookkeeping for a multi-sequence KV cache (pure Python; the engine applies the plans).

llama.cpp's unified KV cache lets several sequences share the cells of a common prefix:
`seq_cp(src, dst, 0, n)` makes dst see src's first n tokens without computing or copying
anything. Here each sequence slot remembers its tokens, so a request for a token prefix is served
by the slot sharing the longest common prefix with it; only the rest is evaluated. Branches the
search left stay cached in other slots until the slot is needed again (least recently used
first, redundant slots before unique ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix, compared in blocks (the fast path is in C)."""
    limit = min(len(a), len(b))
    n = 0
    step = 256
    while n < limit:
        end = min(n + step, limit)
        if a[n:end] == b[n:end]:
            n = end
            continue
        while a[n] == b[n]:
            n += 1
        return n
    return n


@dataclass(frozen=True)
class Plan:
    """How to make `seq` hold the first `keep` tokens of a prefix (the rest is then decoded)."""

    seq: int
    keep: int
    copy_from: int | None  # clear `seq`, then share [0, keep) of this slot
    truncate: bool  # drop `seq`'s tokens from `keep` on


class SeqCache:
    def __init__(self, n_seq: int) -> None:
        self.tokens: list[list[int]] = [[] for _ in range(n_seq)]
        self._stamp = [0] * n_seq
        self._clock = 0

    @property
    def n_seq(self) -> int:
        return len(self.tokens)

    def touch(self, seq: int) -> None:
        self._clock += 1
        self._stamp[seq] = self._clock

    def plan(self, prefix: Sequence[int], limit: int, busy: frozenset[int] = frozenset()) -> Plan:
        """Plan a slot for `prefix`, reusing at most `limit` of its tokens; `busy` slots are
        neither changed nor evicted (they belong to other branches of the same batch)."""
        scored = []
        for seq, toks in enumerate(self.tokens):
            n = min(common_prefix(toks, prefix), limit)
            extendable = len(toks) == n and seq not in busy
            scored.append(((n, extendable, self._stamp[seq]), seq, n))
        _, best, best_len = max(scored)
        if len(self.tokens[best]) == best_len and best not in busy:
            return Plan(best, best_len, None, False)
        if self.n_seq == 1:
            return Plan(best, best_len, None, True)
        victim = self.victim(busy | {best})
        if victim is None:
            raise RuntimeError("no free sequence slot")
        if best_len == 0:
            return Plan(victim, 0, None, True)
        return Plan(victim, best_len, best, False)

    def victim(self, keep: frozenset[int] | set[int]) -> int | None:
        """The slot to reuse: empty, else redundant (a prefix of another), else least recent."""
        candidates = [s for s in range(self.n_seq) if s not in keep]
        if not candidates:
            return None
        empty = [s for s in candidates if not self.tokens[s]]
        if empty:
            return empty[0]
        redundant = [s for s in candidates if self._covered(s)]
        pool = redundant or candidates
        return min(pool, key=lambda s: self._stamp[s])

    def _covered(self, seq: int) -> bool:
        toks = self.tokens[seq]
        return any(
            other != seq and len(t) >= len(toks) and t[: len(toks)] == toks
            for other, t in enumerate(self.tokens)
        )

    def lru(self, keep: set[int]) -> int | None:
        live = [s for s in range(self.n_seq) if s not in keep and self.tokens[s]]
        return min(live, key=lambda s: self._stamp[s]) if live else None
