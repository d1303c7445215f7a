"""Pure unit tests for pieces otherwise reached only through the model: the KV slot planner,
tree snapshots (live and from a record), step ends, and the history database."""

from __future__ import annotations

from dataclasses import replace

import pytest
from rich.console import Console

from marco_cli.engine.kvcache import Plan, SeqCache
from marco_cli.engine.stops import ends_step
from marco_cli.errors import MarcoError
from marco_cli.record.record import ModelInfo, Record
from marco_cli.runs import history
from marco_cli.search.config import SearchConfig
from marco_cli.search.mcts import Search
from marco_cli.ui.tree_view import TreeSnapshot, render_tree
from tests.scripted import ScriptedModel


def test_one_slot_is_truncated_to_the_shared_prefix() -> None:
    cache = SeqCache(1)
    assert cache.plan([1, 2, 3], 2) == Plan(0, 0, None)
    cache.tokens[0] = [1, 2, 3, 4]
    assert cache.plan([1, 2, 9], 2) == Plan(0, 2, None)
    assert cache.plan([1, 2, 3, 4, 5], 4) == Plan(0, 4, None)
    assert cache.plan([1, 2], 1, busy=frozenset({0})) is None


def test_several_slots_extend_copy_and_respect_busy() -> None:
    cache = SeqCache(3)
    cache.tokens[0] = [1, 2, 3]
    cache.touch(0)
    assert cache.plan([1, 2, 3, 4], 3) == Plan(0, 3, None)  # extend the slot that holds the prefix
    plan = cache.plan([1, 2, 7], 2)  # diverges inside slot 0: a free slot gets a copy, cut at 2
    assert plan == Plan(1, 2, 0) or plan == Plan(2, 2, 0)
    busy = cache.plan([1, 2, 3, 4], 3, busy=frozenset({0}))  # slot 0 is another branch's
    assert busy is not None and busy.seq != 0 and busy.copy_from == 0 and busy.keep == 3


@pytest.mark.parametrize(
    ("text", "before", "mode", "want"),
    [
        ("step one\n", 0, "line", True),
        ("\n\nstep", 0, "line", False),  # leading blank lines do not end a step
        ("step one\n", 0, "blank", False),
        ("step one\n\n", 9, "blank", True),
        ("\n\n", 0, "blank", False),
        (b"bytes too\n", 0, "line", True),
        ("a\nb", 2, "line", False),  # the newest piece holds no line break
    ],
)
def test_ends_step(text: str | bytes, before: int, mode: str, want: bool) -> None:
    assert ends_step(text, before, mode) is want


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
    result = Search(model, model.prompt, config, live.apply).run()
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


def test_history_saves_lists_and_loads(isolated_home) -> None:
    assert history.recent(5) == []
    with pytest.raises(MarcoError, match="history is empty"):
        history.load(1)
    record = Record.from_json(
        {
            "model": {"name": "m"},
            "settings": {"strategy": "cot"},
            "question": "Q?",
            "answer": "4",
            "confidence": 0.5,
            "seconds": 1.0,
        }
    )
    first = history.save("solve", record)
    second = history.save("translate", replace(record, answer="vier"))
    assert [r.id for r in history.recent(5)] == [second, first]
    assert history.recent(1)[0].answer == "vier"
    assert history.load(first) == record
    with pytest.raises(MarcoError, match="no run 999"):
        history.load(999)


def test_closed_vocabularies_cover_what_the_code_produces() -> None:
    """Every engine stop reason maps to a rollout status of the vocabulary, and the reasons
    a search can stop for (including a baseline's `done` and a failing model's `error`) are
    all named in one Literal."""
    from typing import get_args

    from marco_cli.contract import StopReason
    from marco_cli.search.core import status_of
    from marco_cli.search.events import STOP_WHYS
    from marco_cli.search.tree import ROLLOUT_STATUSES

    assert {status_of(r) for r in get_args(StopReason)} == set(ROLLOUT_STATUSES)
    assert {"done", "error", "interrupted", "iterations", "agreement", "exhausted"} <= set(STOP_WHYS)
