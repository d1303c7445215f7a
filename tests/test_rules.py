"""Every answer rule pinned by a tree where it, and only it, gives the expected answer.

In ordinary trees the rules mostly agree, so swapping one rule's body for another's passed every
other test (a mutation check found it for the summed-reward vote). Each case below is built by
hand so the named rule's own definition decides it; the test then checks that every *other*
rule in the registry answers differently, so the case fails if the rule is replaced by any of
them. Numbers are chosen by hand; the comment on each case says why its rule picks that answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from marco_cli.search.rules import RULE_NAMES, RULES, Ballot, RuleName, choose
from marco_cli.search.tree import Rollout, Tree

# one rollout: (answer, reward, trace confidence, answer-token confidence)
Spec = tuple[str, float, float | None, float]


@dataclass(frozen=True)
class Case:
    rule: RuleName
    answer: str
    branches: list[list[Spec]]  # each inner list: the rollouts under one root child
    keep: float = 0.9
    warmup: int = 4


def grow(branches: list[list[Spec]]) -> Tree:
    """A tree with one root child per branch, its rollouts below it, visits backed up as the
    search backs them up (one per rollout)."""
    tree = Tree((1,))
    for number, rollouts in enumerate(branches):
        node = tree.add(tree.root, (10 + number,), f"step {number}", (0.5,), False)
        for spec, reward, trace, answer_conf in rollouts:
            rid = tree.next_rollout_id
            answer, _, thought = spec.partition("|")  # "8|4 + 4 = 8": an answer and its thought
            text = f"<Thought>{thought or f'step {number}'}</Thought><Output>{answer}</Output>"
            tree.add_rollout(
                Rollout(rid, node.id, (), text, reward, answer, "finished", 1, reward, trace, answer_conf)
            )
            tree.backup(node, reward)
    return tree


def _answers(case: Case) -> dict[RuleName, str | None]:
    ballot = Ballot.of(grow(case.branches), case.keep, case.warmup)
    return {name: (r.answer if (r := choose(ballot, name)) else None) for name in RULE_NAMES}


A9 = ("9|3 + 3 = 9", 0.1, 0.2, 0.1)  # a wrong sum: the checked vote drops it
TWELVE = ("12", 0.45, 0.2, 0.1)
APPLES = ("seven apples", 0.2, 1.0, 0.3)
FILLER = ("seven apples", 0.5, 1.0, 0.3)
Q, R, S = ("Q", 0.1, 4.0, 0.1), ("R", 0.1, 3.8, 0.1), ("S", 0.9, 3.5, 0.8)
W, X = ("W", 0.2, 3.0, 0.1), ("X", 0.6, 2.9, 0.5)
# 21 traces: `trace` keeps the single most confident (12, 5.0); DeepConf-low keeps the top 10%,
# ceil(2.1) = 3 traces: 12 (5.0) against 15 twice (4.9 + 4.8 = 9.7)
TOP_HEAVY = [[("12", 0.1, 5.0, 0.1)], [("15", 0.1, 4.9, 0.1)], [("15", 0.1, 4.8, 0.1)]] + [[FILLER] * 3] * 6

CASES = [
    # three 9s (the most rollouts) with the lowest rewards, traces and answer confidences; the
    # 9s share one branch, whose best rollout is "nine"
    Case(
        "majority",
        "9",
        [
            [A9, A9, A9, ("nine", 0.6, 1.0, 0.3)],
            [("seven apples", 0.9, 2.0, 0.2)],
            [("seven apple", 0.5, 1.5, 0.4)],
        ],
    ),
    # 12's rewards sum to 0.9, more than three "seven apples" (0.6) or the single best (0.8)
    Case(
        "reward-vote",
        "12",
        [
            [TWELVE, TWELVE, ("30", 0.5, 0.5, 0.2)],
            [APPLES],
            [APPLES],
            [APPLES],
            [("seven apple", 0.8, 0.3, 0.6)],
        ],
    ),
    # 12 heads two branches (best rewards 0.5 + 0.5 = 1.0); three "seven apples" share one (0.4)
    # and the single best (0.9) has one
    Case(
        "branch",
        "12",
        [
            [("12", 0.5, 0.2, 0.1)],
            [("12", 0.5, 0.2, 0.1)],
            [("seven apples", 0.4, 1.0, 0.3)] * 3,
            [("seven apple", 0.9, 0.3, 0.6)],
        ],
    ),
    # one rollout with the best reward, outnumbered and out-summed everywhere else
    Case(
        "reward",
        "12",
        [[("12", 0.95, 0.2, 0.1)], [FILLER, FILLER], [FILLER], [("seven apple", 0.4, 0.5, 0.2)]],
    ),
    # the first branch has the most visits (3); its best rollout says 30, the tree's best says 12
    Case(
        "visits",
        "30",
        [
            [("30", 0.6, 0.2, 0.1), ("31", 0.2, 0.2, 0.1), ("32", 0.2, 0.2, 0.1)],
            [("12", 0.9, 2.0, 0.6)],
            [("8", 0.3, 0.5, 0.2)],
            [("8", 0.3, 0.5, 0.2)],
        ],
    ),
    Case("trace", "12", TOP_HEAVY),
    Case("deepconf-low", "15", TOP_HEAVY),
    # keep 50% of 13 traces (7): Q three times at 4.0 (12.0) against P at 5.0 + 3.9 and R twice
    # at 3.8; DeepConf-high keeps 90% (12): R four times (15.2) wins
    Case(
        "deepconf",
        "Q",
        [[R]] * 4 + [[Q]] * 3 + [[("P", 0.2, 5.0, 0.1), ("P", 0.2, 3.9, 0.1)], [("Z", 0.3, 1.0, 0.2)]],
        keep=0.5,
    ),
    # DeepConf-high keeps 90% of 14 traces (13): the least confident S drops out, so S's four
    # kept (4 x 3.5 = 14.0) lose to R's four (15.2); all five S (17.5) would have won
    Case(
        "deepconf-high",
        "R",
        [[Q], [Q], [Q], [("P", 0.2, 5.0, 0.1), ("P", 0.2, 3.9, 0.1)]] + [[R]] * 4 + [[S]] * 5,
        keep=0.5,
    ),
    # the four warm-up traces (3.0) set the threshold; the six later X (2.9) fall below it and
    # were stopped: W (12.0) outweighs the one later trace above it (V, 3.5)
    Case("deepconf-online", "W", [[W]] * 4 + [[("V", 0.1, 3.5, 0.1)]] + [[X]] * 6),
    # "the red cars" is the string most like the others, weighted by their rewards
    Case(
        "mbr",
        "the red cars",
        [
            [("the red car", 0.5, 1.0, 0.1)],
            [("the red cars", 0.4, 1.0, 0.1)],
            [("a red car", 0.9, 3.0, 0.1)],
            [("blue", 0.5, 1.0, 0.6)],
            [("blue", 0.5, 1.0, 0.6)],
        ],
    ),
    # the answer-confidence rules: the reward cases again with the signal moved to the answer's tokens
    Case(
        "answer-conf",
        "12",
        [
            [("12", 0.1, 0.2, 0.95)],
            [("seven apples", 0.3, 1.0, 0.5)] * 2,
            [("seven apples", 0.3, 1.0, 0.5)],
            [("seven apple", 0.9, 0.5, 0.4)],
        ],
    ),
    Case(
        "answer-vote",
        "12",
        [
            [("12", 0.1, 0.2, 0.45)] * 2 + [("30", 0.6, 0.5, 0.5)],
            [("seven apples", 0.5, 1.0, 0.2)],
            [("seven apples", 0.5, 1.0, 0.2)],
            [("seven apples", 0.5, 1.0, 0.2)],
            [("seven apple", 0.3, 0.3, 0.8)],
        ],
    ),
    # three 9s whose thought says 4 + 4 = 9 (each a branch of its own: majority, branch and the
    # trace votes pick 9); two 8s that add up, with the lowest rewards, traces and answer
    # confidences; a best rollout in the most visited branch. Only the checked vote gives 8
    Case(
        "checked",
        "8",
        [
            [("8|4 + 4 = 8", 0.05, 0.1, 0.1), ("8|4 + 4 = 8", 0.05, 0.1, 0.1)],
            [("9|4 + 4 = 9", 0.1, 3.0, 0.3)],
            [("9|4 + 4 = 9", 0.1, 3.0, 0.3)],
            [("9|4 + 4 = 9", 0.1, 3.0, 0.3)],
            [("seven apples", 0.9, 5.0, 0.6), ("ten", 0.1, 0.2, 0.2), ("eleven", 0.1, 0.2, 0.2)],
        ],
    ),
    Case(
        "answer-branch",
        "12",
        [
            [("12", 0.1, 0.2, 0.5)],
            [("12", 0.1, 0.2, 0.5)],
            [("seven apples", 0.5, 1.0, 0.4)] * 3,
            [("seven apple", 0.3, 0.3, 0.9)],
        ],
    ),
]


def test_every_rule_in_the_registry_has_a_case() -> None:
    assert sorted(c.rule for c in CASES) == sorted(RULES)


@pytest.mark.parametrize("case", CASES, ids=[c.rule for c in CASES])
def test_only_this_rule_gives_this_answer(case: Case) -> None:
    answers = _answers(case)
    assert answers[case.rule] == case.answer
    same = sorted(name for name, answer in answers.items() if answer == case.answer and name != case.rule)
    assert same == [], f"{case.rule}'s case does not tell it from {same}"


def test_without_trace_confidences_deepconf_falls_back_to_the_branch_vote() -> None:
    """HTTP backends give no top-5 log-probabilities: no rollout has a trace confidence."""
    branch_case = next(c for c in CASES if c.rule == "branch")
    untraced = [[(a, reward, None, conf) for a, reward, _, conf in b] for b in branch_case.branches]
    answers = _answers(Case("deepconf", "12", untraced))
    assert answers["deepconf"] == answers["branch"] == "12"
    assert answers["deepconf-high"] is None and answers["deepconf-low"] is None
    assert answers["trace"] == "seven apple"  # no traces: the best reward


def test_no_rule_chooses_an_unfinished_rollout() -> None:
    """A looping rollout with the best reward, trace and answer confidence never wins."""
    tree = grow([[("12", 0.3, 1.0, 0.3)], [("12", 0.3, 1.0, 0.3)]])
    looped = Rollout(2, 1, (), "again and again", 0.99, "", "looped", 1, 0.99, 9.0, 0.99)
    tree.add_rollout(looped)
    for name in RULE_NAMES:
        chosen = choose(Ballot.of(tree), name)
        assert chosen is not None and chosen.finished, name
