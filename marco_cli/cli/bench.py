"""`marco bench`: the Marco-o1 MGSM table for any model, resumable, paired."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from marco_cli.cli import signals
from marco_cli.cli.flags import ClickException
from marco_cli.cli.options import Options, config_from, search_parser, with_options
from marco_cli.cli.session import open_session
from marco_cli.errors import MarcoError
from marco_cli.files import make_folder, write_text
from marco_cli.record.results import Summary
from marco_cli.runs import bench, datasets, paper
from marco_cli.runs.summary import summarize
from marco_cli.search import strategies
from marco_cli.search.config import SearchConfig
from marco_cli.search.settings import GROUP_NAMES, SharedSettings, group_of
from marco_cli.search.spec import StrategySpec
from marco_cli.ui.charts import frontier_chart
from marco_cli.ui.console import err_console, out_console, visible, warn, warn_bad_line
from marco_cli.ui.html import write_bench_pages


def _split(values: list[str]) -> list[str]:
    """Comma-separated specs; a comma inside [flags] does not split (one pass over each value:
    a lookahead pattern rescanned the rest of the value at every comma)."""
    parts: list[str] = []
    for value in values:
        depth, start = 0, 0
        for index, char in enumerate(value):
            depth = depth + 1 if char == "[" else max(0, depth - 1) if char == "]" else depth
            if char == "," and depth == 0:
                parts.append(value[start:index])
                start = index + 1
        parts.append(value[start:])
    return [part.strip() for part in parts if part.strip()]


def _table(summary: Summary) -> Table:
    title = Text(f"marco bench · {visible(summary.model)} · {visible(summary.dataset)}")
    table = Table(title=title, title_justify="left")
    columns: tuple[str, ...] = (
        "config",
        "n",
        "accuracy [95% CI]",
        "no answer",
        "tokens",
        "s",
        "tok/s",
        "Δ vs cot",
        "frontier",
    )
    skipped = any(row.skipped for row in summary.configs.values())
    papered = any(row.paper is not None for row in summary.configs.values())
    columns = columns + (("skipped",) if skipped else ()) + (("paper",) if papered else ())
    for column in columns:
        table.add_column(column, justify="left" if column == "config" else "right", no_wrap=True)
    for name, row in summary.configs.items():
        low, high = row.ci95
        delta = row.delta_vs_cot
        table.add_row(
            Text(visible(name)),
            str(row.n),
            f"{row.accuracy:.1%} [{low:.0%}-{high:.0%}]",
            f"{row.no_answer:.1%}",
            f"{row.mean_tokens:.0f}",
            f"{row.mean_seconds:.1f}",
            f"{row.tokens_per_second:.0f}",
            "-" if delta is None else f"{delta:+.1%}",
            "dominated" if row.dominated else "on it",
            *((str(row.skipped),) if skipped else ()),
            *(("-" if row.paper is None else f"{row.paper:.1%}",) if papered else ()),
        )
    return table


def _pairs(summary: Summary) -> Table:
    table = Table(title="paired flips (McNemar counts)", title_justify="left")
    for column in ("from", "to", "problems", "right→wrong", "wrong→right", "McNemar p"):
        table.add_column(column)
    for pair in summary.pairs:
        counts = (pair.problems, pair.right_to_wrong, pair.wrong_to_right)
        table.add_row(
            Text(visible(pair.first)), Text(visible(pair.second)), *map(str, counts), f"{pair.p_exact:.3g}"
        )
    return table


SPEC = re.compile(
    r"^(?:(?P<label>[\w.-]+)=)?(?P<name>[a-z-]+)(?:@(?P<budget>[^\[]*))?(?:\[(?P<flags>.*)\])?$"
)


@dataclass(frozen=True)
class Spec:
    """One configuration of `--strategy`: `[LABEL=]STRATEGY[@BUDGET][[FLAGS]]`, e.g. `vote@8`,
    `mcts@16` or `wide=mcts@8[--root-children 4 --select branch]`. FLAGS are `solve`'s search
    options, over the command line's own."""

    text: str
    label: str | None
    name: str
    budget: str
    flags: str


def _spec(text: str) -> Spec:
    found = SPEC.match(text)
    if found is None:
        raise MarcoError(f"'{text}': a configuration is [LABEL=]STRATEGY[@BUDGET][[FLAGS]]", code=2)
    return Spec(text, found["label"], found["name"], found["budget"] or "", found["flags"] or "")


def _budget(spec: Spec) -> dict[str, int]:
    """`vote@8` (samples), `mcts@16` (iterations): a strategy at a budget of its own; a
    strategy that takes no count (cot) refuses one instead of ignoring it."""
    if not spec.budget:
        return {}
    spends = _strategy(spec).budget
    if spends is None:
        takes = ", ".join(n for n in strategies.names() if strategies.strategy(n).budget is not None)
        raise MarcoError(f"'{spec.text}': {spec.name} takes no budget after @ (only {takes} do)", code=2)
    if not spec.budget.isdigit() or not 1 <= int(spec.budget) <= 100_000:
        raise MarcoError(f"'{spec.text}': the budget after @ must be a whole number from 1 to 100000", code=2)
    return {spends: int(spec.budget)}


