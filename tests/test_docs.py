"""The manual cannot drift from the CLI: every `--option` the README and docs/ name exists in
some marco command (or belongs to another tool named here), and every option of every command is
documented somewhere in them (a `--no-X` counts when `--X` is)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from marco_cli.cli.app import app
from tests.docs_reference import PAGE, commands, reference
from tests.helpers import runner

MARCO = str(Path(sys.executable).with_name("marco"))

ROOT = Path(__file__).resolve().parents[1]
# options the docs name that are other programs' (pip, llama-server, llama-cpp-python's server) or
# the benchmark scripts' (benchmarks/*.py), each said where it is used
FOREIGN = {
    "--flash-attn",  # llama-server
    "--force-reinstall",  # pip
    "--no-cache-dir",  # pip
    "--logits",  # llama-cpp-python's server: --logits_all (the pattern stops at the underscore)
    "--questions",  # benchmarks/serve_bench.py
    "--requests",  # benchmarks/serve_bench.py
    "--runs",  # benchmarks/startup.py
    "--by-config",  # benchmarks/value_signals.py
    "--rule",  # benchmarks/compute_matched.py
    "--search",  # benchmarks/compute_matched.py
    "--skip",  # benchmarks/compute_matched.py
    "--compare",  # benchmarks/rescore.py
    "--help",  # Click's own, on every command
}


def _cli_options() -> set[str]:
    found: set[str] = set()
    for command in [typer.main.get_command(app), *commands().values()]:
        for param in command.params:  # type: ignore[attr-defined]
            found.update(o for o in [*param.opts, *param.secondary_opts] if o.startswith("--"))
    return found


def _documented() -> set[str]:
    text = "".join(
        p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    )
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*[a-z0-9]", text))


def test_every_option_the_docs_name_exists() -> None:
    unknown = _documented() - _cli_options() - FOREIGN
    assert not unknown, f"the docs name options no command has: {sorted(unknown)}"


def test_every_option_of_the_cli_is_documented() -> None:
    documented = _documented()
    missing = {
        o
        for o in _cli_options()
        if o not in documented and not (o.startswith("--no-") and f"--{o[5:]}" in documented)
    }
    assert not missing, f"options no page of the docs mentions: {sorted(missing)}"


def test_every_link_between_the_docs_points_at_a_file() -> None:
    pages = [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    for page in pages:
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            assert (page.parent / target).is_file(), f"{page.name} links {target}, which is not there"


def test_every_command_is_documented() -> None:
    names = set(commands())
    text = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md"))
    assert {c for c in names if f"marco {c}" not in text} == set()


def test_the_option_reference_is_written_from_the_cli() -> None:
    """docs/options.md is what the CLI declares today (rewrite: python -m tests.docs_reference)."""
    assert PAGE.read_text(encoding="utf-8") == reference(), "run: python -m tests.docs_reference"


@pytest.mark.parametrize("command", ["solve", "translate", "bench", "serve"])
def test_help_fits_a_terminal_and_help_all_shows_the_rest(command: str) -> None:
    short = runner.invoke(app, [command, "--help"], env={"COLUMNS": "80"})
    every = runner.invoke(app, [command, "--help-all"], env={"COLUMNS": "80"})
    assert short.exit_code == 0 and every.exit_code == 0
    assert len(short.output.splitlines()) <= 90, short.output
    assert "--top-p" not in short.output and "--top-p" in every.output


def test_help_lists_choices_as_choices() -> None:
    shown = runner.invoke(app, ["solve", "--help-all"], env={"COLUMNS": "250"}).output
    for choices in (
        "<step|mini-64|mini-32>",
        "<line|blank>",
    ):
        assert choices in shown


def test_install_completion_makes_bash_complete_commands_options_and_choices(tmp_path: Path) -> None:
    """`marco --install-completion bash` into a fresh HOME, then bash sources what it wrote and
    its completion function asks the installed `marco` (commands, options, a Literal's choices)."""
    env = {**os.environ, "HOME": str(tmp_path), "PATH": f"{Path(MARCO).parent}:{os.environ['PATH']}"}
    installed = subprocess.run(
        [MARCO, "--install-completion", "bash"], env=env, capture_output=True, text=True
    )
    assert installed.returncode == 0, installed.stderr
    assert "marco" in (tmp_path / ".bashrc").read_text()

    def complete(*words: str) -> list[str]:
        script = (
            f"source ~/.bashrc; COMP_WORDS=({' '.join(words)} ''); COMP_CWORD={len(words)}; "
            'set -- marco; _marco_completion marco; printf "%s\\n" "${COMPREPLY[@]}"'
        )
        done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, check=True)
        return done.stdout.split()

    assert "solve" in complete("marco") and "doctor" in complete("marco")
    assert complete("marco", "solve", "--granularity") == ["step", "mini-64", "mini-32"]
