"""The paper's baselines through the same model interface and result shape as the search:
`cot` (one greedy pass), `best-of-n` (the highest-reward finished answer of n samples, the
paper's Test@N), `vote` (self-consistency: the answer of the most finished samples) and
`deepconf` (DeepConf offline: the confidence-weighted vote of the most confident samples, see
deepconf.py). Each answers by its own rule from rules.py (`config.OWN_RULES`), or by `--select`."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from marco_cli.contract import Generation, Model, Request
from marco_cli.search.config import SearchConfig, SearchResult
from marco_cli.search.core import RunCost, end_run, guard, rollout_scored, score
from marco_cli.search.deepconf import online_threshold
from marco_cli.search.events import (
    BackedUp,
    BestChanged,
    IterationStarted,
    Listener,
    NodeAdded,
    StopWhy,
    TokensGenerated,
    ignore,
)
from marco_cli.search.rewards import Judge
from marco_cli.search.rules import Ballot, choose
from marco_cli.search.tree import Tree


class Samples:
    """n complete answers from the prompt, each a child of the root, generated `model.parallel`
    at a time: the tree and the token count grow as chunks finish, so Ctrl-C or a failing
    server keeps every sample already done."""

    def __init__(
        self,
        model: Model,
        prompt: Sequence[int],
        config: SearchConfig,
        listener: Listener,
        judge: Judge | None = None,
    ) -> None:
        self.model, self.config, self.listener, self.judge = model, config, listener, judge
        self.tree = Tree(tuple(prompt))
        self.generated = 0

    def run(self, n: int, greedy_all: bool = False) -> StopWhy:
        config, listener = self.config, self.listener
        rng = random.Random(config.seed)
        prompt = self.tree.root.tokens
        requests = [
            Request(
                prompt,
                config.sampling(
                    rng.randrange(1 << 31), greedy=greedy_all or (config.greedy_first and i == 0)
                ),
                config.rollout_stop(config.max_tokens),
            )
            for i in range(n)
        ]
        listener(IterationStarted(1, 1))
        width = max(1, self.model.parallel)
        warmup = min(n, config.deepconf_warmup) if config.strategy == "deepconf-online" else n
        for start, end in _chunks(n, width, warmup):
            if start == warmup:  # DeepConf online: later samples stop once their confidence drops
                requests[start:] = _with_threshold(requests[start:], self.tree, config)
            gens = self.model.generate_many(requests[start:end], lambda k: listener(TokensGenerated(k)))
            self.generated += sum(len(g.tokens) for g in gens)
            for gen in gens:
                _add_sample(self.tree, gen, config, listener, self.judge)
        return "done"


def _chunks(n: int, width: int, split: int) -> list[tuple[int, int]]:
    """[start, end) ranges of at most `width` requests, one of them starting at `split`."""
    return [
        (a, min(a + width, stop)) for lo, stop in ((0, split), (split, n)) for a in range(lo, stop, width)
    ]


def _with_threshold(requests: list[Request], tree: Tree, config: SearchConfig) -> list[Request]:
    threshold = online_threshold(tree.rollouts, config.deepconf_keep)
    if threshold is None:
        return requests
    return [
        replace(r, stop=replace(r.stop, min_confidence=threshold, confidence_window=config.deepconf_window))
        for r in requests
    ]


def _add_sample(
    tree: Tree, gen: Generation, config: SearchConfig, listener: Listener, judge: Judge | None
) -> None:
    node = tree.add(
        tree.root,
        gen.tokens,
        gen.text,
        gen.confidences,
        True,
        stop_reason=gen.stop_reason,
        offsets=gen.offsets,
        top_means=gen.top_means,
    )
    listener(NodeAdded(node.id, 0, 1, gen.text, len(gen.tokens), node.mean_confidence, False, True))
    rollout = tree.add_rollout(score(tree, node, None, config, judge))
    listener(rollout_scored(rollout))
    listener(BackedUp(tree.backup(node, rollout.reward), rollout.reward))


def run_baseline(
    model: Model,
    prompt: Sequence[int],
    config: SearchConfig,
    listener: Listener = ignore,
    clock: Callable[[], float] = time.monotonic,
    judge: Judge | None = None,
) -> SearchResult:
    start = clock()
    evaluated0 = model.evaluated
    samples = Samples(model, prompt, config, listener, judge)
    cot = config.strategy == "cot"
    stopped, error = guard(lambda: samples.run(1 if cot else config.samples, greedy_all=cot))
    tree = samples.tree
    ballot = Ballot.of(tree, config.deepconf_keep, config.deepconf_warmup)
    chosen = choose(ballot, config.rule)
    if chosen is not None:
        listener(BestChanged(chosen.id, chosen.reward, chosen.answer, (0, chosen.node)))
    cost = RunCost(
        1 if tree.rollouts else 0, samples.generated, model.evaluated - evaluated0, clock() - start
    )
    return end_run(config, tree, chosen, cost, stopped, error, listener)
