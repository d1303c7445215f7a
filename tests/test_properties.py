"""Every parser that reads outside input, under Hypothesis: the request body and its `marco`
extension, the remote engine's event and SSE readers, dataset files, `models.yaml` overrides,
model specs, saved records, result rows and history rows. Each property: the parser returns
its value or raises its own one-line error (never another exception: a traceback), within the
deadline (never a hang), and the message names the input where it has a name.

Profiles (tests/conftest.py): `ci` (the default: 200 examples each, derandomized, so CI is
deterministic) and `dev` (HYPOTHESIS_PROFILE=dev: 2,000 examples, random) for local runs."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marco_cli.cli.option_table import SEARCH
from marco_cli.cli.serve import configurer
from marco_cli.engine.remote import RemoteEngine
from marco_cli.engine.transport import BackendError, Transport
from marco_cli.errors import MarcoError
from marco_cli.record.record import Record
from marco_cli.record.results import ResultRow
from marco_cli.record.saved import RecordError
from marco_cli.runs import bench, history
from marco_cli.search.config import SearchConfig
from marco_cli.server import protocol
from marco_cli.server.protocol import ApiError
from marco_cli.store.registry import load_registry, parse_registry, parse_spec
from tests.servers import QuietHTTPServer

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=6)


def _one_line(message: str) -> None:
    assert message and "\n" not in message.strip() and "Traceback" not in message, message


# the request body and its marco extension --------------------------------------------------
chat_like = st.fixed_dictionaries(
    {},
    optional={
        "model": st.text(max_size=12) | json_values,
        "messages": st.lists(
            st.fixed_dictionaries(
                {}, optional={"role": st.sampled_from(["user", "system", "tool", ""]), "content": json_values}
            ),
            max_size=3,
        )
        | json_values,
        "stream": json_values,
        "n": json_values,
        "temperature": json_values,
        "max_tokens": json_values,
        "seed": json_values,
        "marco": st.dictionaries(st.sampled_from([*SEARCH, "threads", "x"]), json_values, max_size=3)
        | json_values,
    },
)


@given(st.binary(max_size=200) | chat_like.map(lambda body: json.dumps(body).encode()))
def test_a_request_body_is_a_chat_request_or_a_400(raw: bytes) -> None:
    try:
        protocol.parse_chat(protocol.parse_body(raw))
    except ApiError as exc:
        assert exc.status in (400, 413)
        _one_line(exc.message)


DEFAULTS = {name: default for name, (_, default) in SEARCH.items()}
CONFIGURE = configurer(DEFAULTS)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from([*SEARCH, "threads"]), json_values, max_size=4))
def test_a_requests_search_settings_are_a_config_or_a_400(settings_: dict[str, object]) -> None:
    request = protocol.ChatRequest("m", [{"role": "user", "content": "2 + 2?"}], settings=settings_)
    try:
        assert isinstance(CONFIGURE(request, None), SearchConfig)
    except ApiError as exc:
        assert exc.status == 400
        _one_line(exc.message)


# the remote engine's readers ---------------------------------------------------------------
def _engine(native: bool) -> RemoteEngine:
    """The reader's state without a server: `_read_event` uses only these fields."""
    engine = RemoteEngine.__new__(RemoteEngine)
    engine.native = native
    engine.http = Transport("http://127.0.0.1:9", None, None, 1.0, 0, 0.0)
    return engine


@given(st.booleans(), json_objects)
def test_an_event_is_pieces_or_one_backend_error(native: bool, event: dict[str, object]) -> None:
    try:
        pieces, _, evaluated = _engine(native)._read_event(event, None, 0)
    except BackendError as exc:
        _one_line(str(exc))
        return
    assert isinstance(evaluated, int) and evaluated >= 0
    for piece in pieces:  # a NaN would reach every reward and answer rule downstream
        assert not any(math.isnan(v) or v == math.inf for v in (*piece.top, piece.logprob or 0.0))


class _Replay:
    """A loopback server answering every POST with the bytes the example set, as an event stream."""

    def __init__(self) -> None:
        self.body = b""
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(replay.body)))
                self.end_headers()
                self.wfile.write(replay.body)

        self.httpd = QuietHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture(scope="module")
def replay() -> Iterator[_Replay]:
    server = _Replay()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


sse_lines = st.lists(
    st.one_of(
        json_values.map(lambda v: b"data: " + json.dumps(v).encode()),
        st.binary(max_size=30),
        st.just(b"data: [DONE]"),
        st.text(max_size=20).map(lambda t: b"data: " + t.encode()),
    ),
    max_size=6,
).map(lambda lines: b"\n\n".join(lines))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(sse_lines)
def test_a_stream_is_json_objects_or_one_backend_error(replay: _Replay, body: bytes) -> None:
    replay.body = body
    transport = Transport(replay.url, None, None, 5.0, 0, 0.0)
    try:
        for event in transport.events("/completion", {}):
            assert isinstance(event, dict)
    except BackendError as exc:
        _one_line(str(exc))


# files a user hands marco --------------------------------------------------------------------
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from([".tsv", ".jsonl"]), st.text(max_size=200))
def test_a_dataset_file_is_problems_or_one_line_naming_it(tmp_path: Path, suffix: str, text: str) -> None:
    path = tmp_path / f"data{suffix}"
    path.write_text(text, encoding="utf-8")
    try:
        problems = bench.load_dataset(path)
        assert problems and all(p.question for p in problems)
    except MarcoError as exc:
        _one_line(str(exc))
        assert str(path) in str(exc)


yaml_like = st.one_of(
    st.text(max_size=200),
    st.dictionaries(st.sampled_from(["models", "x"]), json_values, max_size=2).map(json.dumps),
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.dictionaries(st.sampled_from(["sources", "context_length", "aliases", "style", "x"]), json_values),
        max_size=2,
    ).map(lambda models: json.dumps({"models": models})),
)


@given(yaml_like)
def test_a_models_yaml_override_is_a_registry_or_one_line_naming_it(text: str) -> None:
    try:
        parse_registry(text, "the-user-file.yaml")
    except MarcoError as exc:
        _one_line(str(exc))
        assert "the-user-file.yaml" in str(exc)


REGISTRY = load_registry()


@given(
    st.one_of(
        st.text(max_size=60),
        st.text(max_size=60).map(lambda t: "hf:" + t),
        st.text(max_size=40).map(lambda t: t + ".gguf"),
        st.lists(st.text(max_size=12), max_size=4).map(lambda parts: "hf:" + "/".join(parts)),
        st.text(max_size=60).map(lambda t: "ollama:" + t),
        st.lists(st.text(max_size=12), max_size=4).map(lambda parts: "lmstudio:" + "/".join(parts)),
    )
)
def test_a_model_spec_is_a_spec_or_one_short_line(text: str) -> None:
    try:
        parse_spec(text, REGISTRY)
    except MarcoError as exc:
        _one_line(str(exc))
        assert len(str(exc)) < 300


# what marco saved ----------------------------------------------------------------------------
@given(json_objects)
def test_a_saved_record_is_a_record_or_one_record_error(data: dict[str, object]) -> None:
    try:
        Record.from_json(data)
    except RecordError as exc:
        _one_line(str(exc))


@given(json_objects)
def test_a_result_row_is_a_row_or_one_record_error(data: dict[str, object]) -> None:
    try:
        ResultRow.from_json(data)
    except RecordError as exc:
        _one_line(str(exc))


@given(st.text(max_size=200) | json_objects.map(json.dumps))
def test_a_history_row_is_a_record_or_damaged(text: str) -> None:
    assert history._parse(text) is None or isinstance(history._parse(text), Record)
