"""Value-guided step search: beam search and diverse verifier tree search (DVTS), ranking partial
paths by a step value (values.py) instead of rolling each one out.

`beam`: `--beams N` partial paths survive each step; each is extended by `--beam-width M` next
steps generated together (the granularity decides what a step is); the N x M candidates are
valued and the best N kept (ties broken by the seed); a candidate that ends its answer leaves
the beam as a rollout for the answer rule. It stops when N paths have finished, when every path
is cut by the token budget, or at `--max-depth` steps (Snell et al. 2024, arXiv 2408.03314).

`dvts`: N/M independent subtrees, each a beam of one path extended by M next steps and keeping
its single best (Hugging Face's search-and-learn): the subtrees stay apart, for diversity at
larger budgets.

A path's value is its steps' values aggregated (`--aggregate`): the last step's, their minimum,
or their product. `--value gut` adds a novelty bonus to the confidence: 1 minus the step's
highest chrF similarity to the other candidates of its subtree, weighted values.GUT_WEIGHT, 0.25 ("Guided by
Gut", arXiv 2505.20325, uses the policy's confidence with a novelty bonus). A step the reward's
step gates refute (`+check`, `+judge-steps`) has value 0. Candidates that lose are kept in the
tree, marked pruned with their values: the record, `marco show`, the HTML page and `export` see
every one.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from marco_cli.contract import Generation, Request
from marco_cli.search.config import SearchConfig, SearchResult
from marco_cli.search.core import Chooser, RunCost, end_run, guard, node_added, rollout_scored, score
from marco_cli.search.events import (
    IterationStarted,
    StepJudged,
    StepValued,
    StopWhy,
    TokensGenerated,
)
from marco_cli.search.settings import BeamSettings, DeepConfSettings, StepSettings
from marco_cli.search.similarity import chrf
from marco_cli.search.spec import RunContext, RunFn, StrategySpec
from marco_cli.search.tree import Node, Tree
from marco_cli.search.values import Step


def path_value(aggregate: str, before: float | None, step: float) -> float:
    """A path's value from the value of the path before its last step (None: the root) and
    that step's: `last`, `min` or `prod`."""
    if before is None or aggregate == "last":
        return step
    return min(before, step) if aggregate == "min" else before * step


def novelty(text: str, others: list[str]) -> float:
    """1 minus the highest chrF similarity of `text` to `others` (1: unlike every one)."""
    return 1.0 - max((chrf(text, other) for other in others), default=0.0)


