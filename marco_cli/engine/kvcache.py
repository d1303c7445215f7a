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
        if list(a[n:end]) == list(b[n:end]):
            n = end
            continue
        while n < end and a[n] == b[n]:
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
    """Which tokens each sequence slot holds.

    With one slot, branch switches truncate it (llama.cpp's plain attention is exact then).
    With several (experimental), slots are append-only until the next full clear: a new branch
    takes a slot never used since the clear and shares its parent's cells with `seq_cp`. This
    llama.cpp build returns wrong logits once cells are freed and reused, and also when two
    sequences hold the same tokens at the same positions (see the xfail test in
    tests/test_engine.py), so the engine uses one sequence by default.
    """

    def __init__(self, n_seq: int) -> None:
        self.tokens: list[list[int]] = [[] for _ in range(n_seq)]
        self._used = [False] * n_seq
        self._stamp = [0] * n_seq
        self._clock = 0
        self.cells = 0  # cells filled since the last clear (an upper bound on what is in use)

    @property
    def n_seq(self) -> int:
        return len(self.tokens)

    def free_slots(self) -> int:
        return self._used.count(False)

    def touch(self, seq: int) -> None:
        self._clock += 1
        self._stamp[seq] = self._clock
        self._used[seq] = True

    def plan(self, prefix: Sequence[int], limit: int, busy: frozenset[int] = frozenset()) -> Plan | None:
        """Plan a slot for `prefix`, reusing at most `limit` of its tokens; `busy` slots belong
        to other branches of the same batch and are not extended. None: clear the cache first."""
        scored = []
        for seq, toks in enumerate(self.tokens):
            n = min(common_prefix(toks, prefix), limit)
            extendable = len(toks) == n and seq not in busy
            scored.append(((n, extendable, self._stamp[seq]), seq, n))
        _, best, keep = max(scored)
        if len(self.tokens[best]) == keep and best not in busy:
            return Plan(best, keep, None, False)
        if self.n_seq == 1:
            return Plan(best, keep, None, True)
        fresh = next((s for s in range(self.n_seq) if not self._used[s] and s not in busy), None)
        if fresh is None:
            return None
        return Plan(fresh, keep, best if keep else None, False)
