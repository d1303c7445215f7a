"""The strategies by name, and `run_search`: the one entry point that runs the configured one.

A table, not an if-chain: each strategy is a function of the same shape (model, prompt, config,
listener, clock, judge) -> SearchResult. This module sits above mcts.py and baselines.py, which
share only core.py below them, so the search package has no import circle.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from marco_cli.contract import Model
from marco_cli.errors import clip
from marco_cli.search.baselines import run_baseline
from marco_cli.search.config import STRATEGIES, SearchConfig, SearchResult
from marco_cli.search.events import Listener, ignore
from marco_cli.search.mcts import run_mcts
from marco_cli.search.rewards import Judge, needs_judge

RunStrategy = Callable[
    [Model, Sequence[int], SearchConfig, Listener, Callable[[], float], Judge | None], SearchResult
]
RUNS: dict[str, RunStrategy] = {name: run_mcts if name == "mcts" else run_baseline for name in STRATEGIES}


def run_search(
    model: Model,
    prompt: Sequence[int],
    config: SearchConfig,
    listener: Listener = ignore,
    clock: Callable[[], float] = time.monotonic,
    judge: Judge | None = None,
) -> SearchResult:
    """Run the configured strategy: the MCTS, or one of the paper's baselines. A reward that
    asks a verifier (`judge`, `judge-steps`) needs `judge` (search/verifier.py builds one)."""
    if judge is None and needs_judge(config.reward):
        raise ValueError(f"reward '{clip(config.reward, 60)}' needs a verifier (a judge) to ask")
    return RUNS[config.strategy](model, prompt, config, listener, clock, judge)
