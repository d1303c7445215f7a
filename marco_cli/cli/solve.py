"""`marco solve` and `marco translate`: one search per question (or per input line), shown live,
with only the answer (or the JSON record) on stdout."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from marco_cli import tasks
from marco_cli.cli import signals
from marco_cli.cli.options import Options, config_from, with_options
from marco_cli.cli.session import Session, engine_settings, open_session
from marco_cli.errors import MarcoError
from marco_cli.files import check_writable, write_text
from marco_cli.record.record import Record
from marco_cli.record.saved import JsonObject
from marco_cli.runs import history
from marco_cli.search import strategies
from marco_cli.search.config import SearchConfig
from marco_cli.search.events import Listener
from marco_cli.ui.console import err_console, out_console, warn
from marco_cli.ui.html import run_page
from marco_cli.ui.live import LiveSearchView
from marco_cli.ui.tree_view import final_view

Text = Annotated[str | None, typer.Argument(help="The input; '-' or a pipe reads stdin.")]


@dataclass(frozen=True)
class Unsearched:
    """A translate input line that was not searched (empty, or its search failed): it keeps
    output lines in step with input lines, with an empty answer."""

    question: str
    skipped: str | None = None  # why it was not searched ("empty line")
    failed: str | None = None  # the error that ended its search
    answer: str = ""

    def to_json(self) -> JsonObject:
        out: JsonObject = {"question": self.question, "answer": self.answer}
        if self.skipped is not None:
            out["skipped"] = self.skipped
        if self.failed is not None:
            out["failed"] = self.failed
        return out


Line = Record | Unsearched


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"{where}: byte {exc.start} is not UTF-8; convert the text to UTF-8 first"
        raise MarcoError(message, code=2) from None


def read_input(text: str | None) -> str:
    """The prompt from the argument or stdin, as UTF-8 (invalid bytes are a usage error)."""
    if text is None or text == "-":
        if text is None and sys.stdin.isatty():
            raise MarcoError("give the text as an argument, or pipe it on stdin", code=2)
        raw = getattr(sys.stdin, "buffer", None)
        text = _decode(raw.read(), "stdin") if raw is not None else sys.stdin.read()
    else:  # argv bytes that are not UTF-8 arrive as lone surrogates
        text = _decode(text.encode("utf-8", "surrogateescape"), "the argument")
    if not text.strip():
        raise MarcoError("the prompt is empty", code=2)
    return text


def run_one(
    session: Session,
    config: SearchConfig,
    question: str,
    messages: list[dict[str, str]],
    listener: Listener | None = None,
) -> Record:
    """Search one prompt (live on a terminal, or told to `listener`), and save the record unless
    --no-log."""
    console = err_console()
    output = session.options.output
    live = console.is_terminal and not console.is_dumb_terminal and not output.quiet
    args = (session.engine, session.style, session.info, question, messages, config)
    if listener is not None:
        record = tasks.run_task(*args, listener, aides=session.aides)
    elif live:
        with LiveSearchView(console, question, config.strategy) as view:
            record = tasks.run_task(*args, view, aides=session.aides)
    else:
        record = tasks.run_task(*args, aides=session.aides)
    record = record.with_engine(engine_settings(session.engine))
    sizes = session.engine.decode_sizes
    if session.options.engine.verbose and sizes:
        held = ", ".join(f"{k} branch{'es' if k > 1 else ''}: {v}" for k, v in sorted(sizes.items()))
        console.print(f"generation decodes by branches held ({held})", highlight=False)
    if not output.no_log:
        run_id, warning = history.save_or_keep(session.command, record)
        record = record.with_run_id(run_id)
        if warning:
            warn(warning)
    return record


def show_answer(record: Line, options: Options, one_line: bool = False) -> None:
    answer = record.answer
    if one_line:
        answer = " ".join(answer.split())
    quiet, hide = options.output.quiet, options.output.hide_thought
    if isinstance(record, Unsearched):
        print(answer, flush=True)
        return
    if sys.stdout.isatty() and not quiet:
        out_console().print(final_view(record, hide))
        return
    print(answer, flush=True)
    console = err_console()
    if console.is_terminal and not quiet:
        console.print(final_view(record, hide, answer_shown="(on stdout)"))


def write_html(records: list[Record], path: Path | None) -> None:
    """--html FILE: one page per search (FILE-2.html, ... for more lines), said on stderr."""
    if path is None or not records:
        return
    for number, record in enumerate(records, 1):
        target = path if number == 1 else path.with_name(f"{path.stem}-{number}{path.suffix or '.html'}")
        write_text(target, run_page(record))
        err_console().print(f"tree page: {target}", highlight=False)


def finish(records: list[Record], total: int = 1) -> None:
    """Exit 1 when the model failed, 130 when interrupted; say so when nothing finished.
    `total` is how many searches were asked for (translate: the input lines)."""
    failed = next((r for r in records if r.stopped == "error"), None)
    if failed is not None:
        raise MarcoError(f"{failed.error} (the partial tree is in the run's record)")
    for record in records:
        if not record.answer and record.rollouts:
            hint = tasks.no_answer_hint(record.rollout_stats, record.search.max_tokens)
            err_console().print(f"[yellow]{escape(hint)}[/]", highlight=False)
    interrupted = [r for r in records if r.stopped == "interrupted"]
    if interrupted:
        shown = any(r.answer for r in interrupted)
        what = "the best answer so far is shown" if shown else "no answer had finished yet"
        if total > 1:
            done = len(records) - len(interrupted)
            what = f"{done} of {total} searches had finished and are shown; " + (
                "the last one's best answer so far too" if shown else "the last one had no answer yet"
            )
        err_console().print(f"[yellow]interrupted: {what}[/]")
        raise typer.Exit(signals.exit_code())


@with_options()
def solve_cmd(prompt: Text = None, *, options: Options) -> None:
    """Answer a question with Marco-o1-style search, showing the tree live."""
    question = read_input(prompt).strip()
    check_writable(options.output.html)
    config = config_from(options.search, numeric_answer=tasks.wants_number(question))
    branches, judged = strategies.branches(config), strategies.needs_verifier(config)
    session = open_session("solve", options, branches, judged, strategies.needs_prm(config))
    with session:
        record = run_one(session, config, question, tasks.solve_messages(question))
    if options.output.as_json:
        print(json.dumps(record.to_json(), ensure_ascii=False))
    elif record.stopped != "error" or record.answer:  # a failed run with nothing to say prints nothing
        show_answer(record, options)
    write_html([record], options.output.html)
    finish([record])


def language(value: str | None) -> str | None:
    """A language's name as the prompt will say it: not empty, one line, no control characters."""
    if value is None:
        return None
    name = value.strip()
    if not name or len(name) > 60 or not name.isprintable():
        raise typer.BadParameter(
            f"{value!r:.70} is not a language's name (like French or Brazilian Portuguese)"
        )
    return name


