"""A search as one self-contained HTML page (inline CSS and JS, nothing fetched), and a bench
run as an index page linking to one such page per problem.

The record is embedded as JSON in a `<script type="application/json">` block (with `<`, `>`
and `&` escaped) and the page builds the tree with `textContent` only, so no text from a
prompt or a model can become markup. Nodes are native `<details>` elements: the path the
answer came from is open, everything else starts collapsed (readable at hundreds of nodes).
A link to `page.html#node-12` opens node 12 and shows the rollouts that started there.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Protocol

from marco_cli.files import make_folder, write_text
from marco_cli.record.record import Record
from marco_cli.record.results import ResultRow, Summary
from marco_cli.search.strategies import answer_rule
from marco_cli.ui.charts import frontier_svg

_STYLE = resources.files("marco_cli.ui").joinpath("page.css").read_text(encoding="utf-8")
_SCRIPT = resources.files("marco_cli.ui").joinpath("page.js").read_text(encoding="utf-8")


def _embed(data: object) -> str:
    """JSON that cannot close its <script> element."""
    text = json.dumps(data, ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _settings_line(record: Record) -> str:
    s = record.search
    settings = (
        ("strategy", s.strategy),
        ("iterations", s.iterations),
        ("children", s.children),
        ("granularity", s.granularity),
        ("temperature", s.temperature),
        ("reward", s.reward),
        ("select", answer_rule(s)),
        ("seed", s.seed),
    )
    shown = " · ".join(f"{k} {v}" for k, v in settings)
    judged = f", {record.tokens.verifier} by the verifier" if record.tokens.verifier else ""
    cost = (
        f"{record.iterations} iterations · {record.tokens.generated} tokens generated, "
        f"{record.tokens.evaluated} evaluated{judged} · {record.seconds:.1f}s · stopped: {record.stopped}"
    )
    return f"{html.escape(shown)}<br>{html.escape(cost)}"


def run_page(record: Record, title: str = "marco search") -> str:
    """One self-contained page for one search record."""
    model, conf = record.model.name, record.reward
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}: {html.escape(record.question[:80])}</title>
<style>{_STYLE}</style></head>
<body>
<header><h1 id="question">{html.escape(record.question)}</h1>
<div class="meta">{html.escape(model)} · confidence {"-" if conf is None else f"{conf:.3f}"} ·
{len(record.nodes)} nodes · {len(record.rollouts)} rollouts<br>
{_settings_line(record)}</div>
<div class="meta legend"><span class="hi">■ confidence ≥ 0.8</span><span class="mid">■ ≥ 0.6</span>
<span class="lo">■ below</span><span class="refl">↺ reflection</span><span>◀ the answer's path</span>
<span>★ the best-reward rollout, when it differs</span><span>■ terminal</span></div></header>
<main><section><h2>Search tree (click a node for its rollouts)</h2><div id="tree"></div></section>
<section><h2>Thought</h2><pre id="thought"></pre><h2>Output</h2><pre id="output"></pre>
<div id="rollouts"><div class="meta">Click a node to see the rollouts that started there.</div></div>
</section></main>
<script type="application/json" id="record">{_embed(record.to_json())}</script>
<script>{_SCRIPT}</script>
</body></html>
"""


