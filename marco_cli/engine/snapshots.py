"""Saved copies of KV sequences, so a search that returns to an earlier branch
restores its keys and values instead of computing them again.

After each generation the engine copies each branch's sequence state (`llama_state_seq_get_data`, about
the KV cache's bytes per token times the path length) under its token list; a later request
whose prefix shares more tokens with a saved copy than with the live cache gets it back with
`llama_state_seq_set_data`. Copies that are a prefix of a newer one are dropped; the least
recently used go first when the byte budget is full.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from collections.abc import Sequence

import llama_cpp

from marco_cli.engine.kvcache import common_prefix

MIN_GAIN = 8  # restoring must save at least this many tokens of evaluation


class KVSnapshots:
    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self.used = 0
        self.restored_tokens = 0
        self._saved: OrderedDict[tuple[int, ...], tuple[ctypes.Array[ctypes.c_uint8], int]] = OrderedDict()

    def clear(self) -> None:
        self._saved.clear()
        self.used = 0

    def save(self, ctx: llama_cpp.llama_context_p, seq: int, tokens: Sequence[int]) -> None:
        key = tuple(tokens)
        if self.budget <= 0 or not key:
            return
        if key in self._saved:
            self._saved.move_to_end(key)
            return
        size = int(llama_cpp.llama_state_seq_get_size(ctx, seq))
        if size > self.budget:
            return
        buf = (ctypes.c_uint8 * size)()
        written = int(llama_cpp.llama_state_seq_get_data(ctx, buf, size, seq))
        for old in [k for k in self._saved if len(k) < len(key) and key[: len(k)] == k]:
            self._drop(old)
        self._saved[key] = (buf, written)
        self.used += size
        while self.used > self.budget and self._saved:
            self._drop(next(iter(self._saved)))

    def _drop(self, key: tuple[int, ...]) -> None:
        buf, _ = self._saved.pop(key)
        self.used -= len(buf)

    def best(self, prefix: Sequence[int], limit: int, live: int) -> tuple[tuple[int, ...], int] | None:
        """The saved copy sharing the most of `prefix` (up to `limit`), if it beats the live
        cache's `live` shared tokens by MIN_GAIN."""
        found, reach = None, live + MIN_GAIN - 1
        for key in self._saved:
            n = min(common_prefix(key, prefix), limit)
            if n > reach:
                found, reach = key, n
        return (found, reach) if found is not None else None

    def restore(self, ctx: llama_cpp.llama_context_p, key: tuple[int, ...], seq: int) -> bool:
        buf, written = self._saved[key]
        self._saved.move_to_end(key)
        llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(ctx), seq, -1, -1)
        return int(llama_cpp.llama_state_seq_set_data(ctx, buf, written, seq)) > 0
