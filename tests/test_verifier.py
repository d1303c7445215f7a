"""`--reward judge` and `judge-steps`: a generative verifier's P(Yes) (search/verifier.py).

P(Yes) from one-token replies; a scripted verifier whose P(Yes) is known, inside the search
(outcome and process judging) and best-of-n; the record keeps every verdict and re-scores from
them; the verifier's tokens are counted; the real small model judges through the CLI, as the
searching model and as a second one."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import pytest
from rich.console import Console

from marco_cli.cli.app import app
from marco_cli.contract import Generation, Request
from marco_cli.errors import MarcoError
from marco_cli.record.record import ModelInfo, Record
from marco_cli.runs import bench
from marco_cli.search.config import SearchConfig, SearchResult
from marco_cli.search.rewards import JudgeKind, Scored, parse_reward, reward_function
from marco_cli.search.strategies import run_search
from marco_cli.search.verifier import NO_OPINION, PROMPTS, RANKS, Verifier, p_yes
from marco_cli.ui.tree_view import TreeSnapshot, render_tree, summary_line
from tests.helpers import no_traceback, runner
from tests.scripted import ScriptedModel


def reply(text: str, p: float) -> Generation:
    return Generation((1,), text, (math.log(p),), (1.0,), "max_tokens")


def test_p_yes_is_yes_over_yes_and_no_among_the_first_tokens() -> None:
    replies = [reply(" Yes", 0.3), reply("No", 0.1), reply("\n", 0.2), reply("yes", 0.1), reply("The", 0.05)]
    assert p_yes(replies) == pytest.approx(0.4 / 0.5)
    assert p_yes([reply("NO.", 0.6), reply(" Maybe", 0.2)]) == pytest.approx(0.0)
    assert p_yes([reply("The", 0.6), reply(" answer", 0.2)]) == NO_OPINION  # it said neither
    assert p_yes([Generation((), "", (), (), "eos")]) == NO_OPINION


@dataclass
class ScriptedVerifier:
    """A verifier model whose P(Yes) is known: `p_of(prompt text)`; its first tokens are Yes,
    No and three formatting tokens, likeliest first, as an engine answers rank requests."""

    p_of: Callable[[str], float]
    evaluated: int = 0
    parallel: int = 1
    prompts: list[str] = field(default_factory=list)

    def tokenize(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def generate_many(
        self, requests: Sequence[Request], on_token: Callable[[int], None] | None = None
    ) -> list[Generation]:
        text = "".join(chr(t) for t in requests[0].prefix)
        self.prompts.append(text)
        self.evaluated += len(requests[0].prefix)
        p = self.p_of(text)
        ranked = sorted(
            [(" Yes", 0.9 * p), (" No", 0.9 * (1 - p)), ("\n", 0.04), (" The", 0.03), ("*", 0.03)],
            key=lambda pair: -pair[1],
        )
        assert all(r.sampling.first_rank is not None and r.stop.max_tokens == 1 for r in requests)
        return [reply(*ranked[r.sampling.first_rank or 0]) for r in requests]


def render(chat: list[dict[str, str]]) -> list[int]:
    return [ord(c) for c in chat[-1]["content"]]


def test_the_verifier_reads_a_known_p_yes_caches_it_and_counts_its_tokens() -> None:
    model = ScriptedVerifier(lambda prompt: 0.8 if "<Output>5</Output>" in prompt else 0.1)
    verifier = Verifier(model, render, "What is 2 + 3?")
    assert verifier("answer", "", "2 + 3 = 5.\n<Output>5</Output>") == pytest.approx(0.8)
    assert verifier("answer", "", "<Output>6</Output>") == pytest.approx(0.1)
    spent = verifier.tokens
    assert spent == sum(len(p) for p in model.prompts) + 2 * RANKS  # prompts evaluated, replies
    assert verifier("answer", "", "<Output>6</Output>") == pytest.approx(0.1)  # cached: nothing spent
    assert verifier.tokens == spent and len(model.prompts) == 2 and verifier.asked == 2
    shown = model.prompts[0]
    assert "What is 2 + 3?" in shown and "<Output>5</Output>" in shown and shown.endswith("Answer Yes or No.")
    verifier("step", "First, 2 + 3.\n", "2 + 3 = 6.\n")
    assert model.prompts[-1] == PROMPTS["step"].format(
        question="What is 2 + 3?", before="First, 2 + 3.", text="2 + 3 = 6."
    )
    verifier("step", "", "2 + 3 = 5.\n")
    assert "The solution so far:\n(nothing yet: this is the first step)" in model.prompts[-1]


@dataclass
class Judge:
    """A judge whose verdicts are given: P(Yes) by the text judged (default `other`)."""

    verdicts: dict[str, float]
    other: float = 0.5
    asked: list[tuple[JudgeKind, str, str]] = field(default_factory=list)

    def __call__(self, kind: JudgeKind, before: str, text: str) -> float:
        self.asked.append((kind, before, text))
        return next((p for key, p in self.verdicts.items() if key in text), self.other)


CONFIG = SearchConfig(
    iterations=4, children=2, first_tokens=0, select="reward", stop_agree=None, numeric_answer=True
)
SURE_WRONG, UNSURE_RIGHT = "The sum is 6.\n", "The sum is 5.\n"


def two_answers() -> ScriptedModel:
    """The model is sure of the wrong first step; the verifier knows better."""
    return ScriptedModel(
        actions={"": [(SURE_WRONG, 0.95), (UNSURE_RIGHT, 0.5)]},
        rollouts={SURE_WRONG: ("<Output>6</Output>", 0.95), UNSURE_RIGHT: ("<Output>5</Output>", 0.5)},
    )


def search(reward: str, judge: Judge | None, **changes: object) -> SearchResult:
    model = two_answers()
    return run_search(model, model.prompt, replace(CONFIG, reward=reward, **changes), judge=judge)  # type: ignore[arg-type]


def test_judge_alone_is_the_verifiers_p_yes_and_turns_the_search() -> None:
    judge = Judge({"<Output>5</Output>": 0.9, "<Output>6</Output>": 0.2})
    trusted, judged = search("finished", None), search("judge", judge)
    assert trusted.answer == "6" and judged.answer == "5"
    for rollout in judged.rollouts:
        assert rollout.judged is not None and rollout.reward == pytest.approx(rollout.judged)
    assert all(kind == "answer" and before == "" for kind, before, _ in judge.asked)
    assert all("<Output>" in text for _, _, text in judge.asked)  # the whole response, answer included


def test_judge_multiplies_a_value_and_leaves_answerless_rollouts_at_0() -> None:
    right = Scored(0.7, True, "5", 0.9, "<Output>5</Output>", judged=0.5)
    assert reward_function("finished+judge")(right) == pytest.approx(0.35)
    assert reward_function("judge")(right) == 0.5  # answered+judge
    assert reward_function("paper+judge")(replace(right, finished=False, answer="", judged=None)) == 0.0
    assert parse_reward("judge-steps").gates == ("judge-steps",)


def test_best_of_n_with_a_judge_is_the_verifier_reranked_best_of_n() -> None:
    model = ScriptedModel(actions={}, rollouts={})
    answers = iter(["<Output>6</Output>", "<Output>5</Output>", "<Output>6</Output>", "<Output>7</Output>"])
    model.fallback = lambda state: (next(answers), 0.9)
    config = replace(CONFIG, strategy="best-of-n", samples=4, reward="judge")
    result = run_search(model, model.prompt, config, judge=Judge({"<Output>5</Output>": 0.7}, other=0.1))
    assert result.answer == "5" and len(result.rollouts) == 4


def test_judge_steps_refutes_a_step_the_verifier_doubts_before_rolling_it_out() -> None:
    judge = Judge({SURE_WRONG.strip(): 0.1, UNSURE_RIGHT.strip(): 0.8})
    result = search("judge-steps", judge)
    assert result.answer == "5"
    wrong_node = next(n for n in result.tree.nodes if n.text == SURE_WRONG)
    right_node = next(n for n in result.tree.nodes if n.text == UNSURE_RIGHT)
    assert wrong_node.refuted == ("judge: P(Yes) 0.10",) and wrong_node.judged == pytest.approx(0.1)
    assert right_node.refuted == () and right_node.judged == pytest.approx(0.8)
    assert not [r for r in result.rollouts if r.node == wrong_node.id]  # no rollout paid for it
    assert all(kind == "step" for kind, _, _ in judge.asked)
    assert all(r.judged is None for r in result.rollouts)  # process judging asks about steps only


def test_a_wrong_equation_is_refuted_before_the_verifier_is_asked() -> None:
    judge = Judge({}, other=0.9)
    model = ScriptedModel(
        actions={"": [("2 + 3 = 6.\n", 0.9), ("2 + 3 = 5.\n", 0.5)]},
        rollouts={"2 + 3 = 6.\n": ("<Output>6</Output>", 0.9), "2 + 3 = 5.\n": ("<Output>5</Output>", 0.5)},
    )
    config = replace(CONFIG, reward="finished+check+judge-steps")
    result = run_search(model, model.prompt, config, judge=judge)
    assert result.answer == "5"
    assert [text for _, _, text in judge.asked].count("2 + 3 = 6.\n") == 0


def test_a_judge_reward_without_a_verifier_is_refused() -> None:
    model = two_answers()
    with pytest.raises(ValueError, match="verifier"):
        run_search(model, model.prompt, replace(CONFIG, reward="judge"))


def test_the_record_keeps_every_verdict_and_rescores_from_them() -> None:
    judge = Judge({"<Output>5</Output>": 0.9, "<Output>6</Output>": 0.2})
    result = search("judge", judge)
    config = replace(CONFIG, reward="judge")
    record = Record.from_json(
        json.loads(json.dumps(Record.of(result, "Q?", ModelInfo("s"), config, (), 123).to_json()))
    )
    assert record.tokens.verifier == 123
    assert (
        "(+123 the verifier's)" in summary_line(record).plain
    )  # what judging cost, shown beside the search's
    assert sorted(r.judged for r in record.rollouts if r.answer == "5") == [0.9] * sum(
        1 for r in record.rollouts if r.answer == "5"
    )
    assert bench.answer_by(record.rescored("finished+judge"), "reward") == "5"
    assert bench.answer_by(record.rescored("finished"), "reward") == "6"  # the verdicts dropped
    plain = Record.of(search("finished", None), "Q?", ModelInfo("s"), CONFIG)
    assert "judged" not in json.dumps(plain.to_json())  # only runs that asked a verifier carry it
    with pytest.raises(ValueError, match="verdicts"):
        plain.rescored("judge")
    stepped = Record.of(search("judge-steps", Judge({SURE_WRONG.strip(): 0.1})), "Q?", ModelInfo("s"), CONFIG)
    saved = Record.from_json(json.loads(json.dumps(stepped.to_json())))
    assert next(n for n in saved.nodes if n.text == SURE_WRONG).judged == 0.1


def test_the_real_model_judges_with_its_five_likeliest_first_tokens(engine: object) -> None:
    """Over the real engine: five one-token replies of falling probability, a P(Yes) in [0, 1]
    that the same question asked again returns from the cache, tokens counted."""
    from marco_cli.engine.llama import Engine

    assert isinstance(engine, Engine)
    verifier = Verifier(engine, lambda chat: engine.build_prompt(chat, "chatml"), "What is 2 + 3?")
    before = engine.evaluated
    value = verifier("answer", "", "2 + 3 = 5.\n<Output>5</Output>")
    # what llama.cpp evaluated (the prompt, less what the KV cache held from earlier tests) and the replies
    assert verifier.tokens == engine.evaluated - before + RANKS > RANKS and verifier.asked == 1
    prompt = tuple(verifier.prompt("answer", "", "2 + 3 = 5.\n<Output>5</Output>"))
    replies = engine.generate_many(
        [Request(prompt, verifier_sampling(rank), one_token()) for rank in range(RANKS)]
    )
    probs = [math.exp(r.logprobs[0]) for r in replies]
    assert probs == sorted(probs, reverse=True) and len({r.tokens for r in replies}) == RANKS
    assert 0.0 <= value <= 1.0 and value == p_yes(replies)
    spent = verifier.tokens
    assert verifier("answer", "", "2 + 3 = 5.\n<Output>5</Output>") == value and verifier.tokens == spent


def verifier_sampling(rank: int) -> object:
    from marco_cli.contract import Sampling

    return Sampling(first_rank=rank)


def one_token() -> object:
    from marco_cli.contract import StopRule

    return StopRule(granularity="rollout", max_tokens=1, stop_texts=(), loop_guard=False)


JUDGED_RUN = ["-m", "smollm2-135m", "-n", "2", "--granularity", "mini-32", "--max-tokens", "48", "--json"]


@pytest.mark.slow
def test_solve_with_judge_on_the_real_model_as_its_own_verifier_and_as_a_second_one() -> None:
    """`--reward judge` asks the searching model; `--verifier` the same file opened again: the
    same verdicts (the verifier's prompt and greedy ranks do not depend on which engine)."""
    question = "What is 2 + 3?"
    args = [question, *JUDGED_RUN, "--reward", "judge", "--select", "reward"]
    own = runner.invoke(app, ["solve", *args])
    second = runner.invoke(app, ["solve", *args, "--verifier", "smollm2-135m"])
    for result in (own, second):
        assert result.exit_code == 0, result.output
        no_traceback(result)
    records = [json.loads(r.stdout) for r in (own, second)]
    for record in records:
        answered = [r for r in record["rollouts"] if r["answer"]]
        assert all(0.0 <= r["judged"] <= 1.0 and r["reward"] == r["judged"] for r in answered)
        assert all("judged" not in r for r in record["rollouts"] if not r["answer"])
        assert (record["tokens"]["verifier"] > 0) == bool(answered)
    assert [r.get("judged") for r in records[0]["rollouts"]] == pytest.approx(
        [r.get("judged") for r in records[1]["rollouts"]], abs=1e-3
    )


def test_the_verifier_opens_as_a_second_model_on_its_own_server(scripted_session) -> None:
    """`--verifier`/`--verifier-backend` open a second model (the search's other engine
    settings, its own server, no --parallel); the judge's questions go to it, not to -m."""
    args = ["solve", "Q?", "--reward", "judge", "--backend", "http://127.0.0.1:8", "--parallel", "4"]
    result = runner.invoke(app, [*args, "--verifier", "qwen", "--verifier-backend", "http://127.0.0.1:9"])
    assert result.exit_code == 0, result.output
    (searching, _, engine), (judging, branches, verifier) = scripted_session
    assert (judging.model, judging.engine.backend, judging.engine.parallel) == (
        "qwen",
        "http://127.0.0.1:9",
        None,
    )
    assert (searching.engine.backend, searching.engine.parallel, branches) == ("http://127.0.0.1:8", 4, RANKS)
    assert verifier.messages and all("Answer Yes or No." in m[-1]["content"] for m in verifier.messages)
    assert not any("Yes or No" in m[-1]["content"] for m in engine.messages)


def test_without_verifier_options_the_searching_model_judges(scripted_session) -> None:
    result = runner.invoke(app, ["solve", "Q?", "--reward", "judge", "--json", "--no-log"])
    assert result.exit_code == 0, result.output
    [(_, _, engine)] = scripted_session
    assert any("Answer Yes or No." in m[-1]["content"] for m in engine.messages)
    assert json.loads(result.stdout)["tokens"]["verifier"] > 0


@pytest.mark.slow
def test_a_verifier_that_cannot_load_is_a_one_line_error(tmp_path: object) -> None:
    result = runner.invoke(
        app, ["solve", "Q?", "-m", "smollm2-135m", "--reward", "judge", "--verifier", "/no/such.gguf"]
    )
    assert result.exit_code != 0
    no_traceback(result)
    assert "such.gguf" in result.output


def test_a_verifier_question_that_does_not_fit_says_so() -> None:
    def too_long(chat: list[dict[str, str]]) -> list[int]:
        raise MarcoError("the prompt is 9999 tokens, longer than the 2048-token context", code=2)

    verifier = Verifier(ScriptedVerifier(lambda prompt: 0.5), too_long, "Q?")
    with pytest.raises(MarcoError, match="the verifier's question does not fit: the prompt is 9999"):
        verifier("answer", "", "<Output>4</Output>")


def test_bench_jobs_with_a_local_verifier_is_refused(scripted_session) -> None:
    args = ["bench", "arith:5", "--jobs", "2", "--backend", "http://127.0.0.1:8", "--verifier", "x"]
    result = runner.invoke(app, [*args, "--strategy", "best-of-n[--reward judge]"])
    assert result.exit_code == 2 and "--verifier-backend" in result.output
    no_traceback(result)


def test_the_tree_shows_the_verifiers_verdict_on_each_step_live_and_saved() -> None:
    judge = Judge({SURE_WRONG.strip(): 0.1, UNSURE_RIGHT.strip(): 0.8})
    model = two_answers()
    live = TreeSnapshot("Q?")
    result = run_search(model, model.prompt, replace(CONFIG, reward="judge-steps"), live.apply, judge=judge)
    saved = TreeSnapshot.from_record(
        Record.of(result, "Q?", ModelInfo("s"), replace(CONFIG, reward="judge-steps"))
    )
    for snap in (live, saved):
        console = Console(width=120, record=True, color_system=None)
        console.print(render_tree(snap, width=120, max_lines=40))
        text = console.export_text()
        assert "✗ judge: P(Yes) 0.10" in text and "✓ P(Yes) 0.80" in text
