"""HTTP to a model server, with retries and one clear error per failure.

Kept apart from `remote` so the engine there reads as generation logic: this module only knows
URLs, JSON and server-sent events. Connection errors and 5xx are retried with exponential
backoff; 4xx is the server refusing the request (`Refused`), and is not retried; a timeout is
reported as the server not answering, never retried (a slow server stays slow). The timeout
bounds the whole request, reading its answer included: a server that sends one byte a second
is cut at the deadline (a socket timeout alone bounds each read, not the request).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.client import HTTPException, HTTPResponse
from typing import Any

from marco_cli.engine.wire import one_line
from marco_cli.errors import MarcoError

JSON = dict[str, Any]  # a decoded JSON object, as servers send it


class BackendError(MarcoError):
    """The server failed (down, killed, timed out, or answered without what we need)."""


class Silent(BackendError):
    """The server did not answer within the time allowed."""


class Refused(BackendError):
    """The server answered 4xx: the request (or the endpoint) is not acceptable to it."""


class Truncated(BackendError):
    """A streamed answer ended before its final event: a transport failure, retried as one."""


class Deadline:
    """Cuts a response's connection once the request's time is up. `shutdown` on a duplicate
    of the socket's descriptor acts on the connection itself, so a read blocked in another
    frame returns at once (as end of data) and `expired` tells why."""

    def __init__(self, response: HTTPResponse, seconds: float) -> None:
        self.expired = False
        self._sock = socket.socket(fileno=os.dup(response.fileno()))
        self._timer = threading.Timer(max(0.0, seconds), self._cut)
        self._timer.daemon = True
        self._timer.start()

    def _cut(self) -> None:
        self.expired = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._timer.cancel()
        self._sock.close()


@dataclass(frozen=True)
class Transport:
    root: str  # scheme://host:port, no trailing slash, no credentials
    api_key: str | None  # sent as a Bearer token
    basic: str | None  # base64 user:password from the URL, sent when there is no api_key
    timeout: float  # seconds a request may wait for the server's answer
    retries: int  # tries after the first, on connection errors and 5xx
    backoff: float  # seconds before the first retry, doubling after
    # while connecting: the monotonic time the whole attempt (probes, retries, setup requests)
    # must end by, so that `--timeout 10` is ten seconds in all, not ten for each request
    deadline: float | None = None

    def budget(self) -> float:
        """Seconds the next request may wait: the timeout, or less when a connection attempt's
        deadline is nearer (past it: the server is silent)."""
        if self.deadline is None:
            return self.timeout
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.silent()
        return min(self.timeout, left)

    def open(self, method: str, path: str, body: JSON | None) -> HTTPResponse:
        """Open one request with retries on connection errors and 5xx; one clear error otherwise."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        elif self.basic:
            headers["Authorization"] = f"Basic {self.basic}"
        last, answered = "", False
        for attempt in range(self.retries + 1):
            self.pause(attempt)
            request = urllib.request.Request(self.root + path, data=data, headers=headers, method=method)
            try:
                response: HTTPResponse = urllib.request.urlopen(request, timeout=self.budget())
                return response
            except urllib.error.HTTPError as exc:
                detail = one_line(exc.read()[:2000].decode("utf-8", "replace"))
                if exc.code < 500:
                    raise Refused(f"the server refused {path}: HTTP {exc.code} {detail}") from None
                last, answered = f"HTTP {exc.code} {detail}".strip(), True
                continue
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, TimeoutError):
                    raise self.silent() from None
                last = one_line(str(exc.reason))
            except TimeoutError:
                raise self.silent() from None
            except (OSError, HTTPException) as exc:  # refused, reset, or not HTTP at all
                last = one_line(str(exc)) or type(exc).__name__  # a reply's first line may be in it
            answered = False
        if answered:  # reached: it failed, every time
            tries = f"{self.retries + 1} tries" if self.retries else "one try"
            raise BackendError(f"the server at {self.root} failed {path} with {last} ({tries})")
        raise BackendError(f"cannot reach the server at {self.root} ({last})")

    def pause(self, attempt: int) -> None:
        """Before a retry: the backoff, doubling from `backoff` (nothing before the first try)."""
        if attempt:
            wait = self.backoff * 2 ** (attempt - 1)
            if self.deadline is not None:
                wait = min(wait, max(0.0, self.deadline - time.monotonic()))
            time.sleep(wait)

    def silent(self) -> Silent:
        return Silent(f"the server at {self.root} did not answer within {self.timeout:g}s (--timeout)")

    def garbled(self, path: str, what: str) -> BackendError:
        return BackendError(f"the server at {self.root} answered {path} with {what}")

    def gone(self, exc: OSError | HTTPException) -> BackendError:
        why = one_line(str(exc)) or type(exc).__name__
        return BackendError(f"the server at {self.root} went away mid-answer ({why})")

    @contextmanager
    def _reading(self, response: HTTPResponse, started: float) -> Iterator[None]:
        """Around reading an answer, within the request's deadline: a timeout is the server not
        answering, a reset or a body cut short is the server going away (`open` maps the same
        failures while connecting)."""
        deadline = Deadline(response, min(self.timeout - (time.monotonic() - started), self._left()))
        try:
            yield
            if deadline.expired:
                raise self.silent()
        except TimeoutError:
            raise self.silent() from None
        except (OSError, HTTPException) as exc:
            raise (self.silent() if deadline.expired else self.gone(exc)) from None
        finally:
            deadline.close()
            response.close()

    def _left(self) -> float:
        return self.timeout if self.deadline is None else self.deadline - time.monotonic()

    def call(self, method: str, path: str, body: JSON | None = None) -> JSON:
        """One request answered with one JSON object (an empty answer reads as `{}`)."""
        started = time.monotonic()
        response = self.open(method, path, body)
        with self._reading(response, started):
            raw = response.read()
        try:
            answer = json.loads(raw.decode("utf-8", "replace") or "{}")  # bytes would be sniffed as UTF-16/32
        except json.JSONDecodeError:
            raise self.garbled(path, "something that is not JSON") from None
        except RecursionError:
            raise self.garbled(path, "JSON nested too deep to read") from None
        if not isinstance(answer, dict):
            raise self.garbled(path, "JSON that is not an object")
        return answer

    def text(self, path: str) -> str:
        """A plain-text answer (e.g. Prometheus /metrics)."""
        started = time.monotonic()
        response = self.open("GET", path, None)
        with self._reading(response, started):
            raw = response.read()
        return raw.decode("utf-8", "replace")

    def events(self, path: str, body: JSON) -> Iterator[JSON]:
        """The JSON events of a streamed answer (server-sent events); a server that ignored
        `stream` gives its one JSON answer. Leaving the loop early closes the stream. Whether
        the stream ended with its final event is the caller's to judge (`Truncated`)."""
        started = time.monotonic()
        response = self.open("POST", path, body)
        try:
            with self._reading(response, started):
                kind = response.headers.get("Content-Type", "")
                if "ndjson" in kind:  # Ollama: one JSON object per line
                    for raw in response:
                        if raw.strip():
                            yield self._object(path, raw)
                    return
                if "text/event-stream" not in kind:
                    yield self._object(path, response.read() or b"{}")
                    return
                for raw in response:
                    line = raw.decode("utf-8", "replace").strip()
                    if not line.startswith("data:") or line == "data: [DONE]":
                        continue
                    yield self._object(path, line[5:].encode())
        except json.JSONDecodeError:
            raise BackendError(f"the server at {self.root} streamed a line that is not JSON") from None

    def _object(self, path: str, raw: bytes) -> JSON:
        try:
            answer = json.loads(raw.decode("utf-8", "replace"))  # bytes would be sniffed as UTF-16/32
        except RecursionError:
            raise self.garbled(path, "an event nested too deep to read") from None
        if not isinstance(answer, dict):
            raise self.garbled(path, "an event that is not a JSON object")
        return answer
