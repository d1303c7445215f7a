"""The paper's baselines through the same model interface and result shape as the search:
`cot` (one greedy pass), `best-of-n` (the highest-reward finished answer of n samples, the
paper's Test@N), `vote` (self-consistency: the answer of the most finished samples) and
`deepconf` (DeepConf offline: the confidence-weighted vote of the most confident samples, see
deepconf.py), and `deepconf-online` (later samples stop once their confidence drops). Each
answers by the rule its spec names (or `--select`), handed in resolved with the run's scoring."""

from __future__ import annotations

import random
from dataclasses import replace

from marco_cli.contract import Generation, Request
from marco_cli.search.config import SearchConfig, SearchResult
from marco_cli.search.core import RunCost, end_run, guard, node_added, rollout_scored, score
from marco_cli.search.deepconf import online_threshold
from marco_cli.search.events import (
    BackedUp,
    BestChanged,
    IterationStarted,
    Listener,
    StopWhy,
    TokensGenerated,
)
from marco_cli.search.rewards import RewardGate
from marco_cli.search.rules import Ballot, RuleName, choose
from marco_cli.search.scoring import Scoring
from marco_cli.search.settings import DeepConfSettings, SamplingSettings
from marco_cli.search.spec import RunContext, RunFn, StrategySpec, sample_count
from marco_cli.search.tree import Tree


class Samples:
    """n complete answers from the prompt, each a child of the root, generated `model.parallel`
    at a time: the tree and the token count grow as chunks finish, so Ctrl-C or a failing
    server keeps every sample already done."""

    def __init__(self, ctx: RunContext, config: SearchConfig) -> None:
        self.model, self.config, self.listener, self.scoring = ctx.model, config, ctx.listener, ctx.scoring
        self.tree = Tree(tuple(ctx.prompt))
        self.generated = 0

    def run(self, n: int, greedy_all: bool = False, online: bool = False) -> StopWhy:
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
        warmup = min(n, config.deepconf_warmup) if online else n
        for start, end in _chunks(n, width, warmup):
            if start == warmup:  # DeepConf online: later samples stop once their confidence drops
                requests[start:] = _with_threshold(requests[start:], self.tree, config)
            gens = self.model.generate_many(requests[start:end], lambda k: listener(TokensGenerated(k)))
            self.generated += sum(len(g.tokens) for g in gens)
            for gen in gens:
                _add_sample(self.tree, gen, config, listener, self.scoring)
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
    tree: Tree, gen: Generation, config: SearchConfig, listener: Listener, scoring: Scoring
) -> None:
    node = tree.grow(tree.root, gen, True)
    listener(node_added(node))
    rollout = tree.add_rollout(score(tree, node, None, config, scoring))
    listener(rollout_scored(rollout))
    listener(BackedUp(tree.backup(node, rollout.reward), rollout.reward))


def _sample(ctx: RunContext, config: SearchConfig, n: int, greedy_all: bool, online: bool) -> SearchResult:
    """n samples from the prompt, answered by the run's rule."""
    start = ctx.clock()
    evaluated0 = ctx.model.evaluated
    samples = Samples(ctx, config)
    stopped, error = guard(lambda: samples.run(n, greedy_all, online))
    tree = samples.tree
    ballot = Ballot.of(tree, config.deepconf_keep, config.deepconf_warmup)
    chosen = choose(ballot, ctx.scoring.rule)
    if chosen is not None:
        ctx.listener(BestChanged(chosen.id, chosen.reward, chosen.answer, (0, chosen.node)))
    cost = RunCost(
        1 if tree.rollouts else 0, samples.generated, ctx.model.evaluated - evaluated0, ctx.clock() - start
    )
    return end_run(config, tree, chosen, cost, stopped, error, ctx.listener)


def run_cot(ctx: RunContext, config: SearchConfig) -> SearchResult:
    """One greedy pass."""
    return _sample(ctx, config, 1, greedy_all=True, online=False)


def run_samples(ctx: RunContext, config: SearchConfig) -> SearchResult:
    """`samples` complete answers (the first greedy with greedy_first)."""
    return _sample(ctx, config, config.samples, greedy_all=False, online=False)


def run_online(ctx: RunContext, config: SearchConfig) -> SearchResult:
    """DeepConf online: the warm-up samples set a confidence threshold the later ones stop at."""
    return _sample(ctx, config, config.samples, greedy_all=False, online=True)


# a `check` gate on the samples answers by `checked` (measured: docs/results.md, "Answer rules
# under a gate"); a `judge` gate by `reward-vote`, the votes weighed by the gated reward (by
# design: the verifier cannot be measured on the 135M model). `judge` first: reward-vote reads both.
_GATED: dict[RewardGate, RuleName] = {"judge": "reward-vote", "check": "checked"}
_SAMPLING = (SamplingSettings, DeepConfSettings)

COT = StrategySpec("cot", run_cot, "one greedy chain of thought", own_rule="reward")


def _sampled(name: str, run: RunFn, help: str, own_rule: RuleName, gated: bool = False) -> StrategySpec:
    """A strategy that draws whole samples: it spends `--samples`, sends them together, and
    (`gated`) answers a gated reward by a rule that reads the gate."""
    gated_rules = _GATED if gated else {}
    return StrategySpec(
        name,
        run,
        help,
        own_rule,
        settings=_SAMPLING,
        budget="samples",
        branches=sample_count,
        gated_rules=gated_rules,
    )


BEST_OF_N = _sampled(
    "best-of-n", run_samples, "the highest-reward of n samples (the paper's Test@N)", "reward"
)
VOTE = _sampled(
    "vote", run_samples, "self-consistency: the answer of the most finished samples", "majority", gated=True
)
DEEPCONF = _sampled(
    "deepconf",
    run_samples,
    "DeepConf offline: the confidence-weighted vote of the most confident samples",
    "deepconf",
    gated=True,
)
DEEPCONF_ONLINE = _sampled(
    "deepconf-online",
    run_online,
    "DeepConf online: samples stop early once their confidence falls below the warm-up's",
    "deepconf-online",
)
