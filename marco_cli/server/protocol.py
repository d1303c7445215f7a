"""The OpenAI chat-completions wire format, as pure functions: a request body in, a typed
`ChatRequest` (or an `ApiError`) out; a finished run's record in, a response or stream chunk out.

Field meanings follow OpenAI's API reference; `reasoning_content` is the field DeepSeek-style
clients and Open WebUI show as thinking. marco's own fields live under `marco` (request: search
settings; response: run id, strategy, iterations, why the search stopped).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from marco_cli import tasks
from marco_cli.errors import one_line
from marco_cli.record.record import Record

# a decoded request body: JSON in, Any until each field is checked (the one boundary here)
RequestJson = dict[str, Any]
ErrorType = Literal["invalid_request_error", "authentication_error", "not_found_error", "server_error"]
ROLES = ("system", "user", "assistant", "developer")
# OpenAI request fields that map onto search settings (the rest are accepted and ignored)
MAPPED = {"temperature": "temperature", "max_tokens": "max_tokens", "max_completion_tokens": "max_tokens"}


class ApiError(Exception):
    """An error the client gets as OpenAI's error object, with its HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: ErrorType = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        message = one_line(message)
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code

    def body(self) -> dict[str, object]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class ChatRequest:
    """What a chat-completions body asks for, checked: the conversation, the model (with its
    `:strategy` suffix, if any), streaming, and the search settings it sets."""

    model: str
    messages: list[dict[str, str]]
    stream: bool = False
    include_usage: bool = False
    settings: dict[str, object] = field(default_factory=dict)  # search option name -> value

    @property
    def question(self) -> str:
        """The last user turn: what the search answers (and what the history shows)."""
        return next(m["content"] for m in reversed(self.messages) if m["role"] == "user")


def _no_constant(name: str) -> float:
    """JSON has no NaN or Infinity; Python's reader would take them as floats."""
    raise ApiError(400, f"the body is not JSON: {name} is not a JSON number")


def parse_body(raw: bytes) -> RequestJson:
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"the body is not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ApiError(
            400, f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise ApiError(400, "the body is nested too deeply to read") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def _content(message: RequestJson, index: int) -> str:
    """A message's text: a string, or OpenAI's list of parts of which only text is taken."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                raise ApiError(
                    400, "only text content parts are supported", param=f"messages[{index}].content"
                )
            texts.append(part["text"])
        return "".join(texts)
    if content is None and message.get("role") == "assistant":
        return ""
    raise ApiError(
        400, "content must be a string or a list of text parts", param=f"messages[{index}].content"
    )


def _messages(body: RequestJson) -> list[dict[str, str]]:
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise ApiError(400, "'messages' must be a non-empty list", param="messages")
    out = []
    for index, message in enumerate(raw):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ApiError(
                400, f"each message needs a role ({', '.join(ROLES)})", param=f"messages[{index}].role"
            )
        role = "system" if message["role"] == "developer" else message["role"]
        out.append({"role": role, "content": _content(message, index)})
    users = [m for m in out if m["role"] == "user"]
    if not users or not users[-1]["content"].strip():
        raise ApiError(400, "the conversation needs a non-empty user message", param="messages")
    return out


def _settings(body: RequestJson) -> dict[str, object]:
    settings: dict[str, object] = {}
    for name, option in MAPPED.items():
        if body.get(name) is not None:
            settings[option] = body[name]
    if body.get("seed") is not None:
        settings["seed"] = body["seed"]
    extra = body.get("marco", {})
    if not isinstance(extra, dict):
        raise ApiError(400, "'marco' must be an object of search options", param="marco")
    for name, value in extra.items():
        settings[str(name).replace("-", "_")] = value
    return settings


def parse_chat(body: RequestJson) -> ChatRequest:
    """Check a chat-completions body; an `ApiError` (400) says what is wrong with it."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "'model' must be a string (GET /v1/models lists them)", param="model")
    n = body.get("n", 1)
    if n != 1:
        raise ApiError(400, "n must be 1: one search gives one answer", param="n")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "'stream' must be true or false", param="stream")
    options = body.get("stream_options") or {}
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return ChatRequest(model, _messages(body), stream, include_usage, _settings(body))


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, record: Record) -> dict[str, int]:
    """`completion_tokens` counts every token the search generated, not only the answer's."""
    generated = record.tokens.generated
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": generated,
        "total_tokens": prompt_tokens + generated,
    }


def run_summary(record: Record) -> dict[str, object]:
    """The `marco` extension of a response: which run this was and how its search went."""
    return {
        "run_id": record.run_id,
        "strategy": record.search.strategy,
        "iterations": record.iterations,
        "stopped": record.stopped,
        "answered": bool(record.answer),
        "confidence": record.reward,
        "rollouts": len(record.rollouts),
        "verifier_tokens": record.tokens.verifier,  # what a `judge` reward's verifier spent (0: none)
        "seconds": record.seconds,
    }


_CUT = ("budget", "context")


def finish_reason(record: Record) -> str:
    """'length' when the chosen answer was cut by the token budget, or when there is no answer
    and the budget (or the context) cut a rollout: OpenAI clients read 'length' as "raise
    max_tokens". Otherwise 'stop' (an empty answer with 'stop' is an answer that is empty)."""
    chosen = record.chosen
    if chosen is not None and chosen.status in _CUT:
        return "length"
    cut = any(r.status in _CUT for r in record.rollouts)
    return "length" if not record.answer and cut else "stop"


def _request_option(name: str) -> str:
    return {"max-tokens": "max_tokens", "ctx": "the server's --ctx"}.get(name, f"marco.{name}")


def no_answer_note(record: Record) -> str | None:
    """Why the content is empty, said in the reasoning (None: there is an answer)."""
    if record.answer or record.stopped == "error":
        return None
    if not record.rollouts:
        return "no answer: the search ended before any rollout finished"
    return tasks.no_answer_hint(record.rollout_stats, record.search.max_tokens, _request_option)


def completion(cid: str, model: str, record: Record, prompt_tokens: int) -> dict[str, object]:
    note = no_answer_note(record)
    reasoning = record.thought if note is None else "\n".join(t for t in (record.thought, note) if t)
    message = {"role": "assistant", "content": record.answer, "reasoning_content": reasoning}
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(record)}],
        "usage": usage(prompt_tokens, record),
        "marco": run_summary(record),
    }


def chunk(cid: str, model: str, delta: dict[str, str], finish: str | None = None) -> dict[str, object]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def model_list(ids: list[str]) -> dict[str, object]:
    created = int(time.time())
    return {
        "object": "list",
        "data": [{"id": i, "object": "model", "created": created, "owned_by": "marco"} for i in ids],
    }
