"""`--select` is honoured by every strategy (issue 50): the answer comes from the named rule, the
record's `select` is always the rule that chose it, and re-scoring the saved samples with that
rule gives the same answer. A scripted model whose samples' majority has wrong arithmetic and
whose checked majority is right, through `solve`, `bench` and `serve`; every rule against every
strategy; the real small model end to end."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from marco_cli.cli import session
from marco_cli.cli.app import app
from marco_cli.cli.option_table import SEARCH
from marco_cli.cli.serve import configurer
from marco_cli.contract import Generation, Request
from marco_cli.record.record import ModelInfo, Record
from marco_cli.runs.bench import answer_by
from marco_cli.search import strategies
from marco_cli.search.config import SearchConfig
from marco_cli.search.rules import RULE_NAMES
from marco_cli.search.strategies import answer_rule, names, own_rule, saved_settings
from marco_cli.server.app import ServerSettings, build_app
from marco_cli.server.runner import Runner, Served
from tests.helpers import runner
from tests.scripted import ScriptedEngine

Q = "Tom has 3 apples and gets 4 more. How many apples?"
WRONG = ("3 + 4 = 8, so he has 8.\n<Output>8</Output>", 0.9)  # confident, wrong arithmetic
RIGHT = ("3 + 4 = 7, so he has 7.\n<Output>7</Output>", 0.6)
# five samples: the majority (8) wrote a wrong equation; the checked majority is 7
SAMPLES = [WRONG, RIGHT, WRONG, RIGHT, WRONG]


class Cycling(ScriptedEngine):
    """Every rollout (a sample, or an MCTS rollout) is the next of `texts`, in turn."""

    def __init__(self, texts: Sequence[tuple[str, float]]) -> None:
        super().__init__(actions={}, rollouts={}, default_rollout=texts[0])
        self.texts, self.given = list(texts), 0
        self.messages = []

    def _one(self, request: Request) -> Generation:
        if request.stop.granularity != "rollout":
            return super()._one(request)
        text, conf = self.texts[self.given % len(self.texts)]
        self.given += 1
        tokens = tuple(ord(c) for c in text)
        offsets = tuple(len(text[: i + 1].encode()) for i in range(len(text)))
        top = tuple(-5.0 * conf for _ in tokens)
        confidences = tuple(conf for _ in tokens)
        return Generation(tokens, text, tuple(-0.1 for _ in tokens), confidences, "stop_text", top, offsets)


@pytest.fixture
def cycling(monkeypatch: pytest.MonkeyPatch) -> None:
    def factory(options: object, branches: int) -> session.Opened:
        return session.Opened(Cycling(SAMPLES), "plain", ModelInfo("scripted", None, None, "test", "plain"))

    monkeypatch.setattr(session, "engine_factory", factory)


def _solve(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, ["solve", Q, "--samples", "5", "--json", *args])
    assert result.exit_code == 0, result.output
    record: dict[str, Any] = json.loads(result.stdout)
    return record


@pytest.mark.usefixtures("cycling")
def test_vote_answers_by_the_rule_asked_for_and_the_record_names_it() -> None:
    plain = _solve("--strategy", "vote")
    assert plain["answer"] == "8" and plain["settings"]["select"] == "majority"
    checked = _solve("--strategy", "vote", "--select", "checked")
    assert checked["answer"] == "7" and checked["settings"]["select"] == "checked"
    assert answer_by(Record.from_json(checked), "checked") == "7"


@pytest.mark.usefixtures("cycling")
@pytest.mark.parametrize("strategy", names())
def test_every_strategy_keeps_its_own_rule_without_select(strategy: str) -> None:
    record = _solve("--strategy", strategy)
    assert record["settings"]["select"] == strategies.strategy(strategy).own_rule


@pytest.mark.usefixtures("cycling")
@pytest.mark.parametrize("strategy", names())
@pytest.mark.parametrize("rule", RULE_NAMES)
def test_every_rule_answers_every_strategy_as_rescoring_its_record_does(strategy: str, rule: str) -> None:
    """Generating with a rule and re-scoring the same samples with it give the same answer."""
    record = _solve("--strategy", strategy, "--select", rule, "--iterations", "3", "--stop-agree", "0")
    assert record["settings"]["select"] == rule
    assert answer_by(Record.from_json(record), rule) == record["answer"]


@pytest.mark.usefixtures("cycling")
def test_bench_takes_select_in_a_configurations_flags(tmp_path: Path) -> None:
    data = tmp_path / "one.tsv"
    data.write_text(f"{Q}\t7\n")
    out = tmp_path / "out"
    spec = "plain=vote@5,checked=vote@5[--select checked]"
    result = runner.invoke(app, ["bench", str(data), "--strategy", spec, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    rows = {json.loads(line)["config"]: json.loads(line) for line in (out / "results.jsonl").open()}
    assert rows["plain"]["answer"] == "8" and not rows["plain"]["correct"]
    assert rows["checked"]["answer"] == "7" and rows["checked"]["correct"]
    saved = json.loads((out / "run.json").read_text())["settings"]
    assert saved["plain"]["select"] == "majority" and saved["checked"]["select"] == "checked"


def test_serve_takes_select_in_the_marco_extension() -> None:
    opened = session.Opened(Cycling(SAMPLES), "plain", ModelInfo("scripted", None, None, "test", "plain"))
    served = Runner(Served(opened, lambda record: record), 1, 4)
    ids: dict[str, str | None] = {"scripted": None, "scripted:vote": "vote"}
    settings = {name: default for name, (_, default) in SEARCH.items()}  # the command line's defaults
    try:
        client = TestClient(build_app(served, ServerSettings(ids, configurer(settings), None)))
        answers = {}
        for rule in (None, "checked"):
            marco: dict[str, object] = {"samples": 5, **({"select": rule} if rule else {})}
            body = {"model": "scripted:vote", "messages": [{"role": "user", "content": Q}], "marco": marco}
            reply = client.post("/v1/chat/completions", json=body)
            assert reply.status_code == 200, reply.text
            answers[rule] = reply.json()["choices"][0]["message"]["content"]
    finally:
        served.close()
    assert "8" in answers[None] and "7" in answers["checked"]


def test_a_config_resolves_its_rule_once_and_saves_it() -> None:
    assert answer_rule(SearchConfig(strategy="vote")) == "majority"
    assert answer_rule(SearchConfig(strategy="vote", select="checked")) == "checked"
    assert saved_settings(SearchConfig())["select"] == "deepconf"
    assert own_rule("vote", "not a reward") == "majority"


@pytest.mark.slow
def test_the_real_model_answers_vote_by_checked_and_records_it() -> None:
    args = ["solve", "What is 12 + 30?", "-m", "smollm2-135m", "--strategy", "vote", "--samples", "3"]
    result = runner.invoke(app, [*args, "--max-tokens", "48", "--select", "checked", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["settings"]["select"] == "checked"
    assert answer_by(Record.from_json(record), "checked") == record["answer"]


@pytest.mark.usefixtures("cycling")
def test_a_record_from_before_schema_4_says_the_rule_that_really_answered() -> None:
    """Before schema 4 a vote run saved the global default `deepconf` as its select while the
    plain majority answered: read back, it says majority, and re-scoring by it gives its answer."""
    saved = _solve("--strategy", "vote")
    old = {**saved, "schema": 3, "settings": {**saved["settings"], "select": "deepconf"}}
    record = Record.from_json(old)
    assert answer_rule(record.search) == "majority"
    assert answer_by(record, answer_rule(record.search)) == saved["answer"] == "8"
    kept = Record.from_json(_solve("--strategy", "vote", "--select", "checked"))
    assert answer_rule(kept.search) == "checked" and kept.search.select == "checked"


@pytest.mark.usefixtures("cycling")
def test_a_gated_reward_answers_by_a_rule_that_reads_the_gate() -> None:
    """Under `--reward check` the default rule is one that reads the check (GATED_RULES, chosen
    on the development set): the wrong-arithmetic majority loses; `--select` still overrides."""
    gated = _solve("--strategy", "vote", "--reward", "check")
    assert gated["settings"]["select"] == own_rule("vote", "finished+check") != "majority"
    assert gated["answer"] == "7"
    told = _solve("--strategy", "vote", "--reward", "check", "--select", "majority")
    assert told["answer"] == "8" and told["settings"]["select"] == "majority"
    gated_rules = [
        (name, gate, rule) for name in names() for gate, rule in strategies.strategy(name).gated_rules.items()
    ]
    assert ("vote", "check", "checked") in gated_rules and ("deepconf", "judge", "reward-vote") in gated_rules
    for name, gate, rule in gated_rules:
        assert answer_rule(SearchConfig(strategy=name, reward=f"finished+{gate}")) == rule
        assert (
            answer_rule(SearchConfig(strategy=name, reward="finished")) == strategies.strategy(name).own_rule
        )
