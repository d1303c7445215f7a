"""`marco serve` on loopback with the real small model, driven by the real `openai` client,
raw HTTP for what a client library would refuse to send, and simonw/llm's CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from marco_cli.cli.app import app
from tests.helpers import one_line_error, runner
from tests.servers import free_port, llama_server, start

KEY = "test-key-0123"
MODEL = "smollm2-135m"
QUESTION = "What is 2 + 3?"
MARCO = str(Path(sys.executable).with_name("marco"))
pytestmark = pytest.mark.slow


@dataclass
class Served:
    url: str
    home: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def client(self, key: str | None = KEY, retries: int = 0) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.url + "/v1", api_key=key or "none", max_retries=retries, timeout=300
        )

    def health(self) -> dict[str, object]:
        with urllib.request.urlopen(self.url + "/health", timeout=5) as answer:
            return json.loads(answer.read())

    def marco(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "MARCO_HOME": str(self.home)}
        return subprocess.run([MARCO, *args], env=env, capture_output=True, text=True, check=False)

    def record(self, run_id: object) -> dict[str, object]:
        shown = self.marco("show", str(run_id), "--json")
        assert shown.returncode == 0, shown.stderr
        return json.loads(shown.stdout)


def serve(home: Path, *extra: str) -> Served:
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    log = home / "serve.log"
    env = {**os.environ, "MARCO_HOME": str(home), "NO_COLOR": "1"}
    args = [MARCO, "serve", "-m", MODEL, "--port", str(port), *extra]
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as sink:
        try:
            proc = start(args, url, "/health", env=env, stderr=sink)
        except RuntimeError:
            raise RuntimeError(f"marco serve did not start: {log.read_text()}") from None
    return Served(url, home, proc, log)


def stop(served: Served) -> int:
    served.proc.send_signal(signal.SIGTERM)
    return served.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = serve(tmp_path_factory.mktemp("serve"), "--api-key", KEY, "--queue", "2", "--ctx", "512")
    yield served
    stop(served)


def post(served: Served, body: bytes, key: str | None = KEY) -> tuple[int, dict[str, object]]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(served.url + "/v1/chat/completions", body, headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def ask(model: str = f"{MODEL}:cot", **marco: object) -> dict[str, object]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": QUESTION}],
        "extra_body": {"marco": marco},
    }


def test_a_chat_completion_is_the_search_and_is_in_the_history(server: Served) -> None:
    answer = server.client().chat.completions.create(**ask(MODEL, iterations=2))  # type: ignore[call-overload]
    extension = answer.model_extra["marco"]
    record = server.record(extension["run_id"])
    assert answer.choices[0].message.content == record["answer"] != ""
    assert answer.choices[0].message.model_extra["reasoning_content"] == record["thought"]
    assert answer.usage.completion_tokens == record["tokens"]["generated"] > 0
    assert answer.usage.prompt_tokens > 10
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    assert extension["strategy"] == "mcts" and extension["stopped"] == record["stopped"]
    assert record["settings"]["iterations"] == 2 and record["question"] == QUESTION
    models = [m.id for m in server.client().models.list()]
    assert models[0] == MODEL and f"{MODEL}:cot" in models and f"{MODEL}:vote" in models


def test_a_request_may_ask_the_verifier(server: Served) -> None:
    """`reward: judge` in a request's settings: the served model judges its own rollouts."""
    body = ask(f"{MODEL}:best-of-n", samples=2, reward="judge", max_tokens=48)
    answer = server.client().chat.completions.create(**body)  # type: ignore[call-overload]
    extension = answer.model_extra["marco"]
    record = server.record(extension["run_id"])
    assert record["settings"]["reward"] == "judge"
    assert extension["verifier_tokens"] == record["tokens"]["verifier"]
    judged = [r["judged"] for r in record["rollouts"] if r["answer"]]
    assert all(0.0 <= p <= 1.0 for p in judged) and (record["tokens"]["verifier"] > 0) == bool(judged)


