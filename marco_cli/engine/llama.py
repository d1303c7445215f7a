"""The llama.cpp engine: the only place that talks to llama-cpp-python's low-level API.

One context with one or more KV sequences (see decoder.py, kvcache.py and snapshots.py):
continuing a prefix that is already cached evaluates nothing again, jumping to another branch
restores a saved copy or evaluates only the tokens after the longest cached common prefix, and
sibling branches decode together, one llama_decode per step. Logits are requested only for the
rows that are sampled; `logits_all` is never used.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import llama_cpp
import numpy as np

from marco_cli.contract import Generation, InterruptWatch, Request, Sampling, StopRule
from marco_cli.engine import cpuinfo
from marco_cli.engine.confidence import two_way
from marco_cli.engine.decoder import Decoder
from marco_cli.engine.prompt import render_chat, with_system_prompt
from marco_cli.engine.repack import decide as decide_repack
from marco_cli.errors import MarcoError, PromptTooLong
from marco_cli.store.gguf import check_gguf

DEFAULT_CTX_CAP = 8192
_verbose = False


def _write_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    if _verbose and text:
        os.write(2, text)


_log_callback = llama_cpp.llama_log_callback(_write_log)  # kept: llama.cpp holds the pointer


def set_verbose(verbose: bool) -> None:
    """Route llama.cpp's own log to stderr (verbose) or drop it; installs our callback."""
    global _verbose
    _verbose = verbose
    llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))


