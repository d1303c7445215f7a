"""`marco solve`, `marco translate`, `marco log` and `marco show`."""

from __future__ import annotations

import json
import sys
from dataclasses import fields, replace
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from marco_cli import download, history, runner
from marco_cli.engine.types import GRANULARITIES
from marco_cli.errors import MarcoError
from marco_cli.search.config import STRATEGIES, SearchConfig
from marco_cli.ui.console import download_bar_class, err_console, handles_errors, out_console
from marco_cli.ui.live import LiveSearchView
from marco_cli.ui.tree_view import TreeSnapshot, final_view, render_tree

Model = Annotated[
    str,
    typer.Option(
        "--model", "-m", envvar="MARCO_MODEL", help="NAME[:QUANT], a .gguf path, or hf:OWNER/REPO/FILE.gguf"
    ),
]
Strategy = Annotated[str, typer.Option(help=f"One of: {', '.join(STRATEGIES)}.")]
Iterations = Annotated[int, typer.Option("--iterations", "-n", min=1, help="MCTS iterations.")]
Granularity = Annotated[str, typer.Option(help=f"Action size: {', '.join(GRANULARITIES)}.")]
Children = Annotated[int, typer.Option(min=1, help="Children per expansion.")]
Exploration = Annotated[float, typer.Option(min=0.0, help="UCT exploration constant c.")]
Temperature = Annotated[float, typer.Option(min=0.0, help="Sampling temperature of sampled children.")]
Samples = Annotated[int, typer.Option(min=1, help="Samples for best-of-n and vote.")]
Seed = Annotated[int, typer.Option(help="Random seed: same seed, same tree.")]
MaxTime = Annotated[float | None, typer.Option(min=0.0, help="Stop searching after this many seconds.")]
MaxTokens = Annotated[int, typer.Option(min=1, help="Generated tokens allowed on one answer path.")]
Reflection = Annotated[
    bool,
    typer.Option(
        "--reflection/--no-reflection", help="Add a 'Wait! ...' rethink branch where a thought ends."
    ),
]
Dynamic = Annotated[bool, typer.Option(help="Add a 'Wait! ...' branch under low-confidence steps.")]
Select = Annotated[str, typer.Option(help="Final answer by most 'visits' or best 'reward'.")]
GpuLayers = Annotated[int | None, typer.Option(help="Layers to offload (default: all when supported).")]
Cpu = Annotated[bool, typer.Option(help="Force CPU even when a GPU build is installed.")]
Ctx = Annotated[int | None, typer.Option(min=64, help="Cap the context length (default 8192).")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON record on stdout.")]
HideThought = Annotated[bool, typer.Option(help="Do not show the <Thought> block.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No live view: just the answer.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show llama.cpp's own log.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Download a missing model without asking.")]
NoLog = Annotated[bool, typer.Option("--no-log", help="Do not save this run in the history.")]
Backend = Annotated[
    str | None,
    typer.Option(envvar="MARCO_BACKEND", help="Search against an OpenAI-compatible server at this URL."),
]
Parallel = Annotated[
    int | None,
    typer.Option(min=1, help="Branches decoded together (local, default 1) or requests in flight (remote)."),
]
Timeout = Annotated[float, typer.Option(min=0.1, help="Seconds to wait for the server per request.")]


def _read_input(text: str | None) -> str:
    if text is None or text == "-":
        if text is None and sys.stdin.isatty():
            raise MarcoError("give the text as an argument, or pipe it on stdin", code=2)
        text = sys.stdin.read()
    if not text.strip():
        raise MarcoError("the prompt is empty", code=2)
    return text


def _local_model(model: str, yes: bool) -> tuple[Any, download.LocalModel]:
    spec, local = runner.resolve(model)
    if local is not None:
        return spec, local
    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    if not yes and not interactive:
        raise MarcoError(f"{spec.label} is not downloaded: run 'marco pull {model}' (or pass --yes)")
    if not yes:
        typer.confirm(f"{spec.label} is not downloaded. Download it now?", abort=True, err=True)
    console = err_console()
    return spec, download.pull(spec, tqdm_class=download_bar_class(console))


def _run_one(ctx: dict[str, Any], question: str, messages: list[dict[str, str]]) -> dict[str, Any]:
    console = err_console()
    live = console.is_terminal and not console.is_dumb_terminal and not ctx["quiet"]
    args = (ctx["engine"], ctx["style"], ctx["info"], question, messages, ctx["config"])
    if live:
        with LiveSearchView(console, question, ctx["config"].strategy) as view:
            record = runner.run_task(*args, view)
    else:
        record = runner.run_task(*args)
    if not ctx["no_log"]:
        record["run_id"] = history.save(ctx["command"], record)
    return record


def _show_answer(record: dict[str, Any], hide_thought: bool, quiet: bool, one_line: bool = False) -> None:
    answer = record["answer"]
    if one_line:
        answer = " ".join(answer.split())
    if sys.stdout.isatty() and not quiet:
        out_console().print(final_view(record, hide_thought))
    else:
        print(answer, flush=True)
        console = err_console()
        if console.is_terminal and not quiet:
            console.print(final_view({**record, "answer": "(on stdout)"}, hide_thought))


def _session(
    command: str,
    model: str,
    yes: bool,
    no_log: bool,
    quiet: bool,
    config: SearchConfig,
    options: runner.EngineOptions,
    backend: str | None = None,
    parallel: int | None = None,
    timeout: float = 120.0,
) -> dict[str, Any]:
    if backend:
        from marco_cli.engine.remote import RemoteEngine
        from marco_cli.registry import load_registry, parse_spec

        style = parse_spec(model, load_registry()).prompt_style if not model.endswith(".gguf") else "plain"
        engine = RemoteEngine(
            backend, parallel=parallel or max(config.children, config.samples), timeout=timeout
        )
        info = runner.remote_info(engine, style)
    else:
        spec, local = _local_model(model, yes)
        engine = runner.open_engine(local.path, replace(options, parallel=parallel or 1))
        style, info = spec.prompt_style, runner.model_info(spec, local)
    return {
        "command": command,
        "engine": engine,
        "style": style,
        "info": info,
        "config": config,
        "quiet": quiet,
        "no_log": no_log,
    }


_SEARCH_FIELDS = {f.name for f in fields(SearchConfig)}


def _config(options: dict[str, Any], **overrides: Any) -> SearchConfig:
    """The search settings among a command's options (its `locals()`), with `overrides`."""
    chosen = {k: v for k, v in options.items() if k in _SEARCH_FIELDS} | overrides
    try:
        return SearchConfig(**chosen)
    except ValueError as exc:
        raise MarcoError(str(exc), code=2) from None


def _finish(records: list[dict[str, Any]]) -> None:
    failed = next((r for r in records if r["stopped"] == "error"), None)
    if failed is not None:
        raise MarcoError(f"{failed['error']} (the partial tree is in the run's record)")
    if any(r["stopped"] == "interrupted" for r in records):
        err_console().print("[yellow]interrupted: the best answer so far is shown[/]")
        raise typer.Exit(130)


def register(app: typer.Typer) -> None:
    @app.command("solve")
    @handles_errors
    def solve_cmd(
        prompt: Annotated[str | None, typer.Argument(help="The question; '-' or a pipe reads stdin.")] = None,
        model: Model = "marco-o1",
        strategy: Strategy = "mcts",
        iterations: Iterations = 16,
        granularity: Granularity = "step",
        children: Children = 3,
        exploration: Exploration = 1.414,
        temperature: Temperature = 0.6,
        samples: Samples = 8,
        seed: Seed = 0,
        max_time: MaxTime = None,
        max_tokens: MaxTokens = 1024,
        reflection: Reflection = False,
        dynamic_reflection: Dynamic = False,
        select: Select = "visits",
        gpu_layers: GpuLayers = None,
        cpu: Cpu = False,
        ctx: Ctx = None,
        as_json: Json = False,
        hide_thought: HideThought = False,
        quiet: Quiet = False,
        verbose: Verbose = False,
        yes: Yes = False,
        no_log: NoLog = False,
        backend: Backend = None,
        parallel: Parallel = None,
        timeout: Timeout = 120.0,
    ) -> None:
        """Answer a question with Marco-o1-style search, showing the tree live."""
        options = dict(locals())
        question = _read_input(prompt).strip()
        config = _config(options, numeric_answer=any(c.isdigit() for c in question))
        session = _session(
            "solve",
            model,
            yes,
            no_log,
            quiet,
            config,
            runner.EngineOptions(gpu_layers, cpu, ctx, None, verbose),
            backend,
            parallel,
            timeout,
        )
        with session["engine"]:
            record = _run_one(session, question, runner.solve_messages(question))
        if as_json:
            print(json.dumps(record, ensure_ascii=False))
        else:
            _show_answer(record, hide_thought, quiet)
        _finish([record])

    @app.command("translate")
    @handles_errors
    def translate_cmd(
        text: Annotated[
            str | None, typer.Argument(help="Text to translate; '-' or a pipe reads stdin.")
        ] = None,
        to: Annotated[str, typer.Option("--to", help="Target language.")] = "English",
        source: Annotated[str | None, typer.Option("--from", help="Source language (default: auto).")] = None,
        model: Model = "marco-o1",
        strategy: Strategy = "mcts",
        iterations: Iterations = 8,
        granularity: Granularity = "step",
        children: Children = 3,
        exploration: Exploration = 1.414,
        temperature: Temperature = 0.6,
        samples: Samples = 8,
        seed: Seed = 0,
        max_time: MaxTime = None,
        max_tokens: MaxTokens = 512,
        reflection: Reflection = False,
        dynamic_reflection: Dynamic = False,
        select: Select = "visits",
        gpu_layers: GpuLayers = None,
        cpu: Cpu = False,
        ctx: Ctx = None,
        as_json: Json = False,
        hide_thought: HideThought = False,
        quiet: Quiet = False,
        verbose: Verbose = False,
        yes: Yes = False,
        no_log: NoLog = False,
        backend: Backend = None,
        parallel: Parallel = None,
        timeout: Timeout = 120.0,
    ) -> None:
        """Translate, reasoning about slang and colloquial meaning. Piped lines: one out per line in."""
        options = dict(locals())
        raw = _read_input(text)
        lines = raw.splitlines() if (text is None or text == "-") else [raw]
        config = _config(options)
        session = _session(
            "translate",
            model,
            yes,
            no_log,
            quiet,
            config,
            runner.EngineOptions(gpu_layers, cpu, ctx, None, verbose),
            backend,
            parallel,
            timeout,
        )
        records: list[dict[str, Any]] = []
        with session["engine"]:
            for line in lines:
                if not line.strip():
                    if not as_json:
                        print("", flush=True)
                    continue
                record = _run_one(session, line.strip(), runner.translate_messages(line.strip(), to, source))
                records.append(record)
                if not as_json:
                    _show_answer(record, hide_thought, quiet, one_line=len(lines) > 1)
                if record["stopped"] == "interrupted":
                    break
        if as_json:
            doc = records[0] if len(lines) == 1 and records else {"task": "translate", "lines": records}
            print(json.dumps(doc, ensure_ascii=False))
        _finish(records)

    @app.command("log")
    @handles_errors
    def log_cmd(
        limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many runs.")] = 20,
        as_json: Json = False,
    ) -> None:
        """List recent runs."""
        rows = history.recent(limit)
        if as_json:
            print(json.dumps(rows, ensure_ascii=False, indent=2))
            return
        table = Table(title="marco runs", title_justify="left")
        for column in ("id", "when", "command", "model", "strategy", "question", "answer", "conf", "time"):
            table.add_column(column, overflow="ellipsis", no_wrap=column in ("question", "answer"))
        for row in rows:
            conf = "-" if row["confidence"] is None else f"{row['confidence']:.3f}"
            when = datetime.fromtimestamp(row["created"]).strftime("%Y-%m-%d %H:%M")
            table.add_row(
                str(row["id"]),
                when,
                row["command"],
                row["model"],
                row["strategy"],
                " ".join(row["question"].split())[:60],
                " ".join(row["answer"].split())[:60],
                conf,
                f"{row['seconds']:.1f}s",
            )
        out_console().print(table)

    @app.command("show")
    @handles_errors
    def show_cmd(
        run_id: Annotated[int, typer.Argument(help="A run id from 'marco log'.")],
        as_json: Json = False,
        hide_thought: HideThought = False,
    ) -> None:
        """Show a past run: its tree and answer, or its JSON record."""
        record = history.load(run_id)
        if as_json:
            print(json.dumps(record, ensure_ascii=False))
            return
        console = out_console()
        console.print(render_tree(TreeSnapshot.from_record(record), width=console.size.width, max_lines=60))
        console.print(final_view(record, hide_thought))