def test_a_stream_gives_reasoning_then_the_answer_then_done(server: Served) -> None:
    stream = server.client().chat.completions.create(stream=True, **ask(MODEL, iterations=2))  # type: ignore[call-overload]
    kinds, thinking, content, final = [], "", "", None
    for chunk in stream:  # the client stops at [DONE]; a missing one would hang or raise
        delta = chunk.choices[0].delta
        reasoning = (delta.model_extra or {}).get("reasoning_content") or ""
        thinking += reasoning
        content += delta.content or ""
        kinds.append("r" if reasoning else "c" if delta.content else "-")
        if chunk.choices[0].finish_reason:
            final = chunk
    record = server.record(final.model_extra["marco"]["run_id"])
    order = "".join(kinds).replace("-", "")
    assert order.startswith("r") and order.endswith("c") and "cr" not in order  # reasoning, then content
    assert content == record["answer"]
    assert "rollout 0 finished" in thinking and "search stopped" in thinking
    assert final.usage.completion_tokens == record["tokens"]["generated"]


def test_errors_are_openai_error_objects_with_their_status(server: Served) -> None:
    assert post(server, b"{not json")[0] == 400
    status, body = post(server, json.dumps({"model": MODEL}).encode())
    assert status == 400 and body["error"]["param"] == "messages"
    assert post(server, json.dumps(ask()["messages"]).encode())[0] == 400  # a list, not an object
    client = server.client()
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.chat.completions.create(**ask("gpt-4"))  # type: ignore[call-overload]
    with pytest.raises(openai.BadRequestError, match="iterations"):
        client.chat.completions.create(**ask(MODEL, iterations=0))  # type: ignore[call-overload]
    with pytest.raises(openai.BadRequestError, match="unknown search option 'threads'"):
        client.chat.completions.create(**ask(MODEL, threads=4))  # type: ignore[call-overload]
    with pytest.raises(openai.BadRequestError, match="longer than the 512-token context"):
        long = {"role": "user", "content": "apples and pears " * 300}
        client.chat.completions.create(model=MODEL, messages=[long])  # type: ignore[list-item]
    with pytest.raises(openai.AuthenticationError):
        server.client(key=None).chat.completions.create(**ask())  # type: ignore[call-overload]
    with pytest.raises(openai.AuthenticationError):
        server.client(key="wrong").models.list()
    assert server.health()["status"] == "ok"  # still serving
    assert KEY not in server.log.read_text()  # the key is never logged


def test_three_concurrent_clients_are_queued_and_all_answered(server: Served) -> None:
    def one(_: int) -> str:
        return server.client().chat.completions.create(**ask()).choices[0].message.content  # type: ignore[call-overload]

    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(one, range(3)))
    assert len(answers) == 3 and all(answers) and len(set(answers)) == 1  # greedy: the same answer


def test_a_full_queue_answers_503_with_retry_after(server: Served) -> None:
    raw = ask(MODEL)
    body = json.dumps({"model": MODEL, "messages": raw["messages"], "marco": {"iterations": 3}}).encode()
    with ThreadPoolExecutor(5) as pool:
        statuses = [status for status, _ in pool.map(lambda _: post(server, body), range(5))]
    assert statuses.count(503) >= 1 and statuses.count(200) >= 3  # 1 running + 2 queued fit


def test_a_client_that_leaves_stops_its_search(server: Served) -> None:
    request = ask(MODEL, strategy="vote", samples=200)  # minutes of sampling, were it not stopped
    earlier = json.loads(server.marco("log", "--json").stdout)
    last_id = earlier[0]["id"] if earlier else 0
    stream = server.client().chat.completions.create(stream=True, **request)  # type: ignore[call-overload]
    for number, _chunk in enumerate(stream):
        if number == 4:
            break
    stream.close()
    deadline = time.time() + 30
    while server.health()["running"] and time.time() < deadline:
        time.sleep(0.2)
    before = server.health()["generated_tokens"]
    latest = earlier
    while (not latest or latest[0]["id"] == last_id) and time.time() < deadline:
        time.sleep(0.2)  # polling: the run is saved once its search has ended
        latest = json.loads(server.marco("log", "--json").stdout)
    record = server.record(latest[0]["id"])
    rollouts = record["rollouts"]
    assert record["stopped"] == "interrupted" and isinstance(rollouts, list) and len(rollouts) < 200
    # nothing decodes after the run is saved (a search left running would keep counting)
    assert server.health()["running"] == 0 and server.health()["generated_tokens"] == before


