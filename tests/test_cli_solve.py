"""`marco solve`, `translate`, `log` and `show` through Typer's CliRunner on the real model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from marco_cli.cli.app import app
from tests.helpers import no_traceback, runner
from tests.scripted import ScriptedEngine, ScriptedModel

FAST = ["-m", "smollm2-135m", "-n", "2", "--granularity", "mini-32", "--max-tokens", "48"]
QUESTION = "What is 2 + 3?"


def solve(*args: str, input: str | None = None) -> object:
    return runner.invoke(app, ["solve", *args], input=input)


@pytest.mark.slow
def test_argument_stdin_and_dash_give_the_same_answer() -> None:
    by_arg = solve(QUESTION, *FAST, "--no-log")
    assert by_arg.exit_code == 0, by_arg.output
    by_stdin = solve(*FAST, "--no-log", input=QUESTION + "\n")
    by_dash = solve("-", *FAST, "--no-log", input=QUESTION)
    assert by_arg.stdout == by_stdin.stdout == by_dash.stdout
    record = json.loads(solve(QUESTION, *FAST, "--no-log", "--json").stdout)
    assert by_arg.stdout == record["answer"] + "\n"  # stdout carries only the answer


@pytest.mark.slow
def test_json_record_schema() -> None:
    result = solve(QUESTION, *FAST, "--json", "--seed", "7")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    for key in (
        "schema",
        "question",
        "model",
        "settings",
        "answer",
        "thought",
        "response",
        "confidence",
        "chosen_rollout",
        "path",
        "nodes",
        "rollouts",
        "rollout_stats",
        "stopped",
        "iterations",
        "tokens",
        "seconds",
        "run_id",
    ):
        assert key in record, key
    assert record["question"] == QUESTION and record["settings"]["seed"] == 7
    assert record["model"]["name"] == "smollm2-135m" and record["model"]["quant"] == "Q4_1"
    assert record["model"]["file"].endswith(".gguf")
    node_keys = {
        "id",
        "parent",
        "depth",
        "text",
        "tokens",
        "confidence",
        "visits",
        "value",
        "reflection",
        "terminal",
        "refuted",
    }
    assert all(set(n) == node_keys for n in record["nodes"])
    # every scored rollout passed the root once (a child that ends the answer when the expansion
    # makes it is scored then, so visits can outnumber iterations)
    assert record["nodes"][0]["visits"] == len(record["rollouts"]) >= record["iterations"] >= 1
    rollout_keys = {"id", "node", "tokens", "reward", "confidence", "answer", "finished", "status", "text"}
    for r in record["rollouts"]:  # answer_confidence: where a finished answer was found in the text
        assert set(r) - {"answer_confidence"} == rollout_keys | {"trace_confidence"}
        assert r["trace_confidence"] > 0  # the in-process engine scores every rollout's whole text
        assert ("answer_confidence" in r) <= (r["status"] == "finished" and bool(r["answer"]))
    assert any("answer_confidence" in r for r in record["rollouts"] if r["answer"])
    stats = record["rollout_stats"]
    assert sum(stats.values()) == len(record["rollouts"])
    assert stats["finished"] == sum(r["status"] == "finished" for r in record["rollouts"])
    assert record["schema"] == 4
    assert record["settings"]["parallel"] == 1 and record["settings"]["threads"] >= 1
    chosen = record["rollouts"][record["chosen_rollout"]]
    assert chosen["answer"] == record["answer"] and chosen["reward"] == record["confidence"]
    assert record["path"][0] == 0 and record["path"][-1] == chosen["node"]
    assert record["tokens"]["generated"] > 0 and record["tokens"]["evaluated"] > 0


# Where each option lands is the scripted table's job (test_cli_options.py, through the real
# engine factory); these real-model runs only check that paths the scripted model cannot take
# (sampled answers, reflection branches) answer end to end on llama.cpp.
@pytest.mark.slow
@pytest.mark.parametrize(
    "extra",
    [
        ["--strategy", "vote", "--samples", "3"],
        ["--reflection", "--dynamic-reflection", "--select", "reward"],
    ],
)
def test_option_groups(extra: list[str]) -> None:
    result = solve(QUESTION, *FAST, "--json", "--no-log", *extra)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    settings = record["settings"]
    if "--strategy" in extra:
        assert settings["strategy"] == extra[extra.index("--strategy") + 1]
    if "--reflection" in extra:
        assert settings["reflection"] and settings["dynamic_reflection"] and settings["select"] == "reward"
    assert record["answer"] == record["rollouts"][record["chosen_rollout"]]["answer"]


def test_usage_errors_exit_2() -> None:
    empty = solve("   ", "-m", "smollm2-135m")
    assert empty.exit_code == 2 and "empty" in empty.stderr
    no_input = solve(*FAST, input="")
    assert no_input.exit_code == 2 and "the prompt is empty" in no_input.stderr
    bad = solve(QUESTION, "-m", "smollm2-135m", "--strategy", "magic")
    assert bad.exit_code == 2 and "'magic' is not one of 'mcts', 'cot'" in bad.stderr
    zero = solve(QUESTION, "--iterations", "0")
    assert zero.exit_code == 2 and "'--iterations'" in zero.stderr and zero.stderr.count("\n") == 1


def test_model_errors_are_one_line(tmp_path: Path) -> None:
    unknown = solve(QUESTION, "-m", "gpt-17")
    assert unknown.exit_code == 1 and unknown.stderr.count("\n") == 1 and "unknown model" in unknown.stderr
    missing = solve(QUESTION, "-m", str(tmp_path / "nope.gguf"))
    assert missing.exit_code == 1 and "model file not found" in missing.stderr
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"JUNK" * 100)
    bad = solve(QUESTION, "-m", str(junk))
    assert bad.exit_code == 1 and "not a GGUF" in bad.stderr
    absent = solve(QUESTION, "-m", "qwen2.5-1.5b")  # not downloaded, not a terminal: no prompt
    assert absent.exit_code == 1 and "marco pull qwen2.5-1.5b" in absent.stderr
    assert "Traceback" not in unknown.output + missing.output + bad.output + absent.output


@pytest.mark.slow
def test_prompt_longer_than_the_context() -> None:
    result = solve("word " * 3000, "-m", "smollm2-135m", "--ctx", "512")
    assert result.exit_code == 2 and "longer than the 512-token context" in result.stderr  # a usage error


@pytest.mark.slow
def test_translate_argument_and_multiline_stdin() -> None:
    one = runner.invoke(app, ["translate", "这个鞋拥有踩屎感", *FAST, "--no-log"])
    assert one.exit_code == 0, one.output
    assert one.stdout.strip()
    lines = runner.invoke(
        app,
        ["translate", "--to", "French", *FAST, "--no-log"],
        input="good morning\n\nthank you very much\nsee you later\n",
    )
    assert lines.exit_code == 0, lines.output
    out = lines.stdout.split("\n")
    assert len(out) == 5 and out[1] == "" and out[-1] == ""  # one line out per line in, in order
    doc = json.loads(
        runner.invoke(app, ["translate", *FAST, "--no-log", "--json"], input="hola\nadiós\n").stdout
    )
    assert [r["question"] for r in doc["lines"]] == ["hola", "adiós"]
    assert "Translate the following text into English" not in doc["lines"][0]["question"]


@pytest.mark.slow
def test_history_log_and_show() -> None:
    first = json.loads(solve(QUESTION, *FAST, "--json").stdout)
    second = json.loads(solve("What is 10 - 4?", *FAST, "--json", "--strategy", "cot").stdout)
    listed = runner.invoke(app, ["log", "--json"])
    rows = json.loads(listed.stdout)
    assert [r["id"] for r in rows] == [second["run_id"], first["run_id"]]
    assert rows[1]["answer"] == first["answer"] and rows[0]["strategy"] == "cot"
    table = runner.invoke(app, ["log"], env={"COLUMNS": "160"})
    assert table.exit_code == 0 and "cot" in table.stdout
    shown = runner.invoke(app, ["show", str(first["run_id"])], env={"COLUMNS": "160"})
    assert shown.exit_code == 0 and first["answer"].split("\n")[0][:40] in shown.stdout
    assert "Output" in shown.stdout and "n=" in shown.stdout
    again = json.loads(runner.invoke(app, ["show", str(first["run_id"]), "--json"]).stdout)
    assert again == {k: v for k, v in first.items() if k != "run_id"}
    missing = runner.invoke(app, ["show", "999"])
    assert missing.exit_code == 2 and "no run 999" in missing.stderr  # an id not in the history: usage
    solve(QUESTION, *FAST, "--no-log")
    assert len(json.loads(runner.invoke(app, ["log", "--json"]).stdout)) == 2


@pytest.mark.slow
def test_parallel_decodes_siblings_together_and_changes_nothing() -> None:
    """--parallel 4 reaches the local engine: sibling branches share decodes (-v counts them),
    and the record equals --parallel 1's for the same seed."""
    args = [QUESTION, "-m", "smollm2-135m", "-n", "4", "--children", "3", "--granularity", "mini-32"]
    args += ["--max-tokens", "96", "--ctx", "1024", "--json", "--no-log", "-v"]
    one, four = solve(*args, "--parallel", "1"), solve(*args, "--parallel", "4")
    assert one.exit_code == 0 and four.exit_code == 0, four.output
    assert "3 branches: " in four.stderr and "3 branches" not in one.stderr
    a, b = json.loads(one.stdout), json.loads(four.stdout)
    assert a["settings"]["parallel"] == 1 and b["settings"]["parallel"] == 4
    assert [n["text"] for n in a["nodes"]] == [n["text"] for n in b["nodes"]]
    assert [r["text"] for r in a["rollouts"]] == [r["text"] for r in b["rollouts"]]
    rewards = [r["reward"] for r in b["rollouts"]]
    assert [r["reward"] for r in a["rollouts"]] == pytest.approx(rewards, abs=1e-5)
    assert a["answer"] == b["answer"] and a["path"] == b["path"]


