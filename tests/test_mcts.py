"""The pure search logic against a scripted model (no llama.cpp)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from benchmarks.reference import tree_json
from marco_cli.contract import REFLECTION_PHRASE
from marco_cli.search import events as ev
from marco_cli.search.config import SearchConfig
from marco_cli.search.mcts import Search, select_leaf, uct
from marco_cli.search.strategies import context, run_search
from marco_cli.search.tree import Node, Tree
from tests.scripted import ScriptedModel

GOLDEN = Path(__file__).parent / "golden" / "mcts_small.json"


def world() -> ScriptedModel:
    """Branch b is the designed best: its rollouts are the most confident."""
    return ScriptedModel(
        actions={
            "": [("a\n", 0.3), ("b\n", 0.9), ("c\n", 0.3)],
            "a\n": [("a1\n", 0.3), ("a2\n", 0.2)],
            "b\n": [("b1\n", 0.9), ("b2\n", 0.8)],
            "c\n": [("c1\n", 0.3), ("c2\n", 0.4)],
        },
        rollouts={
            "a\n": ("<Output>1</Output>", 0.2),
            "b\n": ("<Output>2</Output>", 0.9),
            "c\n": ("<Output>3</Output>", 0.3),
            "b\nb1\n": ("<Output>2</Output>", 0.95),
            "b\nb2\n": ("<Output>2</Output>", 0.85),
        },
        fallback=lambda state: (
            ("<Output>2</Output>", 0.9) if state.startswith("b") else ("<Output>0</Output>", 0.3)
        ),
        more_actions=deeper,
    )


def deeper(state: str) -> list[tuple[str, float]]:
    """Below depth 2 every branch keeps its character: b stays confident, a and c do not."""
    conf = 0.9 if state.startswith("b") else 0.3
    if state.count("\n") >= 6:
        return [("<Output>2</Output>" if conf > 0.5 else "<Output>0</Output>", conf)]
    return [(f"{state[0]}{k}\n", conf) for k in "xyz"]


# These tests pin the tree mechanics, written for three children, no early stop and the
# most-visited answer rule, no CoT-decoding at the root; test_loops.py covers the defaults'
# rewards and answer rules, test_branch_vote.py the first tokens.
MECHANICS = {"children": 3, "first_tokens": 0, "stop_agree": None, "select": "visits", "max_tokens": 1024}


def run(model: ScriptedModel, **kw) -> tuple[Search, object, list]:
    seen: list = []
    config = SearchConfig(**(MECHANICS | kw))
    search = Search(context(model, model.prompt, config, seen.append, clock=model.clock), config)
    return search, search.run(), seen


def reward(action: tuple[str, float], rollout: tuple[str, float]) -> float:
    (a, ca), (r, cr) = action, rollout
    return (len(a) * ca + len(r) * cr) / (len(a) + len(r))


def test_unvisited_children_are_visited_first() -> None:
    search, _, seen = run(world(), iterations=3, children=3)
    root = search.tree.root
    assert sorted(search.tree.nodes[c].text for c in root.children) == ["a\n", "b\n", "c\n"]
    assert [search.tree.nodes[c].visits for c in root.children] == [1, 1, 1]
    assert sum(isinstance(e, ev.NodeAdded) for e in seen) == 3  # no grandchildren yet


def test_backup_sums_and_counts_are_exact() -> None:
    model = world()
    search, _, _ = run(model, iterations=3, children=3)
    want = {
        t: reward(a, model.rollouts[t])
        for t, a in (("a\n", ("a\n", 0.3)), ("b\n", ("b\n", 0.9)), ("c\n", ("c\n", 0.3)))
    }
    root = search.tree.root
    assert root.visits == 3
    assert root.value_sum == pytest.approx(sum(want.values()), abs=1e-12)
    for child in (search.tree.nodes[c] for c in root.children):
        assert child.visits == 1 and child.value_sum == pytest.approx(want[child.text], abs=1e-12)
    assert sorted(r.reward for r in search.tree.rollouts) == pytest.approx(sorted(want.values()))


def test_uct_formula() -> None:
    node = Node(1, 0, 1, (), "", (), visits=4, value_sum=2.0)
    assert uct(node, 16, 1.414) == pytest.approx(0.5 + 1.414 * (2.772588722 / 4) ** 0.5)
    assert uct(Node(2, 0, 1, (), "", ()), 16, 1.414) == float("inf")


def _visited(tree: Tree, parent: Node, visits: int, value_sum: float, text: str) -> Node:
    node = tree.add(parent, (len(tree.nodes),), text, (0.5,), False)
    node.visits, node.value_sum = visits, value_sum
    return node


def test_selection_descends_by_uct_over_the_parents_visits() -> None:
    """Root visited 100 times: `often` (10 visits, mean 0.5) scores 0.5 + 1.414 * sqrt(ln 100 / 10)
    = 1.46, `rarely` (1 visit, mean 0.3) 0.3 + 1.414 * sqrt(ln 100) = 3.33, so exploration picks
    `rarely`. (With each child's own visits in place of the parent's, `often` would win: 1.18
    against 0.3.) Below `rarely`, the unvisited child comes before a visited one, and the
    descent stops at a node without children.
    Without exploration the root's best mean (0.5) wins."""
    tree = Tree((1,))
    tree.root.visits, tree.root.value_sum = 100, 40.0
    often = _visited(tree, tree.root, 10, 5.0, "often")
    rarely = _visited(tree, tree.root, 1, 0.3, "rarely")
    assert uct(rarely, 100, 1.414) > uct(often, 100, 1.414)
    assert select_leaf(tree, 1.414, random.Random(0)) is rarely
    visited = _visited(tree, rarely, 1, 0.9, "visited")
    fresh = _visited(tree, rarely, 0, 0.0, "fresh")
    assert select_leaf(tree, 1.414, random.Random(0)) is fresh
    fresh.exhausted = True
    assert select_leaf(tree, 1.414, random.Random(0)) is visited  # an exhausted child is skipped
    assert select_leaf(tree, 0.0, random.Random(0)) is often  # no exploration: the best mean, 0.5


