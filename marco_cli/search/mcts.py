"""Marco-o1's Monte Carlo Tree Search, as a pure core over the `Model` interface.

Each iteration selects a leaf by UCT (unvisited children first, ties broken by the seeded RNG).
An unvisited leaf is rolled out; a visited one is expanded with k children (actions of the
chosen granularity, generated together) and one new child (or all, `rollouts="all"`) is rolled
out to a complete answer. The reward is the mean top-5 confidence of the rollout's tokens
(arXiv 2411.14405, v = (1/n) sum c_i; by default 0 for a rollout that loops or is cut off, see
core.py), backed up to the root. Every rollout is kept: the final answer is chosen among the
finished ones.
"""

from __future__ import annotations

import math
import random

from marco_cli.contract import REFLECTION_PHRASE, Generation, Request, Sampling
from marco_cli.search.config import SearchConfig, SearchResult
from marco_cli.search.core import Chooser, RunCost, end_run, guard, node_added, rollout_scored, score
from marco_cli.search.events import (
    BackedUp,
    IterationStarted,
    StepJudged,
    StopWhy,
    TokensGenerated,
)
from marco_cli.search.rules import agreeing
from marco_cli.search.settings import DeepConfSettings, MctsSettings, StepSettings
from marco_cli.search.spec import RunContext, StrategySpec
from marco_cli.search.tree import Node, Rollout, Tree
from marco_cli.search.values import Step

THOUGHT_END = "</Thought>"


def uct(child: Node, parent_visits: int, exploration: float) -> float:
    """Q/n + c * sqrt(ln N / n); unvisited children come first."""
    if child.visits == 0:
        return math.inf
    return child.mean_value + exploration * math.sqrt(math.log(max(parent_visits, 1)) / child.visits)


def select_leaf(tree: Tree, exploration: float, rng: random.Random) -> Node | None:
    """Descend from the root by UCT to a node without children; None when all is exhausted."""
    node = tree.root
    if node.exhausted:
        return None
    while node.children:
        options = [tree.nodes[c] for c in node.children if not tree.nodes[c].exhausted]
        if not options:
            return None
        scores = [uct(c, node.visits, exploration) for c in options]
        top = max(scores)
        node = rng.choice([c for c, s in zip(options, scores, strict=True) if s == top])
    return node


def refresh_exhausted(tree: Tree, node: Node) -> None:
    for n in reversed(tree.path(node)):
        n.exhausted = n.terminal or (bool(n.children) and all(tree.nodes[c].exhausted for c in n.children))


