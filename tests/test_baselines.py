"""The sampling strategies (search/baselines.py): Ctrl-C late in sampling keeps the samples
already finished."""

from __future__ import annotations

import pytest

from marco_cli.search.config import SearchConfig
from marco_cli.search.strategies import run_search
from tests.scripted import ScriptedModel


class Interrupting(ScriptedModel):
    """Raises KeyboardInterrupt (Ctrl-C) on its `at`-th call."""

    at: int = 2

    def generate_many(self, requests, on_token=None):  # type: ignore[no-untyped-def]
        if len(self.calls) + 1 == self.at:
            self.calls.append(("", "interrupt", len(requests)))
            raise KeyboardInterrupt
        return super().generate_many(requests, on_token)


@pytest.mark.parametrize("strategy", ["best-of-n", "vote"])
def test_ctrl_c_late_in_sampling_keeps_the_finished_samples(strategy: str) -> None:
    model = Interrupting(actions={}, rollouts={}, default_rollout=("<Output>7</Output>", 0.9), parallel=2)
    model.at = 4  # three calls of two samples finished, the fourth is interrupted
    config = SearchConfig(strategy=strategy, samples=8)
    result = run_search(model, model.prompt, config)
    assert result.stopped == "interrupted" and len(result.rollouts) == 6
    assert result.answer == "7" and result.generated_tokens == 6 * len("<Output>7</Output>")