def _row(cells: list[str], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"


@dataclass(frozen=True)
class Linked:
    """One configuration's result on one problem of the index: right or not, its answer, and
    the tree page it links to."""

    correct: bool
    answer: str
    page: str


@dataclass
class ProblemLine:
    """One problem of the index: its number, question, gold answer, and a result per configuration."""

    index: int
    question: str
    gold: str
    configs: dict[str, Linked] = field(default_factory=dict)


def _accuracy_rows(summary: Summary) -> list[str]:
    papered = any(row.paper is not None for row in summary.configs.values())
    heads = ["config", "n", "accuracy [95% CI]", "no answer", "tokens", "s", "Δ vs cot"]
    table = [_row([*heads, *(["paper"] if papered else [])], "th")]
    for name, row in summary.configs.items():
        low, high = row.ci95
        delta = row.delta_vs_cot
        cells = [html.escape(name), str(row.n), f"{row.accuracy:.1%} [{low:.0%}–{high:.0%}]"]
        cells += [f"{row.no_answer:.1%}", f"{row.mean_tokens:.0f}", f"{row.mean_seconds:.1f}"]
        cells.append("-" if delta is None else f"{delta:+.1%}")
        if papered:
            cells.append("-" if row.paper is None else f"{row.paper:.1%}")
        table.append(_row(cells))
    return table


def _flip_rows(summary: Summary) -> list[str]:
    flips = [_row(["from", "to", "problems", "right→wrong", "wrong→right", "McNemar p"], "th")]
    for pair in summary.pairs:
        names = [html.escape(pair.first), html.escape(pair.second)]
        counts = [str(pair.problems), str(pair.right_to_wrong), str(pair.wrong_to_right)]
        flips.append(_row([*names, *counts, f"{pair.p_exact:.3g}"]))
    return flips


def _problem_rows(configs: list[str], problems: list[ProblemLine]) -> list[str]:
    rows = [_row(["#", "question", "gold", *map(html.escape, configs)], "th")]
    for problem in problems:
        cells = [str(problem.index), html.escape(problem.question[:120]), html.escape(problem.gold)]
        for name in configs:
            done = problem.configs.get(name)
            if done is None:
                cells.append("")
                continue
            mark = "✓" if done.correct else "✗"
            cells.append(f'<a href="{html.escape(done.page)}">{mark} {html.escape(done.answer[:40])}</a>')
        rows.append(_row(cells))
    return rows


def bench_index(summary: Summary, problems: list[ProblemLine]) -> str:
    """The accuracy table with intervals, paired flips, and every problem linking to its pages."""
    table, flips = _accuracy_rows(summary), _flip_rows(summary)
    rows = _problem_rows(list(summary.configs), problems)
    title = html.escape(f"marco bench · {summary.model} · {summary.dataset}")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>{_STYLE}</style></head>
<body><header><h1>{title}</h1><div class="meta">{summary.problems} problems</div></header>
<main style="display:block"><section><h2>Accuracy</h2><table id="accuracy">{"".join(table)}</table>
{f'<p class="meta" id="paper-note">{html.escape(summary.paper_note)}</p>' if summary.paper_note else ""}
<h2>Accuracy against tokens per problem (filled: on the frontier; hollow: dominated)</h2>
{frontier_svg(summary.configs)}
<h2>Paired flips (McNemar counts)</h2><table id="flips">{"".join(flips)}</table></section>
<section><h2>Problems</h2><table id="problems">{"".join(rows)}</table></section></main></body></html>
"""


class KeptRun(Protocol):
    """A search a bench run kept (runs.bench.Kept): its configuration, problem and record."""

    @property
    def config(self) -> str: ...

    @property
    def index(self) -> int: ...

    @property
    def gold(self) -> str: ...

    @property
    def record(self) -> Record: ...


def write_bench_pages(
    folder: Path, summary: Summary, kept: Sequence[KeptRun], results: list[ResultRow]
) -> Path:
    """index.html plus runs/<config>-<index>.html for every kept record; returns the index."""
    make_folder(folder / "runs")
    graded = {(r.config, r.index): r for r in results}
    problems: dict[int, ProblemLine] = {}
    for item in kept:
        name, index, record = item.config, item.index, item.record
        page = f"runs/{name.replace('/', '_')}-{index}.html"
        write_text(folder / page, run_page(record, f"{name} #{index}"))
        row = graded.get((name, index))
        entry = problems.setdefault(index, ProblemLine(index, record.question, item.gold))
        entry.configs[name] = Linked(row is not None and row.correct, record.answer, page)
    index_path = folder / "index.html"
    write_text(index_path, bench_index(summary, [problems[k] for k in sorted(problems)]))
    return index_path
