"""A remote engine: the same interface as the local one, over an OpenAI-compatible server
(llama.cpp's llama-server, llama-cpp-python's server, vLLM) and its `/v1/completions` API.

Confidences come from the per-token `top_logprobs` (5) the server returns, by the same formula
as locally. The search keeps working in token ids: the server's tokenize/detokenize endpoints
translate, and every request sends the prompt text with `cache_prompt` so a llama.cpp server
reuses the shared prefix. Sibling requests run concurrently (bounded by `parallel`).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from marco_cli.engine.prompt import CHATML_TEMPLATE, with_system_prompt
from marco_cli.engine.repetition import DEFAULT_RULE, ends_in_loop
from marco_cli.engine.types import Generation, Request, Sampling, StopRule, ends_step
from marco_cli.errors import MarcoError

_LOOP_WINDOW = DEFAULT_RULE.window()
# (path, request field, answer field): llama-cpp-python's server, llama-server, vLLM
_TOKENIZE = (
    ("/extras/tokenize", "input", "tokens"),
    ("/tokenize", "content", "tokens"),
    ("/tokenize", "prompt", "tokens"),
)
_DETOKENIZE = (
    ("/extras/detokenize", "tokens", "text"),
    ("/detokenize", "tokens", "content"),
    ("/detokenize", "tokens", "prompt"),
)


class BackendError(MarcoError):
    """The server failed (down, killed, timed out, or answered without what we need)."""


class Refused(BackendError):
    """The server answered 4xx: the request (or the endpoint) is not acceptable to it."""


class RemoteEngine:
    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        retries: int = 3,
        backoff: float = 0.5,
        parallel: int = 4,
        model: str | None = None,
    ) -> None:
        self.root = url.rstrip("/").removesuffix("/v1")
        self.api_key = api_key if api_key is not None else os.environ.get("MARCO_API_KEY")
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.parallel = max(1, parallel)
        self.evaluated = 0  # prompt tokens the server reported processing
        self.generated = 0
        self.requests = 0
        self.max_in_flight = 0
        self._in_flight = 0
        self._prompts: dict[tuple[int, ...], str] = {}
        self._endpoints: dict[int, tuple[str, str, str]] = {}
        models = self._call("GET", "/v1/models")
        data = models.get("data") or []
        self.model = model or (data[0].get("id") if data else None) or "default"
        self.path = f"{self.root} ({self.model})"
        self._bos = self.tokenize("")

    def close(self) -> None:
        return None

    def __enter__(self) -> RemoteEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # HTTP ------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One JSON call with retries on connection errors and 5xx; one clear error otherwise."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(self.root + path, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read() or b"{}")
            except urllib.error.HTTPError as exc:
                detail = one_line(exc.read()[:2000].decode("utf-8", "replace"))
                if exc.code < 500:
                    raise Refused(f"the server refused {path}: HTTP {exc.code} {detail}") from None
                last = f"HTTP {exc.code} {detail}"
            except TimeoutError:
                raise BackendError(
                    f"the server at {self.root} did not answer within {self.timeout:g}s"
                ) from None
            except (urllib.error.URLError, ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                if isinstance(reason, TimeoutError):
                    raise BackendError(
                        f"the server at {self.root} did not answer within {self.timeout:g}s"
                    ) from None
                last = str(reason)
            except json.JSONDecodeError:
                raise BackendError(f"the server answered {path} with something that is not JSON") from None
        raise BackendError(f"cannot reach the server at {self.root} ({last})")

    def _first(self, options: tuple[tuple[str, str, str], ...], value: Any) -> Any:
        """Call the first endpoint of `options` this server has (remembered once found)."""
        known = self._endpoints.get(id(options))
        for path, field, result in [known] if known else options:
            try:
                answer = self._call("POST", path, {field: value})[result]
            except (Refused, KeyError):
                continue
            self._endpoints[id(options)] = (path, field, result)
            return answer
        raise BackendError(f"the server at {self.root} has no tokenize/detokenize endpoint marco knows")

    # text ------------------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        tokens = list(self._first(_TOKENIZE, text))
        bos = getattr(self, "_bos", [])
        return tokens[len(bos) :] if bos and tokens[: len(bos)] == bos else tokens

    def detokenize(self, tokens: Sequence[int]) -> str:
        return str(self._first(_DETOKENIZE, list(tokens))) if tokens else ""

    def build_prompt(self, messages: Sequence[dict[str, str]], style: str) -> list[int]:
        """ChatML with marco's system prompts (Marco-o1, Qwen and SmolLM2 all use ChatML)."""
        from marco_cli.engine.prompt import render_chat

        text = render_chat(with_system_prompt(messages, style, None), CHATML_TEMPLATE, "", "")
        ids = self.tokenize(text)
        self._prompts[tuple(ids)] = text
        return ids

    def _text(self, prefix: Sequence[int]) -> str:
        for ids, text in self._prompts.items():
            if tuple(prefix[: len(ids)]) == ids:
                return text + self.detokenize(prefix[len(ids) :])
        return self.detokenize(prefix)

    # generation ------------------------------------------------------------------------------
    def generate(self, prefix: Sequence[int], sampling: Sampling, stop: StopRule) -> Generation:
        return self.generate_many([Request(tuple(prefix), sampling, stop)])[0]

    def generate_many(
        self, requests: Sequence[Request], on_token: Callable[[int], None] | None = None
    ) -> list[Generation]:
        """Siblings go out concurrently; `on_token` hears of each answer's tokens as it arrives."""

        def one(request: Request) -> Generation:
            gen = self._one(request)
            if on_token is not None:
                on_token(len(gen.tokens))
            return gen

        if len(requests) == 1:
            return [one(requests[0])]
        with ThreadPoolExecutor(max_workers=self.parallel) as pool:
            return list(pool.map(one, requests))

    def _one(self, request: Request) -> Generation:
        prefix, sampling, stop = request.prefix, request.sampling, request.stop
        limit = stop.token_limit()
        prompt = self._text(prefix)
        body = {
            "model": self.model,
            "prompt": prompt,
            "max_tokens": limit,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p if sampling.temperature else 1.0,
            "top_k": sampling.top_k if sampling.temperature else 0,
            "min_p": sampling.min_p,
            "seed": sampling.seed,
            "logprobs": 5,
            "repeat_penalty": 1.0,
            "cache_prompt": True,
            "stop": list(stop.stop_texts),
        }
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            answer = self._call("POST", "/v1/completions", body)
        finally:
            self._in_flight -= 1
        self.requests += 1
        choice = (answer.get("choices") or [{}])[0]
        logprobs = choice.get("logprobs") or {}
        pieces, chosen, tops = (
            logprobs.get("tokens"),
            logprobs.get("token_logprobs"),
            logprobs.get("top_logprobs"),
        )
        if pieces is None or chosen is None or tops is None:
            raise BackendError(
                "the server returned no per-token logprobs (top_logprobs=5); marco needs them "
                "(llama-cpp-python's server: start it with --logits_all true)"
            )
        self.evaluated += int((answer.get("usage") or {}).get("prompt_tokens", 0))
        return self._generation(prompt, pieces, chosen, tops, choice.get("finish_reason"), stop, limit)

    def _generation(
        self,
        prompt: str,
        pieces: list[str],
        chosen: list[float | None],
        tops: list[dict[str, float] | None],
        finish: str | None,
        stop: StopRule,
        limit: int,
    ) -> Generation:
        context = prompt[-_LOOP_WINDOW:] if stop.loop_guard else ""
        n, cut = _first_stop(pieces, stop, context)
        pieces = pieces[:n]
        text = "".join(pieces)
        confidences, logprobs = [], []
        for lp, top in zip(chosen[:n], tops[:n], strict=True):
            values = list((top or {}).values())
            if lp is None or not values:
                continue
            logprobs.append(lp)
            confidences.append(math.exp(lp) / sum(math.exp(v) for v in values))
        if cut:
            reason = cut
        elif finish == "length":
            reason = "mini" if limit < stop.max_tokens else "max_tokens"
        elif "<Output>" in (prompt + text)[-4000:] and stop.stop_texts:
            text += stop.stop_texts[0]  # the server strips the stop text it matched
            reason = "stop_text"
        else:
            reason = "eos"
        tokens = tuple(self.tokenize(text)) if text else ()
        self.generated += len(tokens)
        return Generation(tokens, text, tuple(logprobs), tuple(confidences), reason)


def one_line(body: str) -> str:
    """A server's error body as one short line: JSON's message, else text without HTML tags."""
    try:
        data = json.loads(body)
        error = data.get("error", data) if isinstance(data, dict) else data
        body = str(error.get("message", error)) if isinstance(error, dict) else str(error)
    except (json.JSONDecodeError, AttributeError):
        pass
    text = " ".join(re.sub(r"<[^>]*>", " ", body).split())
    return text if len(text) <= 160 else text[:159] + "…"


def _first_stop(pieces: list[str], stop: StopRule, context: str) -> tuple[int, str]:
    """How many pieces to keep, and why they end early (`loop`, `step`, or "" when they don't):
    the local engine's rules, applied to what the server returned."""
    text = ""
    for i, piece in enumerate(pieces):
        before, text = len(text), text + piece
        if stop.loop_guard and ends_in_loop((context + text)[-_LOOP_WINDOW:]):
            return i + 1, "loop"
        if stop.granularity == "step" and ends_step(text, before, stop.step_break):
            return i + 1, "step"
    return len(pieces), ""
