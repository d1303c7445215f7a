"""Token generation over llama.cpp's low-level API: one batch decode per step for all branches.

A `Request` is (prefix, sampling, stop rule). Each request gets a KV sequence slot that shares the
longest cached prefix with it (see kvcache.py), only the missing tokens are evaluated, and then
every live branch advances by one token per `llama_decode`, logits requested only for those
rows. Scores come from the raw logit row before any sampler touches it.
"""

from __future__ import annotations

import ctypes
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import llama_cpp
import numpy as np

from marco_cli.contract import Generation, InterruptWatch, Request, Sampling, StopReason, StopRule
from marco_cli.engine.confidence import token_scores
from marco_cli.engine.kvcache import Plan, SeqCache
from marco_cli.engine.snapshots import KVSnapshots
from marco_cli.engine.stops import LOOP_WINDOW, cut_reason
from marco_cli.errors import MarcoError

Observer = Callable[[np.ndarray, int], None]
_SAVED_ROWS = 8
_WATCHED_ROWS = 16  # decodes of more rows than this (prompt chunks) can be aborted mid-way
_NO_ABORT = llama_cpp.ggml_abort_callback()  # a null callback
_CONTEXT_TOKENS = 256  # prefix tokens decoded for the loop check (a loop may begin before the branch)


@dataclass
class _Branch:
    seq: int
    pos: int  # position of the next token to decode
    limit: int
    stop: StopRule
    sampler: llama_cpp.llama_sampler_p
    tail: bytes
    context: str  # the prefix's last text, for the loop check
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    confs: list[float] = field(default_factory=list)
    top_means: list[float] = field(default_factory=list)
    text: bytearray = field(default_factory=bytearray)
    offsets: list[int] = field(default_factory=list)  # bytes of text after each token
    reason: StopReason | None = None  # set when the branch ends


