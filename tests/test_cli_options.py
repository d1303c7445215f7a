"""Every option of solve, translate and bench reaches the search settings or the engine options
with the value given: the engine factory is swapped for the scripted model (no llama.cpp), so
the whole table runs in a few seconds."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import typer.main

from marco_cli.cli.app import app
from tests.helpers import runner

PAGE = Path(tempfile.gettempdir()) / "marco-options-test.html"


# (flags, where the value lands, field, expected value)
SEARCH_FLAGS: list[tuple[list[str], str, Any]] = [
    (["--strategy", "cot"], "strategy", "cot"),
    (["--strategy", "deepconf"], "strategy", "deepconf"),
    (["--strategy", "deepconf-online"], "strategy", "deepconf-online"),
    (["--strategy", "beam"], "strategy", "beam"),
    (["--strategy", "dvts"], "strategy", "dvts"),
    (["--beams", "6"], "beams", 6),
    (["--beam-width", "3"], "beam_width", 3),
    (["--value", "gut"], "value", "gut"),
    (["--aggregate", "min"], "aggregate", "min"),
    (["--max-depth", "12"], "max_depth", 12),
    (["-n", "5"], "iterations", 5),
    (["--iterations", "6"], "iterations", 6),
    (["--granularity", "mini-64"], "granularity", "mini-64"),
    (["--children", "4"], "children", 4),
    (["--root-children", "5"], "root_children", 5),
    (["--first-tokens", "3"], "first_tokens", 3),
    (["--exploration", "0.5"], "exploration", 0.5),
    (["--temperature", "0.3"], "temperature", 0.3),
    (["--rollout-temperature", "0.5"], "rollout_temperature", 0.5),
    (["--samples", "3"], "samples", 3),
    (["--deepconf-keep", "0.5"], "deepconf_keep", 0.5),
    (["--deepconf-window", "16"], "deepconf_window", 16),
    (["--deepconf-warmup", "3"], "deepconf_warmup", 3),
    (["--seed", "42"], "seed", 42),
    (["--max-time", "9.5"], "max_time", 9.5),
    (["--max-tokens", "77"], "max_tokens", 77),
    (["--reward", "paper"], "reward", "paper"),
    (["--select", "reward"], "select", "reward"),
    (["--select", "branch"], "select", "branch"),
    (["--select", "majority"], "select", "majority"),
    (["--select", "reward-vote"], "select", "reward-vote"),
    (["--select", "vote"], "select", "reward-vote"),  # the old name, through the alias table
    (["--select", "answer-branch"], "select", "answer-branch"),
    (["--top-p", "0.8"], "top_p", 0.8),
    (["--top-k", "7"], "top_k", 7),
    (["--min-p", "0.05"], "min_p", 0.05),
    (["--no-greedy-first"], "greedy_first", False),
    (["--greedy-first"], "greedy_first", True),
    (["--step-break", "blank"], "step_break", "blank"),
    (["--rollouts", "all"], "rollouts", "all"),
    (["--stop-confidence", "0.9"], "stop_confidence", 0.9),
    (["--reflection-threshold", "0.4"], "reflection_threshold", 0.4),
    (["--stop-agree", "5"], "stop_agree", 5),
    (["--stop-agree", "0"], "stop_agree", None),
    (["--no-loop-guard"], "loop_guard", False),
    (["--loop-guard"], "loop_guard", True),
    (["--reflection"], "reflection", True),
    (["--no-reflection"], "reflection", False),
    (["--dynamic-reflection"], "dynamic_reflection", True),
    (["--no-dynamic-reflection"], "dynamic_reflection", False),
]
ENGINE_FLAGS: list[tuple[list[str], str, Any]] = [
    (["--gpu-layers", "3"], "gpu_layers", 3),
    (["--cpu"], "cpu", True),
    (["--no-cpu"], "cpu", False),
    (["--ctx", "512"], "ctx", 512),
    (["--threads", "3"], "threads", 3),
    (["-v"], "verbose", True),
    (["--verbose"], "verbose", True),
    (["--backend", "http://127.0.0.1:9"], "backend", "http://127.0.0.1:9"),
    (["--parallel", "4"], "parallel", 4),
    (["--timeout", "5"], "timeout", 5.0),
    (["--repack"], "repack", True),
    (["--no-repack"], "repack", False),
]
OUTPUT_FLAGS: list[tuple[list[str], str, Any]] = [
    (["--hide-thought"], "hide_thought", True),
    (["--no-hide-thought"], "hide_thought", False),
    (["-q"], "quiet", True),
    (["--quiet"], "quiet", True),
    (["-y"], "yes", True),
    (["--yes"], "yes", True),
    (["--no-log"], "no_log", True),
    (["--html", str(PAGE)], "html", PAGE),
]
MODEL_FLAGS = [(["-m", "some-model"], "model", "some-model"), (["--model", "x.gguf"], "model", "x.gguf")]


def invoke(command: str, *args: str, input: str | None = None) -> Any:
    text = ["What is 2 + 2?"] if command != "bench" else []
    result = runner.invoke(app, [command, *text, *args], input=input)
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize("command", ["solve", "translate"])
@pytest.mark.parametrize(("flags", "field", "want"), SEARCH_FLAGS)
def test_search_flags_reach_the_search_config(
    scripted_session, command: str, flags: list[str], field: str, want: Any
) -> None:
    record = json.loads(invoke(command, *flags, "--json", "--no-log").stdout)
    assert record["settings"][field] == want


SESSION_CASES = [
    (command, *flag)
    for command in ("solve", "translate", "bench")
    for flag in ENGINE_FLAGS + OUTPUT_FLAGS + MODEL_FLAGS
    if not (command == "bench" and flag[1] in ("hide_thought", "quiet", "no_log", "html"))  # not bench's
]


@pytest.mark.parametrize(("command", "flags", "field", "want"), SESSION_CASES)
def test_engine_output_and_model_flags_reach_the_session(
    scripted_session, tmp_path: Path, command: str, flags: list[str], field: str, want: Any
) -> None:
    extra = _bench_args(tmp_path) if command == "bench" else ["--no-log"]
    invoke(command, *flags, *extra)
    options, _, _ = scripted_session[0]
    groups = {"model": options, **{f: options.engine for f in ("gpu_layers", "cpu", "ctx", "threads")}}
    groups |= {f: options.engine for f in ("verbose", "backend", "parallel", "timeout", "repack")}
    groups |= {f: options.output for f in ("hide_thought", "quiet", "yes", "no_log", "html")}
    assert getattr(groups[field], field) == want


def _bench_args(tmp_path: Path) -> list[str]:
    data = tmp_path / "tiny.tsv"
    data.write_text("What is 2 + 2?\t4\nWhat is 3 + 1?\t4\nWhat is 1 + 1?\t2\n", encoding="utf-8")
    return [str(data), "--out", str(tmp_path / "out"), "--json"]


BENCH_SEARCH_FLAGS = [f for f in SEARCH_FLAGS if f[1] not in ("strategy", "granularity")]


@pytest.mark.parametrize(("flags", "field", "want"), BENCH_SEARCH_FLAGS)
def test_search_flags_reach_every_bench_config(
    scripted_session, tmp_path: Path, flags: list[str], field: str, want: Any
) -> None:
    invoke("bench", *flags, *_bench_args(tmp_path))
    settings = json.loads((tmp_path / "out" / "run.json").read_text())["settings"]
    assert settings and all(config[field] == want for config in settings.values())


def test_bench_strategy_granularity_limit_offset(scripted_session, tmp_path: Path) -> None:
    args = _bench_args(tmp_path)
    summary = json.loads(
        invoke(
            "bench",
            *args,
            "--strategy",
            "cot,mcts",
            "--granularity",
            "step",
            "--granularity",
            "mini-32",
            "--limit",
            "1",
            "--offset",
            "1",
            "-n",
            "2",
        ).stdout
    )
    assert set(summary["configs"]) == {"cot", "mcts/step", "mcts/mini-32"} and summary["problems"] == 1
    rows = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert {r["index"] for r in rows} == {1} and all(r["question"] == "What is 3 + 1?" for r in rows)
    assert all(r["correct"] for r in rows)  # the scripted answer 4 is right for problem 1


def test_translate_languages_reach_the_prompt(scripted_session) -> None:
    invoke("translate", "--to", "French", "--from", "Japanese", "--no-log")
    content = scripted_session[0][2].messages[0][0]["content"]
    assert "into French" in content and "from Japanese" in content


def test_every_engine_option_has_its_keyword() -> None:
    assert {field for _, field, _ in ENGINE_FLAGS} == set(ENGINE_KEYWORDS)


def test_every_option_is_in_the_table() -> None:
    """A new option must be added to this table (and so proven to land somewhere)."""
    covered = {f[0][0] for f in SEARCH_FLAGS + ENGINE_FLAGS + OUTPUT_FLAGS + MODEL_FLAGS}
    covered |= {"--json", "--help", "--help-all", "--to", "--from", "--strategy", "--granularity"}
    covered |= {"--limit", "--offset", "--out", "--jobs"}
    covered |= {
        "--verifier",
        "--verifier-backend",
        "--prm",
        "--prm-backend",
        "--prm-format",
    }  # test_verifier_backend_opens_a_second_engine, test_verifier.py; test_prm.py
    group = typer.main.get_command(app)
    for name in ("solve", "translate", "bench"):
        for param in group.get_command(typer.Context(group), name).params:  # type: ignore[attr-defined]
            if param.param_type_name == "option":
                assert set(param.opts) <= covered | set(param.secondary_opts), (name, param.opts)
                assert set(param.secondary_opts) <= covered, (name, param.secondary_opts)


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("marco ")


@pytest.mark.parametrize(
    "flags", [["--exploration", "inf"], ["--temperature", "nan"], ["--gpu-layers", "-1"], ["--select", "x"]]
)
def test_bad_values_are_usage_errors(scripted_session, flags: list[str]) -> None:
    result = runner.invoke(app, ["solve", "What is 2 + 2?", *flags, "--no-log"])
    assert result.exit_code == 2 and not scripted_session


def test_bench_jobs_keep_problems_in_flight_only_against_a_server(scripted_session, tmp_path: Path) -> None:
    refused = runner.invoke(app, ["bench", *_bench_args(tmp_path), "--jobs", "2"])
    assert refused.exit_code == 2 and "--jobs needs --backend" in refused.stderr
    rows = {}
    for jobs in ("1", "3"):
        args = [str(tmp_path / "tiny.tsv"), "--out", str(tmp_path / f"out{jobs}"), "--strategy", "cot"]
        ran = invoke("bench", *args, "--backend", "http://127.0.0.1:9", "--jobs", jobs)
        assert ran.exit_code == 0
        lines = (tmp_path / f"out{jobs}" / "results.jsonl").read_text().splitlines()
        rows[jobs] = sorted((r["index"], r["answer"]) for r in map(json.loads, lines))
    assert rows["1"] == rows["3"] and len(rows["1"]) == 3


# engine flag -> (the engine class it reaches, the keyword it arrives as)
ENGINE_KEYWORDS = {
    "gpu_layers": ("local", "gpu_layers"),
    "cpu": ("local", "cpu"),
    "ctx": ("local", "ctx"),
    "threads": ("local", "threads"),
    "verbose": ("local", "verbose"),
    "parallel": ("local", "parallel"),
    "repack": ("local", "repack"),
    "backend": ("remote", "url"),
    "timeout": ("remote", "timeout"),
}


@pytest.fixture
def stub_engines(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, Any]]:
    """The real `open_engine` with the engine classes swapped for scripted stand-ins that
    record the keywords they were built with: a keyword dropped on the way fails the table."""
    from marco_cli.engine import llama, ollama, remote
    from marco_cli.engine.repack import Verdict
    from tests.scripted import ScriptedEngine

    built: dict[str, dict[str, Any]] = {}

    def stand_in(kind: str, **kwargs: Any) -> ScriptedEngine:
        built[kind] = kwargs
        engine = ScriptedEngine(actions={}, rollouts={}, default_rollout=("<Output>4</Output>", 0.8))
        engine.messages = []
        return engine

    class LocalStub(ScriptedEngine):
        def __new__(cls, path: Path, **kwargs: Any) -> Any:  # type: ignore[misc]
            engine = stand_in("local", path=path, **kwargs)
            engine.repack_verdict = Verdict(True, "cpu", "test")  # type: ignore[attr-defined]
            return engine

    class RemoteStub(ScriptedEngine):
        model, root = "served", "http://127.0.0.1:9"

        def __new__(cls, url: str, **kwargs: Any) -> Any:  # type: ignore[misc]
            engine = stand_in("remote", url=url, **kwargs)
            engine.model, engine.root = "served", url  # type: ignore[attr-defined]
            return engine

    monkeypatch.setattr(llama, "Engine", LocalStub)
    monkeypatch.setattr(remote, "RemoteEngine", RemoteStub)
    monkeypatch.setattr(ollama, "RemoteEngine", RemoteStub)  # what the factory calls for a non-Ollama server
    return built


@pytest.mark.parametrize(("flags", "field", "want"), ENGINE_FLAGS)
def test_engine_flags_reach_the_engine_through_the_real_factory(
    stub_engines: dict[str, dict[str, Any]], flags: list[str], field: str, want: Any
) -> None:
    kind, keyword = ENGINE_KEYWORDS[field]
    remote = ["--backend", "http://127.0.0.1:9"] if kind == "remote" and field != "backend" else []
    args = ["solve", "What is 2 + 2?", "-m", "smollm2-135m", *flags, *remote, "--no-log"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert stub_engines[kind][keyword] == want
    if field == "parallel":
        assert stub_engines[kind]["n_seq"] == want  # one KV stream per branch decoded together


def test_verifier_backend_opens_a_second_engine_through_the_real_factory(
    stub_engines: dict[str, dict[str, Any]],
) -> None:
    """The search in-process, its verifier on a server: two engines, each with its own settings."""
    args = ["solve", "What is 2 + 2?", "-m", "smollm2-135m", "--reward", "judge", "--ctx", "512"]
    result = runner.invoke(app, [*args, "--verifier-backend", "http://127.0.0.1:7", "--no-log"])
    assert result.exit_code == 0, result.output
    assert stub_engines["local"]["ctx"] == 512 and stub_engines["remote"]["url"] == "http://127.0.0.1:7"
