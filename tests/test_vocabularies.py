"""Every closed vocabulary (a Literal) covers what the code produces."""

from __future__ import annotations


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