class Decoder:
    def __init__(
        self,
        ctx: llama_cpp.llama_context_p,
        n_vocab: int,
        n_ctx: int,
        n_batch: int,
        n_seq: int,
        piece: Callable[[int], bytes],
        eos_ids: set[int],
        snapshot_bytes: int = 0,
    ) -> None:
        self._ctx = ctx
        self._mem = llama_cpp.llama_get_memory(ctx)
        self.n_vocab, self.n_ctx, self.n_batch = n_vocab, n_ctx, n_batch
        self.full_hint = "raise --ctx"  # the engine says so when --ctx is at the model's maximum
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._piece = piece
        self.snapshots = KVSnapshots(snapshot_bytes)
        self._eos = eos_ids
        self.cache = SeqCache(n_seq)
        self._rows: OrderedDict[tuple[int, ...], np.ndarray] = OrderedDict()
        self.evaluated = 0
        self.generated = 0
        self.decode_calls = 0
        self.decode_sizes: Counter[int] = Counter()  # generation decodes by branches they held
        self.interrupts: InterruptWatch | None = None  # asked between graph nodes of long decodes
        self._abort = llama_cpp.ggml_abort_callback(self._should_abort)  # kept alive with the decoder

    def free(self) -> None:
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None

    # KV cache --------------------------------------------------------------------------------
    def reset(self) -> None:
        llama_cpp.llama_memory_clear(self._mem, True)
        self.cache = SeqCache(self.cache.n_seq)
        self._rows.clear()
        self.snapshots.clear()

    def _run(self, entries: Sequence[tuple[int, int, int, bool]]) -> None:
        """Decode (token, pos, seq, wants_logits) rows as one batch."""
        batch = self._batch
        for i, (tok, pos, seq, out) in enumerate(entries):
            batch.token[i] = tok
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = out
        batch.n_tokens = len(entries)
        watch = self.interrupts if len(entries) > _WATCHED_ROWS else None
        if watch is None:
            rc = llama_cpp.llama_decode(self._ctx, batch)
        else:  # the watch raises KeyboardInterrupt on leaving when a signal came meanwhile
            with watch:
                llama_cpp.llama_set_abort_callback(self._ctx, self._abort, None)
                try:
                    rc = llama_cpp.llama_decode(self._ctx, batch)
                finally:
                    llama_cpp.llama_set_abort_callback(self._ctx, _NO_ABORT, None)
        self.decode_calls += 1
        if rc != 0:
            raise MarcoError(f"llama_decode failed with code {rc} (the context is full; {self.full_hint})")
        for tok, _pos, seq, _out in entries:
            self.cache.tokens[seq].append(tok)
        self.evaluated += len(entries)

    def _should_abort(self, _data: ctypes.c_void_p) -> bool:
        return self.interrupts is not None and self.interrupts.pending()

    def _prepare(self, prefix: Sequence[int], busy: set[int]) -> tuple[int, np.ndarray]:
        """A slot holding `prefix` (all but what is still to decode) and the next-token row."""
        n = len(prefix)
        if n == 0:
            raise MarcoError("cannot generate from an empty prefix")
        key = tuple(prefix)
        saved = self._rows.get(key)
        limit = n if saved is not None else n - 1
        plan = self.cache.plan(prefix, limit, frozenset(busy))
        if plan is None:
            raise MarcoError("no free KV sequence for this batch; lower --parallel")
        plan = self._maybe_restore(prefix, limit, plan)
        if plan.copy_from is not None:  # per-sequence streams copy whole, then are cut back
            llama_cpp.llama_memory_seq_rm(self._mem, plan.seq, -1, -1)
            llama_cpp.llama_memory_seq_cp(self._mem, plan.copy_from, plan.seq, -1, -1)
            self.cache.tokens[plan.seq] = list(self.cache.tokens[plan.copy_from])
        if len(self.cache.tokens[plan.seq]) > plan.keep:
            if not llama_cpp.llama_memory_seq_rm(self._mem, plan.seq, plan.keep, -1):
                raise MarcoError("this model's KV cache cannot drop a partial sequence")
            del self.cache.tokens[plan.seq][plan.keep :]
        self.cache.touch(plan.seq)
        if saved is not None and plan.keep == n:
            self._rows.move_to_end(key)
            return plan.seq, saved
        rest = prefix[plan.keep :]
        for offset in range(0, len(rest), self.n_batch):
            chunk = rest[offset : offset + self.n_batch]
            last = offset + self.n_batch >= len(rest)
            start = plan.keep + offset
            self._run([(t, start + i, plan.seq, last and i == len(chunk) - 1) for i, t in enumerate(chunk)])
        row = self._row(-1).copy()
        self._rows[key] = row
        while len(self._rows) > _SAVED_ROWS:
            self._rows.popitem(last=False)
        return plan.seq, row

    def _maybe_restore(self, prefix: Sequence[int], limit: int, plan: Plan) -> Plan:
        """Swap in a saved copy of a sequence when it shares more of `prefix` than the cache."""
        found = self.snapshots.best(prefix, limit, plan.keep)
        if found is None:
            return plan
        key, keep = found
        if not self.snapshots.restore(self._ctx, key, plan.seq):
            self.cache.tokens[plan.seq] = []
            llama_cpp.llama_memory_seq_rm(self._mem, plan.seq, -1, -1)
            return Plan(plan.seq, 0, None)
        self.cache.tokens[plan.seq] = list(key)
        self.snapshots.restored_tokens += keep
        return Plan(plan.seq, keep, None)

    def _row(self, index: int) -> np.ndarray:
        ptr = llama_cpp.llama_get_logits_ith(self._ctx, index)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def _resync(self) -> None:
        """After an interruption, make every sequence hold exactly the tokens we track."""
        for seq, toks in enumerate(self.cache.tokens):
            llama_cpp.llama_memory_seq_rm(self._mem, seq, len(toks), -1)

    # sampling --------------------------------------------------------------------------------
    @staticmethod
    def _sampler(sampling: Sampling) -> llama_cpp.llama_sampler_p:
        lib = llama_cpp
        params = lib.llama_sampler_chain_default_params()
        chain: llama_cpp.llama_sampler_p = lib.llama_sampler_chain_init(params)
        if sampling.temperature <= 0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
            return chain
        if sampling.top_k > 0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_k(sampling.top_k))
        if sampling.top_p < 1.0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(sampling.top_p, 1))
        if sampling.min_p > 0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_min_p(sampling.min_p, 1))
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(sampling.temperature))
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(sampling.seed & 0xFFFFFFFF))
        return chain

    def _sample_row(self, sampler: llama_cpp.llama_sampler_p, row: np.ndarray) -> int:
        """Sample from a saved row (the first token of a branch)."""
        data = (llama_cpp.llama_token_data * self.n_vocab)()
        view = np.ctypeslib.as_array(data)
        view["id"] = np.arange(self.n_vocab)
        view["logit"] = row
        view["p"] = 0.0
        arr = llama_cpp.llama_token_data_array(
            ctypes.cast(data, llama_cpp.llama_token_data_p), self.n_vocab, -1, False
        )
        llama_cpp.llama_sampler_apply(sampler, ctypes.byref(arr))
        token = int(data[arr.selected].id)
        llama_cpp.llama_sampler_accept(sampler, token)
        return token

    def _first_token(self, sampler: llama_cpp.llama_sampler_p, row: np.ndarray, sampling: Sampling) -> int:
        """A branch's first token: the sampler's, or the one of rank `first_rank` by logit."""
        rank = sampling.first_rank
        if rank is None:
            return self._sample_row(sampler, row)
        rank = min(rank, self.n_vocab - 1)
        top = np.argpartition(-row, rank)[: rank + 1]
        token = int(top[np.argsort(-row[top], kind="stable")][rank])
        llama_cpp.llama_sampler_accept(sampler, token)
        return token

    # generation ------------------------------------------------------------------------------
    def generate_many(
        self,
        requests: Sequence[Request],
        observe: Observer | None = None,
        on_token: Callable[[int], None] | None = None,
    ) -> list[Generation]:
        """Generate every request; all live branches advance together, one decode per step."""
        branches: list[_Branch] = []
        rows: list[np.ndarray] = []
        busy: set[int] = set()
        try:
            for request in requests:
                prefix, stop = request.prefix, request.stop
                seq, row = self._prepare(prefix, busy)
                busy.add(seq)
                tail = b"".join(self._piece(t) for t in prefix[-8:]) if stop.stop_texts else b""
                context = self._context(prefix) if stop.loop_guard else ""
                sampler = self._sampler(request.sampling)
                branches.append(_Branch(seq, len(prefix), stop.token_limit(), stop, sampler, tail, context))
                rows.append(row)
            live = [
                b
                for b, row, request in zip(branches, rows, requests, strict=True)
                if self._advance(b, self._first_token(b.sampler, row, request.sampling), row, observe)
            ]
            if on_token is not None:
                on_token(len(branches))
            while live:
                self._run([(b.tokens[-1], b.pos, b.seq, True) for b in live])
                self.decode_sizes[len(live)] += 1
                for b in live:
                    b.pos += 1
                stepped = []
                for i, b in enumerate(live):
                    row = self._row(i).copy()  # before the sampler can touch the buffer
                    token = int(llama_cpp.llama_sampler_sample(b.sampler, self._ctx, i))
                    if self._advance(b, token, row, observe):
                        stepped.append(b)
                if on_token is not None:
                    on_token(len(live))
                live = stepped
            for seq in sorted({b.seq for b in branches}):
                self.snapshots.save(self._ctx, seq, self.cache.tokens[seq])
        except BaseException:
            self._resync()
            raise
        finally:
            for b in branches:
                llama_cpp.llama_sampler_free(b.sampler)
        return [
            Generation(
                tuple(b.tokens),
                b.text.decode("utf-8", "replace"),
                tuple(b.logprobs),
                tuple(b.confs),
                b.reason or "max_tokens",  # a branch always ends with a reason; "" was read so
                tuple(b.top_means),
                tuple(b.offsets),
            )
            for b in branches
        ]

    def _context(self, prefix: Sequence[int]) -> str:
        text = b"".join(self._piece(t) for t in prefix[-_CONTEXT_TOKENS:])
        return text.decode("utf-8", "ignore")[-LOOP_WINDOW:]

    def _advance(self, b: _Branch, token: int, row: np.ndarray, observe: Observer | None) -> bool:
        """Record `token` for branch b; False when the branch stops here."""
        logprob, conf, top_mean = token_scores(row, token)
        if observe is not None:
            observe(row, token)
        b.tokens.append(token)
        b.logprobs.append(logprob)
        b.confs.append(conf)
        b.top_means.append(top_mean)
        self.generated += 1
        if token in self._eos:
            b.offsets.append(len(b.text))
            b.reason = "eos"
            return False
        before = len(b.text)
        b.text += self._piece(token)
        b.offsets.append(len(b.text))
        stop = b.stop
        if stop.stop_texts and _completes_stop(b.tail, b.text, before, stop.stop_texts):
            b.reason = "stop_text"
        elif cut := cut_reason(b.text, before, stop, b.context, b.top_means):
            b.reason = cut
        elif len(b.tokens) >= b.limit:
            b.reason = "mini" if b.limit < stop.max_tokens else "max_tokens"
        elif b.pos + 1 >= self.n_ctx:
            b.reason = "context"
        return b.reason is None


def _completes_stop(tail: bytes, text: bytearray, before: int, stops: Sequence[str]) -> bool:
    """Did the newest piece complete a stop text (which may have begun in the prefix)?"""
    window = tail + bytes(text)
    new_from = len(tail) + before
    for stop in stops:
        needle = stop.encode()
        idx = window.find(needle, max(0, new_from - len(needle) + 1))
        if idx >= 0 and idx + len(needle) > new_from:
            return True
    return False