def test_sigterm_ends_a_request_cleanly_and_saves_its_run(tmp_path: Path) -> None:
    served = serve(tmp_path / "home")
    client = served.client(key=None)
    got: dict[str, object] = {}

    def run() -> None:
        stream = client.chat.completions.create(stream=True, **ask(MODEL, strategy="vote", samples=200))  # type: ignore[call-overload]
        chunks = list(stream)
        got["final"] = next(c for c in chunks if c.choices and c.choices[0].finish_reason)

    thread = threading.Thread(target=run)
    thread.start()
    while not served.health()["generated_tokens"]:
        time.sleep(0.1)
    code = stop(served)
    thread.join(timeout=60)
    assert code in (0, 143)
    summary = got["final"].model_extra["marco"]  # type: ignore[attr-defined]
    assert summary["stopped"] == "interrupted"
    assert served.record(summary["run_id"])["stopped"] == "interrupted"


def test_simonw_llm_through_extra_openai_models(server: Served, tmp_path: Path) -> None:
    user = tmp_path / "llm"
    user.mkdir()
    entry = {
        "model_id": "marco-tiny",
        "model_name": f"{MODEL}:cot",
        "api_base": server.url + "/v1",
        "api_key_name": "marco",
    }
    (user / "extra-openai-models.yaml").write_text(json.dumps([entry]))  # JSON is YAML
    (user / "keys.json").write_text(json.dumps({"marco": KEY}))
    env = {**os.environ, "LLM_USER_PATH": str(user)}
    llm = Path(sys.executable).with_name("llm")
    done = subprocess.run(
        [str(llm), "-m", "marco-tiny", QUESTION],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    direct = server.client().chat.completions.create(**ask()).choices[0].message.content  # type: ignore[call-overload]
    assert done.stdout.strip() == direct.strip()


def test_with_a_backend_searches_run_concurrently(tmp_path: Path, smollm_path: Path) -> None:
    backend, url = llama_server(smollm_path, slots=4)
    served = serve(tmp_path / "home", "--backend", url)
    busiest = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal busiest
        while not done.is_set():
            busiest = max(busiest, int(served.health()["running"]))  # type: ignore[call-overload]
            time.sleep(0.05)

    def one(_: int) -> str:
        request = ask(MODEL, iterations=2)
        return served.client(key=None).chat.completions.create(**request).choices[0].message.content  # type: ignore[call-overload]

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(one, range(3)))
    finally:
        done.set()
        watcher.join()
        stop(served)
        backend.terminate()
        backend.wait(timeout=30)
    assert len(answers) == 3 and all(answers)
    assert busiest >= 2  # not one at a time: the server's 4 slots take them together
    assert "4 searches at a time" in served.log.read_text()


def test_serve_bench_runs_the_questions_and_requests_it_is_given() -> None:
    """benchmarks/serve_bench.py at its smallest: --questions and --requests do what they say."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "serve_bench.py"
    done = subprocess.run(
        [sys.executable, str(script), "--questions", "1", "--requests", "2"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "same answer and tokens: 1/1" in done.stdout
    assert done.stdout.count("(2 requests)") == 3  # 1, 2 and 4 clients


def test_serve_on_a_taken_port_says_so_before_loading_anything(scripted_session) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        line = one_line_error(runner.invoke(app, ["serve", "--port", str(port)]), 2)
    assert f"cannot listen on 127.0.0.1:{port}" in line
    assert not scripted_session  # no engine was opened


def test_a_request_may_rank_a_beam_by_the_served_prm(server: Served, tmp_path: Path) -> None:
    """A served PRM (`--prm`) ranks a request's beam (`value: prm`); a server without one says
    how to start it, as an OpenAI error object."""
    body = {"model": f"{MODEL}:beam", "messages": [{"role": "user", "content": QUESTION}]}
    status, said = post(server, json.dumps(body | {"marco": {"value": "prm"}}).encode())
    assert status == 400 and "--prm MODEL" in json.dumps(said)
    with_prm = serve(tmp_path / "prm", "--ctx", "512", "--prm", MODEL, "--prm-format", "rlhflow")
    try:
        request = ask(f"{MODEL}:beam", value="prm", beams=2, max_tokens=48, granularity="mini-32")
        answer = with_prm.client().chat.completions.create(**request)  # type: ignore[call-overload]
        record = with_prm.record(answer.model_extra["marco"]["run_id"])
        assert record["settings"]["value"] == "prm" and record["tokens"]["verifier"] > 0
        steps = [n for n in record["nodes"] if n["parent"] is not None]
        assert steps and all(0 < n["value"] < 1 for n in steps)
    finally:
        stop(with_prm)
