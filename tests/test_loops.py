"""A loop cannot win: the repetition guard, rewards and answer choice (scripted model, no llama.cpp)."""

from __future__ import annotations

import pytest

from marco_cli.contract import StopRule
from marco_cli.engine.repetition import COUNTING_RULE, LoopRule, ends_in_loop, loop_period, mask_numbers
from marco_cli.engine.stops import cut_reason
from marco_cli.record.record import ModelInfo, Record
from marco_cli.search.config import SearchConfig
from marco_cli.search.mcts import Search
from marco_cli.search.rules import Ballot, choose
from marco_cli.search.strategies import context, run_search
from tests.scripted import ScriptedModel

LOOP_LINE = "Sofia has 20 pencils left.\n"


@pytest.mark.parametrize(
    ("text", "period"),
    [
        (LOOP_LINE * 3, len(LOOP_LINE)),
        ("So the answer is 7.\n" + LOOP_LINE * 3, len(LOOP_LINE)),
        ("A then B. " * 5, 10),
        ("0" * 48, 1),
        ("ha " * 16, 3),
    ],
)
def test_a_repeated_tail_is_a_loop(text: str, period: int) -> None:
    assert loop_period(text) == period


@pytest.mark.parametrize(
    "text",
    [
        LOOP_LINE * 2,  # twice is not yet a loop
        "0" * 47,  # a short unit must cover min_span characters
        "Week 1: $20\nWeek 2: $20\nWeek 3: $20\nWeek 4: $20\n",  # an honest enumeration
        "\n" * 100,  # whitespace alone is not a loop
        "3 + 4 = 7\n7 * 2 = 14\nThe answer is 14.",
        "",
    ],
)
def test_honest_text_is_not_a_loop(text: str) -> None:
    assert not ends_in_loop(text)


COUNTING = "".join(f"{i}. {25 + i} + 1 = {26 + i}\n" for i in range(1, 12))  # a counting loop


def weeks(n: int) -> str:
    return "".join(f"Week {i}: ${20 * i}\n" for i in range(1, n + 1))


def test_a_counting_loop_is_a_loop_where_the_exact_check_sees_none() -> None:
    assert loop_period(COUNTING) is None  # no two lines are equal
    assert mask_numbers("10. 35 + 1 = 36\n") == "0. 0 + 0 = 0\n"
    fired = next(k for k in range(len(COUNTING) + 1) if ends_in_loop(COUNTING[:k]))
    lines = COUNTING[:fired].count("\n")
    # "0. 0 + 0 = 0\n" is 13 characters: 96 of them take eight lines (seven whole and a bit)
    assert lines == 7 and fired < len(COUNTING)


def test_an_honest_enumeration_needs_nine_lines_to_look_like_counting() -> None:
    assert not ends_in_loop(weeks(8))  # "Week 0: $0\n" is 11 characters: 8 lines cover 88 < 96
    assert ends_in_loop(weeks(9))
    assert not ends_in_loop(weeks(9), counting=None)
    assert COUNTING_RULE.min_repeats == 4 and COUNTING_RULE.min_span == 96


def test_the_rule_is_configurable() -> None:
    assert ends_in_loop(LOOP_LINE * 2, LoopRule(min_repeats=2))
    assert not ends_in_loop(LOOP_LINE * 3, LoopRule(min_repeats=4))


def looping_world() -> ScriptedModel:
    """Branch a loops (confidence 0.99, the paper's reward loves it); b finishes honestly (0.7)."""
    return ScriptedModel(
        actions={"": [("a\n", 0.99), ("b\n", 0.7)]},
        rollouts={
            "a\n": (LOOP_LINE * 3, 0.99, "loop"),
            "b\n": ("<Output>12</Output>", 0.7),
        },
        fallback=lambda state: (
            (LOOP_LINE * 3, 0.99, "loop") if state.startswith("a") else ("<Output>12</Output>", 0.7)
        ),
        more_actions=lambda state: [(f"{state[0]}x\n", 0.99 if state.startswith("a") else 0.7)],
    )


@pytest.mark.parametrize("reward", ["finished", "paper"])
@pytest.mark.parametrize("select", ["visits", "reward", "reward-vote"])
def test_the_most_confident_loop_never_wins(reward: str, select: str) -> None:
    model = looping_world()
    config = SearchConfig(iterations=8, children=2, reward=reward, select=select)
    search = Search(context(model, model.prompt, config), config)
    result = search.run()
    looped = [r for r in result.tree.rollouts if r.status == "loop"]
    assert looped and all(r.answer == "" for r in looped)
    assert max(r.confidence for r in result.tree.rollouts) == pytest.approx(0.99)
    assert result.answer == "12" and result.tree.rollouts[result.rollout].finished
    if reward == "finished":
        assert all(r.reward == 0.0 for r in looped)
    else:
        assert all(r.reward == pytest.approx(0.99) for r in looped)


