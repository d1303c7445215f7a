"""`marco bench`: the Marco-o1 MGSM table for any model, resumable, paired."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from marco_cli import bench, runner
from marco_cli.cli_solve import (
    Backend,
    Children,
    Cpu,
    Ctx,
    Dynamic,
    Exploration,
    GpuLayers,
    Iterations,
    Json,
    MaxTokens,
    Model,
    Parallel,
    Reflection,
    Samples,
    Seed,
    Select,
    Temperature,
    Timeout,
    Verbose,
    Yes,
    _config,
    _session,
)
from marco_cli.errors import MarcoError
from marco_cli.search.core import run_search
from marco_cli.ui.console import err_console, handles_errors, out_console


def _split(values: list[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _table(summary: dict[str, Any]) -> Table:
    table = Table(title=f"marco bench · {summary['model']} · {summary['dataset']}", title_justify="left")
    for column in ("config", "n", "accuracy [95% CI]", "no answer", "tokens", "s", "tok/s", "Δ vs cot"):
        table.add_column(column, justify="left" if column == "config" else "right", no_wrap=True)
    for name, row in summary["configs"].items():
        low, high = row["ci95"]
        delta = row.get("delta_vs_cot")
        table.add_row(
            name,
            str(row["n"]),
            f"{row['accuracy']:.1%} [{low:.0%}-{high:.0%}]",
            f"{row['no_answer']:.1%}",
            f"{row['mean_tokens']:.0f}",
            f"{row['mean_seconds']:.1f}",
            f"{row['tokens_per_second']:.0f}",
            "-" if delta is None else f"{delta:+.1%}",
        )
    return table


def _pairs(summary: dict[str, Any]) -> Table:
    table = Table(title="paired flips (McNemar counts)", title_justify="left")
    for column in ("from", "to", "problems", "right→wrong", "wrong→right"):
        table.add_column(column)
    for pair in summary["pairs"]:
        table.add_row(
            pair["from"],
            pair["to"],
            str(pair["problems"]),
            str(pair["right_to_wrong"]),
            str(pair["wrong_to_right"]),
        )
    return table


def register(app: typer.Typer) -> None:
    @app.command("bench")
    @handles_errors
    def bench_cmd(
        dataset: Annotated[Path, typer.Argument(help="TSV question<TAB>answer, or JSONL question/answer.")],
        model: Model = "marco-o1",
        strategy: Annotated[
            list[str] | None, typer.Option(help="Repeat or comma-separate (default cot,mcts).")
        ] = None,
        granularity: Annotated[
            list[str] | None, typer.Option(help="For mcts; repeat or comma-separate (default step).")
        ] = None,
        limit: Annotated[int | None, typer.Option(min=1, help="Only this many problems.")] = None,
        offset: Annotated[int, typer.Option(min=0, help="Skip this many problems first.")] = 0,
        out: Annotated[Path | None, typer.Option(help="Results folder (rerun it to resume).")] = None,
        iterations: Iterations = 16,
        children: Children = 3,
        exploration: Exploration = 1.414,
        temperature: Temperature = 0.6,
        samples: Samples = 8,
        seed: Seed = 0,
        max_tokens: MaxTokens = 1024,
        reflection: Reflection = False,
        dynamic_reflection: Dynamic = False,
        select: Select = "visits",
        gpu_layers: GpuLayers = None,
        cpu: Cpu = False,
        ctx: Ctx = None,
        as_json: Json = False,
        verbose: Verbose = False,
        yes: Yes = False,
        backend: Backend = None,
        parallel: Parallel = None,
        timeout: Timeout = 120.0,
    ) -> None:
        """Accuracy, no-answer rate and cost per strategy x granularity, on the same problems."""
        options = dict(locals())
        problems = bench.load_dataset(dataset)[offset:]
        problems = problems[:limit] if limit else problems
        strategies, granularities = _split(strategy or ["cot,mcts"]), _split(granularity or ["step"])
        combos = [(s, g) for s in strategies for g in (granularities if s == "mcts" else ["step"])]
        names = [bench.config_name(s, g) for s, g in combos]
        configs = {
            bench.config_name(s, g): _config(options, strategy=s, granularity=g, numeric_answer=True)
            for s, g in combos
        }
        session = _session(
            "bench",
            model,
            yes,
            True,
            True,
            next(iter(configs.values())),
            runner.EngineOptions(gpu_layers, cpu, ctx, None, verbose),
            backend,
            parallel,
            timeout,
        )
        engine, label = session["engine"], session["info"]["name"]
        if session["info"].get("quant"):
            label = f"{label}:{session['info']['quant']}"
        out = out or Path("bench-out") / f"{dataset.stem}-{label.replace(':', '-').replace('/', '_')}"
        out.mkdir(parents=True, exist_ok=True)
        meta = {
            "dataset": str(dataset),
            "model": label,
            "settings": {n: c.as_dict() for n, c in configs.items()},
        }
        meta_path = out / "run.json"
        if meta_path.exists():
            old = json.loads(meta_path.read_text())
            if old.get("model") != meta["model"] or any(
                old.get("settings", {}).get(n, c) != c for n, c in meta["settings"].items()
            ):
                raise MarcoError(f"{out} holds results of other settings; pass another --out", code=2)
            meta["settings"] = {**old.get("settings", {}), **meta["settings"]}
        meta_path.write_text(json.dumps(meta, indent=2))
        done = {(r["config"], r["index"]) for r in bench.read_results(out)}
        todo = [(p, n) for p in problems for n in names if (n, p.index) not in done]
        console = err_console()
        interrupted = False
        lock = threading.Lock()

        def work(item: tuple[bench.Problem, str]) -> None:
            problem, name = item
            prompt = engine.build_prompt(runner.solve_messages(problem.question), session["style"])
            result = run_search(engine, prompt, configs[name])
            if result.stopped == "interrupted":
                raise KeyboardInterrupt
            if result.stopped == "error":
                raise MarcoError(result.error or "the model failed")
            extracted, correct = bench.grade(result.answer, problem.answer)
            row = {
                "config": name,
                "index": problem.index,
                "question": problem.question,
                "gold": problem.answer,
                "extracted": extracted,
                "correct": correct,
                "reward": result.reward,
                "tokens": result.generated_tokens,
                "seconds": round(result.seconds, 3),
                "answer": result.answer,
                "response": result.text,
            }
            with lock:
                bench.append_result(out, row)
                bar.update(task, advance=1, description=f"{name} #{problem.index}")

        total = len(problems) * len(names)
        with (
            engine,
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=console,
                disable=not console.is_terminal,
            ) as bar,
        ):
            task = bar.add_task("bench", total=total, completed=total - len(todo))
            try:
                if backend:  # the server batches concurrent requests: keep several problems in flight
                    with ThreadPoolExecutor(max_workers=parallel or 4) as pool:
                        list(pool.map(work, todo))
                else:
                    for item in todo:
                        work(item)
            except KeyboardInterrupt:
                interrupted = True
        wanted = {p.index for p in problems}
        rows = [r for r in bench.read_results(out) if r["index"] in wanted]
        summary = {
            "dataset": str(dataset),
            "model": label,
            "problems": len(problems),
            **bench.summarize(rows, names),
        }
        (out / bench.SUMMARY).write_text(json.dumps(summary, indent=2))
        if as_json:
            print(json.dumps(summary, ensure_ascii=False))
        else:
            target = out_console()
            target.print(_table(summary))
            if len(names) > 1:
                target.print(_pairs(summary))
            console.print(f"results in {out}/{bench.RESULTS}, summary in {out}/{bench.SUMMARY}")
        if interrupted:
            console.print("[yellow]interrupted: finished problems are kept; rerun to resume[/]")
            raise typer.Exit(130)
