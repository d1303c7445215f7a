"""The tree view (ui/tree_view.py): progress moves before a generation ends, the tree says what it
left out, the summary says why the search stopped, and the marked path is the answer's, live
and replayed from a record."""

from __future__ import annotations

from dataclasses import replace

from rich.console import Console

from marco_cli.record.record import ModelInfo, Record
from marco_cli.search import events as ev
from marco_cli.search.config import SearchConfig
from marco_cli.search.strategies import run_search
from marco_cli.ui.tree_view import TreeSnapshot, render_tree, summary_line
from tests.scripted import ScriptedModel


def test_progress_moves_before_a_generation_ends() -> None:
    model = ScriptedModel(actions={"": [("a long first step\n", 0.9)]}, rollouts={})
    snapshot = TreeSnapshot("Q?")
    seen: list[tuple[int, int]] = []  # (tokens shown, nodes) at every progress event
    shown: list[int] = []  # tokens shown after every event

    def listen(event: ev.Event) -> None:
        snapshot.apply(event)
        shown.append(snapshot.tokens_so_far)
        if isinstance(event, ev.TokensGenerated):
            seen.append((snapshot.tokens_so_far, len(snapshot.nodes)))

    # four starts with one candidate: three duplicate the first and are dropped, paid for all the same
    config = SearchConfig(iterations=2, children=1, first_tokens=4)
    result = run_search(model, model.prompt, config, listen)
    first = [tokens for tokens, nodes in seen if nodes == 1]  # before the first node arrived
    assert len(first) >= 10 and first == sorted(first) and first[-1] > first[0]
    assert shown == sorted(shown)  # a finished generation's tokens move from streamed to the tree
    assert snapshot.tokens == shown[-1] == result.generated_tokens  # every token counted once


def test_the_tree_says_what_it_left_out_and_unvisited_nodes_have_no_mean() -> None:
    model = ScriptedModel(actions={}, rollouts={}, more_actions=lambda s: [(f"{s}{k}\n", 0.9) for k in "ab"])
    result = run_search(model, model.prompt, SearchConfig(iterations=12, children=2, stop_agree=None))
    snap = TreeSnapshot("Q?")
    for node in result.tree.nodes[1:]:
        snap.apply(ev.NodeAdded(node.id, node.parent, node.depth, node.text, 1, 0.9, False, False))
    console = Console(width=100, record=True, color_system=None)
    console.print(render_tree(snap, width=100, max_lines=6, hint="; see all with marco show"))
    text = console.export_text()
    total = len(result.tree.nodes) - 1
    assert "nodes not shown; see all with marco show" in text and f"of {total} nodes" in text
    assert "q=  -" in text and "q=0.00" not in text  # nothing was backed up into this snapshot


def test_the_summary_says_why_the_search_stopped_early() -> None:
    record = Record.from_json(
        {
            "question": "q",
            "model": {"name": "m"},
            "settings": {"strategy": "mcts"},
            "iterations": 3,
            "tokens": {"generated": 10},
            "seconds": 1.0,
            "confidence": 0.5,
            "stopped": "agreement",
        }
    )
    assert "stopped early: enough finished rollouts agreed" in summary_line(record).plain
    assert "stopped" not in summary_line(replace(record, stopped="iterations")).plain


def disagreeing_world() -> ScriptedModel:
    """Branch a gets the most visits (cheap, many siblings agree), branch b holds the single
    highest reward: the answer rule and the best reward point to different paths."""
    return ScriptedModel(
        actions={"": [("a\n", 0.6), ("b\n", 0.95)]},
        rollouts={"b\n": ("<Output>5</Output>", 0.99)},
        fallback=lambda state: ("<Output>4</Output>", 0.6),
        more_actions=lambda state: [(f"{state[0]}{len(state)}\n", 0.6), (f"{state[0]}x{len(state)}\n", 0.6)],
    )


def test_the_marked_path_is_the_answers_path_live_and_replayed() -> None:
    model = disagreeing_world()
    config = SearchConfig(iterations=8, select="reward-vote", stop_agree=None)
    live = TreeSnapshot("Q?")
    result = run_search(model, model.prompt, config, live.apply)
    best_reward = max(result.tree.rollouts, key=lambda r: r.reward)
    assert result.rollout != best_reward.id  # the vote and the top reward disagree here
    assert live.best_path == tuple(result.path)
    record = Record.of(result, "Q?", ModelInfo("scripted"), config)
    replayed = TreeSnapshot.from_record(record)
    assert replayed.best_path == record.path
    assert set(replayed.nodes) == {n.id for n in record.nodes}
    assert {k: (v.visits, v.parent) for k, v in replayed.nodes.items()} == {
        k: (v.visits, v.parent) for k, v in live.nodes.items()
    }
    console = Console(width=120, record=True, color_system=None)
    console.print(render_tree(replayed, width=120, max_lines=200))
    marked = [line for line in console.export_text().splitlines() if "◀" in line]
    assert len(marked) == len(record.path) - 1  # every node on the path, and no other
    texts = [n.text.strip() for n in record.nodes if n.id in record.path[1:]]
    assert all(any(t in line for line in marked) for t in texts)
