"""What a hostile user (or a paste, or a `serve` client) does to the history and the terminal, as
a table the next round starts from: stored text holding escape sequences, a MARCO_HOME that is
a file or read-only, each told by its real cause, and no answer lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from marco_cli.cli.app import app
from tests.helpers import no_traceback, one_line_error, remount, runner, tmpfs

HOSTILE = "\x1b]0;PWNED\x07\x1b[2JWhat is 2 + 2? [/bold] [red]"


@pytest.mark.parametrize("command", [["log"], ["show", "1"]], ids=["log", "show"])
def test_stored_escape_sequences_are_shown_not_obeyed(scripted_session, command: list[str]) -> None:
    assert runner.invoke(app, ["solve", HOSTILE, "--json"]).exit_code == 0
    result = runner.invoke(app, command, env={"COLUMNS": "200"})
    no_traceback(result)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output  # nothing a terminal obeys
    assert "^[]0;PWNED^G^[[2J" in result.output  # shown, as `cat -v` shows it
    assert "[/bold] [red]" in result.output  # stored text is never read as markup


def test_the_live_tree_shows_a_node_text_not_obeys_it() -> None:
    from rich.console import Console

    from marco_cli.search.events import NodeAdded
    from marco_cli.ui.tree_view import TreeSnapshot, render_tree

    snap = TreeSnapshot(HOSTILE)
    snap.apply(NodeAdded(1, 0, 1, HOSTILE, 5, 0.9, False, False))
    console = Console(record=True, width=200, color_system=None)
    console.print(render_tree(snap, width=200, max_lines=20))
    shown = console.export_text()
    assert "\x1b" not in shown and shown.count("^[]0;PWNED^G^[[2J") == 2  # the question and the node


def test_the_json_record_keeps_the_question_exactly(scripted_session) -> None:
    assert runner.invoke(app, ["solve", HOSTILE]).exit_code == 0
    shown = runner.invoke(app, ["show", "1", "--json"])
    assert json.loads(shown.stdout)["question"] == HOSTILE.strip()  # data stays data


def test_a_marco_home_that_is_a_file_is_said_to_be_one(scripted_session, tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home-file"
    home.write_text("not a folder")
    monkeypatch.setenv("MARCO_HOME", str(home))
    for command in (["log"], ["show", "1"], ["export", "--all"]):
        line = one_line_error(runner.invoke(app, command), 1)
        assert f"MARCO_HOME ({home}) is a file, not a folder" in line and "move it aside" not in line
    solved = runner.invoke(app, ["solve", "What is 2 + 2?"])
    assert solved.exit_code == 0 and solved.stdout == "4\n"  # the answer is kept, and said where
    assert "is a file, not a folder" in solved.stderr and "unsaved-run-" in solved.stderr
    assert "move it aside" not in solved.stderr


def test_a_read_only_marco_home_is_said_read_only(scripted_session, tmp_path: Path, monkeypatch) -> None:
    with tmpfs(tmp_path / "ro", "4m") as home:
        monkeypatch.setenv("MARCO_HOME", str(home))
        remount(home, "ro")
        solved = runner.invoke(app, ["solve", "What is 2 + 2?"])
        assert solved.exit_code == 0 and solved.stdout == "4\n"
        said = " ".join(solved.stderr.split())
        assert f"the history cannot be written: its folder {home} is read-only" in said, said
        assert "move it aside" not in said and "unsaved-run-" in said  # kept in the temp dir


def test_a_healthy_read_only_history_is_read_and_said_read_only(
    scripted_session, tmp_path: Path, monkeypatch
) -> None:
    with tmpfs(tmp_path / "ro", "4m") as home:
        monkeypatch.setenv("MARCO_HOME", str(home))
        assert runner.invoke(app, ["solve", "What is 2 + 2?"]).exit_code == 0
        remount(home, "ro")
        listed = runner.invoke(app, ["log", "--json"])
        assert listed.exit_code == 0 and len(json.loads(listed.stdout)) == 1  # still readable
        solved = runner.invoke(app, ["solve", "What is 3 + 1?"])
        assert solved.exit_code == 0 and solved.stdout == "4\n"
        said = " ".join(solved.stderr.split())
        assert f"its file {home / 'history.db'} is read-only" in said and "move it aside" not in said, said