class StepSearch:
    """One beam search (one group keeping `keep` paths) or DVTS (`groups` of one path each)."""

    def __init__(self, ctx: RunContext, config: SearchConfig, groups: int, keep: int) -> None:
        self.ctx, self.cfg, self.emit = ctx, config, ctx.listener
        self.tree = Tree(tuple(ctx.prompt))
        self.rng = random.Random(config.seed)
        self.groups, self.keep = groups, keep
        self.chooser = Chooser(self.tree, ctx.scoring.rule, ctx.listener, config.deepconf_keep)
        self.generated = 0
        self.depth = 0

    def _generate(self, beams: list[list[Node]]) -> list[tuple[int, Node, Generation]]:
        """M next steps of every live path, generated together (the first greedy with
        --greedy-first): (group, parent, generation)."""
        cfg, width = self.cfg, self.cfg.beam_width
        asked = [(g, node, i) for g, live in enumerate(beams) for node in live for i in range(width)]
        requests = [
            Request(
                tuple(self.tree.path_tokens(node)),
                cfg.sampling(self.rng.randrange(1 << 31), greedy=cfg.greedy_first and k == 0),
                cfg.action_stop(cfg.max_tokens - self.tree.generated_tokens(node)),
            )
            for k, (_, node, _) in enumerate(asked)
        ]
        gens = self.ctx.model.generate_many(requests, lambda n: self.emit(TokensGenerated(n)))
        self.generated += sum(len(g.tokens) for g in gens)
        return [(g, node, gen) for (g, node, _), gen in zip(asked, gens, strict=True)]

    def _grow(self, made: list[tuple[int, Node, Generation]]) -> list[tuple[int, Node]]:
        """The new candidates as tree nodes (a step identical to a sibling is kept once)."""
        grown: list[tuple[int, Node]] = []
        seen: set[tuple[int, tuple[int, ...]]] = set()
        for group, parent, gen in made:
            if not gen.tokens or (parent.id, gen.tokens) in seen:
                continue
            seen.add((parent.id, gen.tokens))
            budget = self.cfg.max_tokens - self.tree.generated_tokens(parent)
            cut = not gen.ends_path and len(gen.tokens) >= budget
            node = self.tree.grow(parent, gen, gen.ends_path or cut, "max_tokens" if cut else None)
            self.emit(node_added(node))
            grown.append((group, node))
        return grown

    def _value(self, candidates: list[tuple[int, Node]]) -> None:
        """Each candidate's path value, kept as its one visit's value: its step's value (0 where
        a step gate refutes it) aggregated with its parent's (the root has none)."""
        scoring, befores, earlier = self.ctx.scoring, {}, {}
        for group, node in candidates:
            parent = self.tree.nodes[node.parent or 0]
            if parent.id not in befores:  # the steps on the path to the parent, the root's prompt not
                earlier[parent.id] = tuple(n.text for n in self.tree.path(parent)[1:])
                befores[parent.id] = "".join(earlier[parent.id])
            step = Step(node.text, node.confidences, earlier[parent.id])
            if scoring.step is not None:
                gate = scoring.step(self.ctx.question, befores[parent.id], step)
                node.refuted, node.judged = gate.refuted, gate.judged
                if gate.refuted or gate.judged is not None:
                    self.emit(StepJudged(node.id, gate.refuted, gate.judged))
            valued = 0.0 if node.refuted else scoring.value(self.ctx.question, befores[parent.id], step).value
            if scoring.novelty and not node.refuted:
                others = [n.text for g, n in candidates if g == group and n is not node]
                valued = (1 - scoring.novelty) * valued + scoring.novelty * novelty(node.text, others)
            before = parent.value_sum if parent.visits else None
            node.visits, node.value_sum = 1, path_value(self.cfg.aggregate, before, valued)

    def _finish(self, node: Node) -> None:
        rollout = self.tree.add_rollout(score(self.tree, node, None, self.cfg, self.ctx.scoring))
        self.emit(rollout_scored(rollout))

    def _keep(self, candidates: list[tuple[int, Node]]) -> list[list[Node]]:
        """Per group, the best live candidates by path value (ties by the seed); the ones that
        ended their answer leave as rollouts, the rest are pruned."""
        beams: list[list[Node]] = [[] for _ in range(self.groups)]
        order = {node.id: self.rng.random() for _, node in candidates}
        ranked = sorted(candidates, key=lambda c: (-c[1].value_sum, order[c[1].id]))
        for group, node in ranked:
            kept = node.terminal or len(beams[group]) < self.keep
            node.pruned = not kept
            self.emit(StepValued(node.id, node.value_sum, node.pruned))
            if node.terminal:
                self._finish(node)
            elif kept:
                beams[group].append(node)
        self.chooser.update()
        return beams

    def _loop(self) -> StopWhy:
        # the root stands for every path of its group: beam search samples N x M first steps
        beams: list[list[Node]] = [[self.tree.root] * self.keep for _ in range(self.groups)]
        wanted = self.keep * self.groups
        while any(beams):
            if self.depth >= self.cfg.max_depth:
                for live in beams:  # cut at the depth limit: rollouts without an answer
                    for node in live:
                        self._finish(node)
                return "iterations"
            self.depth += 1
            self.emit(IterationStarted(self.depth, self.cfg.max_depth))
            candidates = self._grow(self._generate(beams))
            self._value(candidates)
            beams = self._keep(candidates)
            if sum(r.finished for r in self.tree.rollouts) >= wanted:
                return "done"
        return "exhausted"

    def run(self) -> SearchResult:
        start, evaluated0 = self.ctx.clock(), self.ctx.model.evaluated
        stopped, error = guard(self._loop)
        cost = RunCost(
            self.depth, self.generated, self.ctx.model.evaluated - evaluated0, self.ctx.clock() - start
        )
        return end_run(self.cfg, self.tree, self.chooser.update(), cost, stopped, error, self.emit)


def run_beam(ctx: RunContext, config: SearchConfig) -> SearchResult:
    return StepSearch(ctx, config, groups=1, keep=config.beams).run()


def _subtrees(config: SearchConfig) -> int:
    """DVTS's independent subtrees: N/M (at least one)."""
    return max(1, config.beams // config.beam_width)


def run_dvts(ctx: RunContext, config: SearchConfig) -> SearchResult:
    return StepSearch(ctx, config, groups=_subtrees(config), keep=1).run()


def _step_search(name: str, run: RunFn, help: str, paths: Callable[[SearchConfig], int]) -> StrategySpec:
    """A step search: it reads the step and beam settings, spends `--beams`, runs at every
    granularity, and sends M next steps of each of its `paths` together."""
    return StrategySpec(
        name,
        run,
        help,
        own_rule="reward-vote",  # search-and-learn's weighted best-of-N: the answers' summed rewards
        settings=(StepSettings, BeamSettings, DeepConfSettings),
        budget="beams",
        granular=True,
        branches=lambda config: paths(config) * config.beam_width,
    )


BEAM = _step_search(
    "beam",
    run_beam,
    "step-level beam search: the best --beams partial paths by their step values",
    lambda config: config.beams,
)
DVTS = _step_search(
    "dvts",
    run_dvts,
    "diverse verifier tree search: --beams/--beam-width subtrees, each keeping its best path",
    _subtrees,
)