def test_the_default_reward_steers_the_search_away_from_loops() -> None:
    model = looping_world()
    finished = run_search(model, model.prompt, SearchConfig(iterations=10, children=2))
    config = SearchConfig(iterations=10, children=2, reward="paper")
    paper = run_search(looping_world(), model.prompt, config)

    def visits_of(result, first: str) -> int:
        root = result.tree.root
        return next(result.tree.nodes[c].visits for c in root.children if result.tree.nodes[c].text == first)

    assert visits_of(finished, "b\n") > visits_of(finished, "a\n")
    assert visits_of(paper, "a\n") > visits_of(paper, "b\n")


def test_no_finished_rollout_means_no_answer() -> None:
    model = ScriptedModel(
        actions={"": [("a\n", 0.9)]},
        rollouts={},
        fallback=lambda state: ("Mei has", 0.95, "max_tokens"),
        more_actions=lambda state: [("ax\n", 0.9)],
    )
    config = SearchConfig(iterations=4, children=1)
    result = run_search(model, model.prompt, config)
    assert result.tree.rollouts and result.answer == "" and result.rollout is None and result.reward is None
    record = Record.of(result, "Q?", ModelInfo("scripted"), config)
    assert record.rollout_stats == {
        "finished": 0,
        "loop": 0,
        "budget": len(result.tree.rollouts),
        "context": 0,
        "low_confidence": 0,
    }
    assert all(r.status == "budget" and r.answer == "" for r in record.rollouts)


def test_vote_picks_the_answer_with_the_largest_summed_reward() -> None:
    # 7 has two finished rollouts (0.5 + 0.45 = 0.95), 5 has one (0.9), and a loop says 9 at 0.99.
    model = ScriptedModel(
        actions={"": [("p\n", 0.5), ("q\n", 0.5), ("r\n", 0.5), ("s\n", 0.5)]},
        rollouts={
            "p\n": ("<Output>7</Output>", 0.5),
            "q\n": ("<Output>5</Output>", 0.9),
            "r\n": ("<Output>7.0</Output>", 0.45),
            "s\n": ("<Output>9</Output> <Output>9</Output>", 0.99, "loop"),
        },
    )
    config = SearchConfig(iterations=1, children=4, rollouts="all", reward="paper", select="reward-vote")
    result = run_search(model, model.prompt, config)
    assert {r.answer for r in result.tree.rollouts if r.finished} == {"7", "5", "7.0"}
    assert result.answer in ("7", "7.0")
    assert choose(Ballot.of(result.tree), "reward").answer == "5"
    assert result.votes == {"7": 2, "5": 1}


def test_agreement_counts_only_finished_rollouts() -> None:
    model = ScriptedModel(
        actions={"": [("a\n", 0.9), ("b\n", 0.9), ("c\n", 0.9)]},
        rollouts={},
        fallback=lambda state: ("<Output>4</Output>" * 3, 0.9, "loop"),
        more_actions=lambda state: [(state[0] + "x\n", 0.9), (state[0] + "y\n", 0.9)],
    )
    result = run_search(model, model.prompt, SearchConfig(iterations=12, stop_agree=2))
    assert result.stopped != "agreement" and result.answer == ""


@pytest.mark.parametrize("strategy", ["cot", "best-of-n", "vote"])
def test_baselines_never_answer_with_a_loop(strategy: str) -> None:
    model = ScriptedModel(actions={}, rollouts={"": (LOOP_LINE * 3, 0.99, "loop")})
    result = run_search(model, model.prompt, SearchConfig(strategy=strategy, samples=3))
    assert result.answer == "" and result.rollout is None
    assert all(r.status == "loop" and r.reward == 0.0 for r in result.tree.rollouts)


def test_both_engines_stop_a_counting_loop() -> None:
    """cut_reason is the one stop rule the local decoder and the remote engine call."""
    guarded, unguarded = StopRule("rollout", 512), StopRule("rollout", 512, loop_guard=False)
    assert cut_reason(COUNTING, len(COUNTING) - 1, guarded, "", ()) == "loop"
    assert cut_reason(COUNTING.encode(), len(COUNTING) - 1, guarded, "", ()) == "loop"
    assert cut_reason(COUNTING, len(COUNTING) - 1, unguarded, "", ()) is None
    assert cut_reason(weeks(8), len(weeks(8)) - 1, guarded, "", ()) is None
