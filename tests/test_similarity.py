"""chrF and the minimum-Bayes-risk answer rule (`--select mbr`, translate's default), with the
numbers worked out by hand."""

from __future__ import annotations

import json

import pytest

from marco_cli.cli.app import app
from marco_cli.search.rules import Ballot, choose
from marco_cli.search.similarity import chrf, mbr_choice
from marco_cli.search.tree import Rollout, Tree
from tests.helpers import runner


def test_chrf_by_hand() -> None:
    assert chrf("a b", "ab") == 1.0  # whitespace is ignored
    # 1-grams: 2 of 3 shared; 2-grams: 1 of 2; 3-grams: 0 of 1; longer: too short for either
    # precision = recall = (2/3 + 1/2 + 0) / 3 = 7/18, so F2 = 7/18
    assert chrf("abc", "abd") == pytest.approx(7 / 18)
    assert chrf("hello", "xyz") == 0.0
    # "ab" against "abcd": precision 1 (both orders), recall (1/2 + 1/3) / 2 = 5/12; recall weighs
    # beta^2 = 4 times as much: F2 = 5 * 1 * 5/12 / (4 * 1 + 5/12) = 25/53, and swapped 25/32
    assert chrf("ab", "abcd") == pytest.approx(25 / 53)
    assert chrf("abcd", "ab") == pytest.approx(25 / 32)


def _tree(answers: list[tuple[str, float]]) -> Tree:
    tree = Tree((1,))
    for i, (answer, reward) in enumerate(answers):
        node = tree.add(tree.root, (i,), answer, (reward,), True)
        tree.rollouts.append(Rollout(i, node.id, (i,), answer, reward, answer, "finished", 1, reward))
    return tree


SAME_MEANING = [
    ("I am very happy today.", 0.5),
    ("I'm very happy today.", 0.4),
    ("The weather is bad.", 0.9),
]


def test_mbr_takes_the_answer_most_like_the_others_where_exact_votes_never_meet() -> None:
    tree = _tree(SAME_MEANING)
    assert (
        choose(Ballot.of(tree), "reward-vote").answer == "The weather is bad."
    )  # three different texts: the best reward
    assert choose(Ballot.of(tree), "mbr").answer in ("I am very happy today.", "I'm very happy today.")
    assert mbr_choice(tree.rollouts[:1]).answer == "I am very happy today."
    assert mbr_choice([]) is None


def test_translate_answers_by_mbr_unless_told_otherwise(scripted_session) -> None:

    record = json.loads(runner.invoke(app, ["translate", "Hola", "--json", "--no-log"]).stdout)
    assert record["settings"]["select"] == "mbr"
    record = json.loads(
        runner.invoke(app, ["translate", "Hola", "--select", "vote", "--json", "--no-log"]).stdout
    )
    assert record["settings"]["select"] == "reward-vote"  # the old name, read through the alias table
    assert record["settings"]["first_tokens"] == 0  # translate keeps one start (not measured there)
    record = json.loads(runner.invoke(app, ["solve", "What is 2 + 2?", "--json", "--no-log"]).stdout)
    assert record["settings"]["select"] == "deepconf" and record["settings"]["first_tokens"] == 4