def _strategy(spec: Spec) -> StrategySpec:
    try:
        return strategies.strategy(spec.name)
    except ValueError as exc:
        raise MarcoError(f"'{spec.text}': {exc}", code=2) from None


def _flagged(search: Mapping[str, object], flags: str) -> Mapping[str, object]:
    """The search settings with a configuration's own flags over them, checked as `solve` checks them."""
    return _parsed(search, flags) if flags.strip() else search


def _parsed(search: Mapping[str, object], flags: str) -> Mapping[str, object]:
    parser = search_parser()
    try:
        with parser.make_context("marco bench", shlex.split(flags), default_map=dict(search)) as ctx:
            return dict(parser.callback(**ctx.params))
    except (ClickException, ValueError) as exc:
        message = exc.format_message() if isinstance(exc, ClickException) else str(exc)
        raise MarcoError(f"[{flags}]: {message}", code=2) from None


def _refuse_ignored(spec: Spec, base: Mapping[str, object], flagged: Mapping[str, object]) -> None:
    """A configuration's flag its strategy would not read (`vote@8[--children 4]`) is a usage
    error, not a flag that silently does nothing."""
    reads = (SharedSettings, *_strategy(spec).settings)
    for name, value in flagged.items():
        group = group_of(name)
        if base.get(name) != value and group not in reads:
            flag = "--" + name.replace("_", "-")
            read = ", ".join(GROUP_NAMES[g] for g in reads)
            raise MarcoError(
                f"'{spec.text}': {flag} is a {GROUP_NAMES[group]} setting, and {spec.name} reads only "
                f"the {read} ones",
                code=2,
            )


def _label(spec: Spec, granularity: str, several: bool) -> str:
    """A configuration's name: its LABEL (with the granularity when mcts runs at several), or
    strategy/granularity@budget[flags]."""
    if spec.label:
        return f"{spec.label}/{granularity}" if several and strategies.granular(spec.name) else spec.label
    name = bench.config_name(spec.name, granularity) + (f"@{spec.budget}" if spec.budget else "")
    return name + (f"[{' '.join(shlex.split(spec.flags))}]" if spec.flags.strip() else "")


def _configs(
    options: Options, strategy: list[str] | None, granularity: list[str] | None
) -> dict[str, SearchConfig]:
    """strategy[@budget][flags] x granularity (the granularity applies to mcts), each a full SearchConfig."""
    texts, granularities = _split(strategy or ["cot,mcts"]), _split(granularity or ["step"])
    unflagged = _parsed(options.search, "")  # every setting, for the flags' changes to be seen
    configs = {}
    for text in texts:
        spec = _spec(text)
        budget, search = _budget(spec), _flagged(options.search, spec.flags)
        if spec.flags.strip():
            _refuse_ignored(spec, unflagged, search)
        for g in granularities if _strategy(spec).granular else ["step"]:
            label = _label(spec, g, several=len(granularities) > 1)
            if label in configs:
                raise MarcoError(f"two configurations are named '{label}': give one a LABEL=", code=2)
            settings = {**search, "strategy": spec.name, "granularity": g, "numeric_answer": True, **budget}
            configs[label] = config_from(settings)
    return configs


def _progress_listener(bar: Progress) -> bench.BenchListener:
    """Fold bench events into the progress bar (Rich redraws it on its own schedule)."""
    task = bar.add_task("bench", total=None)

    def listen(event: bench.BenchEvent) -> None:
        if isinstance(event, bench.BenchStarted):
            bar.update(task, total=event.total, completed=event.done)
        elif isinstance(event, bench.ProblemSkipped):
            bar.update(task, advance=1)
            warn(f"problem {event.index} skipped ({event.config}): {event.why}")
        else:
            bar.update(task, advance=1, description=f"{event.config} #{event.index}")

    return listen


def _report(summary: Summary, out: Path, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary.to_json(), ensure_ascii=False))
        return
    target = out_console()
    target.print(_table(summary))
    if summary.paper_note:
        target.print(Text(summary.paper_note, style="dim"))
    if len(summary.configs) > 1:
        target.print(_pairs(summary))
        target.print(visible(frontier_chart(summary.configs)), highlight=False, markup=False)
    err_console().print(f"results in {out}/{bench.RESULTS}, summary in {out}/{bench.SUMMARY}")


