"""What a hostile client does to `marco serve`, as a table the next round starts from: each case
is raw HTTP against the real server (real small model), the status and message it must get,
and a log with no traceback. Reliability round 3 (cases the previous code failed)."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from marco_cli.cli.app import app
from tests.helpers import one_line_error, runner
from tests.test_serve import KEY, MODEL, QUESTION, Served, post, serve

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = serve(tmp_path_factory.mktemp("hostile"), "--api-key", KEY, "--ctx", "512")
    yield served
    served.proc.send_signal(signal.SIGTERM)
    served.proc.wait(timeout=60)


def body(**fields: object) -> dict[str, object]:
    return {"model": f"{MODEL}:cot", "messages": [{"role": "user", "content": QUESTION}], **fields}


@dataclass(frozen=True)
class Case:
    name: str
    raw: bytes
    status: int
    says: str  # in the error's message


CASES = [
    Case(
        "NaN temperature",
        b'{"model": "m", "messages": [], "temperature": NaN}',
        400,
        "NaN is not a JSON number",
    ),
    Case("Infinity", json.dumps(body()).encode()[:-1] + b', "seed": -Infinity}', 400, "Infinity is not"),
    Case("nested 100,000 deep", b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
    Case("fractional max_tokens", json.dumps(body(max_tokens=16.7)).encode(), 400, "whole number, not 16.7"),
    Case(
        "string temperature", json.dumps(body(temperature="hot")).encode(), 400, 'must be a number, not "hot"'
    ),
    Case(
        "bool option as number",
        json.dumps(body(marco={"reflection": 1})).encode(),
        400,
        "true or false, not 1",
    ),
    Case(
        "a model id of 100,000 characters",
        json.dumps(body(model="m" * 100_000)).encode(),
        404,
        "not served here",
    ),
    Case(
        "an option name of 100,000 characters",
        json.dumps(body(marco={"x" * 100_000: 1})).encode(),
        400,
        "unknown search option",
    ),
    Case("huge number", json.dumps(body()).encode()[:-1] + b', "temperature": 1e400}', 400, "finite number"),
    Case(  # round 4: the reward was echoed back whole
        "a reward of 120 KB", json.dumps(body(marco={"reward": "x" * 120_000})).encode(), 400, "reward 'xxx"
    ),
    Case("a gate before the value", json.dumps(body(marco={"reward": "judge+check"})).encode(), 400, "alone"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_hostile_body_gets_its_status_and_a_message_naming_what_was_wrong(
    server: Served, case: Case
) -> None:
    status, answer = post(server, case.raw)
    error = answer["error"]
    assert isinstance(error, dict)
    assert status == case.status and case.says in str(error["message"]), answer
    assert len(str(error["message"])) < 700  # a message quotes what was sent, shortened
    assert "Traceback" not in server.log.read_text()


def _raw(server: Served, head: bytes) -> socket.socket:
    port = int(server.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(head)
    return sock


def test_a_chunked_body_past_the_limit_is_refused_as_soon_as_it_passes(server: Served) -> None:
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() + b"\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    sock, piece, sent, started = _raw(server, head), b"a" * (1 << 20), 0, time.monotonic()
    try:
        while sent < 20 << 20:  # 20 MB offered; the server must stop reading after 8
            sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
            sent += len(piece)
    except OSError:
        pass  # the server answered and closed: the rest was never read
    reply = sock.recv(65536).decode("latin-1")
    sock.close()
    assert reply.startswith("HTTP/1.1 413"), reply[:200]
    assert "larger than 8388608 bytes" in reply
    assert "connection: close" in reply.lower()  # round 4: the unread rest cannot start a request
    assert time.monotonic() - started < 15  # not read and tokenized in full (that took 25 s)
    assert server.health()["status"] == "ok"


def test_a_client_that_leaves_before_its_body_is_one_log_line(server: Served) -> None:
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() + b"\r\n"
        b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"model": '
    )
    _raw(server, head).close()
    deadline = time.monotonic() + 10
    while "left before sending" not in server.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = server.log.read_text()
    assert log.count("a client left before sending its whole body") == 1
    assert "Traceback" not in log and "ClientDisconnect" not in log
    assert server.health()["status"] == "ok"


def test_no_answer_is_said_as_length_and_a_reason_not_an_empty_stop(server: Served) -> None:
    status, answer = post(server, json.dumps(body(max_tokens=4)).encode())
    assert status == 200
    choices = answer["choices"]
    assert isinstance(choices, list)
    choice = choices[0]
    assert choice["message"]["content"] == "" and choice["finish_reason"] == "length"
    assert "no answer" in choice["message"]["reasoning_content"]
    assert "a larger max_tokens" in choice["message"]["reasoning_content"]
    assert answer["marco"]["answered"] is False  # type: ignore[index]


def test_an_empty_api_key_is_a_usage_error_at_start() -> None:
    result = runner.invoke(app, ["serve", "-m", MODEL, "--api-key", ""])
    assert (
        one_line_error(result, 2)
        == "error: --api-key is empty: give a key, or leave it out to serve without one"
    )


def test_sigterm_answers_the_queued_requests_at_once_and_logs_no_traceback(tmp_path: Path) -> None:
    served = serve(tmp_path / "home")
    long = json.dumps(body(model=MODEL, marco={"strategy": "vote", "samples": 200})).encode()
    got: dict[str, tuple[int, dict[str, object], float]] = {}

    def send(name: str, raw: bytes) -> None:
        status, answer = post(served, raw, key=None)
        got[name] = (status, answer, time.monotonic())

    running = threading.Thread(target=send, args=("running", long))
    running.start()
    while not served.health()["generated_tokens"]:
        time.sleep(0.1)
    queued = [threading.Thread(target=send, args=(f"queued{i}", long)) for i in range(2)]
    for thread in queued:
        thread.start()
    while served.health()["queued"] < 2:
        time.sleep(0.1)
    signalled = time.monotonic()
    served.proc.send_signal(signal.SIGTERM)
    for thread in (*queued, running):
        thread.join(timeout=60)
    code = served.proc.wait(timeout=30)
    exited = time.monotonic()
    for name in ("queued0", "queued1"):
        status, answer, at = got[name]
        assert status == 503 and answer["error"]["code"] == "shutting_down"  # type: ignore[index]
        assert at - signalled < 5, f"{name} waited {at - signalled:.1f} s"
    status, answer, _ = got["running"]
    assert status == 200 and answer["marco"]["stopped"] == "interrupted"  # type: ignore[index]
    assert exited - signalled < 20 and code in (0, 143)
    log = served.log.read_text()
    assert "Traceback" not in log and "CancelledError" not in log