class Search:
    """One search over one prompt. `run()` returns the result, also after Ctrl-C."""

    def __init__(self, ctx: RunContext, config: SearchConfig) -> None:
        self.model, self.cfg, self.emit, self.clock = ctx.model, config, ctx.listener, ctx.clock
        self.scoring = ctx.scoring
        self.tree = Tree(tuple(ctx.prompt))
        self.rng = random.Random(config.seed)
        self.chooser = Chooser(self.tree, ctx.scoring.rule, ctx.listener, config.deepconf_keep)
        self.step_value, self.question = ctx.scoring.step, ctx.question  # values each step as generated
        self.generated = 0
        self.iterations = 0
        self._start = 0.0
        self.error: str | None = None

    # building blocks ---------------------------------------------------------------------------
    def _progress(self, n: int) -> None:
        self.emit(TokensGenerated(n))

    def _seed(self) -> int:
        return self.rng.randrange(1 << 31)

    def _width(self, node: Node) -> int:
        """Children per expansion: `root_children` at the root (first steps are what makes
        branches independent), `children` below."""
        if node.parent is None and self.cfg.first_tokens:
            return self.cfg.first_tokens
        if node.parent is None and self.cfg.root_children is not None:
            return self.cfg.root_children
        return self.cfg.children

    def _child_sampling(self, leaf: Node, index: int) -> Sampling:
        """The root's children under --first-tokens start with the index-th likeliest token;
        elsewhere the first child is greedy (with greedy_first) and the rest sampled."""
        if leaf.parent is None and self.cfg.first_tokens:
            return self.cfg.sampling(self._seed(), first_rank=index)
        return self.cfg.sampling(self._seed(), greedy=self.cfg.greedy_first and index == 0)

    def _budget(self, node: Node) -> int:
        return self.cfg.max_tokens - self.tree.generated_tokens(node)

    def _generate(self, requests: list[Request]) -> list[Generation]:
        gens = self.model.generate_many(requests, on_token=self._progress)
        self.generated += sum(len(g.tokens) for g in gens)
        return gens

    def _added(self, node: Node) -> Node:
        self.emit(node_added(node))
        return node

    def _force(self, parent: Node, text: str) -> Node:
        """A reflection node: text the model did not choose, so it has no confidences."""
        return self._added(
            self.tree.add(parent, tuple(self.model.tokenize(text)), text, (), False, reflection=True)
        )

    def expand(self, leaf: Node, last: int | None = None) -> tuple[list[Node], Node | None]:
        """Add up to k children of `leaf` (identical siblings are kept once) and reflections;
        also return the child of request `last` (None when it duplicated a sibling).

        Request `last` is generated after the others, so that a single-sequence KV cache still
        holds it when its rollout follows; the children keep their request order.
        """
        budget = self._budget(leaf)
        prefix = tuple(self.tree.path_tokens(leaf))
        requests = [
            Request(prefix, self._child_sampling(leaf, i), self.cfg.action_stop(budget))
            for i in range(self._width(leaf))
        ]
        order = [i for i in range(len(requests)) if i != last] + ([last] if last is not None else [])
        generated = self._generate([requests[i] for i in order])
        gens = [generated[order.index(i)] for i in range(len(requests))]
        new: list[Node] = []
        picked: Node | None = None
        seen = {self.tree.nodes[c].tokens for c in leaf.children}
        for index, gen in enumerate(gens):
            if not gen.tokens or gen.tokens in seen:
                continue
            seen.add(gen.tokens)
            reason = gen.stop_reason if gen.ends_path or len(gen.tokens) < budget else "max_tokens"
            terminal = gen.ends_path or len(gen.tokens) >= budget
            child = self._added(self.tree.grow(leaf, gen, terminal, stop_reason=reason))
            if index == last:
                picked = child
            new.append(child)
            new.extend(self._reflections(leaf, child))
        refresh_exhausted(self.tree, leaf)
        return new, picked

    def _reflections(self, leaf: Node, child: Node) -> list[Node]:
        if self.tree.reflections_on_path(child):
            return []
        added = []
        before = self.tree.response_text(leaf)
        if self.cfg.reflection and THOUGHT_END in child.text and THOUGHT_END not in before:
            head = child.text[: child.text.index(THOUGHT_END)].rstrip()
            added.append(self._force(leaf, f"{head}\n{REFLECTION_PHRASE}\n".lstrip("\n")))
        conf = child.mean_confidence
        if (
            self.cfg.dynamic_reflection
            and not child.terminal
            and conf is not None
            and conf < self.cfg.reflection_threshold
        ):
            sep = "" if child.text.endswith(("\n", " ")) else "\n"
            added.append(self._force(child, f"{sep}{REFLECTION_PHRASE}\n"))
        return added

    def simulate(self, starts: list[Node]) -> list[Rollout]:
        """Roll each start node out to a complete answer (together), score and keep them."""
        live = [n for n in starts if not n.terminal and self._budget(n) > 0]
        requests = [
            Request(
                tuple(self.tree.path_tokens(n)),
                self.cfg.rollout_sampling(self._seed()),
                self.cfg.rollout_stop(self._budget(n)),
            )
            for n in live
        ]
        gens = dict(zip((n.id for n in live), self._generate(requests), strict=True)) if live else {}
        return [self._score(n, gens.get(n.id)) for n in starts]

    def _score(self, node: Node, gen: Generation | None) -> Rollout:
        rollout = self.tree.add_rollout(score(self.tree, node, gen, self.cfg, self.scoring))
        self.emit(rollout_scored(rollout))
        return rollout

    def _backup(self, rollout: Rollout) -> None:
        nodes = self.tree.backup(self.tree.nodes[rollout.node], rollout.reward)
        self.emit(BackedUp(nodes, rollout.reward))

    def _refute(self, nodes: list[Node]) -> list[Node]:
        """Value each new step by the reward's step gates (values.py); a refuted one keeps its
        reasons and gets value 0 as its first visit, in place of a rollout. The steps left are
        returned."""
        if self.step_value is None:
            return nodes
        kept = []
        befores: dict[int, str] = {}  # siblings share the response before them: built once
        for node in nodes:
            if not node.reflection and node.parent is not None:
                if node.parent not in befores:
                    befores[node.parent] = self.tree.response_text(self.tree.nodes[node.parent])
                step = Step(node.text, node.confidences)
                valued = self.step_value(self.question, befores[node.parent], step)
                node.refuted, node.judged = valued.refuted, valued.judged
                if node.refuted or node.judged is not None:
                    self.emit(StepJudged(node.id, node.refuted, node.judged))
            if node.refuted:
                self.emit(BackedUp(self.tree.backup(node, 0.0), 0.0))
            else:
                kept.append(node)
        return kept

    # the loop -----------------------------------------------------------------------------------
    def iterate(self) -> bool:
        """One selection-expansion-simulation-backup round; False when nothing is left."""
        leaf = select_leaf(self.tree, self.cfg.exploration, self.rng)
        if leaf is None:
            return False
        if leaf.terminal:
            done = [r for r in self.tree.rollouts if r.node == leaf.id]
            rollouts = [max(done, key=lambda r: r.reward)] if done else self.simulate([leaf])
        elif leaf.visits == 0 and leaf.parent is not None:
            rollouts = self.simulate([leaf])
        else:
            pick = self.rng.randrange(self._width(leaf)) if self.cfg.rollouts == "one" else None
            new, picked = self.expand(leaf, last=pick)
            if not new:
                leaf.terminal = leaf.exhausted = True
                refresh_exhausted(self.tree, leaf)
                return True
            fresh = self._refute([n for n in new if not n.reflection] or new)
            if self.cfg.rollouts == "all" or not fresh:
                starts = fresh
            elif picked is not None and any(n is picked for n in fresh):
                starts = [picked]  # the randomly picked child, still in the KV cache
            else:
                starts = [self.rng.choice(fresh)]  # the picked one duplicated or was refuted
            # a child that already ends the answer costs no rollout: score it now, or selection
            # (which skips complete nodes) never would, and an answer paid for would be lost
            starts += [n for n in fresh if n.terminal and n not in starts]
            rollouts = self.simulate(starts)
        for rollout in rollouts:
            self._backup(rollout)
        self.chooser.update()
        refresh_exhausted(self.tree, self.tree.nodes[rollouts[0].node] if rollouts else leaf)
        return True

    def _stop_reason(self) -> StopWhy | None:
        cfg = self.cfg
        if self.iterations >= cfg.iterations:
            return "iterations"
        if cfg.max_time is not None and self.clock() - self._start >= cfg.max_time:
            return "time"
        finished = [r for r in self.tree.rollouts if r.finished and r.answer]
        if cfg.stop_confidence is not None and any(r.reward >= cfg.stop_confidence for r in finished):
            return "confidence"
        if cfg.stop_agree and agreeing(self.tree, self.scoring.rule) >= cfg.stop_agree:
            return "agreement"
        return None

    def _loop(self) -> StopWhy:
        while True:
            self.emit(IterationStarted(self.iterations + 1, self.cfg.iterations))
            if not self.iterate():
                return "exhausted"
            self.iterations += 1
            stopped = self._stop_reason()
            if stopped is not None:
                return stopped

    def run(self) -> SearchResult:
        self._start = self.clock()
        evaluated0 = self.model.evaluated
        stopped, self.error = guard(self._loop)
        cost = RunCost(
            self.iterations, self.generated, self.model.evaluated - evaluated0, self.clock() - self._start
        )
        return end_run(self.cfg, self.tree, self.chooser.update(), cost, stopped, self.error, self.emit)


def run_mcts(ctx: RunContext, config: SearchConfig) -> SearchResult:
    return Search(ctx, config).run()


MCTS = StrategySpec(
    "mcts",
    run_mcts,
    "Marco-o1's Monte Carlo Tree Search over steps or mini-steps",
    own_rule="deepconf",  # DeepConf-high's vote over the rollouts ("A loop cannot win")
    settings=(StepSettings, MctsSettings, DeepConfSettings),
    budget="iterations",
    granular=True,
)
