"""The manual cannot drift from the CLI: every `--option` the README and docs/ name exists in
some marco command (or belongs to another tool named here), and every option of every command is
documented somewhere in them (a `--no-X` counts when `--X` is)."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from marco_cli.cli.app import app

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
    "--rule",  # benchmarks/compute_matched.py
    "--search",  # benchmarks/compute_matched.py
    "--skip",  # benchmarks/compute_matched.py
    "--help",  # Click's own, on every command
}


def _cli_options() -> set[str]:
    found: set[str] = set()

    def walk(command: object) -> None:
        for param in getattr(command, "params", []):
            found.update(o for o in [*param.opts, *param.secondary_opts] if o.startswith("--"))
        for sub in getattr(command, "commands", {}).values():
            walk(sub)

    walk(typer.main.get_command(app))
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
    missing -= {"--install-completion", "--show-completion"}
    assert not missing, f"options no page of the docs mentions: {sorted(missing)}"


def test_every_link_between_the_docs_points_at_a_file() -> None:
    pages = [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    for page in pages:
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            assert (page.parent / target).is_file(), f"{page.name} links {target}, which is not there"


def test_every_command_is_documented() -> None:
    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    text = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md"))
    assert {c for c in commands if f"marco {c}" not in text} == set()
