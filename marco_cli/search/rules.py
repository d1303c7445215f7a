"""Every answer rule once: a pure function from a `Ballot` (the finished rollouts, and the tree
for the rules that read its shape) to the chosen rollout, in one table keyed by name.

`--select` (the search's answer), the sampling strategies (`vote` answers by `majority`,
`deepconf` by `deepconf`, `best-of-n` by `reward`), re-scoring a saved tree (`answer_by` in
runs/bench.py, benchmarks/rescore.py) and bench's `CONFIG=RULE` all index this table; adding a
rule is one function and one entry in `RULES`. Each name means one thing: `majority` counts
rollouts, `reward-vote` sums their rewards. Names an earlier version used for something else
are read through `ALIASES`, so old command lines and saved records answer as they did.

Only finished rollouts that state an answer are ever chosen (a looping or cut-off rollout never
wins); every rule returns None when there is none, except the fallbacks each docstring names.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, get_args

from marco_cli.errors import clip
from marco_cli.search.answers import answer_key
from marco_cli.search.arithmetic import wrong
from marco_cli.search.deepconf import DEFAULT_KEEP, filtered_vote, online_vote
from marco_cli.search.similarity import mbr_choice
from marco_cli.search.tree import Node, Rollout, Tree

RuleName = Literal[
    "visits",
    "reward",
    "reward-vote",
    "majority",
    "branch",
    "trace",
    "deepconf",
    "deepconf-high",
    "deepconf-low",
    "deepconf-online",
    "mbr",
    "answer-conf",
    "answer-vote",
    "answer-branch",
    "checked",
]
RULE_NAMES: tuple[RuleName, ...] = get_args(RuleName)
# an old name -> the rule it always meant: `--select vote` summed rewards (now `reward-vote`),
# while `--strategy vote` counted (`majority`, the strategy's rule, unchanged)
ALIASES: dict[str, RuleName] = {"vote": "reward-vote"}


@dataclass(frozen=True)
class Ballot:
    """What a rule reads: the tree (branches, visits) and the rollouts it chooses among (the
    tree's own unless re-weighted); `keep` and `warmup` are DeepConf's share of traces kept and
    its online warm-up (the search's `--deepconf-keep`, `--deepconf-warmup` for samples)."""

    tree: Tree
    rollouts: Sequence[Rollout]
    keep: float = DEFAULT_KEEP
    warmup: int = 4

    @staticmethod
    def of(tree: Tree, keep: float = DEFAULT_KEEP, warmup: int = 4) -> Ballot:
        return Ballot(tree, tree.rollouts, keep, warmup)


Pick = Callable[[Ballot], Rollout | None]


@dataclass(frozen=True)
class Rule:
    """One answer rule: how it picks, and whether the search's early stop (`--stop-agree`)
    counts agreeing branches (root subtrees) rather than rollouts under it."""

    pick: Pick
    counts_branches: bool = False


def answer_votes(rollouts: Sequence[Rollout]) -> tuple[Counter[str], dict[str, float]]:
    """Finished answers: how many rollouts gave each, and their summed reward."""
    counts: Counter[str] = Counter()
    weight: dict[str, float] = {}
    for r in rollouts:
        if r.finished and r.answer:
            key = answer_key(r.answer)
            counts[key] += 1
            weight[key] = weight.get(key, 0.0) + r.reward
    return counts, weight


def branch_of(tree: Tree, node_id: int) -> int:
    """The root's child a node descends from (its first step): rollouts under one branch share
    that prefix, so they are one piece of evidence, not several. The root is its own branch."""
    node = tree.nodes[node_id]
    while node.parent is not None and node.parent != 0:
        node = tree.nodes[node.parent]
    return node.id


def branch_votes(tree: Tree, rollouts: Sequence[Rollout]) -> tuple[Counter[str], dict[str, float]]:
    """One vote per branch: each branch votes for the answer most of its finished rollouts gave
    (ties: the larger summed reward). Returns branches per answer, and the summed best reward of
    the branches behind each answer (the tie-break)."""
    by_branch: dict[int, list[Rollout]] = {}
    for r in rollouts:
        if r.finished and r.answer:
            by_branch.setdefault(branch_of(tree, r.node), []).append(r)
    counts: Counter[str] = Counter()
    weight: dict[str, float] = {}
    for members in by_branch.values():
        inner, inner_weight = answer_votes(members)
        answer = max(inner, key=lambda k: (inner[k], inner_weight[k]))
        counts[answer] += 1
        best = max(r.reward for r in members if answer_key(r.answer) == answer)
        weight[answer] = weight.get(answer, 0.0) + best
    return counts, weight


def best_finished(rollouts: Sequence[Rollout]) -> Rollout | None:
    """The finished rollout with an answer and the highest reward (ties: the earliest); one
    without an answer only where no finished one has one."""
    finished = [r for r in rollouts if r.finished]
    return max(finished, key=lambda r: (bool(r.answer), r.reward, -r.id)) if finished else None


def _represent(rollouts: Sequence[Rollout], winner: str) -> Rollout | None:
    return best_finished([r for r in rollouts if r.answer and answer_key(r.answer) == winner])


def reward(ballot: Ballot) -> Rollout | None:
    """The finished rollout with the highest reward (the paper's Test@N best-of-n)."""
    return best_finished(ballot.rollouts)


def majority(ballot: Ballot) -> Rollout | None:
    """Self-consistency (Wang et al. 2023): the answer most finished rollouts gave (ties: the
    larger summed reward), represented by its highest-reward rollout."""
    counts, weight = answer_votes(ballot.rollouts)
    if not counts:
        return None
    return _represent(ballot.rollouts, max(counts, key=lambda k: (counts[k], weight[k])))


def checked(ballot: Ballot) -> Rollout | None:
    """Self-consistency over the rollouts whose arithmetic holds: every `EXPRESSION = NUMBER` they
    wrote is recomputed exactly (search/arithmetic.py, checking in the manner of PAL, Gao et al.
    2023) and a rollout with a wrong one does not vote; all of them vote when none is left."""
    right = [r for r in ballot.rollouts if not wrong(r.text)]
    return majority(replace(ballot, rollouts=right) if right else ballot)


def reward_vote(ballot: Ballot) -> Rollout | None:
    """Confidence-weighted self-consistency: the answer whose finished rollouts have the largest
    summed reward (ties: more rollouts); the best reward where none has an answer."""
    counts, weight = answer_votes(ballot.rollouts)
    if not counts:
        return best_finished(ballot.rollouts)
    return _represent(ballot.rollouts, max(weight, key=lambda k: (weight[k], counts[k])))


def branch(ballot: Ballot) -> Rollout | None:
    """One vote per root subtree (its rollouts share a first step, so they are one piece of
    evidence), weighted: each branch adds its best reward to the answer most of its rollouts gave,
    and the heaviest answer wins (ties: more branches). The measurements in docs/results.md used this
    weighting; with rewards of similar size it is close to counting branches."""
    counts, weight = branch_votes(ballot.tree, ballot.rollouts)
    if not counts:
        return best_finished(ballot.rollouts)
    return _represent(ballot.rollouts, max(weight, key=lambda k: (weight[k], counts[k])))


def trace(ballot: Ballot) -> Rollout | None:
    """DeepConf's filter keeping one trace (Fu et al. 2025): the finished rollout with the
    highest lowest-window confidence over its whole text; the best reward without traces."""
    return filtered_vote(ballot.rollouts, keep=0.0) or best_finished(ballot.rollouts)


def deepconf(ballot: Ballot) -> Rollout | None:
    """DeepConf offline (Fu et al. 2025): the `keep` most confident traces vote, each with its
    trace confidence; the branch rule where no rollout has a trace (HTTP backends without
    top-5 log-probabilities)."""
    return filtered_vote(ballot.rollouts, ballot.keep) or branch(ballot)


def deepconf_high(ballot: Ballot) -> Rollout | None:
    """DeepConf-high (Fu et al. 2025): the 90% most confident traces vote; None without traces."""
    return filtered_vote(ballot.rollouts, 0.9)


def deepconf_low(ballot: Ballot) -> Rollout | None:
    """DeepConf-low (Fu et al. 2025): the 10% most confident traces vote; None without traces."""
    return filtered_vote(ballot.rollouts, 0.1)


def deepconf_online(ballot: Ballot) -> Rollout | None:
    """DeepConf online (Fu et al. 2025): the traces at or above the threshold the first `warmup`
    traces set vote, weighted by confidence (the others were stopped early)."""
    return online_vote(ballot.rollouts, ballot.warmup, ballot.keep)


def visits(ballot: Ballot) -> Rollout | None:
    """Classic MCTS: follow the most visited children from the root, then the best finished
    rollout below (anywhere when none below finished)."""
    tree = ballot.tree
    top = _most_visited_node(tree)
    below = best_finished([r for r in ballot.rollouts if tree.in_subtree(r.node, top.id)])
    return below if below is not None else best_finished(ballot.rollouts)


def _most_visited_node(tree: Tree) -> Node:
    node = tree.root
    while True:
        visited = [tree.nodes[c] for c in node.children if tree.nodes[c].visits]
        if not visited:
            return node
        node = max(visited, key=lambda n: (n.visits, n.mean_value, -n.id))


def mbr(ballot: Ballot) -> Rollout | None:
    """Minimum Bayes risk (Kumar & Byrne 2004) with chrF (Popović 2015): the finished answer most
    like the others, for open-ended answers such as translations, where exact votes rarely meet."""
    return mbr_choice(ballot.rollouts)


def _by_answer_confidence(inner: Pick) -> Pick:
    """`inner` with every rollout's reward replaced by its answer tokens' confidence (0 where the
    answer's tokens were not found): CoT-decoding's signal (Wang & Zhou 2024)."""

    def pick(ballot: Ballot) -> Rollout | None:
        weighted = [replace(r, reward=r.answer_confidence or 0.0) for r in ballot.rollouts]
        return inner(replace(ballot, rollouts=weighted))

    pick.__doc__ = f"{inner.__name__}, weighted by the answer tokens' confidence (CoT-decoding)."
    return pick


RULES: dict[RuleName, Rule] = {
    "visits": Rule(visits),
    "reward": Rule(reward),
    "reward-vote": Rule(reward_vote),
    "majority": Rule(majority),
    "branch": Rule(branch, counts_branches=True),
    "trace": Rule(trace, counts_branches=True),
    "deepconf": Rule(deepconf, counts_branches=True),
    "deepconf-high": Rule(deepconf_high, counts_branches=True),
    "deepconf-low": Rule(deepconf_low, counts_branches=True),
    "deepconf-online": Rule(deepconf_online),
    "mbr": Rule(mbr),
    "answer-conf": Rule(_by_answer_confidence(reward)),
    "answer-vote": Rule(_by_answer_confidence(reward_vote)),
    "answer-branch": Rule(_by_answer_confidence(branch), counts_branches=True),
    "checked": Rule(checked),
}


def rule_name(name: str) -> RuleName:
    """A rule's name, old names read through `ALIASES`; ValueError naming the choices."""
    named = ALIASES.get(name, name)
    for known in RULE_NAMES:
        if known == named:
            return known
    raise ValueError(f"unknown answer rule '{clip(name, 60)}'; one of {', '.join(RULE_NAMES)}")


def choose(ballot: Ballot, name: RuleName) -> Rollout | None:
    """The rollout the named rule picks."""
    return RULES[name].pick(ballot)


def agreeing(tree: Tree, name: RuleName) -> int:
    """The most finished rollouts (or, for rules that count branches, branches) behind one answer."""
    rollouts = tree.rollouts
    counts, _ = branch_votes(tree, rollouts) if RULES[name].counts_branches else answer_votes(rollouts)
    return max(counts.values(), default=0)
