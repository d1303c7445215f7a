"""The llama.cpp engine: the only place that talks to llama-cpp-python's low-level API.

One context, one sequence (seq 0). The engine remembers which tokens sit in the KV cache, so
continuing a prefix that is already there evaluates nothing again, and jumping to another branch
evaluates only the tokens after the common prefix. Logits are requested only for the rows that
are sampled; `logits_all` is never used.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from pathlib import Path

import llama_cpp
import numpy as np

from marco_cli.engine.confidence import token_scores
from marco_cli.engine.prompt import render_chat, with_system_prompt
from marco_cli.engine.types import Generation, Sampling, StopRule
from marco_cli.errors import MarcoError
from marco_cli.gguf import check_gguf

DEFAULT_CTX_CAP = 8192
_verbose = False


@llama_cpp.llama_log_callback
def _log_callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    if _verbose and text:
        os.write(2, text)


def set_verbose(verbose: bool) -> None:
    """Route llama.cpp's own log to stderr (verbose) or drop it; installs our callback."""
    global _verbose
    _verbose = verbose
    llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))


def physical_cores() -> int:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as handle:
            cores = {line.split(":")[1].strip() for line in handle if line.startswith("core id")}
        if cores:
            return len(cores)
    except OSError:
        pass
    return max(1, (os.cpu_count() or 2) // 2)


def gpu_offload_supported() -> bool:
    return bool(llama_cpp.llama_supports_gpu_offload())


def system_info() -> str:
    return llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()


def library_version() -> str:
    return str(llama_cpp.__version__)


class Engine:
    """A loaded GGUF model with one context and a token-tracked KV cache."""

    def __init__(
        self,
        path: Path | str,
        *,
        ctx: int | None = None,
        gpu_layers: int | None = None,
        cpu: bool = False,
        threads: int | None = None,
        verbose: bool = False,
        n_batch: int = 512,
    ) -> None:
        set_verbose(verbose)
        self.path = Path(path)
        check_gguf(self.path)
        llama_cpp.llama_backend_init()
        mparams = llama_cpp.llama_model_default_params()
        if cpu:
            mparams.n_gpu_layers = 0
        elif gpu_layers is not None:
            mparams.n_gpu_layers = gpu_layers
        else:
            mparams.n_gpu_layers = 999 if gpu_offload_supported() else 0
        self.gpu_layers = int(mparams.n_gpu_layers)
        self._model = llama_cpp.llama_model_load_from_file(str(self.path).encode(), mparams)
        if not self._model:
            raise MarcoError(f"llama.cpp could not load {self.path} (truncated or corrupt GGUF?)")
        self._ctx = None
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self.n_ctx_train = int(llama_cpp.llama_model_n_ctx_train(self._model))
        n_ctx = min(self.n_ctx_train, ctx or DEFAULT_CTX_CAP)
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = min(n_batch, n_ctx)
        cparams.n_ubatch = min(n_batch, n_ctx)
        cparams.n_seq_max = 1
        self.threads = threads or physical_cores()
        cparams.n_threads = self.threads
        cparams.n_threads_batch = self.threads
        cparams.no_perf = True
        self._ctx = llama_cpp.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            self.close()
            raise MarcoError(
                f"could not create a {n_ctx}-token context for {self.path.name} "
                "(not enough memory?); try a smaller --ctx"
            )
        self.n_ctx = int(llama_cpp.llama_n_ctx(self._ctx))
        self.n_batch = int(cparams.n_batch)
        self._mem = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._kv: list[int] = []  # tokens whose keys/values are in seq 0, positions 0..n-1
        self._saved: tuple[int, np.ndarray] | None = None  # logits after the first n kv tokens
        self._piece_buf = ctypes.create_string_buffer(256)
        self.evaluated = 0  # tokens llama.cpp evaluated (prompt and generated)
        self.generated = 0  # tokens sampled
        self.eos_ids = {t for t in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(self._vocab, t)}

    # resources -------------------------------------------------------------------------
    def close(self) -> None:
        if getattr(self, "_batch", None) is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if getattr(self, "_ctx", None):
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
        if getattr(self, "_model", None):
            llama_cpp.llama_model_free(self._model)
            self._model = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    # metadata and text -----------------------------------------------------------------
    def metadata(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(4096)
        n = llama_cpp.llama_model_meta_val_str(self._model, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", "replace") if n >= 0 else None

    @property
    def chat_template(self) -> str | None:
        raw = llama_cpp.llama_model_chat_template(self._model, None)
        return raw.decode("utf-8", "replace") if raw else None

    def token_text(self, token: int, special: bool = True) -> str:
        return self.piece(token, special).decode("utf-8", "replace")

    def piece(self, token: int, special: bool = False) -> bytes:
        n = llama_cpp.llama_token_to_piece(
            self._vocab, token, self._piece_buf, len(self._piece_buf), 0, special
        )
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, -n, 0, special)
            return buf.raw[:n]
        return self._piece_buf.raw[:n]

    def tokenize(self, text: str, *, special: bool = False, add_bos: bool = False) -> list[int]:
        data = text.encode("utf-8")
        size = len(data) + 8
        arr = (llama_cpp.llama_token * size)()
        n = llama_cpp.llama_tokenize(self._vocab, data, len(data), arr, size, add_bos, special)
        if n < 0:
            size = -n
            arr = (llama_cpp.llama_token * size)()
            n = llama_cpp.llama_tokenize(self._vocab, data, len(data), arr, size, add_bos, special)
        return list(arr[:n])

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", "replace")

    def build_prompt(self, messages: Sequence[dict[str, str]], style: str) -> list[int]:
        """Render the conversation with the GGUF's chat template and tokenize it once."""
        template = self.chat_template
        bos_id = llama_cpp.llama_vocab_bos(self._vocab)
        bos = self.token_text(bos_id) if bos_id >= 0 else ""
        eos = self.token_text(llama_cpp.llama_vocab_eos(self._vocab))
        text = render_chat(with_system_prompt(messages, style, template), template, bos, eos)
        tokens = self.tokenize(text, special=True)
        if llama_cpp.llama_vocab_get_add_bos(self._vocab) and (not tokens or tokens[0] != bos_id):
            tokens.insert(0, bos_id)
        if len(tokens) >= self.n_ctx:
            raise MarcoError(
                f"the prompt is {len(tokens)} tokens, longer than the {self.n_ctx}-token context; "
                "shorten it or raise --ctx"
            )
        return tokens

    # KV cache --------------------------------------------------------------------------
    def _decode(self, tokens: Sequence[int], start: int, want_last: bool) -> None:
        """Evaluate `tokens` at positions start.. in seq 0; logits only for the last row."""
        batch = self._batch
        for offset in range(0, len(tokens), self.n_batch):
            chunk = tokens[offset : offset + self.n_batch]
            last_chunk = offset + self.n_batch >= len(tokens)
            for i, tok in enumerate(chunk):
                batch.token[i] = tok
                batch.pos[i] = start + offset + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = 0
            if last_chunk and want_last:
                batch.logits[len(chunk) - 1] = 1
            batch.n_tokens = len(chunk)
            rc = llama_cpp.llama_decode(self._ctx, batch)
            if rc != 0:
                raise MarcoError(f"llama_decode failed with code {rc} (context full?)")
            self._kv.extend(chunk)
            self.evaluated += len(chunk)

    def _truncate(self, n: int) -> None:
        """Drop KV entries from position n on."""
        if n < len(self._kv):
            if not llama_cpp.llama_memory_seq_rm(self._mem, 0, n, -1):
                llama_cpp.llama_memory_seq_rm(self._mem, 0, 0, -1)
                n = 0
            del self._kv[n:]
        if self._saved is not None and self._saved[0] > n:
            self._saved = None

    def _resync(self) -> None:
        """After an interruption, make the cache hold exactly the tokens we track."""
        llama_cpp.llama_memory_seq_rm(self._mem, 0, len(self._kv), -1)

    def _logits_after(self, prefix: Sequence[int]) -> tuple[np.ndarray, bool]:
        """The logit row predicting the token after `prefix`, evaluating only what is missing.

        The flag says whether the row is also the context's current output (else it is a saved
        copy from an earlier branch at the same point).
        """
        n = len(prefix)
        if n == 0:
            raise MarcoError("cannot generate from an empty prefix")
        common = 0
        limit = min(len(self._kv), n)
        while common < limit and self._kv[common] == prefix[common]:
            common += 1
        if common == n and self._saved is not None and self._saved[0] == n:
            self._truncate(n)
            return self._saved[1], False
        if common == n:
            common = n - 1  # the row for the last prefix token is gone: evaluate it again
        self._truncate(common)
        self._decode(prefix[common:], common, want_last=True)
        row = self._row(-1).copy()
        self._saved = (n, row)
        return row, True

    def _row(self, index: int) -> np.ndarray:
        ptr = llama_cpp.llama_get_logits_ith(self._ctx, index)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def reset(self) -> None:
        """Forget the cache (the next call evaluates its whole prefix)."""
        llama_cpp.llama_memory_clear(self._mem, True)
        self._kv.clear()
        self._saved = None

    @property
    def cached_tokens(self) -> int:
        return len(self._kv)

    # generation ------------------------------------------------------------------------
    def _sampler(self, sampling: Sampling) -> llama_cpp.llama_sampler_p:
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        if sampling.temperature <= 0:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
            return chain
        if sampling.top_k > 0:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_k(sampling.top_k))
        if sampling.top_p < 1.0:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_p(sampling.top_p, 1))
        if sampling.min_p > 0:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_min_p(sampling.min_p, 1))
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_temp(sampling.temperature))
        llama_cpp.llama_sampler_chain_add(
            chain, llama_cpp.llama_sampler_init_dist(sampling.seed & 0xFFFFFFFF)
        )
        return chain

    def _pick(self, sampler: llama_cpp.llama_sampler_p, row: np.ndarray, fresh: bool) -> int:
        """Sample from the current logits (`fresh`), or from a saved row for a branch point."""
        if fresh:
            return int(llama_cpp.llama_sampler_sample(sampler, self._ctx, -1))
        data = (llama_cpp.llama_token_data * self.n_vocab)()
        view = np.ctypeslib.as_array(data)
        view["id"] = np.arange(self.n_vocab)
        view["logit"] = row
        arr = llama_cpp.llama_token_data_array(
            ctypes.cast(data, llama_cpp.llama_token_data_p), self.n_vocab, -1, False
        )
        llama_cpp.llama_sampler_apply(sampler, ctypes.byref(arr))
        token = int(data[arr.selected].id)
        llama_cpp.llama_sampler_accept(sampler, token)
        return token

    def generate(self, prefix: Sequence[int], sampling: Sampling, stop: StopRule) -> Generation:
        """Continue `prefix`; score every new token from the raw (temperature 1) distribution."""
        prefix = list(prefix)
        limit = stop.token_limit()
        sampler = self._sampler(sampling)
        tokens: list[int] = []
        logprobs: list[float] = []
        confs: list[float] = []
        text = bytearray()
        reason = "max_tokens" if limit == stop.max_tokens else "mini"
        stop_bytes = [s.encode() for s in stop.stop_texts]
        try:
            row, fresh = self._logits_after(prefix)
            while len(tokens) < limit:
                if len(prefix) + len(tokens) >= self.n_ctx:
                    reason = "context"
                    break
                token = self._pick(sampler, row, fresh)
                logprob, conf = token_scores(row, token)
                tokens.append(token)
                logprobs.append(logprob)
                confs.append(conf)
                self.generated += 1
                if token in self.eos_ids:
                    reason = "eos"
                    break
                before = len(text)
                text += self.piece(token)
                if any(s in text[max(0, before - 16) :] for s in stop_bytes):
                    reason = "stop_text"
                    break
                if stop.granularity == "step" and _ends_step(text, before, stop.step_break):
                    reason = "step"
                    break
                if len(tokens) >= limit:
                    break
                self._decode([token], len(prefix) + len(tokens) - 1, want_last=True)
                row = self._row(-1)
                fresh = True
        except BaseException:
            self._resync()
            raise
        finally:
            llama_cpp.llama_sampler_free(sampler)
        return Generation(
            tokens=tuple(tokens),
            text=text.decode("utf-8", "replace"),
            logprobs=tuple(logprobs),
            confidences=tuple(confs),
            stop_reason=reason,
        )


def _ends_step(text: bytearray, before: int, mode: str) -> bool:
    """Has the newest piece (text[before:]) closed a reasoning step?"""
    piece = bytes(text[before:])
    if b"\n" not in piece:
        return False
    if mode == "blank":
        tail = bytes(text[max(0, before - 1) :])
        return b"\n\n" in tail and bool(text[: text.rfind(b"\n\n")].strip())
    return bool(bytes(text[: before + piece.index(b"\n")]).strip())
