"""marco from Python: `solve` runs one search as `marco solve` does and returns its typed run
record (`marco_cli.record.record.Record`), without printing anything to stdout.

    from marco_cli import solve

    record = solve("What is 17 * 23?", model="smollm2-135m", strategy="vote", samples=4)
    print(record.answer, record.reward, len(record.rollouts))

Settings are the command line's options by their Python names (`iterations`, `samples`,
`strategy`, `reward`, `select`, `max_tokens`, `ctx`, `threads`, `backend`, ...: every search
and engine option of `marco solve --help-all`), checked exactly as the command line checks
them: a bad value or an unknown name raises `marco_cli.errors.UsageError` naming it, and a
model or server that fails raises `marco_cli.errors.MarcoError`. Nothing heavy is imported
until `solve` runs, so `import marco_cli` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from marco_cli.record.record import Record
    from marco_cli.search.events import Listener

DEFAULT_MODEL = "marco-o1"


def solve(
    question: str,
    *,
    model: str = DEFAULT_MODEL,
    download: bool = False,
    save: bool = True,
    listener: Listener | None = None,
    **settings: object,
) -> Record:
    """Search `question` with `model` (a registry name, `NAME:QUANT`, a .gguf path, `hf:...`,
    `ollama:...`, or with `backend=URL` the server's model) and return the run's record.

    `download`: fetch a registry model that is not on disk yet (as `--yes`). `save`: keep the
    run in marco's history (`marco log`, `marco show ID`), as the command line does.
    `listener`: called with every search event (search/events.py) as it happens. Ctrl-C ends
    the search early: the record then says `stopped == "interrupted"` and holds the best
    answer so far, as the command line shows it.
    """
    from dataclasses import replace

    from marco_cli import tasks
    from marco_cli.cli.option_table import ENGINE, SEARCH
    from marco_cli.cli.options import OutputOptions, config_from, options_from
    from marco_cli.cli.session import open_session
    from marco_cli.cli.settings import settings_argv
    from marco_cli.cli.solve import run_one
    from marco_cli.errors import UsageError
    from marco_cli.search import strategies
    from marco_cli.search.rewards import needs_judge

    text = question.strip()
    if not text:
        raise UsageError("the prompt is empty")
    argv = settings_argv(settings, {**SEARCH, **ENGINE}, "setting")
    options = replace(
        options_from(argv, "marco_cli.solve"),
        model=model,
        output=OutputOptions(quiet=True, yes=download, no_log=not save),
    )
    config = config_from(options.search, numeric_answer=tasks.wants_number(text))
    with open_session("solve", options, strategies.branches(config), needs_judge(config.reward)) as session:
        return run_one(session, config, text, tasks.solve_messages(text), listener)
