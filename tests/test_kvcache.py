"""The KV slot planner (engine/kvcache.py), pure: truncation with one slot; extension, whole
copies and busy slots with several."""

from __future__ import annotations

from marco_cli.engine.kvcache import Plan, SeqCache


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