@with_options(exclude=("strategy", "granularity", "hide_thought", "quiet", "no_log", "html"))
def bench_cmd(
    dataset: Annotated[
        str,
        typer.Argument(
            help="A dataset name (mgsm-en, gsm8k, arith:300:11; `marco datasets` lists them), "
            "hf:datasets/OWNER/REPO/FILE.jsonl, or a TSV question<TAB>answer / JSONL question, answer file."
        ),
    ],
    strategy: Annotated[
        list[str] | None,
        typer.Option(
            metavar="SPEC",
            help="[LABEL=]STRATEGY[@BUDGET][[FLAGS]], e.g. vote@8 or 'wide=mcts@8[--children 4]'; "
            "repeat or comma-separate (default cot,mcts).",
        ),
    ] = None,
    granularity: Annotated[
        list[str] | None, typer.Option(metavar="G", help="For mcts; repeat or comma-separate (default step).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, metavar="N", help="Only this many problems.")] = None,
    offset: Annotated[int, typer.Option(min=0, metavar="N", help="Skip this many problems first.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Results folder (rerun it to resume).")] = None,
    html: Annotated[
        Path | None, typer.Option(help="Write an index page and a page per problem here.")
    ] = None,
    jobs: Annotated[int, typer.Option(min=1, metavar="N", help="Problems in flight (with --backend).")] = 1,
    *,
    options: Options,
) -> None:
    """Accuracy, no-answer rate and cost per strategy x granularity, on the same problems."""
    done = run_bench(options, dataset, strategy, granularity, limit, offset, out, html, jobs)
    _report(done.summary, done.out, options.output.as_json)
    if done.interrupted:
        err_console().print("[yellow]interrupted: finished problems are kept; rerun to resume[/]")
        raise typer.Exit(signals.exit_code())


@dataclass(frozen=True)
class BenchRun:
    """What a bench run left: its summary, the folder it wrote, and whether Ctrl-C cut it short."""

    summary: Summary
    out: Path
    interrupted: bool


def run_bench(
    options: Options,
    dataset: str,
    strategy: list[str] | None = None,
    granularity: list[str] | None = None,
    limit: int | None = None,
    offset: int = 0,
    out: Path | None = None,
    html: Path | None = None,
    jobs: int = 1,
) -> BenchRun:
    """`marco bench` without its printing (the command and the Python API run this): every
    configuration on every problem not yet in `out`, then the summary written beside them."""
    if jobs > 1 and not options.engine.backend:
        raise MarcoError("--jobs needs --backend: the local engine runs one search at a time", code=2)
    if jobs > 1 and options.engine.verifier and not options.engine.verifier_backend:
        raise MarcoError(
            "--jobs with --verifier needs --verifier-backend: a local verifier judges one at a time", code=2
        )
    if jobs > 1 and options.engine.prm and not options.engine.prm_backend:
        raise MarcoError("--jobs with --prm needs --prm-backend: a local PRM scores one at a time", code=2)
    loaded = datasets.load(dataset)
    everything, dataset = loaded.problems, loaded.label
    problems = everything[offset:]
    problems = problems[:limit] if limit else problems
    if not problems:
        raise MarcoError(f"--offset {offset} selects no problem: {dataset} has {len(everything)}", code=2)
    configs = _configs(options, strategy, granularity)
    judged = any(strategies.needs_verifier(c) for c in configs.values())
    prm = any(strategies.needs_prm(c) for c in configs.values())
    branches = max(strategies.branches(c) for c in configs.values())
    session = open_session("bench", options, branches, judged, prm)
    label = session.info.label
    out = (
        out
        or Path("bench-out") / f"{datasets.folder_name(dataset)}-{label.replace(':', '-').replace('/', '_')}"
    )
    meta = {
        "dataset": dataset,
        "problems_sha256": bench.fingerprint(everything),
        "model": label,
        "settings": {n: strategies.saved_settings(c) for n, c in configs.items()},
    }
    bench.prepare_run_dir(out, meta)
    if html is not None:  # checked before the search: a bad folder must not cost the hour after it
        make_folder(html)
    console = err_console()
    interrupted = False
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    shown = console.is_terminal and not options.output.quiet
    with session, Progress(*columns, console=console, disable=not shown) as bar:
        try:
            args = (session.engine, session.style, session.info, problems, configs, out)
            bench.run(*args, _progress_listener(bar), jobs, session.aides)
        except KeyboardInterrupt:
            interrupted = True
    wanted = {p.index for p in problems}
    rows = [r for r in bench.read_results(out, warn_bad_line) if r.index in wanted]
    summary = paper.with_paper(
        replace(summarize(rows, list(configs)), dataset=dataset, model=label, problems=len(problems))
    )
    write_text(out / bench.SUMMARY, json.dumps(summary.to_json(), indent=2))
    if html is not None:
        index = write_bench_pages(html, summary, bench.read_records(out, warn_bad_line), rows)
        console.print(f"pages: {index}", highlight=False)
    return BenchRun(summary, out, interrupted)


def datasets_cmd(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the datasets `marco bench NAME` takes: size, languages, licence and source."""
    rows = [asdict(d) for d in datasets.CATALOGUE]
    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    table = Table(title="marco datasets (marco bench NAME)", title_justify="left")
    for column in ("name", "problems", "languages", "licence", "source"):
        table.add_column(column, overflow="fold")
    for d in datasets.CATALOGUE:
        table.add_row(d.name, str(d.size) if d.size else "N", d.languages, d.licence, d.source)
    out_console().print(table)


COMMANDS = {"bench": bench_cmd, "datasets": datasets_cmd}
