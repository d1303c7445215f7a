"""The tree-aware answer rule (rollouts under one root child share its first step, so a branch
votes once; hand-made trees, numbers by hand), and re-scoring saved trees by every rule."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from marco_cli.record.record import ModelInfo, Record
from marco_cli.runs.bench import RULES, answer_by
from marco_cli.search.config import SELECTS, SearchConfig
from marco_cli.search.rules import Ballot, agreeing, branch_of, branch_votes, choose, rule_name
from marco_cli.search.strategies import run_search
from marco_cli.search.tree import Rollout, Tree
from tests.scripted import ScriptedModel


def _rollout(tree: Tree, node: int, answer: str, reward: float, trace: float | None = None) -> None:
    rid = len(tree.rollouts)
    tree.rollouts.append(
        Rollout(rid, node, (), f"<Output>{answer}</Output>", reward, answer, "finished", 1, reward, trace)
    )


def quickstart_tree() -> Tree:
    """The README quick start's tree, as issue 20 measured it: three rollouts under one wrong
    child (2, summed reward 2.23) and two under the greedy child (7, 1.71)."""
    tree = Tree((1, 2))
    greedy = tree.add(tree.root, (3,), "Tom has 3 + 4", (0.9,), False)
    wrong = tree.add(tree.root, (4,), "Tom has 3 - 1", (0.7,), False)
    deeper = tree.add(wrong, (5,), " apples", (0.8,), False)
    for node, reward in ((wrong.id, 0.75), (deeper.id, 0.74), (deeper.id, 0.74)):
        _rollout(tree, node, "2", reward)
    for reward in (0.86, 0.85):
        _rollout(tree, greedy.id, "7", reward)
    third = tree.add(tree.root, (6,), "3 plus 4", (0.6,), False)
    _rollout(tree, third.id, "7", 0.6)
    return tree


def test_a_correlated_subtree_cannot_outvote_independent_branches() -> None:
    tree = quickstart_tree()
    assert [branch_of(tree, n.id) for n in tree.nodes] == [0, 1, 2, 2, 4]
    counts, weight = branch_votes(tree, tree.rollouts)
    assert counts == {"2": 1, "7": 2}
    assert weight == {"2": 0.75, "7": 0.86 + 0.6}
    assert choose(Ballot.of(tree), "branch").answer == "7"
    assert (
        choose(Ballot.of(tree), "reward-vote").answer == "7"
    )  # 2.31 against 2.23: the third branch saved it


def test_without_the_third_branch_the_summed_vote_loses_and_the_branch_vote_ties_on_reward() -> None:
    tree = quickstart_tree()
    tree.rollouts = tree.rollouts[:5]
    assert choose(Ballot.of(tree), "reward-vote").answer == "2"  # 2.23 > 1.71
    counts, weight = branch_votes(tree, tree.rollouts)
    assert counts == {"2": 1, "7": 1} and weight == {"2": 0.75, "7": 0.86}
    assert choose(Ballot.of(tree), "branch").answer == "7"  # one branch each: the better branch wins


def test_a_branch_votes_for_its_own_majority() -> None:
    tree = Tree((1,))
    child = tree.add(tree.root, (2,), "x", (0.5,), False)
    for answer, reward in (("5", 0.4), ("5", 0.3), ("6", 0.9)):
        _rollout(tree, child.id, answer, reward)
    counts, weight = branch_votes(tree, tree.rollouts)
    assert counts == {"5": 1} and weight == {"5": 0.4}


def test_the_trace_rule_takes_the_most_confident_finished_trace() -> None:
    """Branch 1 says 7 with the best reward but a confused stretch (trace 1.0); branch 2 says 2
    through three rollouts (traces 3.0, 2.5, 2.0); branch 3 says 7 again (trace 1.5). The branch
    vote says 7 (two branches against one); `trace` takes the single most confident trace, 2's
    3.0. A looping rollout never counts, however confident, and one without a trace (an engine
    without top-5 log-probabilities) ranks below every scored one."""
    tree = Tree((1,))
    first, second, third = (tree.add(tree.root, (i,), f"s{i}", (0.5,), False) for i in (2, 3, 4))
    below = tree.add(second, (5,), "deeper", (0.5,), False)
    _rollout(tree, first.id, "7", 0.9, trace=1.0)
    for node, trace in ((second.id, 3.0), (below.id, 2.5), (below.id, 2.0)):
        _rollout(tree, node, "2", 0.6, trace)
    _rollout(tree, third.id, "7", 0.5, trace=1.5)
    assert choose(Ballot.of(tree), "branch").answer == "7"
    assert (
        choose(Ballot.of(tree), "trace").answer == "2"
        and choose(Ballot.of(tree), "trace").trace_confidence == 3.0
    )
    assert agreeing(tree, "trace") == 2  # its early stop counts branches, not rollouts (three said 2)
    tree.rollouts.append(replace(tree.rollouts[0], id=5, status="loop", answer="", trace_confidence=9.0))
    tree.rollouts.append(replace(tree.rollouts[0], id=6, answer="8", reward=0.99, trace_confidence=None))
    assert choose(Ballot.of(tree), "trace").answer == "2"
    tree.rollouts[0] = replace(tree.rollouts[0], trace_confidence=3.5)
    assert choose(Ballot.of(tree), "trace").answer == "7"
    unscored = Tree((1,))
    _rollout(unscored, unscored.add(unscored.root, (2,), "a", (0.5,), False).id, "4", 0.4)
    _rollout(unscored, unscored.add(unscored.root, (3,), "b", (0.5,), False).id, "5", 0.8)
    assert choose(Ballot.of(unscored), "trace").answer == "5"  # no traces at all: the best reward


def test_the_deepconf_rule_is_deepconf_highs_vote_over_the_rollouts() -> None:
    """Three branches say 5 with trace confidences 2.0 each, one says 9 with 3.0: `trace` takes
    the 9, DeepConf-high keeps ceil(0.9 * 4) = 4 and weighs 5 at 6.0 against 3.0. Without trace
    confidences it answers by the branch rule."""
    tree = Tree((1,))
    for i, (answer, trace) in enumerate((("5", 2.0), ("5", 2.0), ("5", 2.0), ("9", 3.0))):
        _rollout(tree, tree.add(tree.root, (i + 2,), f"s{i}", (0.5,), False).id, answer, 0.5, trace)
    assert (
        choose(Ballot.of(tree), "trace").answer == "9" and choose(Ballot.of(tree), "deepconf").answer == "5"
    )
    tree.rollouts = [
        replace(r, trace_confidence=None, reward=0.9 if r.answer == "9" else 0.4) for r in tree.rollouts
    ]
    assert (
        choose(Ballot.of(tree), "deepconf").answer == choose(Ballot.of(tree), "branch").answer == "5"
    )  # 1.2 against 0.9


def test_agreement_counts_branches_under_select_branch() -> None:
    tree = quickstart_tree()
    assert agreeing(tree, "reward-vote") == 3  # three rollouts said 2 (and three said 7)
    assert agreeing(tree, "branch") == 2  # but only two branches agree on anything


def test_the_early_stop_needs_agreement_across_branches() -> None:
    """Every rollout of the scripted model answers 4; with one child per expansion all of them
    sit under one root child, so three agreeing rollouts stop a rollout-counting search early
    while a branch-counting one searches on."""
    model = ScriptedModel(
        actions={},
        rollouts={},
        default_rollout=("<Output>4</Output>", 0.8),
        more_actions=lambda state: [(f"step {len(state)}\n", 0.8)],
    )
    one_start = {"children": 1, "first_tokens": 0, "iterations": 12, "stop_agree": 3}
    by_rollout = run_search(model, model.prompt, SearchConfig(**one_start, select="reward-vote"))
    assert by_rollout.stopped == "agreement"
    by_branch = run_search(model, model.prompt, SearchConfig(**one_start, select="branch"))
    assert by_branch.stopped != "agreement" and by_branch.answer == "4"
    assert by_branch.iterations > by_rollout.iterations


def _varied_model() -> ScriptedModel:
    """Children with different answers and rewards, so that the rules disagree."""
    answers = {
        "a": ("<Output>1</Output>", 0.9),
        "b": ("<Output>2</Output>", 0.6),
        "c": ("<Output>2</Output>", 0.5),
    }
    return ScriptedModel(
        actions={"": [("a\n", 0.9), ("b\n", 0.7), ("c\n", 0.6)]},
        rollouts={},
        fallback=lambda state: answers.get(state[:1], ("<Output>3</Output>", 0.4)),
        more_actions=lambda state: [
            (f"{state[:1]}{len(state)}\n", 0.8),
            (f"{state[:1]}x{len(state)}\n", 0.7),
        ],
    )


@pytest.mark.parametrize("select", SELECTS)
def test_rescoring_a_saved_tree_reproduces_the_original_choice(select: str) -> None:
    model = _varied_model()
    config = SearchConfig(children=3, iterations=10, stop_agree=None, select=select, seed=3)
    result = run_search(model, model.prompt, config)
    record = Record.of(result, "q", ModelInfo("scripted"), config)
    record = Record.from_json(json.loads(json.dumps(record.to_json())))  # as saved
    assert choose(Ballot.of(record.tree()), rule_name(select)).id == record.chosen_rollout
    assert answer_by(record, select) == record.answer != ""


def test_rescoring_tells_the_rules_apart() -> None:
    model = _varied_model()
    config = SearchConfig(children=3, iterations=10, stop_agree=None, seed=3)
    record = Record.of(run_search(model, model.prompt, config), "q", ModelInfo("scripted"), config)
    answers = {rule: answer_by(record, rule) for rule in RULES}
    assert answers["reward"] == "1" and len(set(answers.values())) >= 2, answers


@pytest.mark.slow
@pytest.mark.parametrize("select", ["branch", "trace", "deepconf", "reward-vote"])
def test_rescoring_a_real_search_reproduces_its_answer(engine, select: str) -> None:  # type: ignore[no-untyped-def]
    """Re-scoring under the rule the search ran with (not another one: on some CPUs the rules part)."""
    prompt = engine.build_prompt([{"role": "user", "content": "What is 12 + 7?"}], "plain")
    config = SearchConfig(
        children=2, iterations=4, granularity="mini-32", max_tokens=96, stop_agree=None, select=select
    )
    record = Record.of(run_search(engine, prompt, config), "q", ModelInfo("smollm2"), config)
    record = Record.from_json(json.loads(json.dumps(record.to_json())))  # as saved
    assert choose(Ballot.of(record.tree()), rule_name(select)).id == record.chosen_rollout
    assert answer_by(record, select) == record.answer


def test_root_children_widen_only_the_root() -> None:
    model = _varied_model()
    config = SearchConfig(children=2, root_children=3, iterations=6, stop_agree=None)
    result = run_search(model, model.prompt, config)
    tree = result.tree
    assert len(tree.root.children) == 3
    assert all(len(n.children) <= 2 for n in tree.nodes[1:])
    assert any(len(n.children) == 2 for n in tree.nodes[1:])


def test_first_tokens_branch_the_root_on_its_likeliest_starts() -> None:
    """CoT-decoding at the root: children 0..k-1 start with the k likeliest candidates (the
    scripted model lists them likeliest first), whatever the temperature; deeper expansions
    keep greedy-then-sampled children."""
    model = _varied_model()
    config = SearchConfig(children=2, first_tokens=3, iterations=6, stop_agree=None, temperature=0.9)
    result = run_search(model, model.prompt, config)
    tree = result.tree
    assert [tree.nodes[c].text for c in tree.root.children] == ["a\n", "b\n", "c\n"]
    assert all(len(n.children) <= 2 for n in tree.nodes[1:])
    assert {r.node for r in tree.rollouts} >= set(tree.root.children)  # every start rolled out


def test_the_real_engine_starts_with_the_kth_likeliest_token(engine) -> None:  # type: ignore[no-untyped-def]
    from marco_cli.contract import Request, Sampling, StopRule

    prompt = engine.build_prompt([{"role": "user", "content": "What is 12 + 7?"}], "plain")
    stop = StopRule(max_tokens=1, stop_texts=(), loop_guard=False)
    firsts = [engine.generate_many([Request(prompt, Sampling(first_rank=k), stop)])[0] for k in range(4)]
    greedy = engine.generate_many([Request(prompt, Sampling(), stop)])[0]
    assert firsts[0].tokens == greedy.tokens
    assert len({g.tokens for g in firsts}) == 4  # four different first tokens
    logprobs = [g.logprobs[0] for g in firsts]
    assert logprobs == sorted(logprobs, reverse=True)  # in the model's order of likelihood


def test_a_served_request_sets_first_tokens_over_the_server_default() -> None:
    from marco_cli.cli.serve import configurer
    from marco_cli.server.protocol import ApiError, ChatRequest

    question = [{"role": "user", "content": "What is 2 + 2?"}]
    assert configurer({})(ChatRequest("m", question), None).first_tokens == 4  # the default
    assert configurer({"first_tokens": 2})(ChatRequest("m", question), None).first_tokens == 2
    asked = ChatRequest("m", question, settings={"first_tokens": 0})
    assert configurer({"first_tokens": 2})(asked, None).first_tokens == 0
    with pytest.raises(ApiError) as refused:
        configurer({})(ChatRequest("m", question, settings={"first_tokens": 65}), None)
    assert refused.value.status == 400
