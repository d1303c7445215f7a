"""Ollama's server as a remote engine (`--backend http://127.0.0.1:11434`).

Shapes followed (ollama/ollama `api/types.go`, `server/routes.go`): `GET /api/version` answers
`{"version": "0.12.11"}`; `POST /api/generate` takes `model`, `prompt`, `raw: true` (the prompt
as given, no template), `stream`, `logprobs: true`, `top_logprobs` (0-20) and `options`
(`temperature`, `top_p`, `top_k`, `min_p`, `seed`, `num_predict`, `stop`, `repeat_penalty`),
and streams newline-delimited JSON objects carrying `response` text and `logprobs` (a list of
`{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}`, llama-server's shape
without ids), the last one with `done: true`, `done_reason` and `prompt_eval_count`. Log
probabilities arrived in Ollama 0.12.11 (ollama/ollama#12899); an older server is refused.

Ollama has no tokenize endpoint, so token ids here are this engine's own: each distinct text
piece (a generated token's text, or a whole prompt) gets a number, and a prefix of ids is the
concatenation of its pieces' texts. The search only needs ids to be stable and to spell the
text back; counts of generated tokens are exact (one piece per generated token), a prompt
counts as one piece, and the server's `prompt_eval_count` is what `evaluated` adds up. A
token whose text is a partial UTF-8 character arrives as Ollama spells it (replacement marks).
"""

from __future__ import annotations

import difflib
import functools
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import replace

from marco_cli.contract import Sampling, StopRule
from marco_cli.engine.logprobs import Alternative, Scored, ShapeError, from_native, native_alternatives
from marco_cli.engine.prompt import CHATML_TEMPLATE, render_chat, with_system_prompt
from marco_cli.engine.remote import RemoteEngine, sampling_fields
from marco_cli.engine.transport import JSON, BackendError, Refused, Silent, Transport
from marco_cli.errors import clip

LOGPROBS_SINCE = (0, 12, 11)
NO_OLLAMA_LOGPROBS = "the server returned no per-token logprobs; marco needs Ollama 0.12.11 or newer"
MAX_TOP_LOGPROBS = 20  # Ollama refuses more (server/routes.go)


def ollama_version(url: str, timeout: float, deadline: float | None = None) -> str | None:
    """The version an Ollama server reports at `/api/version`; None when the server is not
    Ollama (no such endpoint) or cannot be reached (the engine that follows says why). A server
    that does not answer in time is silent for every request: said now, not after a second wait."""
    transport = Transport(url.rstrip("/").removesuffix("/v1"), None, None, timeout, 0, 0.0, deadline)
    try:
        answer = transport.call("GET", "/api/version")
    except Silent:
        raise
    except (Refused, BackendError):
        return None
    version = answer.get("version")
    return version if isinstance(version, str) and version else None


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version.split("-")[0])[:3])


def check_version(version: str, root: str) -> None:
    """An Ollama older than 0.12.11 gives no log-probabilities: one line naming the version."""
    numbers = _numbers(version)
    if numbers and numbers != (0, 0, 0) and numbers < LOGPROBS_SINCE:  # 0.0.0: a source build
        raise BackendError(
            f"Ollama {version} at {root} gives no token log-probabilities; marco needs Ollama "
            f"{'.'.join(map(str, LOGPROBS_SINCE))} or newer"
        )