def test_without_exploration_selection_is_greedy_on_the_mean() -> None:
    tree = Tree((1,))
    tree.root.visits = 12
    _visited(tree, tree.root, 10, 5.0, "many")
    best = _visited(tree, tree.root, 2, 1.4, "best mean")
    assert select_leaf(tree, 0.0, random.Random(0)) is best


def test_search_converges_on_the_designed_best_branch() -> None:
    search, result, _ = run(world(), iterations=24, children=3, exploration=0.5)
    root = search.tree.root
    best = max((search.tree.nodes[c] for c in root.children), key=lambda n: n.visits)
    assert best.text == "b\n"
    assert best.visits > sum(search.tree.nodes[c].visits for c in root.children) / 2
    assert result.answer == "2" and result.path[1] == best.id
    below = [r.reward for r in search.tree.rollouts if search.tree.in_subtree(r.node, result.path[-1])]
    assert result.reward == max(below)
    by_reward = run(world(), iterations=24, children=3, exploration=0.5, select="reward")[1]
    assert by_reward.reward == max(r.reward for r in by_reward.tree.rollouts)


def test_iteration_time_and_token_budgets() -> None:
    _, result, seen = run(world(), iterations=5)
    assert result.iterations == 5 and result.stopped == "iterations"
    assert sum(isinstance(e, ev.IterationStarted) for e in seen) == 5
    timed = world()
    timed.clock_step = 1.0  # every model call takes a second of the fake clock
    _, result, _ = run(timed, iterations=100, max_time=3.0)
    assert result.stopped == "time" and result.iterations < 100 and timed.now <= 5.0
    search, result, _ = run(world(), iterations=10, max_tokens=6)
    for rollout in search.tree.rollouts:
        node = search.tree.nodes[rollout.node]
        assert search.tree.generated_tokens(node) + len(rollout.tokens) <= 6


