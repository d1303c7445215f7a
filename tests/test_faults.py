"""Nothing lost, nothing hidden: every fault around a search ends in one clear line and a known
exit code, and the answer survives. The engine is the scripted model (see conftest.py) except
where a case needs llama.cpp itself."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from marco_cli.cli import app
from marco_cli.cli.history import log_table
from marco_cli.engine.wire import one_line
from marco_cli.record.record import Record
from marco_cli.runs import history
from marco_cli.runs.history import RunRow
from marco_cli.search import events as ev
from marco_cli.search.config import SearchConfig
from marco_cli.search.mcts import Search
from marco_cli.ui.tree_view import TreeSnapshot, render_tree, summary_line
from tests.helpers import runner
from tests.scripted import ScriptedModel

MARCO = str(Path(sys.executable).with_name("marco"))
QUESTION = "What is 2 + 2?"


def no_traceback(result) -> None:
    assert ("Traceback" not in result.output and result.exception is None) or isinstance(
        result.exception, SystemExit
    ), result.output


def test_a_corrupt_history_costs_no_answer(scripted_session, isolated_home: Path) -> None:
    (isolated_home / "history.db").write_bytes(b"this is not a database" * 100)
    result = runner.invoke(app, ["solve", QUESTION, "--json"])
    no_traceback(result)
    assert result.exit_code == 0 and json.loads(result.stdout)["answer"] == "4"
    assert "warning:" in result.stderr and "cannot be used" in result.stderr
    kept = list(isolated_home.glob("unsaved-run-*.json"))
    assert len(kept) == 1 and str(kept[0]) in result.stderr.replace("\n", "")
    assert json.loads(kept[0].read_text())["answer"] == "4"
    for command in (["log"], ["show", "1"]):
        broken = runner.invoke(app, command)
        no_traceback(broken)
        assert broken.exit_code == 1 and "move it aside" in broken.stderr


def test_an_unwritable_history_keeps_the_record_aside(scripted_session, isolated_home: Path) -> None:
    (isolated_home / "history.db").mkdir()  # sqlite cannot open it (as root, chmod would not stop it)
    result = runner.invoke(app, ["solve", QUESTION])
    no_traceback(result)
    assert result.exit_code == 0 and result.stdout == "4\n"
    assert "unable to open database file" in result.stderr and list(isolated_home.glob("unsaved-run-*.json"))


def test_a_locked_history_waits_then_keeps_the_record_aside(
    scripted_session, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history, "LOCK_TIMEOUT_S", 0.3)
    history.save("solve", Record.from_json({"settings": {"strategy": "cot"}, "question": "q", "answer": "a"}))
    holder = sqlite3.connect(isolated_home / "history.db")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        start = time.monotonic()
        result = runner.invoke(app, ["solve", QUESTION])
        waited = time.monotonic() - start
    finally:
        holder.rollback()
        holder.close()
    assert result.exit_code == 0 and result.stdout == "4\n" and waited >= 0.3
    assert "locked by another marco process" in result.stderr and list(
        isolated_home.glob("unsaved-run-*.json")
    )


def test_non_utf8_stdin_and_arguments_are_usage_errors(scripted_session) -> None:
    result = runner.invoke(app, ["solve", "-"], input=b"\xff\xfe bad")
    no_traceback(result)
    assert result.exit_code == 2 and "stdin: byte 0 is not UTF-8" in result.stderr
    latin1 = subprocess.run([MARCO, "solve", b"caf\xe9 au lait?"], capture_output=True, text=True)
    assert latin1.returncode == 2 and "the argument: byte 3 is not UTF-8" in latin1.stderr
    assert "Traceback" not in latin1.stderr and not scripted_session


def test_non_utf8_models_yaml_is_reported_and_doctor_still_runs(isolated_home: Path) -> None:
    (isolated_home / "models.yaml").write_bytes(b"models:\n  caf\xe9: {}\n")
    listed = runner.invoke(app, ["models"])
    no_traceback(listed)
    assert listed.exit_code == 1 and "byte 13 is not UTF-8" in listed.stderr
    doctor = runner.invoke(app, ["doctor", "--json"])
    assert doctor.exit_code == 0 and "byte 13 is not UTF-8" in json.loads(doctor.stdout)["registry"]


def test_a_non_positive_context_length_in_models_yaml(isolated_home: Path) -> None:
    (isolated_home / "models.yaml").write_text(
        "models:\n  bad:\n    context_length: -5\n"
        "    sources: [{hf: {repo: a/b, default_quant: Q4, files: {Q4: x.gguf}}}]\n"
    )
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 1 and "'context_length' must be a positive number, got -5" in result.stderr


@pytest.mark.parametrize("url", ["not-a-url", "ftp://example.com/v1", "http://"])
def test_backend_must_be_an_http_url(scripted_session, url: str) -> None:
    result = runner.invoke(app, ["solve", QUESTION, "--backend", url])
    no_traceback(result)
    said = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())  # Typer's error box, unwrapped
    assert result.exit_code == 2 and "is not an http:// or https:// URL" in said
    assert not scripted_session


def test_show_of_an_impossible_id_is_a_usage_error(scripted_session) -> None:
    assert runner.invoke(app, ["solve", QUESTION]).exit_code == 0
    result = runner.invoke(app, ["show", "99999999999999999999999"])
    no_traceback(result)
    assert result.exit_code == 2 and "no run 99999999999999999999999" in result.stderr


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
    result = runner.invoke(app, ["solve", QUESTION, "--no-log"])
    assert result.exit_code == 130 and "no answer had finished yet" in result.stderr
    assert "best answer so far is shown" not in result.stderr


def test_progress_moves_before_a_generation_ends() -> None:
    model = ScriptedModel(actions={"": [("a long first step\n", 0.9)]}, rollouts={})
    snapshot = TreeSnapshot("Q?")
    seen: list[tuple[int, int]] = []  # (tokens shown, nodes) at every progress event
    shown: list[int] = []  # tokens shown after every event

    def listen(event: ev.Event) -> None:
        snapshot.apply(event)
        shown.append(snapshot.tokens_so_far)
        if isinstance(event, ev.TokensGenerated):
            seen.append((snapshot.tokens_so_far, len(snapshot.nodes)))

    # four starts with one candidate: three duplicate the first and are dropped, paid for all the same
    config = SearchConfig(iterations=2, children=1, first_tokens=4)
    result = Search(model, model.prompt, config, listen).run()
    first = [tokens for tokens, nodes in seen if nodes == 1]  # before the first node arrived
    assert len(first) >= 10 and first == sorted(first) and first[-1] > first[0]
    assert shown == sorted(shown)  # a finished generation's tokens move from streamed to the tree
    assert snapshot.tokens == shown[-1] == result.generated_tokens  # every token counted once


def test_log_fits_80_columns_with_id_and_time_whole() -> None:
    rows = [
        RunRow(
            i,
            1.7e9,
            "translate",
            "smollm2-135m-instruct",
            "best-of-n",
            "Janet's ducks lay 16 eggs per day. " * 4,
            "She makes 18 dollars every day at the market.",
            0.912,
            49.2,
        )
        for i in (7, 123, 45678)
    ]
    console = Console(width=80, record=True, color_system=None)
    console.print(log_table(rows, 80))
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    for i in (7, 123, 45678):
        assert any(line.split()[:1] == [str(i)] and "49.2s" in line and "0.912" in line for line in lines)


def test_the_tree_says_what_it_left_out_and_unvisited_nodes_have_no_mean() -> None:
    model = ScriptedModel(actions={}, rollouts={}, more_actions=lambda s: [(f"{s}{k}\n", 0.9) for k in "ab"])
    result = Search(model, model.prompt, SearchConfig(iterations=12, children=2, stop_agree=None)).run()
    snap = TreeSnapshot("Q?")
    for node in result.tree.nodes[1:]:
        snap.apply(ev.NodeAdded(node.id, node.parent, node.depth, node.text, 1, 0.9, False, False))
    console = Console(width=100, record=True, color_system=None)
    console.print(render_tree(snap, width=100, max_lines=6, hint="; see all with marco show"))
    text = console.export_text()
    total = len(result.tree.nodes) - 1
    assert "nodes not shown; see all with marco show" in text and f"of {total} nodes" in text
    assert "q=  -" in text and "q=0.00" not in text  # nothing was backed up into this snapshot


def test_the_summary_says_why_the_search_stopped_early() -> None:
    record = Record.from_json(
        {
            "question": "q",
            "model": {"name": "m"},
            "settings": {"strategy": "mcts"},
            "iterations": 3,
            "tokens": {"generated": 10},
            "seconds": 1.0,
            "confidence": 0.5,
            "stopped": "agreement",
        }
    )
    assert "stopped early: enough finished rollouts agreed" in summary_line(record).plain
    assert "stopped" not in summary_line(replace(record, stopped="iterations")).plain


def test_a_servers_html_error_page_becomes_one_line() -> None:
    page = "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n"
    page += "<h1>502 Bad Gateway</h1>\n</body></html>"
    assert one_line(page) == "502 Bad Gateway 502 Bad Gateway"
    assert one_line('{"error": {"message": "model not loaded", "code": 503}}') == "model not loaded"
    assert len(one_line("x" * 5000)) == 160


@pytest.mark.slow
def test_engine_limits_are_usage_errors(smollm_path: Path) -> None:
    long_prompt = runner.invoke(
        app, ["solve", "word " * 400, "-m", str(smollm_path), "--ctx", "128", "--no-log"]
    )
    no_traceback(long_prompt)
    assert long_prompt.exit_code == 2 and "tokens, longer than the" in long_prompt.stderr
    too_big = runner.invoke(app, ["solve", QUESTION, "-m", str(smollm_path), "--ctx", "100000", "--no-log"])
    assert too_big.exit_code == 2 and "more than" in too_big.stderr and "8192" in too_big.stderr


@pytest.mark.slow
def test_gpu_layers_on_a_cpu_build_change_nothing(smollm_path: Path) -> None:
    from marco_cli.engine.llama import Engine, gpu_offload_supported

    if gpu_offload_supported():
        pytest.skip("this build offloads to a GPU")
    with Engine(smollm_path, ctx=512, gpu_layers=20) as engine:
        assert engine.gpu_layers == 0 and engine.flash_attn is False