class Pieces:
    """Text pieces and the ids this engine gives them (thread-safe: requests run in parallel)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[str, int] = {}
        self._texts: list[str] = []

    def id(self, text: str) -> int:
        with self._lock:
            if text not in self._ids:
                self._ids[text] = len(self._texts)
                self._texts.append(text)
            return self._ids[text]

    def text(self, piece: int) -> str:
        with self._lock:
            return self._texts[piece]


class OllamaEngine(RemoteEngine):
    """The remote engine over Ollama's native API (raw prompts, top-5 log-probabilities, seed)."""

    def __init__(
        self,
        url: str,
        *,
        version: str,
        model: str | None,
        timeout: float = 120.0,
        parallel: int | None = None,
        fallback_parallel: int = 4,
        retries: int = 3,
        deadline: float | None = None,
    ) -> None:
        self.pieces = Pieces()  # before the base class tokenizes anything
        self.version = version
        super().__init__(
            url,
            model=model,
            timeout=timeout,
            parallel=parallel,
            fallback_parallel=fallback_parallel,
            retries=retries,
            deadline=deadline,
        )
        check_version(version, self.root)
        if model is not None:
            self.model = self._check_model(model)  # a bare name is sent as NAME:latest
            self.path = f"{self.root} ({self.model})"

    def _check_model(self, model: str) -> str:
        """The model as this Ollama lists it (its `/v1/models`, read when the engine opened; a bare
        name is NAME:latest, as Ollama reads it): else one line with the close ones."""
        names = self.listed
        wanted = model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"
        if wanted in names:
            return wanted
        close = difflib.get_close_matches(wanted, names, n=3, cutoff=0.4)
        has = f"close: {', '.join(close)}" if close else f"it has {len(names)}"
        raise BackendError(
            f"Ollama at {self.root} has no model '{clip(model)}' ({has}); `ollama pull {clip(model)}`"
        )

    # text ------------------------------------------------------------------------------------
    def pair_odds(self, prefix: Sequence[int], pair: tuple[int, int]) -> float:
        raise BackendError(
            "Ollama's API takes no logit bias, so it cannot give a process reward model's two "
            "probabilities; run the PRM in-process or on llama-server"
        )

    def tokenize(self, text: str) -> list[int]:
        return [self.pieces.id(text)] if text else []

    def detokenize(self, tokens: Sequence[int]) -> str:
        return "".join(self.pieces.text(t) for t in tokens)

    def build_prompt(self, messages: Sequence[dict[str, str]], style: str) -> list[int]:
        """ChatML with marco's system prompt, sent raw (Marco-o1, Qwen and SmolLM2 use ChatML)."""
        return self.tokenize(render_chat(with_system_prompt(messages, style, None), CHATML_TEMPLATE, "", ""))

    def _text(self, prefix: Sequence[int]) -> str:
        return self.detokenize(prefix)

    # requests --------------------------------------------------------------------------------
    @property
    def _completions(self) -> str:
        return "/api/generate"

    def _body(self, sampling: Sampling, stop: StopRule, limit: int) -> JSON:
        options = {**sampling_fields(sampling), "num_predict": limit, "stop": list(stop.stop_texts)}
        return {
            "model": self.model,
            "raw": True,
            "stream": True,
            "logprobs": True,
            "top_logprobs": 5,
            "options": options,
        }

    def _read_event(
        self, event: JSON, finish: str | None, evaluated: int
    ) -> tuple[list[Scored], str | None, int]:
        try:
            items = event.get("logprobs")
            if items is None and event.get("response"):
                raise ShapeError("no logprobs")
            scored = [replace(s, token=self.pieces.id(s.text)) for s in from_native(items or [])]
        except (ShapeError, KeyError, TypeError, ValueError, AttributeError):
            raise BackendError(NO_OLLAMA_LOGPROBS) from None
        if event.get("done"):
            finish = str(event.get("done_reason") or "stop")
            evaluated = self._whole(event.get("prompt_eval_count") or 0, "prompt_eval_count")
        return scored, finish, evaluated

    def _rank_first_tokens(self, prefix: Sequence[int], wanted: int) -> list[Alternative]:
        """CoT-decoding's first tokens: one greedy one-token request for the `wanted` likeliest
        (Ollama gives at most 20)."""
        if wanted > MAX_TOP_LOGPROBS:
            raise BackendError(
                f"Ollama gives at most {MAX_TOP_LOGPROBS} alternatives a token: use --first-tokens 20 or less"
            )
        body = self._body(Sampling(), StopRule(max_tokens=1, stop_texts=(), loop_guard=False), 1)
        body |= {"prompt": self._text(prefix), "stream": False, "top_logprobs": wanted}
        with self._gate:
            answer = self.http.call("POST", self._completions, body)
        try:
            ranked = native_alternatives(answer.get("logprobs") or [])
        except (ShapeError, KeyError, TypeError, ValueError, AttributeError):
            raise BackendError(NO_OLLAMA_LOGPROBS) from None
        self._count(
            requests=1, evaluated=self._whole(answer.get("prompt_eval_count") or 0, "prompt_eval_count")
        )
        return [replace(a, token=self.pieces.id(a.text)) for a in ranked]

    def describe(self) -> JSON:
        return {**super().describe(), "server": f"Ollama {self.version}"}


def connect(
    url: str,
    model: str | None = None,
    *,
    timeout: float = 120.0,
    parallel: int | None = None,
    fallback_parallel: int = 4,
    retries: int = 3,
) -> RemoteEngine:
    """The engine for a server: Ollama's own API when `/api/version` says Ollama (`model`: the
    name Ollama runs; None: the first it lists), else llama-server's or an OpenAI-compatible one."""
    deadline = time.monotonic() + timeout  # the whole attempt, probe included, within --timeout
    version = ollama_version(url, timeout, deadline)
    make = RemoteEngine if version is None else functools.partial(OllamaEngine, version=version, model=model)
    return make(
        url,
        timeout=timeout,
        parallel=parallel,
        fallback_parallel=fallback_parallel,
        retries=retries,
        deadline=deadline,
    )