Q = "What is 2 + 2?"


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


TWO_PLUS_TWO = "What is 2 + 2?"


def test_translate_keeps_one_line_out_per_line_in_when_a_line_fails(scripted_session) -> None:
    text = "hola\n\nTOO LONG line\nadios\n"
    plain = runner.invoke(app, ["translate", "-", "--no-log"], input=text)
    no_traceback(plain)
    assert plain.exit_code == 1 and plain.stdout == "4\n\n\n4\n"
    assert "line 3: the prompt is 9999 tokens" in plain.stderr and "1 of 4 lines failed" in plain.stderr
    as_json = runner.invoke(app, ["translate", "-", "--no-log", "--json"], input=text)
    lines = json.loads(as_json.stdout)["lines"]
    assert as_json.exit_code == 1 and len(lines) == 4
    assert lines[1]["skipped"] == "empty line" and "9999 tokens" in lines[2]["failed"]
    assert [entry["answer"] for entry in lines] == ["4", "", "", "4"]


def test_interrupt_before_any_answer_says_so(scripted_session, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ScriptedModel, "generate_many", interrupted)
    result = runner.invoke(app, ["solve", TWO_PLUS_TWO, "--no-log"])
    assert result.exit_code == 130 and "no answer had finished yet" in result.stderr
    assert "best answer so far is shown" not in result.stderr