def test_early_stops_on_confidence_and_agreement() -> None:
    _, result, _ = run(world(), iterations=50, stop_confidence=0.85)
    assert result.stopped == "confidence" and result.reward >= 0.85
    _, result, _ = run(world(), iterations=50, stop_agree=3)
    assert result.stopped == "agreement" and result.iterations < 50
    counts: dict[str, int] = {}
    for r in result.tree.rollouts:
        counts[r.answer] = counts.get(r.answer, 0) + 1
    assert max(counts.values()) == 3


def test_dynamic_reflection_children_appear_exactly_below_the_threshold() -> None:
    search, _, seen = run(world(), iterations=8, dynamic_reflection=True, reflection_threshold=0.5)
    tree = search.tree
    checked = 0
    for node in tree.nodes[1:]:
        if node.reflection:
            continue
        kids = [tree.nodes[c] for c in node.children if tree.nodes[c].reflection]
        low = node.mean_confidence is not None and node.mean_confidence < 0.5
        wanted = low and not node.terminal and tree.reflections_on_path(node) == 0
        assert len(kids) == (1 if wanted else 0), node
        if kids:
            assert kids[0].text == REFLECTION_PHRASE + "\n" and kids[0].confidences == ()
        checked += wanted
    assert checked >= 2
    flagged = [e for e in seen if isinstance(e, ev.NodeAdded) and e.reflection]
    assert len(flagged) == checked and all(tree.nodes[e.node].reflection for e in flagged)


def test_v1_reflection_rethinks_where_the_thought_ends() -> None:
    model = ScriptedModel(
        actions={"": [("<Thought>x</Thought>\n", 0.7)], "<Thought>x\n" + REFLECTION_PHRASE + "\n": []},
        rollouts={},
    )
    search, _, _ = run(model, iterations=3, children=1, reflection=True)
    texts = [n.text for n in search.tree.nodes[1:]]
    assert "<Thought>x</Thought>\n" in texts
    assert f"<Thought>x\n{REFLECTION_PHRASE}\n" in texts
    reflection = next(n for n in search.tree.nodes if n.reflection)
    assert reflection.parent == 0 and not reflection.confidences


def test_terminal_nodes_are_never_expanded() -> None:
    model = ScriptedModel(actions={"": [("<Output>9</Output>", 0.8)]}, rollouts={})
    search, result, _ = run(model, iterations=10, children=2)
    assert len(search.tree.nodes) == 2 and search.tree.nodes[1].terminal
    assert result.stopped == "exhausted" and result.answer == "9"
    assert [c[1] for c in model.calls] == ["step"]  # one expansion, never a rollout beyond it


def test_same_seed_same_tree_and_golden_record() -> None:
    first = tree_json(run(world(), iterations=8, seed=3)[0].tree)
    again = tree_json(run(world(), iterations=8, seed=3)[0].tree)
    assert first == again
    assert json.loads(json.dumps(first)) == json.loads(GOLDEN.read_text())  # tuples as JSON lists


@pytest.mark.parametrize(
    ("strategy", "answer"),
    [
        ("mcts", "2"),
        ("cot", "0"),
        ("best-of-n", "0"),
        ("vote", "0"),
        ("deepconf", "0"),
        ("deepconf-online", "0"),
    ],
)
def test_every_strategy_returns_the_same_shape_and_its_designed_answer(strategy: str, answer: str) -> None:
    """The search steps into branch b, whose rollouts say 2 with confidence 0.9-0.95; a sampled
    whole answer starts at the root, where this world only ever writes its fallback, 0 (0.3)."""
    model = world()
    result = run_search(
        model, model.prompt, SearchConfig(strategy=strategy, iterations=4, samples=3), clock=model.clock
    )
    assert result.strategy == strategy
    assert result.answer == answer
    assert result.reward is not None
    assert result.path[0] == 0 and result.rollout is not None
    assert result.generated_tokens > 0 and result.seconds >= 0
    assert result.text.endswith(f"<Output>{answer}</Output>")
    if strategy == "mcts":
        assert result.text.startswith("b\n") and result.reward > 0.9  # the designed best branch
    else:
        assert result.reward == pytest.approx(0.3)


