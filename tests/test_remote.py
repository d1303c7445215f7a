"""The remote backend against a real llama-cpp-python server on loopback, and faults."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from marco_cli.cli.app import app
from marco_cli.contract import Sampling, StopRule
from marco_cli.engine.remote import BackendError, RemoteEngine
from marco_cli.engine.wire import one_line
from marco_cli.runs import history
from marco_cli.search.config import SearchConfig
from marco_cli.search.strategies import run_search
from tests.helpers import one_line_error, runner
from tests.servers import (
    QuietHTTPServer,
    free_port,
    llama_cpp_python_server,
    search_while_the_server_dies,
    serving,
)

QUESTION = [{"role": "user", "content": "Tom has 3 apples and buys 4 more. How many apples does he have?"}]


start_server = llama_cpp_python_server


@pytest.fixture(scope="module")
def server(smollm_path: Path) -> Iterator[str]:
    yield from serving(start_server(smollm_path))


@pytest.mark.slow
def test_remote_confidences_agree_with_the_local_engine(server: str, engine: object) -> None:
    remote = RemoteEngine(server)
    prompt = remote.build_prompt(QUESTION, "plain")
    assert prompt == engine.build_prompt(QUESTION, "plain")  # same ChatML text, same tokens
    stop = StopRule(max_tokens=24, stop_texts=())
    theirs = remote.generate(prompt, Sampling(), stop)
    engine.reset()
    ours = engine.generate(prompt, Sampling(), stop)
    assert theirs.text == ours.text
    assert theirs.confidences == pytest.approx(ours.confidences, abs=1e-3)
    assert theirs.logprobs == pytest.approx(ours.logprobs, abs=1e-3)


@pytest.mark.slow
def test_first_tokens_over_an_openai_server_start_as_the_local_engine(server: str, engine: object) -> None:
    """The OpenAI shape gives text pieces, not ids: the k-th first piece is appended to the
    prompt text and the server continues from there. The first pieces are the local engine's;
    what follows may part at a near-tie (the server re-evaluates the prompt with the piece in
    one batch)."""
    remote = RemoteEngine(server)
    prompt = remote.build_prompt(QUESTION, "plain")
    stop = StopRule(max_tokens=10, stop_texts=())
    firsts = set()
    for rank in range(3):
        theirs = remote.generate(prompt, Sampling(first_rank=rank), stop)
        engine.reset()
        ours = engine.generate(prompt, Sampling(first_rank=rank), stop)
        first = engine.detokenize(ours.tokens[:1])
        assert theirs.text.startswith(first) and len(theirs.text) > len(first), rank
        assert theirs.confidences[0] == pytest.approx(ours.confidences[0], abs=1e-2)  # the same row
        firsts.add(first)
    assert len(firsts) == 3


@pytest.mark.slow
def test_remote_search_end_to_end_and_cli(server: str) -> None:
    remote = RemoteEngine(server, parallel=3)
    prompt = remote.build_prompt(QUESTION, "plain")
    config = SearchConfig(iterations=3, children=3, granularity="mini-32", max_tokens=64)
    result = run_search(remote, prompt, config)
    assert result.stopped in ("iterations", "exhausted", "agreement") and result.rollouts
    assert remote.max_in_flight >= 2  # siblings went out together
    for rollout in result.rollouts:
        assert 0 < rollout.confidence <= 1
        assert rollout.reward == (rollout.confidence if rollout.finished and rollout.answer else 0.0)
    cli = runner.invoke(
        app,
        [
            "solve",
            "What is 2 + 3?",
            "--backend",
            server,
            "-m",
            "smollm2-135m",
            "-n",
            "2",
            "--granularity",
            "mini-32",
            "--max-tokens",
            "48",
            "--json",
        ],
    )
    assert cli.exit_code == 0, cli.output
    record = json.loads(cli.stdout)
    assert record["model"]["origin"] == f"remote {server}" and record["rollouts"]


@pytest.mark.slow
def test_server_killed_mid_search_keeps_the_partial_tree(smollm_path: Path) -> None:
    proc, url = start_server(smollm_path)
    search_while_the_server_dies(proc, url, max_tokens=64)


def test_server_down_is_one_clear_line() -> None:
    with pytest.raises(BackendError, match="cannot reach the server"):
        RemoteEngine(f"http://127.0.0.1:{free_port()}", retries=1, backoff=0.01)
    cli = runner.invoke(app, ["solve", "hi", "--backend", f"http://127.0.0.1:{free_port()}"])
    assert cli.exit_code == 1 and "cannot reach the server" in cli.stderr
    assert cli.stderr.count("\n") == 1


class _FakeServer:
    """A server that tokenizes by characters and answers completions slowly or without logprobs."""

    def __init__(self, delay: float = 0.0, logprobs: bool = True, status: int = 200) -> None:
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._send(200, {"data": [{"id": "fake"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                state.auth = self.headers.get("Authorization")
                if self.path == "/extras/tokenize":
                    return self._send(200, {"tokens": [ord(c) for c in body["input"]]})
                if self.path == "/extras/detokenize":
                    return self._send(200, {"text": "".join(chr(t) for t in body["tokens"])})
                time.sleep(state.delay)
                if state.status != 200:
                    return self._send(state.status, {"error": "bad"})
                choice = {"text": "ab", "finish_reason": "length"}
                if state.logprobs:
                    choice["logprobs"] = {
                        "tokens": ["a", "b"],
                        "token_logprobs": [-0.1, -0.5],
                        "top_logprobs": [{"a": -0.1, "c": -3.0}, {"b": -0.5, "d": -1.0}],
                    }
                self._send(200, {"choices": [choice], "usage": {"prompt_tokens": 5}})

        self.delay, self.logprobs, self.status, self.auth = delay, logprobs, status, None
        self.httpd = QuietHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_formula_api_key_timeout_and_missing_logprobs(monkeypatch: pytest.MonkeyPatch) -> None:
    import math

    monkeypatch.setenv("MARCO_API_KEY", "sk-secret")
    fake = _FakeServer()
    try:
        remote = RemoteEngine(fake.url)
        gen = remote.generate([1, 2], Sampling(), StopRule(granularity="mini-32"))
        assert gen.text == "ab" and gen.stop_reason == "mini" and fake.auth == "Bearer sk-secret"
        assert gen.confidences == pytest.approx(
            (
                math.exp(-0.1) / (math.exp(-0.1) + math.exp(-3.0)),
                math.exp(-0.5) / (math.exp(-0.5) + math.exp(-1.0)),
            )
        )
        fake.delay = 2.0
        with pytest.raises(BackendError, match=r"did not answer within 0\.3s"):
            RemoteEngine(fake.url, timeout=0.3).generate([1], Sampling(), StopRule())
        fake.delay, fake.logprobs = 0.0, False
        with pytest.raises(BackendError, match="no per-token logprobs") as info:
            remote.generate([1], Sampling(), StopRule())
        assert "sk-secret" not in str(info.value)
        fake.logprobs, fake.status = True, 400
        with pytest.raises(BackendError, match="refused /v1/completions: HTTP 400"):
            remote.generate([1], Sampling(), StopRule())
    finally:
        fake.close()


Q = "What is 2 + 2?"


@pytest.fixture
def bad_stream_server() -> Iterator[str]:
    """A llama-server look-alike whose completion stream carries a line that is not JSON."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

        def _json(self, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._json({"total_slots": 1} if self.path == "/props" else {"data": [{"id": "fake"}]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/tokenize":
                return self._json({"tokens": [ord(c) for c in body["content"]]})
            if self.path == "/detokenize":
                return self._json({"content": "".join(chr(t) for t in body["tokens"])})
            if self.path != "/completion":
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if not body.get("stream"):  # the first-token request: two candidates, whatever was asked
                top = [{"id": 52, "token": "4", "logprob": -0.1}, {"id": 53, "token": "5", "logprob": -2.5}]
                return self._json({"completion_probabilities": [{"top_logprobs": top}]})
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(b'data: {"content": "4", "completion_probab\n\n')

    server = QuietHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_malformed_stream_is_one_line_and_the_run_is_saved(bad_stream_server: str) -> None:
    plain = ["--first-tokens", "0"]  # straight to the stream (the first-token request is not streamed)
    result = runner.invoke(app, ["solve", Q, "-m", "smollm2-135m", "--backend", bad_stream_server, *plain])
    assert "streamed a line that is not JSON" in one_line_error(result, 1)
    (run,) = history.records()[0]
    assert run[1].stopped == "error" and "not JSON" in (run[1].error or "")


def test_a_server_with_too_few_first_tokens_is_one_line(bad_stream_server: str) -> None:
    """This server ranks two first tokens: a third is refused naming both counts."""
    from marco_cli.contract import Sampling, StopRule
    from marco_cli.engine.remote import BackendError, RemoteEngine

    remote = RemoteEngine(bad_stream_server)
    with pytest.raises(BackendError, match="gave 2 first-token alternatives; --first-tokens 3 needs 3"):
        remote.generate(remote.tokenize("Q"), Sampling(first_rank=2), StopRule(max_tokens=8))
    two = ["--first-tokens", "2"]  # ranked, then the continuation's stream is the broken part
    result = runner.invoke(app, ["solve", Q, "-m", "smollm2-135m", "--backend", bad_stream_server, *two])
    assert "streamed a line that is not JSON" in one_line_error(result, 1)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def test_doctor_backend_gives_up_on_a_silent_server(silent_server: str) -> None:
    start = time.monotonic()
    result = runner.invoke(app, ["doctor", "--backend", silent_server, "--timeout", "0.5"])
    assert "did not answer within 0.5s" in one_line_error(result, 1)
    assert time.monotonic() - start < 10


def _answering_once_with(reply: bytes) -> Iterator[str]:
    """A socket server that reads each request and answers it with `reply`, then hangs up."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:  # closed at the end of the test
                return
            conn.recv(65536)
            conn.sendall(reply)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def _json_reply(body: bytes) -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


@pytest.mark.parametrize(
    ("reply", "said"),
    [  # the body cut short (Content-Length promises more); not HTTP at all; JSON of the wrong shape
        (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{", "went away"),
        (b"SSH-2.0-OpenSSH_9.6\r\n", "cannot reach the server"),
        (_json_reply(b'{"data": "no list of models"}'), "no tokenize/detokenize endpoint"),
        (_json_reply(b"[1, 2]"), "JSON that is not an object"),
    ],
)
def test_a_server_that_breaks_http_is_one_line(reply: bytes, said: str) -> None:
    for url in _answering_once_with(reply):
        result = runner.invoke(app, ["doctor", "--backend", url, "--timeout", "5"])
        line = one_line_error(result, 1)
        assert said in line and url in line


def test_backend_credentials_are_never_echoed(silent_server: str) -> None:
    url = silent_server.replace("http://", "http://me:hunter2@")
    result = runner.invoke(app, ["solve", Q, "-m", "smollm2-135m", "--backend", url, "--timeout", "0.3"])
    line = one_line_error(result, 1)
    assert "hunter2" not in result.output and "me:" not in line and "127.0.0.1" in line


def test_a_servers_html_error_page_becomes_one_line() -> None:
    page = "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n"
    page += "<h1>502 Bad Gateway</h1>\n</body></html>"
    assert one_line(page) == "502 Bad Gateway 502 Bad Gateway"
    assert one_line('{"error": {"message": "model not loaded", "code": 503}}') == "model not loaded"
    assert len(one_line("x" * 5000)) == 160
