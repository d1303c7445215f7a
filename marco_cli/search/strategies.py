"""The strategies by name, and `run_search`: the one entry point that runs the configured one.

A table, not an if-chain: each strategy is a function of the same shape (model, prompt, config,
listener, clock) -> SearchResult. This module sits above mcts.py and baselines.py, which share
only core.py below them, so the search package has no import circle.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from marco_cli.contract import Model
from marco_cli.search.baselines import run_baseline
from marco_cli.search.config import STRATEGIES, SearchConfig, SearchResult
from marco_cli.search.events import Listener, ignore
from marco_cli.search.mcts import run_mcts

RunStrategy = Callable[[Model, Sequence[int], SearchConfig, Listener, Callable[[], float]], SearchResult]
RUNS: dict[str, RunStrategy] = {name: run_mcts if name == "mcts" else run_baseline for name in STRATEGIES}


def run_search(
    model: Model,
    prompt: Sequence[int],
    config: SearchConfig,
    listener: Listener = ignore,
    clock: Callable[[], float] = time.monotonic,
) -> SearchResult:
    """Run the configured strategy: the MCTS, or one of the paper's baselines."""
    return RUNS[config.strategy](model, prompt, config, listener, clock)
