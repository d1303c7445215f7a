"""The Marco-o1 paper's MGSM figures beside a bench's rows when the model is Marco-o1 (the
registry entry, run here on the scripted model so nothing downloads), and a plain word that other
models have none; in the table, summary.json and the HTML index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from marco_cli.cli.app import app
from marco_cli.record.record import ModelInfo
from tests.helpers import runner
from tests.scripted import ScriptedEngine

ARGS = ["--strategy", "cot,mcts", "--granularity", "step,mini-64,mini-32", "--limit", "2", "-n", "1"]


@pytest.fixture
def named(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The scripted model under a registry name the test chooses (names[0])."""
    from marco_cli.cli import session

    names = ["marco-o1"]

    def factory(options: object, branches: int) -> session.Opened:
        engine = ScriptedEngine(actions={}, rollouts={}, default_rollout=("<Output>18</Output>", 0.8))
        engine.messages = []
        return session.Opened(engine, "marco", ModelInfo(names[0], None, "Q4_K_M", "test", "marco"))

    monkeypatch.setattr(session, "engine_factory", factory)
    return names


@pytest.mark.parametrize(
    ("dataset", "figures"),
    [
        ("mgsm-en", {"cot": 0.856, "mcts/step": 0.904, "mcts/mini-64": 0.888, "mcts/mini-32": 0.876}),
        ("mgsm-zh", {"cot": 0.712, "mcts/step": 0.800, "mcts/mini-64": 0.816, "mcts/mini-32": 0.824}),
    ],
)
def test_marco_o1_on_mgsm_gets_the_papers_figure_per_configuration(
    named: list[str], tmp_path: Path, dataset: str, figures: dict[str, float]
) -> None:
    out, pages = tmp_path / "out", tmp_path / "pages"
    result = runner.invoke(app, ["bench", dataset, *ARGS, "--out", str(out), "--html", str(pages), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert {name: row["paper"] for name, row in summary["configs"].items()} == pytest.approx(figures)
    assert "Qwen2-7B-Instruct" in summary["paper_note"]
    assert json.loads((out / "summary.json").read_text()) == summary
    index = (pages / "index.html").read_text()
    assert f"{figures['mcts/step']:.1%}" in index and 'id="paper-note"' in index
    table = runner.invoke(app, ["bench", dataset, *ARGS, "--out", str(out)])
    assert "paper" in table.stdout and f"{figures['cot']:.1%}" in table.stdout


def test_another_model_has_no_paper_figure_and_is_told_so(named: list[str], tmp_path: Path) -> None:
    named[0] = "qwen2.5-7b"
    result = runner.invoke(app, ["bench", "mgsm-en", *ARGS, "--out", str(tmp_path / "o"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert all("paper" not in row for row in summary["configs"].values())
    assert (
        summary["paper_note"]
        == "the paper's mgsm-en figures are Marco-o1's; qwen2.5-7b:Q4_K_M has none to compare with"
    )


def test_another_dataset_has_no_paper_column_or_note(named: list[str], tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", "arith:2", *ARGS, "--out", str(tmp_path / "o"), "--json"])
    summary = json.loads(result.stdout)
    assert "paper_note" not in summary and all("paper" not in row for row in summary["configs"].values())
