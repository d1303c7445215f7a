"""A remote engine: the same interface as the local one, over a server people deploy: llama.cpp's
`llama-server` (its native `/completion`), or any OpenAI-compatible `/v1/completions` (vLLM,
llama-cpp-python's server).

On llama-server, generations stream and the client closes the stream where a step ends or a loop
begins, so the server stops generating there (a step action costs the server about what the
search keeps). OpenAI-style servers answer whole (llama-cpp-python's server interrupts a stream
when another request arrives), and the same rules cut their answers client-side.
llama-server takes the prompt as token ids and returns token ids and top-5 log-probabilities
of the raw distribution, so nothing is re-tokenized and `len(tokens) == len(confidences)`.
OpenAI-style servers get the prompt as text and return text pieces: their tokens are the text
re-tokenized, which can differ in count from the scored pieces (documented in the README).

Requests in flight are bounded by a semaphore sized to the server's slots (`/props`), or
`parallel`: a request waits for a slot on this side, and its timeout starts when it is sent, so
a busy server is not mistaken for a dead one. Counters are updated under a lock.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from marco_cli.contract import Generation, InterruptWatch, Request, Sampling, StopRule
from marco_cli.engine.confidence import TOP_K
from marco_cli.engine.logprobs import (
    Alternative,
    Scored,
    ShapeError,
    from_native,
    from_openai,
    native_alternatives,
    openai_alternatives,
)
from marco_cli.engine.prompt import CHATML_TEMPLATE, render_chat, with_system_prompt
from marco_cli.engine.stops import LOOP_WINDOW, cut_reason
from marco_cli.engine.wire import one_line, split_credentials
from marco_cli.errors import MarcoError

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
NO_LOGPROBS = (
    "the server returned no per-token logprobs (top 5); marco needs them "
    "(llama-cpp-python's server: start it with --logits_all true)"
)
# a first token that ends the generation: an empty piece or a special marker (<|im_end|>, </s>)
_END_PIECE = re.compile(r"^(|<\|[^|<>]*\|>|</s>)$")


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
        parallel: int | None = None,
        fallback_parallel: int = 4,
        model: str | None = None,
    ) -> None:
        self.root, self._basic = split_credentials(url.rstrip("/").removesuffix("/v1"))
        self.api_key = api_key if api_key is not None else os.environ.get("MARCO_API_KEY")
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self._lock = threading.Lock()
        self.evaluated = 0  # prompt tokens the server reported processing
        self.generated = 0  # tokens in the generations returned so far, as `Engine.generated`
        self.streamed = 0  # tokens the server sent (kept or past a step end)
        self.requests = 0
        self.max_in_flight = 0
        self._in_flight = 0
        self._prompts: dict[tuple[int, ...], str] = {}
        self._endpoints: dict[int, tuple[str, str, str]] = {}
        data = self._call("GET", "/v1/models").get("data") or []
        self.model = model or (data[0].get("id") if data else None) or "default"
        self.path = f"{self.root} ({self.model})"
        self.props = self._props()
        self.native = "total_slots" in self.props  # llama.cpp's llama-server
        self.slots = int(self.props["total_slots"]) if self.native else None
        self.parallel = max(1, parallel or self.slots or fallback_parallel)
        self._gate = threading.BoundedSemaphore(self.parallel)
        self._bos = self.tokenize("")

    def settings(self) -> dict[str, int | bool]:
        """Requests in flight at most (the server's own settings are its own)."""
        return {"parallel": self.parallel}

    @property
    def decode_sizes(self) -> dict[int, int]:
        """Not known on this side: the server batches as it likes."""
        return {}

    def watch_interrupts(self, watch: InterruptWatch) -> None:
        """Nothing to watch: no long decode runs here, and a request is cut by closing it."""
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> RemoteEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    # HTTP ------------------------------------------------------------------------------------
    def _open(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        """Open one request with retries on connection errors and 5xx; one clear error otherwise."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        elif self._basic:
            headers["Authorization"] = f"Basic {self._basic}"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(self.root + path, data=data, headers=headers, method=method)
            try:
                return urllib.request.urlopen(request, timeout=self.timeout)
            except urllib.error.HTTPError as exc:
                detail = one_line(exc.read()[:2000].decode("utf-8", "replace"))
                if exc.code < 500:
                    raise Refused(f"the server refused {path}: HTTP {exc.code} {detail}") from None
                last = f"HTTP {exc.code} {detail}"
            except (urllib.error.URLError, ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                if isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError):
                    raise self._silent() from None
                last = str(reason)
        raise BackendError(f"cannot reach the server at {self.root} ({last})")

    def _silent(self) -> BackendError:
        return BackendError(f"the server at {self.root} did not answer within {self.timeout:g}s")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            with self._open(method, path, body) as response:
                return json.loads(response.read() or b"{}")
        except TimeoutError:
            raise self._silent() from None
        except json.JSONDecodeError:
            raise BackendError(f"the server answered {path} with something that is not JSON") from None

    def _events(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The JSON events of a streamed answer (server-sent events); a server that ignored
        `stream` gives its one JSON answer. Leaving the loop early closes the stream."""
        response = self._open("POST", path, body)
        try:
            if "text/event-stream" not in response.headers.get("Content-Type", ""):
                yield json.loads(response.read() or b"{}")
                return
            for raw in response:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:") or line == "data: [DONE]":
                    continue
                yield json.loads(line[5:])
        except TimeoutError:
            raise self._silent() from None
        except json.JSONDecodeError:
            raise BackendError(f"the server at {self.root} streamed a line that is not JSON") from None
        except (ConnectionError, OSError) as exc:
            raise BackendError(f"the server at {self.root} went away mid-answer ({exc})") from None
        finally:
            response.close()

    def _props(self) -> dict[str, Any]:
        try:
            return self._call("GET", "/props")
        except BackendError:
            return {}

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
        text = render_chat(with_system_prompt(messages, style, None), CHATML_TEMPLATE, "", "")
        ids = self.tokenize(text)
        with self._lock:
            self._prompts[tuple(ids)] = text
        return ids

    def _text(self, prefix: Sequence[int]) -> str:
        for ids, text in list(self._prompts.items()):
            if tuple(prefix[: len(ids)]) == ids:
                return text + self.detokenize(prefix[len(ids) :])
        return self.detokenize(prefix)

    # generation ------------------------------------------------------------------------------
    def generate(self, prefix: Sequence[int], sampling: Sampling, stop: StopRule) -> Generation:
        return self.generate_many([Request(tuple(prefix), sampling, stop)])[0]

    def generate_many(
        self, requests: Sequence[Request], on_token: Callable[[int], None] | None = None
    ) -> list[Generation]:
        """Siblings go out together, at most `parallel` at a time across every caller. Siblings
        that start on their k-th first token share one ranking request per prefix."""
        wanted: dict[tuple[int, ...], int] = {}
        for r in requests:
            if r.sampling.first_rank is not None:
                key = tuple(r.prefix)
                wanted[key] = max(wanted.get(key, TOP_K), r.sampling.first_rank + 1)
        ranked = {prefix: self._rank_first_tokens(prefix, k) for prefix, k in wanted.items()}

        def one(request: Request) -> Generation:
            with self._gate:
                self._count(_in_flight=1)
                try:
                    gen = self._one(request, ranked.get(tuple(request.prefix), []))
                finally:
                    self._count(_in_flight=-1)
            if on_token is not None:
                on_token(len(gen.tokens))
            return gen

        if len(requests) == 1:
            return [one(requests[0])]
        with ThreadPoolExecutor(max_workers=len(requests)) as pool:
            return list(pool.map(one, requests))

    def _body(self, sampling: Sampling, stop: StopRule, limit: int) -> dict[str, Any]:
        hot = sampling.temperature > 0
        return {
            "temperature": sampling.temperature,
            "top_p": sampling.top_p if hot else 1.0,
            "top_k": sampling.top_k if hot else 0,
            "min_p": sampling.min_p,
            "seed": sampling.seed,
            "repeat_penalty": 1.0,
            "cache_prompt": True,
            "stop": list(stop.stop_texts),
            "stream": self.native,  # llama-cpp-python's server cuts concurrent streams short
            **({"n_predict": limit, "n_probs": 5, "return_tokens": True} if self.native else {}),
            **({} if self.native else {"model": self.model, "max_tokens": limit, "logprobs": 5}),
        }

    @property
    def _completions(self) -> str:
        return "/completion" if self.native else "/v1/completions"

    def _rank_first_tokens(self, prefix: Sequence[int], wanted: int) -> list[Alternative]:
        """CoT-decoding's first tokens over HTTP: one greedy one-token request asks for the
        `wanted` likeliest first tokens of the raw distribution, likeliest first."""
        body = self._body(Sampling(), StopRule(max_tokens=1, stop_texts=(), loop_guard=False), 1)
        body["stream"] = False
        if self.native:
            body |= {"prompt": list(prefix), "n_probs": wanted}
        else:
            body |= {"prompt": self._text(prefix), "logprobs": wanted}
        with self._gate:
            answer = self._call("POST", self._completions, body)
        try:
            if self.native:
                ranked = native_alternatives(answer.get("completion_probabilities") or [])
                evaluated = int(answer.get("tokens_evaluated") or 0)
            else:
                choice = (answer.get("choices") or [{}])[0]
                ranked = openai_alternatives(choice.get("logprobs") or {})
                evaluated = int((answer.get("usage") or {}).get("prompt_tokens") or 0)
        except (ShapeError, KeyError, TypeError, ValueError, AttributeError):
            raise BackendError(NO_LOGPROBS) from None
        self._count(requests=1, evaluated=evaluated)
        return ranked

    @staticmethod
    def _first_piece(ranked: list[Alternative], rank: int) -> Scored:
        """The rank-th first token (0: the likeliest) as the branch's first piece, scored as
        locally (its top-5 confidence)."""
        if len(ranked) <= rank:
            raise BackendError(
                f"the server gave {len(ranked)} first-token alternatives; --first-tokens {rank + 1} "
                f"needs {rank + 1}"
            )
        pick = ranked[rank]
        return Scored(pick.text, pick.token, pick.logprob, tuple(a.logprob for a in ranked[:TOP_K]))

    def _one(self, request: Request, ranked: list[Alternative]) -> Generation:
        prefix, stop = request.prefix, request.stop
        limit = stop.token_limit()
        prompt = self._text(prefix)
        context = prompt[-LOOP_WINDOW:] if stop.loop_guard else ""
        scored: list[Scored] = []
        means: list[float] = []  # top-5 mean log-prob per piece (DeepConf online's stop)
        text, cut, finish, evaluated = "", "", None, 0
        ids, sent = list(prefix), prompt  # what the server continues (native: ids, else text)
        if request.sampling.first_rank is not None:
            first = self._first_piece(ranked, request.sampling.first_rank)
            if _END_PIECE.match(first.text):  # the branch ends at once, as a local EOS does
                return self._generation([first], "", "", None, stop, limit, prompt)
            scored, means, text = [first], [first.top_mean], first.text
            cut = cut_reason(text, 0, stop, context, means) or ""
            ids += [first.token] if first.token is not None else self.tokenize(first.text)
            sent += first.text
        if not cut and len(scored) < limit:
            body = self._body(request.sampling, stop, limit - len(scored))
            body["prompt"] = ids if self.native else sent
            for event in self._events(self._completions, body):
                new, finish, evaluated = self._read_event(event, finish, evaluated)
                for piece in new:
                    before, text = len(text), text + piece.text
                    scored.append(piece)
                    means.append(piece.top_mean)
                    cut = cut_reason(text, before, stop, context, means) or ""
                    if cut:
                        break
                if cut:
                    break  # closing the stream stops the server here
            self._count(requests=1, evaluated=evaluated)
        self._count(streamed=len(scored))
        return self._generation(scored, text, cut, finish, stop, limit, prompt)

    def _read_event(
        self, event: dict[str, Any], finish: Any, evaluated: int
    ) -> tuple[list[Scored], Any, int]:
        try:
            if self.native:
                new = from_native(event.get("completion_probabilities") or [])
                if event.get("stop"):
                    finish = event.get("stop_type")
                    evaluated = int(event.get("tokens_evaluated") or 0)
                return new, finish, evaluated
            choice = (event.get("choices") or [{}])[0]
            finish = choice.get("finish_reason") or finish
            evaluated = int((event.get("usage") or {}).get("prompt_tokens") or evaluated)
            logprobs = choice.get("logprobs")
            if logprobs is None and choice.get("text"):
                raise ShapeError("no logprobs")
            return (from_openai(logprobs) if logprobs else []), finish, evaluated
        except (ShapeError, KeyError, TypeError, ValueError, AttributeError):
            raise BackendError(NO_LOGPROBS) from None

    def _generation(
        self, scored: list[Scored], text: str, cut: str, finish: Any, stop: StopRule, limit: int, prompt: str
    ) -> Generation:
        kept = [s for s in scored if s.confidence is not None]
        ends, offsets = 0, []
        for s in scored:
            ends += len(s.text.encode("utf-8"))
            if s.confidence is not None:
                offsets.append(ends)
        if cut:
            reason = cut
        elif finish in ("length", "limit") or len(scored) >= limit:
            reason = "mini" if limit < stop.max_tokens else "max_tokens"
        elif finish in ("stop", "word") and stop.stop_texts and "<Output>" in (prompt + text)[-4000:]:
            text += stop.stop_texts[0]  # the server withholds the stop text it matched
            reason = "stop_text"
        else:
            reason = "eos"
        if scored and all(s.token is not None for s in scored):
            tokens = tuple(int(s.token) for s in scored)  # type: ignore[arg-type]
        else:
            tokens = tuple(self.tokenize(text)) if text else ()
        self._count(generated=len(tokens))
        return Generation(
            tokens,
            text,
            tuple(float(s.logprob) for s in kept),  # type: ignore[arg-type]
            tuple(float(s.confidence) for s in kept),  # type: ignore[arg-type]
            reason,
            tuple(s.top_mean for s in kept),
            tuple(offsets),
        )

    def server_predicted(self) -> int | None:
        """Tokens the server has generated in all (llama-server started with --metrics)."""
        try:
            with self._open("GET", "/metrics", None) as response:
                metrics = response.read().decode("utf-8", "replace")
        except BackendError:
            return None
        found = re.search(r"^llamacpp:tokens_predicted_total\s+([0-9.e+]+)", metrics, re.M)
        return int(float(found.group(1))) if found else None

    def describe(self) -> dict[str, Any]:
        """For `marco doctor --backend`: what this server is and whether it gives what marco needs."""
        try:
            probe = self.generate(self.tokenize("Hello"), Sampling(), StopRule("mini-32", 2, stop_texts=()))
            logprobs, problem = bool(probe.confidences), None
        except BackendError as exc:
            logprobs, problem = False, str(exc)
        return {
            "url": self.root,
            "model": self.model,
            "server": "llama-server" if self.native else "OpenAI-compatible",
            "slots": self.slots,
            "in_flight": self.parallel,
            "logprobs": logprobs,
            "problem": problem,
        }
