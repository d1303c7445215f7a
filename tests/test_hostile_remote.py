"""What a broken or hostile server does to `--backend`, as a table the next round starts from:
a llama-server look-alike on loopback (its native `/props`, `/tokenize`, `/completion` shapes)
answers each case its way, and `marco solve` / `marco doctor` must say one line naming the
server and what was wrong, exit non-zero, and never take a broken answer for an answer."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

import pytest

from marco_cli.cli.app import app
from marco_cli.runs import history
from tests.helpers import one_line_error, runner
from tests.servers import QuietHTTPServer

Q = "What is 2 + 2?"
DONE = b'data: {"content": "", "stop": true, "stop_type": "eos", "tokens_evaluated": 3}\n\n'
FIRST = (
    b'data: {"content": "Hi", "completion_probabilities": [{"id": 72, "token": "Hi", "logprob": -0.1, '
    b'"top_logprobs": [{"id": 72, "token": "Hi", "logprob": -0.1}, '
    b'{"id": 73, "token": "Ho", "logprob": -2.0}]}]}\n\n'
)


@dataclass
class Behaviour:
    props: bytes = b'{"total_slots": 1}'
    stream: tuple[bytes, ...] = (FIRST, DONE)
    drip: bool = False  # send the stream one byte a second


class Fake:
    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.completions = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def _raw(self, data: bytes, kind: str = "application/json") -> None:
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._raw(fake.behaviour.props if self.path == "/props" else b'{"data": [{"id": "fake"}]}')

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/tokenize":
                    return self._raw(json.dumps({"tokens": [ord(c) for c in body["content"]]}).encode())
                if self.path == "/detokenize":
                    return self._raw(
                        json.dumps({"content": "".join(chr(t) for t in body["tokens"])}).encode()
                    )
                if self.path != "/completion":  # llama-server has no /extras/tokenize
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                fake.completions += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                data = b"".join(fake.behaviour.stream)
                if not fake.behaviour.drip:
                    self.wfile.write(data)
                    return
                for byte in data:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(1.0)

        self.httpd = QuietHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def fake() -> Iterator[Fake]:
    server = Fake()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def solve(fake: Fake, *extra: str) -> object:
    args = ["solve", Q, "-m", "smollm2-135m", "--backend", fake.url, "--first-tokens", "0", "-n", "1"]
    return runner.invoke(app, [*args, *extra])


@pytest.mark.parametrize(
    "props", [b'{"total_slots": "abc"}', b'{"total_slots": null}', b'{"total_slots": 1e400}']
)
def test_a_props_field_that_is_not_a_count_is_one_line_naming_it(fake: Fake, props: bytes) -> None:
    fake.behaviour.props = props
    line = one_line_error(solve(fake), 1)
    assert f"the server at {fake.url} answered /props with total_slots" in line, line
    doctor = runner.invoke(app, ["doctor", "--backend", fake.url])
    assert "total_slots" in one_line_error(doctor, 1)


def test_a_server_that_drips_one_byte_a_second_is_cut_at_the_timeout(fake: Fake) -> None:
    fake.behaviour.drip = True
    started = time.monotonic()
    line = one_line_error(solve(fake, "--timeout", "3"), 1)
    assert "did not answer within 3s" in line, line
    assert time.monotonic() - started < 12  # one request cut at 3 s (a timeout is not retried)


@pytest.mark.parametrize("stream", [(FIRST,), ()], ids=["cut after its first event", "closed with no events"])
def test_a_stream_that_ends_before_its_final_event_is_a_transport_error(
    fake: Fake, stream: tuple[bytes, ...]
) -> None:
    fake.behaviour.stream = stream
    result = solve(fake, "--strategy", "cot")  # one generation: one request, tried four times
    line = one_line_error(result, 1)
    assert "ended its stream before its final event (4 tries)" in line, line
    assert "iterations" not in line and result.stdout == ""  # never an answer, never advice
    assert fake.completions == 4  # retried as other transport failures are
    (run,) = history.records()[0]
    assert run[1].stopped == "error" and run[1].answer == ""


def test_a_whole_stream_is_still_an_answer(fake: Fake) -> None:
    result = solve(fake, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rollouts"][0]["text"] == "Hi"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://[::1", "Invalid IPv6 URL"),
        ("http://127.0.0.1:99999", "Port out of range"),
        ("http://127.0.0.1:abc", "Port could not be cast"),
        ("http://user:secret@host:abc", "'http://host:abc' is not a valid URL"),
        ("ftp://host", "is not an http:// or https:// URL"),
        ("http://:8080", "names no host"),
    ],
)
def test_a_bad_backend_url_is_a_usage_error_naming_what_is_wrong(url: str, says: str) -> None:
    for command in (["solve", Q, "-m", "smollm2-135m"], ["doctor"]):
        line = one_line_error(runner.invoke(app, [*command, "--backend", url]), 2)
        assert says in line and "secret" not in line, line
