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
re-tokenized, which can differ in count from the scored pieces (documented in docs/remote.md).

Requests in flight are bounded by a semaphore sized to the server's slots (`/props`), or
`parallel`: a request waits for a slot on this side, and its timeout starts when it is sent, so
a busy server is not mistaken for a dead one. Counters are updated under a lock.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from marco_cli.contract import Generation, InterruptWatch, Request, Sampling, StopReason, StopRule
from marco_cli.engine import pairodds
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
from marco_cli.engine.streamed import Streamed, generation_of
from marco_cli.engine.transport import JSON, BackendError, Refused, Transport, Truncated
from marco_cli.engine.wire import split_credentials

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


def sampling_fields(sampling: Sampling) -> JSON:
    """The sampler as llama.cpp-based servers name it (greedy: no top-p or top-k cut)."""
    hot = sampling.temperature > 0
    return {
        "temperature": sampling.temperature,
        "top_p": sampling.top_p if hot else 1.0,
        "top_k": sampling.top_k if hot else 0,
        "min_p": sampling.min_p,
        "seed": sampling.seed,
        "repeat_penalty": 1.0,
    }


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
        deadline: float | None = None,
    ) -> None:
        """`deadline`: the monotonic time by which connecting (the requests below) must be done."""
        root, basic = split_credentials(url.rstrip("/").removesuffix("/v1"))
        key = api_key if api_key is not None else os.environ.get("MARCO_API_KEY")
        self.http = Transport(root, key, basic, timeout, retries, backoff, deadline)
        self._lock = threading.Lock()
        self.evaluated = 0  # prompt tokens the server reported processing
        self.generated = 0  # tokens in the generations returned so far, as `Engine.generated`
        self.streamed = 0  # tokens the server sent (kept or past a step end)
        self.requests = 0
        self.max_in_flight = 0
        self._in_flight = 0
        self._prompts: dict[tuple[int, ...], str] = {}
        self._endpoints: dict[int, tuple[str, str, str]] = {}
        listed = self.http.call("GET", "/v1/models").get("data")
        self.listed = (
            [str(m.get("id")) for m in listed if isinstance(m, dict)] if isinstance(listed, list) else []
        )
        self.model = model or (self.listed[0] if self.listed and self.listed[0] != "None" else "default")
        self.path = f"{self.root} ({self.model})"
        self.props = self._props()
        self.native = "total_slots" in self.props  # llama.cpp's llama-server
        self.slots = (
            self._count_field(self.props["total_slots"], "total_slots", "/props", 1, 4096)
            if self.native
            else None
        )
        self.parallel = max(1, parallel or self.slots or fallback_parallel)
        self._gate = threading.BoundedSemaphore(self.parallel)
        self._bos: list[int] = []  # set first: tokenize("") below reads it
        self._bos = self.tokenize("")
        self.http = replace(self.http, deadline=None)  # connected: each request has the timeout

    @property
    def root(self) -> str:
        """The server's address, without credentials."""
        return self.http.root

    @property
    def timeout(self) -> float:
        return self.http.timeout

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

    def _count(
        self,
        *,
        requests: int = 0,
        evaluated: int = 0,
        streamed: int = 0,
        generated: int = 0,
        in_flight: int = 0,
    ) -> None:
        """Add to the counters under the lock (requests run on a thread pool)."""
        with self._lock:
            self.requests += requests
            self.evaluated += evaluated
            self.streamed += streamed
            self.generated += generated
            self._in_flight += in_flight
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _props(self) -> JSON:
        try:
            return self.http.call("GET", "/props")
        except BackendError:
            return {}

    # Any: a JSON request field in, a JSON response field out (the callers check its shape)
    def _first(self, options: tuple[tuple[str, str, str], ...], value: Any) -> Any:
        """Call the first endpoint of `options` this server has (remembered once found)."""
        known = self._endpoints.get(id(options))
        for path, field, result in [known] if known else options:
            try:
                answer = self.http.call("POST", path, {field: value})[result]
            except (Refused, KeyError):
                continue
            self._endpoints[id(options)] = (path, field, result)
            return answer
        raise BackendError(f"the server at {self.root} has no tokenize/detokenize endpoint marco knows")

    # text ------------------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        tokens = self._first(_TOKENIZE, text)
        if not isinstance(tokens, list) or not all(type(t) is int for t in tokens):
            raise self.http.garbled("its tokenize endpoint", "tokens that are not a list of token ids")
        bos = self._bos
        return tokens[len(bos) :] if bos and tokens[: len(bos)] == bos else tokens

    def detokenize(self, tokens: Sequence[int]) -> str:
        if not tokens:
            return ""
        text = self._first(_DETOKENIZE, list(tokens))
        if not isinstance(text, str):
            raise self.http.garbled("its detokenize endpoint", "text that is not a string")
        return text

    def document_tokens(self, text: str) -> list[int]:
        """llama-server tokenizes with the BOS its vocabulary adds (`add_special`); other
        servers' endpoints are read as they answer, with the BOS they add to an empty text."""
        if not self.native:
            return self._bos + self.tokenize(text)
        tokens = self.http.call("POST", "/tokenize", {"content": text, "add_special": True}).get("tokens")
        if not isinstance(tokens, list) or not all(type(t) is int for t in tokens):
            raise self.http.garbled("its tokenize endpoint", "tokens that are not a list of token ids")
        return tokens

    def _server_template(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """The conversation in the served model's own chat template (llama-server's
        `/apply-template`, generation prompt on), tokenized with special tokens read as such."""
        if not self.native:
            raise BackendError(
                "a conversation in the model's own chat template needs llama-server "
                "(its /apply-template); this server renders none"
            )
        text = self.http.call("POST", "/apply-template", {"messages": list(messages)}).get("prompt")
        if not isinstance(text, str):
            raise self.http.garbled("/apply-template", "a prompt that is not text")
        tokens = self.document_tokens(text)
        doubled = (
            len(tokens) > 1 and tokens[0] == tokens[1] and self.tokenize(self.detokenize(tokens[:1])) == []
        )
        return tokens[1:] if doubled else tokens

    def pair_odds(self, prefix: Sequence[int], pair: tuple[int, int]) -> float:
        """Both tokens biased equally, their probabilities read from the answer (pairodds.py:
        one request on llama-server; on an OpenAI-style server that reports the raw
        distribution, a second for the token the first did not list)."""
        if self.native:
            found = self._biased(pairodds.native_body(list(prefix), pair), None)
        else:
            texts = {self.detokenize([t]): t for t in pair}
            prompt = self._text(prefix)
            found = self._biased(pairodds.openai_body(prompt, pair), texts)
            for missing in [t for t in pair if t not in found]:
                found |= self._biased(pairodds.openai_body(prompt, (missing,)), texts)
        if pair[0] not in found or pair[1] not in found:
            raise BackendError(
                "the server did not report both tokens' probabilities under a logit bias; a "
                "process reward model needs llama-server, vLLM or the in-process engine"
            )
        return pairodds.odds(found, pair)

    def _biased(self, fields: JSON, texts: dict[str, int] | None) -> dict[int, float]:
        """One biased one-token request: token id -> log-probability as the answer gives them
        (`texts`: an OpenAI-style answer's token texts -> ids)."""
        one = StopRule(granularity="rollout", max_tokens=1, stop_texts=(), loop_guard=False)
        body = self._body(Sampling(temperature=1.0, top_k=2), one, 1) | {"stream": False} | fields
        with self._gate:
            answer = self.http.call("POST", self._completions, body)
        try:
            if texts is None:
                found, evaluated = pairodds.native_found(answer), answer.get("tokens_evaluated")
            else:
                found = pairodds.openai_found(answer, texts)
                evaluated = (answer.get("usage") or {}).get("prompt_tokens")
            self._count(requests=1, evaluated=int(evaluated or 0))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            raise BackendError(NO_LOGPROBS) from None
        return found

    def build_prompt(self, messages: Sequence[dict[str, str]], style: str) -> list[int]:
        """ChatML with marco's system prompts (Marco-o1, Qwen and SmolLM2 all use ChatML);
        style `bare` (a process reward model's conversation): the served model's own template,
        nothing added."""
        if style == "bare":
            return self._server_template(messages)
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
                self._count(in_flight=1)
                try:
                    gen = self._one(request, ranked.get(tuple(request.prefix), []))
                finally:
                    self._count(in_flight=-1)
            if on_token is not None:
                on_token(len(gen.tokens))
            return gen

        if len(requests) == 1:
            return [one(requests[0])]
        with ThreadPoolExecutor(max_workers=len(requests)) as pool:
            return list(pool.map(one, requests))

    def _body(self, sampling: Sampling, stop: StopRule, limit: int) -> JSON:
        return {
            **sampling_fields(sampling),
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
            answer = self.http.call("POST", self._completions, body)
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
        text, finish = "", None
        cut: StopReason | None = None
        ids, sent = list(prefix), prompt  # what the server continues (native: ids, else text)
        if request.sampling.first_rank is not None:
            first = self._first_piece(ranked, request.sampling.first_rank)
            if _END_PIECE.match(first.text):  # the branch ends at once, as a local EOS does
                return self._counted(
                    generation_of([first], "", None, None, stop, limit, prompt, self.tokenize)
                )
            scored, means, text = [first], [first.top_mean], first.text
            cut = cut_reason(text, 0, stop, context, means)
            ids += [first.token] if first.token is not None else self.tokenize(first.text)
            sent += first.text
        if not cut and len(scored) < limit:
            body = self._body(request.sampling, stop, limit - len(scored))
            body["prompt"] = ids if self.native else sent
            streamed = self._streamed(body, Streamed(list(scored), list(means), text), stop, context)
            scored, text, cut, finish = streamed.scored, streamed.text, streamed.cut, streamed.finish
            self._count(requests=1, evaluated=streamed.evaluated)
        self._count(streamed=len(scored))
        return self._counted(generation_of(scored, text, cut, finish, stop, limit, prompt, self.tokenize))

    def _streamed(self, body: JSON, start: Streamed, stop: StopRule, context: str) -> Streamed:
        """One generation streamed on from `start`, cut where the stop rule cuts it. A stream
        that ends before its final event (and was not cut here) is a transport failure: tried
        again from `start`, as connection failures are, then one error."""
        tries = self.http.retries + 1
        for attempt in range(tries):
            self.http.pause(attempt)
            got = Streamed(list(start.scored), list(start.means), start.text)
            for event in self.http.events(self._completions, body):
                new, got.finish, got.evaluated = self._read_event(event, got.finish, got.evaluated)
                for piece in new:
                    before, got.text = len(got.text), got.text + piece.text
                    got.scored.append(piece)
                    got.means.append(piece.top_mean)
                    got.cut = cut_reason(got.text, before, stop, context, got.means)
                    if got.cut:
                        return got  # leaving the loop closes the stream: the server stops here
            if got.finish is not None:
                return got
        raise Truncated(f"the server at {self.root} ended its stream before its final event ({tries} tries)")

    def _count_field(
        self, value: object, field: str, path: str, low: int = 0, high: int | None = None
    ) -> int:
        """A count the server reports, checked where it is read: one line naming the server,
        the endpoint and the field."""
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= (high or value):
            return value
        bounds = f"{low}-{high}" if high else f"at least {low}"
        raise self.http.garbled(path, f"{field} {json.dumps(value)[:40]}: not a whole number {bounds}")

    def _whole(self, value: object, field: str) -> int:
        """A count in a generation's answer (tokens evaluated)."""
        return self._count_field(value, field, self._completions)

    def _read_event(
        self, event: JSON, finish: str | None, evaluated: int
    ) -> tuple[list[Scored], str | None, int]:
        try:
            if self.native:
                new = from_native(event.get("completion_probabilities") or [])
                if event.get("stop"):
                    finish = str(event.get("stop_type") or "eos")
                    evaluated = self._whole(event.get("tokens_evaluated") or 0, "tokens_evaluated")
                return new, finish, evaluated
            choice = (event.get("choices") or [{}])[0]
            finish = choice.get("finish_reason") or finish
            evaluated = self._whole(
                (event.get("usage") or {}).get("prompt_tokens") or evaluated, "prompt_tokens"
            )
            logprobs = choice.get("logprobs")
            if logprobs is None and choice.get("text"):
                raise ShapeError("no logprobs")
            return (from_openai(logprobs) if logprobs else []), finish, evaluated
        except (ShapeError, KeyError, TypeError, ValueError, AttributeError):
            raise BackendError(NO_LOGPROBS) from None

    def _counted(self, generation: Generation) -> Generation:
        self._count(generated=len(generation.tokens))
        return generation

    def describe(self) -> JSON:
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