def test_vote_takes_the_majority_answer() -> None:
    model = ScriptedModel(actions={}, rollouts={})
    answers = iter([("<Output>5</Output>", 0.99), ("<Output>7</Output>", 0.5), ("<Output>7.0</Output>", 0.4)])

    def fake_many(requests, on_token=None):  # three samples with fixed answers
        from marco_cli.contract import Generation

        out = []
        for _ in requests:
            text, conf = next(answers)
            toks = tuple(ord(c) for c in text)
            out.append(Generation(toks, text, (0.0,) * len(toks), (conf,) * len(toks), "stop_text"))
        return out

    model.generate_many = fake_many  # type: ignore[method-assign]
    result = run_search(model, model.prompt, SearchConfig(strategy="vote", samples=3))
    assert result.answer == "7" and result.votes == {"7": 2, "5": 1}


def test_interrupt_returns_the_best_answer_so_far() -> None:
    model = world()
    calls = {"n": 0}
    original = model.generate_many

    def flaky(requests, on_token=None):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(requests, on_token)

    model.generate_many = flaky  # type: ignore[method-assign]
    config = SearchConfig(iterations=20)
    search = Search(context(model, model.prompt, config, clock=model.clock), config)
    result = search.run()
    assert result.stopped == "interrupted" and result.answer in {"1", "2", "3"}


def test_a_failing_model_keeps_the_samples_already_finished() -> None:
    """vote over 3 samples, one per call: the server dies at the third; the two finished
    samples stay in the tree and still answer (the run says `error`)."""
    from marco_cli.contract import Generation
    from marco_cli.errors import MarcoError

    model = ScriptedModel(actions={}, rollouts={}, parallel=1)
    answers = iter(["<Output>7</Output>", "<Output>7</Output>"])

    def dying(requests, on_token=None):
        text = next(answers, None)
        if text is None:
            raise MarcoError("the server went away")
        toks = tuple(ord(c) for c in text)
        return [Generation(toks, text, (0.0,) * len(toks), (0.9,) * len(toks), "stop_text")]

    model.generate_many = dying  # type: ignore[method-assign]
    result = run_search(model, model.prompt, SearchConfig(strategy="vote", samples=3))
    assert result.stopped == "error" and result.error == "the server went away"
    assert len(result.tree.rollouts) == 2 and result.answer == "7" and result.generated_tokens == 36


def test_a_child_that_ends_the_answer_is_scored_even_when_not_picked() -> None:
    """A step that already states the answer is complete: selection skips complete nodes, so
    unless the expansion scores it at once, the answer it cost would never count."""
    for seed in range(6):  # whichever child the expansion picks to roll out
        model = ScriptedModel(
            actions={"": [("Think first.\n", 0.6), ("So <Output>7</Output>", 0.9)]},
            rollouts={"Think first.\n": ("Then <Output>5</Output>", 0.5)},
        )
        config = SearchConfig(iterations=1, children=2, stop_agree=None, seed=seed)
        result = run_search(model, model.prompt, config)
        answers = [r.answer for r in result.tree.rollouts]
        assert "7" in answers and result.answer == "7", (seed, answers)
        assert result.tree.root.visits == len(answers)  # each backed up


@pytest.mark.parametrize("temperature", [0.0, 0.5])
def test_rollouts_are_sampled_at_the_rollout_temperature(
    temperature: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Actions keep their own sampling (the first child greedy, the rest at --temperature);
    rollouts, and only rollouts, follow --rollout-temperature (0: greedy)."""
    model = world()
    seen: dict[str, list[float]] = {"rollout": [], "action": []}
    generate = model.generate_many

    def recording(requests, on_token=None):
        for r in requests:
            seen["rollout" if r.stop.granularity == "rollout" else "action"].append(r.sampling.temperature)
        return generate(requests, on_token)

    monkeypatch.setattr(model, "generate_many", recording)
    run(model, iterations=8, rollout_temperature=temperature, temperature=0.7)
    assert seen["rollout"] and set(seen["rollout"]) == {temperature}
    assert set(seen["action"]) == {0.0, 0.7}
