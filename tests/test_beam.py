"""Value-guided step search (search/beam.py): beam search keeps the best --beams paths by their
step values and prunes the rest (kept in the tree and the record), DVTS keeps one path per
subtree, a step gate's refutation is value 0, `gut` rewards a step unlike its siblings, a path's
value aggregates its steps'; both run through solve, bench and serve like every strategy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from marco_cli.cli.app import app
from marco_cli.cli.serve import model_ids
from marco_cli.record.record import ModelInfo, Record
from marco_cli.search.beam import novelty, path_value
from marco_cli.search.config import SearchConfig
from marco_cli.search.strategies import run_search
from tests.helpers import runner
from tests.scripted import ScriptedModel

ROOT_STEPS = [("A.\n", 0.9), ("B.\n", 0.5), ("C.\n", 0.7), ("D.\n", 0.3)]
WORLD = {
    "": ROOT_STEPS,
    "A.\n": [("<Output>1</Output>", 0.8), ("<Output>2</Output>", 0.6)],
    "C.\n": [("<Output>3</Output>", 0.95), ("<Output>1</Output>", 0.4)],
}


def _world() -> ScriptedModel:
    return ScriptedModel(actions={k: list(v) for k, v in WORLD.items()}, rollouts={})


def _texts(result, ids) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(result.tree.nodes[i].text for i in ids)


def test_beam_keeps_the_best_paths_by_value_and_prunes_the_rest() -> None:
    result = run_search(_world(), _world().prompt, SearchConfig(strategy="beam", beams=2, beam_width=2))
    tree = result.tree
    first = [tree.nodes[c] for c in tree.root.children]
    assert sorted(n.text for n in first) == ["A.\n", "B.\n", "C.\n", "D.\n"]  # 2 x 2 first steps
    assert sorted(n.text for n in first if n.pruned) == ["B.\n", "D.\n"]
    assert all(n.mean_value == pytest.approx(n.mean_confidence) for n in first)  # value: confidence
    assert sorted(r.answer for r in result.rollouts) == ["1", "1", "2", "3"]
    assert result.answer == "1" and result.stopped == "done"  # reward-vote: 0.8 + 0.4 beats 0.95
    told = run_search(
        _world(), _world().prompt, SearchConfig(strategy="beam", beams=2, beam_width=2, select="reward")
    )
    assert told.answer == "3"
    record = Record.from_json(Record.of(result, "Q?", ModelInfo("scripted"), result_config()).to_json())
    assert sorted(n.text for n in record.nodes if n.pruned) == ["B.\n", "D.\n"]


def result_config() -> SearchConfig:
    return SearchConfig(strategy="beam", beams=2, beam_width=2)


def test_dvts_keeps_one_path_per_subtree() -> None:
    result = run_search(_world(), _world().prompt, SearchConfig(strategy="dvts", beams=4, beam_width=2))
    first = [result.tree.nodes[c] for c in result.tree.root.children]
    kept = sorted(n.text for n in first if not n.pruned)
    assert kept == ["A.\n", "C.\n"]  # subtree 1 drew A and B, subtree 2 C and D: each keeps its best
    assert len(result.rollouts) == 4


def test_a_refuted_step_is_worth_nothing_and_pruned() -> None:
    world = _world()
    world.actions[""] = [("2 + 2 = 5.\n", 0.99), ("2 + 2 = 4.\n", 0.6)]
    world.actions["2 + 2 = 4.\n"] = [("<Output>4</Output>", 0.9)]
    config = SearchConfig(strategy="beam", beams=1, beam_width=2, reward="finished+check", temperature=1.0)
    result = run_search(world, world.prompt, config)
    wrong = next(result.tree.nodes[c] for c in result.tree.root.children if "5" in result.tree.nodes[c].text)
    assert wrong.pruned and wrong.refuted == ("2 + 2 = 5 (is 4)",) and wrong.mean_value == 0.0
    assert result.answer == "4"


def _apples() -> ScriptedModel:
    world = _world()
    world.actions[""] = [
        ("We add the apples.\n", 0.8),
        ("We add the apples!\n", 0.8),
        ("Count: 3, 4.\n", 0.75),
    ]
    for text, _ in world.actions[""]:
        world.actions[text] = [("<Output>7</Output>", 0.9)]
    return world


def test_gut_rewards_a_step_unlike_its_siblings() -> None:
    plain = run_search(_apples(), _apples().prompt, SearchConfig(strategy="beam", beams=1, beam_width=3))
    gut = run_search(
        _apples(), _apples().prompt, SearchConfig(strategy="beam", beams=1, beam_width=3, value="gut")
    )
    kept = [n.text for n in (plain.tree.nodes[c] for c in plain.tree.root.children) if not n.pruned]
    gut_kept = [n.text for n in (gut.tree.nodes[c] for c in gut.tree.root.children) if not n.pruned]
    assert len(plain.tree.root.children) == len(gut.tree.root.children) == 3
    assert kept != ["Count: 3, 4.\n"] and gut_kept == ["Count: 3, 4.\n"]
    assert novelty("abc", ["abc"]) == 0.0 and novelty("abc", []) == 1.0


def test_a_paths_value_aggregates_its_steps() -> None:
    assert path_value("last", 0.9, 0.5) == 0.5 and path_value("min", 0.4, 0.5) == 0.4
    assert path_value("prod", 0.5, 0.5) == 0.25 and path_value("prod", None, 0.7) == 0.7


def test_beam_and_dvts_run_through_solve_bench_and_serve(scripted_session, tmp_path: Path) -> None:
    solved = runner.invoke(app, ["solve", "Q?", "--strategy", "beam", "--beams", "2", "--json"])
    assert solved.exit_code == 0, solved.output
    assert json.loads(solved.stdout)["settings"]["beams"] == 2
    shown = runner.invoke(app, ["show", "1"])
    assert shown.exit_code == 0
    data = tmp_path / "one.tsv"
    data.write_text("What is 2 + 2?\t4\n")
    spec = "beam@2,dvts@4[--beam-width 2 --value check],cot"
    benched = runner.invoke(
        app, ["bench", str(data), "--strategy", spec, "--out", str(tmp_path / "o"), "--json"]
    )
    assert benched.exit_code == 0, benched.output
    settings = json.loads((tmp_path / "o" / "run.json").read_text())["settings"]
    assert (
        settings["beam/step@2"]["beams"] == 2
        and settings["dvts/step@4[--beam-width 2 --value check]"]["beams"] == 4
    )
    assert {"m:beam", "m:dvts"} <= set(model_ids("m"))
    refused = runner.invoke(
        app, ["bench", str(data), "--strategy", "vote@2[--beams 3]", "--out", str(tmp_path / "r")]
    )
    assert refused.exit_code == 2 and "--beams is a beam setting" in refused.stderr


@pytest.mark.slow
def test_beam_on_the_real_model_keeps_its_values_and_answers() -> None:
    args = ["solve", "What is 12 + 7?", "-m", "smollm2-135m", "--strategy", "beam", "--beams", "2"]
    result = runner.invoke(
        app, [*args, "--beam-width", "2", "--granularity", "mini-32", "--max-tokens", "96", "--json"]
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    steps = [n for n in record["nodes"] if n["parent"] is not None]
    assert steps and all(0 <= n["value"] <= 1 for n in steps)
    assert record["rollouts"] and record["settings"]["select"] == "reward-vote"
    live = [n for n in steps if n["parent"] == 0]
    assert len(live) >= 2 and sum(1 for n in live if not n.get("pruned")) <= 2 + sum(
        1 for n in live if n["terminal"]
    )
