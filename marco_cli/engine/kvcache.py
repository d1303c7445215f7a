"""Bookkeeping for a multi-sequence KV cache (pure Python; the engine applies the plans).

The engine runs one KV stream per sequence (`kv_unified=False`): with llama.cpp's unified cache,
where sequences would share the cells of a common prefix, this build returns wrong logits for
sibling sequences (tests/test_engine.py keeps a tripwire). So a slot that must start from another
slot's prefix gets a whole copy of that slot (`seq_cp` over all its positions), cut back to the
shared prefix. Each slot remembers its tokens, so a request for a token prefix is served by the
slot sharing the longest common prefix with it; only the rest is evaluated. Branches the search
left stay cached in other slots until the slot is needed again (least recently used first,
empty slots before used ones).
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
    copy_from: int | None  # clear `seq` and copy this slot into it first; then cut at `keep`


class SeqCache:
    """Which tokens each sequence slot holds.

    With one slot, branch switches truncate it. With several (llama.cpp's per-sequence KV
    streams, `kv_unified=False`), a branch takes the slot sharing the longest prefix with it when
    that slot can be extended, else the least recently used free slot, which gets a full copy of
    the best slot (`seq_cp`) cut back to the shared prefix. Sequences never share cells: with a
    unified cache this llama.cpp build returned wrong logits (tests/test_engine.py checks).
    """

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

    def plan(self, prefix: Sequence[int], limit: int, busy: frozenset[int] = frozenset()) -> Plan | None:
        """Plan a slot for `prefix`, reusing at most `limit` of its tokens; `busy` slots belong
        to other branches of the same batch and are neither extended nor reused. None: no slot."""
        scored = []
        for seq, toks in enumerate(self.tokens):
            n = min(common_prefix(toks, prefix), limit)
            extendable = len(toks) == n and seq not in busy
            scored.append(((n, extendable, self._stamp[seq]), seq, n))
        _, best, keep = max(scored)
        if best not in busy and (len(self.tokens[best]) == keep or self.n_seq == 1):
            return Plan(best, keep, None)
        free = [s for s in range(self.n_seq) if s not in busy and s != best]
        if not free:
            return Plan(best, keep, None) if best not in busy else None
        victim = min(free, key=lambda s: (bool(self.tokens[s]), self._stamp[s]))
        return Plan(victim, keep, best if keep else None)
