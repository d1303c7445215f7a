"""marco from Python: `solve` runs one search as `marco solve` does and returns its typed run
record (`marco_cli.record.record.Record`); `bench` runs `marco bench` and returns its summary
(`marco_cli.record.results.Summary`). Neither prints anything to stdout.

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
    from pathlib import Path

    from marco_cli.cli.options import Options
    from marco_cli.record.record import Record
    from marco_cli.record.results import Summary
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
    from marco_cli import tasks
    from marco_cli.cli.options import config_from
    from marco_cli.cli.session import open_session
    from marco_cli.cli.solve import run_one
    from marco_cli.errors import UsageError
    from marco_cli.search import strategies

    text = question.strip()
    if not text:
        raise UsageError("the prompt is empty")
    options = _options("marco_cli.solve", model, download, save, settings)
    config = config_from(options.search, numeric_answer=tasks.wants_number(text))
    branches, judged = strategies.branches(config), strategies.needs_verifier(config)
    with open_session("solve", options, branches, judged, strategies.needs_prm(config)) as session:
        return run_one(session, config, text, tasks.solve_messages(text), listener)


def bench(
    dataset: str,
    strategies: tuple[str, ...] | list[str] = ("cot", "mcts"),
    *,
    model: str = DEFAULT_MODEL,
    granularities: tuple[str, ...] | list[str] = ("step",),
    limit: int | None = None,
    offset: int = 0,
    out: Path | None = None,
    download: bool = False,
    jobs: int = 1,
    **settings: object,
) -> Summary:
    """`marco bench DATASET --strategy ...` from Python: every configuration (`vote@8`,
    `wide=mcts@8[--children 4]`, ...) on the same problems, graded; the summary returned and
    written with the results to `out` (default bench-out/DATASET-MODEL; rerun to resume).
    Settings as `solve`'s apply to every configuration."""
    from marco_cli.cli.bench import run_bench

    options = _options("marco_cli.bench", model, download, True, settings)
    done = run_bench(options, dataset, list(strategies), list(granularities), limit, offset, out, None, jobs)
    if done.interrupted:
        raise KeyboardInterrupt  # the finished problems are kept in `out`; rerun to resume
    return done.summary


def _options(command: str, model: str, download: bool, save: bool, settings: dict[str, object]) -> Options:
    """The command line's options from keywords, checked by its own parameters."""
    from dataclasses import replace

    from marco_cli.cli.option_table import ENGINE, SEARCH
    from marco_cli.cli.options import OutputOptions, options_from
    from marco_cli.cli.settings import settings_argv

    argv = settings_argv(settings, {**SEARCH, **ENGINE}, "setting")
    output = OutputOptions(quiet=True, yes=download, no_log=not save)
    return replace(options_from(argv, command), model=model, output=output)
