"""The HTTP side of `marco serve`: a Starlette app speaking OpenAI's chat-completions API.

Routes: `POST /v1/chat/completions` (whole, or streamed as Server-Sent Events through
sse-starlette), `GET /v1/models`, `GET /health`. Every error is OpenAI's error object with its
status; nothing a client sends can stop the server. The search runs on the `Runner`'s threads;
this side only waits for its updates and notices when the client has gone.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import anyio
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from marco_cli.engine.transport import BackendError
from marco_cli.errors import MarcoError, PromptTooLong, UsageError, clip
from marco_cli.record.record import Record
from marco_cli.search.config import SearchConfig
from marco_cli.server import protocol
from marco_cli.server.protocol import ApiError, ChatRequest
from marco_cli.server.runner import (
    Done,
    Failed,
    Job,
    Progress,
    QueueFull,
    Runner,
    ShuttingDown,
    Started,
    Update,
)
from marco_cli.ui.console import err_console

MAX_BODY = 8 * 1024 * 1024  # bytes; a longer conversation would not fit any context anyway
RETRY_AFTER_S = 5
SHUTDOWN_GRACE_S = 10.0  # a stream's time to send its interrupted answer when the server stops
Configure = Callable[[ChatRequest, "str | None"], SearchConfig]  # raises ApiError


class ClientGone(Exception):
    """The client disconnected while its search waited or ran."""


@dataclass(frozen=True)
class ServerSettings:
    models: dict[str, str | None]  # model id -> the strategy it selects (None: the server's)
    configure: Configure
    api_key: str | None = None


def error_response(error: ApiError) -> JSONResponse:
    """The error as JSON; a 503 says when to retry, and a 413 closes the connection (the rest of
    the refused body may still be arriving: the connection cannot carry another request)."""
    headers = {"Retry-After": str(RETRY_AFTER_S)} if error.status == 503 else {}
    if error.status == 413:
        headers["Connection"] = "close"
    return JSONResponse(error.body(), status_code=error.status, headers=headers or None)


def api_error(exc: MarcoError) -> ApiError:
    """A failed search's status: the prompt does not fit (400), the backend failed (502)."""
    if isinstance(exc, ShuttingDown):
        return ApiError(503, str(exc), "server_error", code="shutting_down")
    if isinstance(exc, PromptTooLong):
        return ApiError(400, str(exc), code="context_length_exceeded")
    if isinstance(exc, UsageError):
        return ApiError(400, str(exc))
    if isinstance(exc, BackendError):
        return ApiError(502, str(exc), kind="server_error", code="backend_error")
    return ApiError(500, str(exc), kind="server_error")


async def next_update(job: Job, request: Request) -> Update:
    """The job's next update; cancels the job and raises ClientGone once the client has left."""
    while True:
        try:
            return await asyncio.wait_for(job.updates.get(), 0.5)
        except asyncio.TimeoutError:
            if await request.is_disconnected():
                job.cancelled.set()
                raise ClientGone from None


def log_line(text: str) -> None:
    err_console().print(f"marco serve: {text}", highlight=False, markup=False)


async def read_body(request: Request) -> bytes:
    """The body, refused (413) as soon as it passes MAX_BODY: the bytes read are counted, so a
    chunked body or a false Content-Length cannot get past the limit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise ApiError(413, f"the body is larger than {MAX_BODY} bytes")
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > MAX_BODY:
            raise ApiError(413, f"the body is larger than {MAX_BODY} bytes")
        parts.append(part)
    return b"".join(parts)


class Api:
    """The routes' handlers over one runner (its engine) and the served model ids."""

    def __init__(self, runner: Runner, settings: ServerSettings) -> None:
        self.runner, self.settings = runner, settings

    def check_key(self, request: Request) -> None:
        key = self.settings.api_key
        if key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if not (scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), key.encode())):
            raise ApiError(
                401, "a valid API key is required (Authorization: Bearer KEY)", "authentication_error"
            )

    async def health(self, _request: Request) -> Response:
        runner = self.runner
        body = {
            "status": "shutting down" if runner.closing else "ok",
            "model": next(iter(self.settings.models)),
            "running": runner.running,
            "queued": runner.waiting,
            "generated_tokens": runner.generated,
        }
        return JSONResponse(body, status_code=503 if runner.closing else 200)

    async def models(self, request: Request) -> Response:
        self.check_key(request)
        return JSONResponse(protocol.model_list(list(self.settings.models)))

    async def chat(self, request: Request) -> Response:
        self.check_key(request)
        try:
            raw = await read_body(request)
        except ClientDisconnect:
            log_line("a client left before sending its whole body")
            return Response(status_code=499)
        chat_request = protocol.parse_chat(protocol.parse_body(raw))
        models = self.settings.models
        if chat_request.model not in models:
            known = ", ".join(models)
            message = f"model '{clip(chat_request.model)}' is not served here (served: {known})"
            raise ApiError(404, message, "not_found_error", param="model", code="model_not_found")
        config = self.settings.configure(chat_request, models[chat_request.model])
        loop = asyncio.get_running_loop()
        job = Job(chat_request.question, chat_request.messages, config, loop, chat_request.stream)
        try:
            self.runner.submit(job)
        except QueueFull as exc:
            raise ApiError(503, f"busy: {exc}; retry later", "server_error", code="queue_full") from None
        try:
            if chat_request.stream:
                return await _stream(job, request, chat_request)
            return await _whole(job, request, chat_request)
        except ClientGone:
            return Response(status_code=499)