def physical_cores() -> int:
    cores = set(cpuinfo.values("core id"))
    return len(cores) if cores else max(1, (os.cpu_count() or 2) // 2)


def gpu_offload_supported() -> bool:
    return bool(llama_cpp.llama_supports_gpu_offload())


def system_info() -> str:
    info: bytes = llama_cpp.llama_print_system_info()
    return info.decode("utf-8", "replace").strip()


def library_version() -> str:
    return str(llama_cpp.__version__)


def offloaded_layers(gpu_layers: int | None, cpu: bool) -> int:
    """Layers that really run on a GPU: none with --cpu or on a build without GPU offload
    (whatever --gpu-layers says), else the number asked for, else all."""
    if cpu or not gpu_offload_supported():
        return 0
    return 999 if gpu_layers is None else gpu_layers


def context_params(
    n_ctx: int, n_batch: int, n_seq: int, threads: int, flash_attn: bool, kv_unified: bool
) -> llama_cpp.llama_context_params:
    cparams: llama_cpp.llama_context_params = llama_cpp.llama_context_default_params()
    cparams.n_ctx = n_ctx * n_seq  # every sequence gets its own stream of n_ctx cells
    n_batch = max(n_batch, n_seq)  # a decode holds one row per parallel branch
    cparams.n_batch = min(n_batch, n_ctx)
    cparams.n_ubatch = min(n_batch, n_ctx)
    cparams.n_seq_max = n_seq
    cparams.n_outputs_max = max(n_seq, 1)  # logit rows we ever request in one batch
    cparams.kv_unified = kv_unified
    cparams.flash_attn_type = 1 if flash_attn else 0
    cparams.n_threads = threads
    cparams.n_threads_batch = threads
    cparams.no_perf = True
    return cparams


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
        n_seq: int = 1,
        parallel: int | None = None,
        flash_attn: bool | None = None,
        snapshot_mb: float = 512,
        kv_unified: bool = False,
        repack: bool | None = None,
    ) -> None:
        set_verbose(verbose)
        self.path = Path(path)
        # None until loaded and once closed (close() runs on a failed load too)
        self._decoder: Decoder | None = None
        self._ctx: llama_cpp.llama_context_p | None = None
        self._model: llama_cpp.llama_model_p | None = None
        model = self._model = self._load(gpu_layers, cpu, repack)
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self.n_ctx_train = int(llama_cpp.llama_model_n_ctx_train(model))
        n_ctx = self._context_size(ctx)
        if flash_attn is None:  # plain attention decodes 1.3x faster on CPU (measured on SmolLM2)
            flash_attn = self.gpu_layers > 0
        self.flash_attn = flash_attn
        self.threads = threads or physical_cores()
        cparams = context_params(n_ctx, n_batch, n_seq, self.threads, flash_attn, kv_unified)
        context = self._ctx = llama_cpp.llama_init_from_model(model, cparams)
        if not context:
            self.close()
            raise MarcoError(
                f"could not create a {n_ctx}-token context for {self.path.name} "
                "(not enough memory?); try a smaller --ctx"
            )
        self.n_ctx = int(llama_cpp.llama_n_ctx_seq(context))  # per sequence
        self.n_seq = n_seq
        self.parallel = max(1, min(parallel or n_seq, n_seq))
        self._piece_buf = ctypes.create_string_buffer(256)
        self.eos_ids = {t for t in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(self._vocab, t)}
        decoder = self._decoder = Decoder(
            context,
            self.n_vocab,
            self.n_ctx,
            int(cparams.n_batch),
            n_seq,
            self.piece,
            self.eos_ids,
            snapshot_bytes=int(snapshot_mb * 2**20),
        )
        if self.n_ctx >= self.n_ctx_train:
            decoder.full_hint = f"{self.n_ctx} tokens is all {self.path.name} takes: shorten the prompt"

    def _load(self, gpu_layers: int | None, cpu: bool, repack: bool | None) -> llama_cpp.llama_model_p:
        check_gguf(self.path)
        # decided before llama.cpp loads anything here: on some AMX CPUs repacking crashes
        self.repack_verdict = decide_repack(self.path, repack)
        self.repack = self.repack_verdict.repack
        llama_cpp.llama_backend_init()
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = offloaded_layers(gpu_layers, cpu)
        mparams.use_extra_bufts = self.repack
        self.gpu_layers = int(mparams.n_gpu_layers)
        path = str(self.path).encode()
        model: llama_cpp.llama_model_p = llama_cpp.llama_model_load_from_file(path, mparams)
        if not model:
            raise MarcoError(f"llama.cpp could not load {self.path} (truncated or corrupt GGUF?)")
        return model

    def _context_size(self, asked: int | None) -> int:
        """The context per sequence: what was asked (at most the training length), else the cap."""
        if asked is not None and asked > self.n_ctx_train:
            self.close()
            raise MarcoError(
                f"a {asked}-token context is more than {self.path.name} was trained for "
                f"({self.n_ctx_train} tokens)",
                code=2,
            )
        return min(self.n_ctx_train, asked or DEFAULT_CTX_CAP)

    # resources -------------------------------------------------------------------------
    def close(self) -> None:
        if self._decoder is not None:
            self._decoder.free()
            self._decoder = None
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
        if self._model:
            llama_cpp.llama_model_free(self._model)
            self._model = None

    @property
    def decoder(self) -> Decoder:
        if self._decoder is None:
            raise MarcoError(f"{self.path.name} is closed")
        return self._decoder

    @property
    def model_ptr(self) -> llama_cpp.llama_model_p:
        if not self._model:
            raise MarcoError(f"{self.path.name} is closed")
        return self._model

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    # metadata and text -----------------------------------------------------------------
    def metadata(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(4096)
        n = llama_cpp.llama_model_meta_val_str(self.model_ptr, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", "replace") if n >= 0 else None

    @property
    def chat_template(self) -> str | None:
        raw = llama_cpp.llama_model_chat_template(self.model_ptr, None)
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
            room = "raise --ctx" if self.n_ctx < self.n_ctx_train else "it is all the model takes"
            raise PromptTooLong(
                f"the prompt is {len(tokens)} tokens, longer than the {self.n_ctx}-token context; "
                f"shorten it ({room})"
            )
        return tokens

    # generation --------------------------------------------------------------------------
    def generate(
        self,
        prefix: Sequence[int],
        sampling: Sampling,
        stop: StopRule,
        observe: Callable[[np.ndarray, int], None] | None = None,
    ) -> Generation:
        """Continue `prefix`; score every new token from the raw (temperature 1) distribution.

        Cached prefixes are not evaluated again. `observe(row, token)` sees each raw logit row
        and the token picked from it (for checks).
        """
        return self.decoder.generate_many([Request(tuple(prefix), sampling, stop)], observe)[0]

    def document_tokens(self, text: str) -> list[int]:
        return self.tokenize(text, add_bos=bool(llama_cpp.llama_vocab_get_add_bos(self._vocab)))

    def pair_odds(self, prefix: Sequence[int], pair: tuple[int, int]) -> float:
        """Read from the two raw logits after `prefix` (a cached prefix is not evaluated again):
        P(a) / (P(a) + P(b)) = 1 / (1 + exp(logit_b - logit_a)), whatever their ranks."""
        vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        if not all(0 <= token < vocab for token in pair):
            raise MarcoError(f"token ids {pair} are outside the model's {vocab}-token vocabulary")
        logits: list[tuple[float, float]] = []
        one = StopRule(granularity="rollout", max_tokens=1, stop_texts=(), loop_guard=False)
        self.generate(
            prefix, Sampling(), one, lambda row, _: logits.append((float(row[pair[0]]), float(row[pair[1]])))
        )
        return two_way(*logits[0])

    def generate_many(
        self, requests: Sequence[Request], on_token: Callable[[int], None] | None = None
    ) -> list[Generation]:
        """Several branches at once, one llama_decode per step for up to `parallel` of them;
        `on_token(n)` hears of every n tokens sampled (live progress)."""
        out: list[Generation] = []
        for start in range(0, len(requests), self.parallel):
            batch = requests[start : start + self.parallel]
            out.extend(self.decoder.generate_many(batch, on_token=on_token))
        return out

    def reset(self) -> None:
        """Forget the KV cache (the next call evaluates its whole prefix)."""
        self.decoder.reset()

    @property
    def evaluated(self) -> int:
        """Tokens llama.cpp has evaluated (prompts and generated tokens)."""
        return self.decoder.evaluated

    @property
    def generated(self) -> int:
        """Tokens in the generations returned so far (every sampled token is kept in one: EOS
        and the stop text's tokens included), as `RemoteEngine.generated` counts them."""
        return self.decoder.generated

    @property
    def restored(self) -> int:
        """Tokens whose keys and values came back from a saved copy instead of being evaluated."""
        return self.decoder.snapshots.restored_tokens

    @property
    def decode_calls(self) -> int:
        return self.decoder.decode_calls

    def settings(self) -> dict[str, int | bool]:
        """What this engine runs with, for the record's settings."""
        return {
            "parallel": self.parallel,
            "threads": self.threads,
            "gpu_layers": self.gpu_layers,
            "n_ctx": self.n_ctx,
            "repack": self.repack,
        }

    def watch_interrupts(self, watch: InterruptWatch) -> None:
        """Let long decodes (prompt chunks) stop mid-way when a signal comes (see decoder.py)."""
        self.decoder.interrupts = watch

    @property
    def decode_sizes(self) -> dict[int, int]:
        """How many generation decodes held 1, 2, ... branches (--parallel batches siblings)."""
        return dict(self.decoder.decode_sizes)