@with_options(defaults={"iterations": 8, "first_tokens": 0, "max_tokens": 384, "select": "mbr"})
def translate_cmd(
    text: Text = None,
    to: Annotated[str, typer.Option("--to", callback=language, help="Target language.")] = "English",
    source: Annotated[
        str | None, typer.Option("--from", callback=language, help="Source language (default: auto).")
    ] = None,
    *,
    options: Options,
) -> None:
    """Translate, reasoning about slang and colloquial meaning. Piped lines: one out per line in."""
    raw = read_input(text)
    check_writable(options.output.html)
    lines = raw.splitlines() if (text is None or text == "-") else [raw]
    config = config_from(options.search)
    branches, judged = strategies.branches(config), strategies.needs_verifier(config)
    session = open_session("translate", options, branches, judged, strategies.needs_prm(config))
    records: list[Line] = []
    failed = 0
    with session:
        for number, line in enumerate(lines, 1):
            record = _translate_line(session, config, line, number, to, source, alone=len(lines) == 1)
            failed += isinstance(record, Unsearched) and record.failed is not None
            records.append(record)
            if not options.output.as_json:
                show_answer(record, options, one_line=len(lines) > 1)
            if isinstance(record, Record) and record.stopped == "interrupted":
                break
    if options.output.as_json:
        docs = [r.to_json() for r in records]
        doc = docs[0] if len(lines) == 1 and docs else {"task": "translate", "lines": docs}
        print(json.dumps(doc, ensure_ascii=False))
    searched = [r for r in records if isinstance(r, Record)]
    write_html(searched, options.output.html)
    finish(searched, total=len(searched) + len(lines) - len(records))
    if failed:
        raise MarcoError(f"{failed} of {len(lines)} lines failed (said above; their output lines are empty)")


def _translate_line(
    session: Session,
    config: SearchConfig,
    line: str,
    number: int,
    to: str,
    source: str | None,
    alone: bool = False,
) -> Line:
    """One input line's record; an empty line or a failed one gets a stand-in entry (empty
    answer) so that output lines stay in step with input lines."""
    if not line.strip():
        return Unsearched(line, skipped="empty line")
    try:
        return run_one(session, config, line.strip(), tasks.translate_messages(line.strip(), to, source))
    except MarcoError as exc:
        if alone:  # one text: its error is the command's (a too-long prompt stays a usage error)
            raise
        err_console().print(f"[bold red]error:[/] line {number}: {escape(str(exc))}", highlight=False)
        return Unsearched(line.strip(), failed=str(exc))


COMMANDS = {"solve": solve_cmd, "translate": translate_cmd}
