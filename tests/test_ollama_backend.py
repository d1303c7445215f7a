"""`--backend` against Ollama's server: detected by `/api/version`, searched over its native
`/api/generate` (raw prompts, top-5 log-probabilities, a seed), against tests/fake_ollama.py
(Ollama's shapes, recorded from its source, with a scripted model); and once against a real
`ollama` binary where one is on PATH (skipped otherwise)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from marco_cli.cli.app import app
from tests.fake_ollama import FakeOllama, expected_confidence
from tests.helpers import one_line_error, runner

Q = "What is 2 + 3?"


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    fake = FakeOllama().start()
    yield fake
    fake.stop()


def solve(fake: FakeOllama, *extra: str) -> object:
    args = ["solve", Q, "--backend", fake.url, "-m", "ollama:smollm2:135m", "--max-tokens", "64", "--json"]
    return runner.invoke(app, [*args, *extra])


def test_a_search_over_ollama_answers_with_exact_confidences(ollama: FakeOllama) -> None:
    result = solve(ollama, "-n", "2", "--first-tokens", "0", "--seed", "7")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["answer"] == "5" and record["model"]["origin"] == f"remote {ollama.url}"
    chosen = next(r for r in record["rollouts"] if r["id"] == record["chosen_rollout"])
    assert chosen["confidence"] == pytest.approx(expected_confidence())  # Marco-o1's c_i, top 5
    sent = [r for r in ollama.requests if r.get("stream") is not False]
    assert sent and all(r["raw"] is True and r["logprobs"] is True and r["top_logprobs"] == 5 for r in sent)
    assert all(r["model"] == "smollm2:135m" and r["options"]["seed"] is not None for r in sent)
    assert str(sent[0]["prompt"]).startswith("<|im_start|>system\n")  # marco's ChatML, sent raw


def test_first_token_branching_works_over_ollama(ollama: FakeOllama) -> None:
    result = solve(ollama, "-n", "4", "--first-tokens", "4")  # the scripted model has 5 alternatives
    assert result.exit_code == 0, result.output
    ranking = [r for r in ollama.requests if r.get("stream") is False]
    assert ranking and ranking[0]["top_logprobs"] == 5 and ranking[0]["options"]["num_predict"] == 1
    assert json.loads(result.stdout)["rollouts"]


def test_more_first_tokens_than_ollama_gives_is_one_line(ollama: FakeOllama) -> None:
    line = one_line_error(solve(ollama, "--first-tokens", "25"), 1)
    assert "Ollama gives at most 20 alternatives" in line


@pytest.mark.parametrize("command", [["solve", Q, "-m", "smollm2:135m"], ["doctor"]])
def test_an_ollama_too_old_for_logprobs_is_one_line_naming_the_version(
    ollama: FakeOllama, command: list[str]
) -> None:
    ollama.version = "0.12.3"
    line = one_line_error(runner.invoke(app, [*command, "--backend", ollama.url]), 1)
    assert "Ollama 0.12.3" in line and "needs Ollama 0.12.11 or newer" in line


def test_a_model_ollama_does_not_have_lists_the_close_ones(ollama: FakeOllama) -> None:
    line = one_line_error(runner.invoke(app, ["solve", Q, "--backend", ollama.url, "-m", "marco-o2"]), 1)
    assert "has no model 'marco-o2'" in line and "close: marco-o1:latest" in line and "ollama pull" in line


def test_an_ollama_that_returns_no_logprobs_is_one_line(ollama: FakeOllama) -> None:
    ollama.logprobs = False
    line = one_line_error(solve(ollama, "--first-tokens", "0"), 1)
    assert "no per-token logprobs" in line


def test_doctor_reports_ollama_like_any_backend(ollama: FakeOllama) -> None:
    result = runner.invoke(app, ["doctor", "--backend", ollama.url, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["server"] == "Ollama 0.13.1" and report["logprobs"] is True


@pytest.mark.skipif(
    shutil.which("ollama") is None, reason="no `ollama` binary on PATH (it cannot be installed here)"
)
def test_against_a_real_ollama_when_one_is_installed(tmp_path, smollm_path) -> None:  # pragma: no cover
    """Serves the small GGUF through a real Ollama (created from a Modelfile) and searches it."""
    from tests.servers import free_port, start

    port = free_port()
    env = {
        "OLLAMA_HOST": f"127.0.0.1:{port}",
        "OLLAMA_MODELS": str(tmp_path / "models"),
        "PATH": "/usr/bin:/bin",
    }
    url = f"http://127.0.0.1:{port}"
    proc = start([shutil.which("ollama") or "ollama", "serve"], url, "/api/version", env=env)
    try:
        (tmp_path / "Modelfile").write_text(f"FROM {smollm_path}\n")
        subprocess.run(
            ["ollama", "create", "smollm2-test", "-f", str(tmp_path / "Modelfile")], env=env, check=True
        )
        result = runner.invoke(app, ["solve", Q, "--backend", url, "-m", "smollm2-test", "-n", "2", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["rollouts"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
