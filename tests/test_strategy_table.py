"""A strategy is one spec in one table (search/spec.py, search/strategies.py): a strategy
written in this test file alone, registered at run time, runs through `solve`, `bench` and
`serve` as the built-in ones do, answers by its own rule unless `--select` says otherwise, and
spends its own budget. The built-in table is checked against what each strategy does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from marco_cli.cli.app import app
from marco_cli.cli.option_table import SEARCH
from marco_cli.cli.serve import configurer, model_ids
from marco_cli.contract import Request
from marco_cli.search import strategies
from marco_cli.search.config import SearchConfig, SearchResult
from marco_cli.search.core import RunCost, end_run, score
from marco_cli.search.rules import Ballot, choose
from marco_cli.search.spec import RunContext, StrategySpec, sample_count
from marco_cli.search.tree import Tree
from marco_cli.server.app import ServerSettings, build_app
from marco_cli.server.runner import Runner, Served
from tests.helpers import runner
from tests.scripted import ScriptedEngine


def run_shortest_first(ctx: RunContext, config: SearchConfig) -> SearchResult:
    """A toy strategy: `samples` answers, all sampled at once, kept shortest first."""
    requests = [
        Request(ctx.prompt, config.sampling(seed), config.rollout_stop(config.max_tokens))
        for seed in range(config.samples)
    ]
    gens = sorted(ctx.model.generate_many(requests), key=lambda g: len(g.tokens))
    tree = Tree(tuple(ctx.prompt))
    for gen in gens:
        node = tree.add(
            tree.root,
            gen.tokens,
            gen.text,
            gen.confidences,
            True,
            stop_reason=gen.stop_reason,
            offsets=gen.offsets,
        )
        tree.add_rollout(score(tree, node, None, config, ctx.scoring))
    chosen = choose(Ballot.of(tree), ctx.scoring.rule)
    cost = RunCost(1, sum(len(g.tokens) for g in gens), 0, 0.0)
    return end_run(config, tree, chosen, cost, "done", None, ctx.listener)


TOY = StrategySpec(
    "shortest", run_shortest_first, "a test's own", own_rule="visits", budget="samples", branches=sample_count
)
ANSWERS = ["<Output>12</Output>", "So it is 7.\n<Output>7</Output>", "Seven.\n<Output>7</Output>"]


class Answering(ScriptedEngine):
    """Each rollout request gets the next of ANSWERS, in turn."""

    given = 0

    def _one(self, request: Request):  # type: ignore[no-untyped-def]
        self.rollouts[""] = (ANSWERS[self.given % len(ANSWERS)], 0.9)
        self.given += 1
        return super()._one(request)


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from marco_cli.cli import session
    from marco_cli.record.record import ModelInfo

    def factory(options: object, branches: int) -> session.Opened:
        engine = Answering(actions={}, rollouts={})
        engine.messages = []
        return session.Opened(engine, "plain", ModelInfo("scripted", None, None, "test", "plain"))

    monkeypatch.setattr(session, "engine_factory", factory)
    strategies.register(TOY)
    yield
    strategies.unregister(TOY.name)


@pytest.mark.usefixtures("toy")
def test_a_registered_strategy_runs_through_solve_by_its_own_rule_or_select() -> None:
    result = runner.invoke(
        app, ["solve", "What is 3 + 4?", "--strategy", "shortest", "--samples", "3", "--json"]
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["settings"]["strategy"] == "shortest" and record["settings"]["select"] == "visits"
    assert [r["answer"] for r in record["rollouts"]] == ["12", "7", "7"]  # shortest first
    assert record["answer"] == "12"  # visits: the first of equals
    told = runner.invoke(
        app, ["solve", "What is 3 + 4?", "--strategy", "shortest", "--select", "majority", "--json"]
    )
    assert json.loads(told.stdout)["answer"] == "7"
    shown = runner.invoke(app, ["show", str(record["run_id"])])
    assert shown.exit_code == 0 and "12" in shown.stdout


@pytest.mark.usefixtures("toy")
def test_a_registered_strategy_runs_in_bench_at_its_own_budget(tmp_path: Path) -> None:
    data = tmp_path / "one.tsv"
    data.write_text("What is 3 + 4?\t7\n")
    out = tmp_path / "out"
    spec = "shortest@3,most=shortest@3[--select majority],cot"
    result = runner.invoke(app, ["bench", str(data), "--strategy", spec, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    rows = {json.loads(line)["config"]: json.loads(line) for line in (out / "results.jsonl").open()}
    assert rows["shortest@3"]["answer"] == "12" and rows["most"]["answer"] == "7" and rows["most"]["correct"]
    settings = json.loads((out / "run.json").read_text())["settings"]
    assert settings["shortest@3"]["samples"] == 3 and settings["shortest@3"]["select"] == "visits"


@pytest.mark.usefixtures("toy")
def test_a_registered_strategy_is_served_as_a_model_id() -> None:
    from marco_cli.cli import session
    from marco_cli.record.record import ModelInfo

    assert "m:shortest" in model_ids("m")
    engine = Answering(actions={}, rollouts={})
    engine.messages = []
    opened = session.Opened(engine, "plain", ModelInfo("scripted", None, None, "test", "plain"))
    served = Runner(Served(opened, lambda record: record), 1, 4)
    settings = {name: default for name, (_, default) in SEARCH.items()}
    try:
        client = TestClient(
            build_app(served, ServerSettings(model_ids("scripted"), configurer(settings), None))
        )
        body = {
            "model": "scripted:shortest",
            "messages": [{"role": "user", "content": "3 + 4?"}],
            "marco": {"samples": 3},
        }
        reply = client.post("/v1/chat/completions", json=body)
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"] == "12"
    finally:
        served.close()


def test_an_unknown_strategy_is_refused_everywhere_with_the_tables_names(
    scripted_session, tmp_path: Path
) -> None:
    solved = runner.invoke(app, ["solve", "Q", "--strategy", "shortest"])
    assert solved.exit_code == 2 and "'shortest' is not one of 'mcts', 'cot'" in solved.stderr
    data = tmp_path / "one.tsv"
    data.write_text("What is 3 + 4?\t7\n")
    benched = runner.invoke(
        app, ["bench", str(data), "--strategy", "shortest@3", "--out", str(tmp_path / "o")]
    )
    assert benched.exit_code == 2 and "strategy must be one of mcts, cot" in benched.stderr
    with pytest.raises(ValueError, match="already registered"):
        strategies.register(strategies.strategy("vote"))
    with pytest.raises(ValueError, match="built in"):
        strategies.unregister("mcts")


def test_the_built_in_table_says_what_each_strategy_spends() -> None:
    table = {name: strategies.strategy(name) for name in strategies.names()}
    assert list(table) == ["mcts", "cot", "best-of-n", "vote", "deepconf", "deepconf-online", "beam", "dvts"]
    assert {n: s.budget for n, s in table.items()} == {
        "mcts": "iterations", "cot": None, "best-of-n": "samples", "vote": "samples",
        "deepconf": "samples", "deepconf-online": "samples", "beam": "beams", "dvts": "beams",
    }  # fmt: skip
    assert [n for n, s in table.items() if s.granular] == ["mcts", "beam", "dvts"]
    config = SearchConfig(samples=5, children=2, root_children=3, first_tokens=0, beams=6, beam_width=2)
    assert {n: s.branches(config) for n, s in table.items()} == {
        "mcts": 3, "cot": 3, "best-of-n": 5, "vote": 5, "deepconf": 5, "deepconf-online": 5,
        "beam": 12, "dvts": 6,
    }  # fmt: skip


def test_the_path_reward_averages_the_whole_path_and_paper_the_rollouts_own_tokens() -> None:
    from marco_cli.contract import Generation
    from marco_cli.search.scoring import scoring

    tree = Tree((1,))
    first = tree.add(tree.root, (2, 3), "Step one.\n", (0.2, 0.2), False)
    second = tree.add(first, (4, 5), "Step two.\n", (0.8, 0.8), False)
    tail = Generation((6, 7), "<Output>1</Output>", (-0.1, -0.1), (1.0, 1.0), "stop_text")
    own = score(tree, second, tail, SearchConfig(), scoring("paper", "reward"))
    whole = score(tree, second, tail, SearchConfig(), scoring("path", "reward"))
    assert own.reward == own.confidence == pytest.approx(0.9)  # (0.8 + 0.8 + 1 + 1) / 4
    assert whole.reward == whole.confidence == pytest.approx(4 / 6)  # (0.2 * 2 + 0.8 * 2 + 1 * 2) / 6


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        (
            "vote@4[--children 3]",
            "--children is a tree search setting, and vote reads only the shared, sampling",
        ),
        ("cot[--samples 4]", "--samples is a sampling setting, and cot reads only the shared, DeepConf ones"),
        (
            "mcts@2[--samples 3]",
            "--samples is a sampling setting, and mcts reads only the shared, step, tree search",
        ),
    ],
)
def test_a_configurations_flag_its_strategy_would_ignore_is_refused(
    scripted_session, tmp_path: Path, spec: str, says: str
) -> None:
    data = tmp_path / "one.tsv"
    data.write_text("What is 3 + 4?\t7\n")
    result = runner.invoke(app, ["bench", str(data), "--strategy", spec, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and says in " ".join(result.stderr.split()), result.stderr
    kept = runner.invoke(
        app, ["bench", str(data), "--strategy", "vote@2[--deepconf-keep 0.5]", "--out", str(tmp_path / "k")]
    )
    assert kept.exit_code == 0, kept.output  # the DeepConf rules' settings apply to every strategy


def test_every_setting_is_declared_once_with_its_help_and_bounds() -> None:
    from dataclasses import fields

    from marco_cli.cli.option_table import SEARCH
    from marco_cli.search.settings import GROUPS, declared

    names = [f.name for g in GROUPS for f in fields(g)]
    assert len(names) == len(set(names))  # each in one group
    assert set(SEARCH) == {n for g in GROUPS for n in declared(g)}  # every declared one is an option
    with pytest.raises(ValueError, match="first tokens must be at most 64, not 65"):
        SearchConfig(first_tokens=65)
    with pytest.raises(ValueError, match="top p must be above 0, not 0"):
        SearchConfig(top_p=0.0)
    assert SearchConfig(top_p=1.0, min_p=0.0).top_p == 1.0  # the bounds themselves are allowed
    result = runner.invoke(app, ["solve", "Q", "--first-tokens", "65"])
    assert result.exit_code == 2 and "65 is not in the range 0<=x<=64" in result.stderr


def test_step_values_are_the_signals_and_the_gates_are_step_values() -> None:
    from marco_cli.search import values
    from marco_cli.search.values import Step, step_value

    asked: list[str] = []

    def judge(kind: str, before: str, text: str) -> float:
        asked.append(text)
        return 0.3

    right, wrong = Step("3 + 4 = 7.\n", (0.9, 0.7)), Step("3 + 4 = 8.\n", (0.9, 0.7))
    assert values.confidence("Q", "", right).value == pytest.approx(0.8)
    assert (
        values.check("Q", "", right).value == pytest.approx(0.8) and not values.check("Q", "", right).refuted
    )
    assert values.check("Q", "", wrong) == values.StepValued(0.0, ("3 + 4 = 8 (is 7)",))
    doubted = values.judged_by(judge)("Q", "Before.", right)
    assert doubted.value == doubted.judged == 0.3 and doubted.refuted == ("judge: P(Yes) 0.30",)
    asked.clear()
    gates = step_value("finished+check+judge-steps", judge)
    assert gates is not None and step_value("finished") is None
    assert gates("Q", "", wrong).refuted == ("3 + 4 = 8 (is 7)",) and asked == []  # the verifier not asked
    assert gates("Q", "", right).judged == 0.3 and asked == ["3 + 4 = 7.\n"]