async def _on_api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _on_http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind: protocol.ErrorType = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
    return error_response(ApiError(exc.status_code, exc.detail, kind))


async def _on_crash(_request: Request, exc: Exception) -> Response:
    return error_response(ApiError(500, f"internal error: {type(exc).__name__}", "server_error"))


def build_app(runner: Runner, settings: ServerSettings) -> Starlette:
    """The app: three routes, and every error as OpenAI's error object."""
    api = Api(runner, settings)
    routes = [
        Route("/health", api.health, methods=["GET"]),
        Route("/v1/models", api.models, methods=["GET"]),
        Route("/v1/chat/completions", api.chat, methods=["POST"]),
    ]
    handlers = {ApiError: _on_api_error, HTTPException: _on_http_error, Exception: _on_crash}
    return Starlette(routes=routes, exception_handlers=handlers)


async def _whole(job: Job, request: Request, chat: ChatRequest) -> Response:
    prompt_tokens = 0
    while True:
        update = await next_update(job, request)
        if isinstance(update, Started):
            prompt_tokens = update.prompt_tokens
        elif isinstance(update, Failed):
            raise api_error(update.error)
        elif isinstance(update, Done):
            record = update.record
            if record.stopped == "error":
                raise ApiError(502, f"{record.error} (the partial run is saved)", "server_error")
            return JSONResponse(
                protocol.completion(protocol.completion_id(), chat.model, record, prompt_tokens)
            )


async def _stream(job: Job, request: Request, chat: ChatRequest) -> Response:
    """Wait until the search has started (a prompt that does not fit is still a 400), then
    stream its progress as reasoning, the chosen thought, the answer, and [DONE]."""
    first = await next_update(job, request)
    if isinstance(first, Failed):
        raise api_error(first.error)
    # the worker always starts with Started or Failed
    prompt_tokens, cid = (first.prompt_tokens if isinstance(first, Started) else 0), protocol.completion_id()

    def data(delta: dict[str, str], finish: str | None = None) -> str:
        return json.dumps(protocol.chunk(cid, chat.model, delta, finish), ensure_ascii=False)

    async def events() -> AsyncIterator[str]:
        try:
            yield data({"role": "assistant", "content": "", "reasoning_content": ""})
            while True:
                update = await job.updates.get()
                if isinstance(update, Progress):
                    yield data({"reasoning_content": update.text})
                elif isinstance(update, Failed):
                    yield json.dumps(api_error(update.error).body())
                    break
                elif isinstance(update, Done):
                    for line in _ending(cid, chat, update.record, prompt_tokens):
                        yield line
                    break
            yield "[DONE]"
        finally:
            job.cancelled.set()  # the client left mid-stream: stop its search (no-op when done)

    return EventSourceResponse(
        events(), shutdown_event=anyio.Event(), shutdown_grace_period=SHUTDOWN_GRACE_S, ping=15
    )


def _ending(cid: str, chat: ChatRequest, record: Record, prompt_tokens: int) -> list[str]:
    """The chunks after the search: the chosen thought, the answer, the finish with usage and
    the run summary (or the backend's error)."""
    if record.stopped == "error":
        return [
            json.dumps(ApiError(502, f"{record.error} (the partial run is saved)", "server_error").body())
        ]
    thought, note = record.thought, protocol.no_answer_note(record)
    out = []
    if thought:
        out.append({"reasoning_content": f"\nchosen path:\n{thought}"})
    if note:
        out.append({"reasoning_content": f"\n{note}\n"})
    out.append({"content": record.answer})
    lines = [json.dumps(protocol.chunk(cid, chat.model, delta), ensure_ascii=False) for delta in out]
    final = protocol.chunk(cid, chat.model, {}, protocol.finish_reason(record))
    final["marco"] = protocol.run_summary(record)
    if chat.include_usage:  # OpenAI's shape: a last chunk with no choices, only the usage
        lines.append(json.dumps(final, ensure_ascii=False))
        final = {**protocol.chunk(cid, chat.model, {}), "choices": []}
    final["usage"] = protocol.usage(prompt_tokens, record)
    lines.append(json.dumps(final, ensure_ascii=False))
    return lines
