"""Tree pages in a real headless browser (Debian's chromium, installed by .ci/run), loaded from a
file URL with networking off: the rendered DOM is read back and a screenshot kept."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from marco_cli.cli.app import app
from marco_cli.record.record import ModelInfo, Record
from marco_cli.search.config import SearchConfig
from marco_cli.search.strategies import run_search
from marco_cli.ui.html import run_page
from tests.helpers import runner
from tests.scripted import ScriptedModel

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
HOSTILE = "<script>document.title='owned'</script> <b>bold?</b> What is 2 + 2?"


def record_of(question: str, iterations: int) -> Record:
    """A real search record from the scripted model: three children per node, varied rewards."""
    model = ScriptedModel(
        actions={},
        rollouts={},
        fallback=lambda s: (f"<Output>{len(s) % 5}</Output>", 0.5 + (len(s) % 7) / 20),
        more_actions=lambda s: [(f"{s[-1:] or 'x'}{k} step {len(s)}\n", 0.4 + 0.2 * k) for k in range(3)],
    )
    config = SearchConfig(
        iterations=iterations, children=3, stop_agree=None, select="reward-vote", rollouts="all"
    )
    result = run_search(model, model.prompt, config)
    return Record.of(result, question, ModelInfo("scripted"), config)


def browse(page: Path, tmp_path: Path, anchor: str = "", screenshot: Path | None = None) -> str:
    """The DOM after the page's script ran (or a screenshot), with every network request refused."""
    assert CHROMIUM is not None
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--virtual-time-budget=5000",
        "--window-size=1400,1000",
    ]
    args += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    done = subprocess.run(
        [*args, page.resolve().as_uri() + anchor], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class Dom(HTMLParser):
    """The few things the tests read from a rendered page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.nodes: list[int] = []
        self.on_path: list[int] = []
        self.best: list[int] = []
        self.rollouts: list[int] = []
        self.scripts = 0
        self.body: dict[str, str] = {}
        self.title = ""
        self.heading = ""
        self._in: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        if "node" in classes:
            self.nodes.append(int(a["data-id"]))
            if "on-path" in classes:
                self.on_path.append(int(a["data-id"]))
            if "best-reward" in classes:
                self.best.append(int(a["data-id"]))
        if "rollout" in classes:
            self.rollouts.append(int(a["data-rollout"]))
        self.scripts += tag == "script"
        if tag == "body":
            self.body = a
        self._in = tag if tag in ("title", "h1") else None

    def handle_data(self, data: str) -> None:
        if self._in == "title":
            self.title += data
        elif self._in == "h1":
            self.heading += data

    def handle_endtag(self, tag: str) -> None:
        self._in = None


def test_the_page_is_self_contained_and_escapes_everything() -> None:
    page = run_page(record_of(HOSTILE, 6))
    assert "http://" not in page and "https://" not in page and "src=" not in page
    assert page.count("<script") == 2  # the embedded record and the page's own script
    assert "<script>document.title" not in page and "&lt;script&gt;" in page


@needs_browser
def test_a_search_page_in_the_browser(tmp_path: Path) -> None:
    record = record_of(HOSTILE, 10)
    refuted = replace(record.nodes[1], refuted=("56 + 31 = 97 (is 87)",))  # as `--reward check` keeps it
    kept = replace(record.nodes[2], judged=0.8)  # a step the verifier kept (`judge-steps`)
    judged = replace(record.rollouts[0], judged=0.6)  # an answer it judged (`judge`)
    pruned = replace(record.nodes[3], pruned=True, value=0.25)  # a step search's loser (beam, dvts)
    record = replace(
        record,
        nodes=(record.nodes[0], refuted, kept, pruned, *record.nodes[4:]),
        rollouts=(judged, *record.rollouts[1:]),
    )
    page = tmp_path / "run.html"
    page.write_text(run_page(record), encoding="utf-8")
    html = browse(page, tmp_path)
    assert "\u2717 56 + 31 = 97 (is 87)" in html  # the failed check, on its node
    assert "\u2713 P(Yes) 0.80" in html  # the verifier's verdict on a step it kept
    assert "\u2702 pruned at value 0.25" in html  # a candidate the beam pruned
    dom = Dom(html)
    assert dom.body.get("data-ready") == "yes"
    assert sorted(dom.nodes) == [n.id for n in record.nodes]
    assert sorted(dom.on_path) == sorted(record.path)
    finished = [r for r in record.rollouts if r.finished]
    top = max(finished, key=lambda r: r.reward or 0.0)
    if top.id != record.chosen_rollout:
        assert top.node in dom.best and 0 in dom.best
    assert dom.scripts == 2 and dom.title != "owned"  # the prompt's <script> did not run
    assert dom.heading == HOSTILE  # it is shown as the text it is
    node = record.rollouts[0].node
    clicked = Dom(browse(page, tmp_path, f"#node-{node}"))
    assert clicked.rollouts == [r.id for r in record.rollouts if r.node == node]
    assert "verifier P(Yes) 0.60" in browse(page, tmp_path, f"#node-{node}")  # on the rollout it judged
    ARTIFACTS.mkdir(exist_ok=True)
    browse(page, tmp_path, f"#node-{node}", screenshot=ARTIFACTS / "tree_page.png")
    assert (ARTIFACTS / "tree_page.png").stat().st_size > 10_000


@needs_browser
def test_three_hundred_nodes_render_in_under_two_seconds(tmp_path: Path) -> None:
    record = record_of("A big tree", 120)
    assert len(record.nodes) >= 300
    page = tmp_path / "big.html"
    page.write_text(run_page(record), encoding="utf-8")
    dom = Dom(browse(page, tmp_path))
    assert len(dom.nodes) == len(record.nodes)
    assert float(dom.body["data-render-ms"]) < 2000


@needs_browser
def test_show_and_bench_write_pages(tmp_path: Path, scripted_session) -> None:

    solved = runner.invoke(app, ["solve", "What is 2 + 2?", "--html", str(tmp_path / "solve.html")])
    assert solved.exit_code == 0 and (tmp_path / "solve.html").exists()
    shown = runner.invoke(app, ["show", "1", "--html", str(tmp_path / "show.html")])
    assert shown.exit_code == 0 and "tree page:" in shown.stderr
    data = tmp_path / "tiny.tsv"
    data.write_text("What is 2 + 2?\t4\nWhat is 3 + 3?\t6\n", encoding="utf-8")
    site = tmp_path / "site"
    ran = runner.invoke(
        app,
        [
            "bench",
            str(data),
            "--strategy",
            "cot,mcts",
            "-n",
            "2",
            "--out",
            str(tmp_path / "b"),
            "--html",
            str(site),
        ],
    )
    assert ran.exit_code == 0, ran.output
    pages = sorted(p.name for p in (site / "runs").iterdir())
    assert pages == ["cot-0.html", "cot-1.html", "mcts_step-0.html", "mcts_step-1.html"]
    index = (site / "index.html").read_text()
    assert "50.0% [" in index and 'href="runs/cot-1.html"' in index  # 4 is right, 6 is not
    dom = Dom(browse(site / "runs" / "mcts_step-0.html", tmp_path))
    kept = [json.loads(line) for line in (tmp_path / "b" / "records.jsonl").read_text().splitlines()]
    record = next(k["record"] for k in kept if k["config"] == "mcts/step" and k["index"] == 0)
    assert len(dom.nodes) == len(record["nodes"])


@needs_browser
def test_the_bench_chart_has_ticks_interval_bars_and_labels_that_do_not_overlap(tmp_path: Path) -> None:
    """Two configurations at the same cost and accuracy (vote@4 and deepconf@4 on the same
    samples) share one label instead of printing over each other; the legend names both."""
    from marco_cli.record.results import Figures
    from marco_cli.ui.charts import frontier_svg

    def row(accuracy: float, tokens: float, ci: tuple[float, float]) -> Figures:
        return Figures(40, round(accuracy * 40), accuracy, ci, 0.0, tokens, 1.0, tokens, dominated=False)

    configs = {
        "cot": row(0.25, 120, (0.14, 0.40)),
        "vote@4": row(0.30, 480, (0.18, 0.45)),
        "deepconf@4": row(0.30, 480, (0.18, 0.45)),
        "mcts": row(0.325, 700, (0.20, 0.48)),
    }
    page = tmp_path / "chart.html"
    page.write_text(f"<!doctype html><html><body>{frontier_svg(configs)}</body></html>", encoding="utf-8")
    dom = browse(page, tmp_path)
    assert dom.count('class="tick"') == 10  # five on each axis
    assert dom.count('class="ci"') == 4  # a Wilson bar per configuration
    labels = re.findall(r'class="label"[^>]*>([^<]*)<', dom)
    assert sorted(labels) == ["A", "B C", "D"]  # the two at one spot share one label
    legend = re.findall(r'class="legend"[^>]*>([^<]*)<', dom)
    assert [line.split(":")[0] for line in legend] == ["A  cot", "B  vote@4", "C  deepconf@4", "D  mcts"]
    ARTIFACTS.mkdir(exist_ok=True)
    browse(page, tmp_path, screenshot=ARTIFACTS / "bench_chart.png")
    assert (ARTIFACTS / "bench_chart.png").stat().st_size > 1000
