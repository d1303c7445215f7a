"""The paper's baselines through the same model interface and result shape as the search:
`cot` (one greedy pass), `best-of-n` (the highest mean confidence of n samples, the paper's
Test@N) and `vote` (self-consistency: the majority of the samples' extracted answers)."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Sequence

from marco_cli.errors import MarcoError
from marco_cli.search.answers import answer_key, extract_output
from marco_cli.search.config import Model, SearchConfig, SearchResult
from marco_cli.search.events import (
    BackedUp,
    BestChanged,
    Finished,
    IterationStarted,
    Listener,
    NodeAdded,
    RolloutScored,
    ignore,
)
from marco_cli.search.mcts import backup, result_from
from marco_cli.search.tree import Rollout, Tree


def sample_answers(
    model: Model,
    prompt: Sequence[int],
    config: SearchConfig,
    n: int,
    listener: Listener,
    greedy_all: bool = False,
) -> tuple[Tree, int]:
    """n complete answers from the prompt (generated together), each a child of the root."""
    rng = random.Random(config.seed)
    tree = Tree(tuple(prompt))
    requests = [
        (
            list(prompt),
            config.sampling(rng.randrange(1 << 31), greedy=greedy_all or (config.greedy_first and i == 0)),
            config.rollout_stop(config.max_tokens),
        )
        for i in range(n)
    ]
    listener(IterationStarted(1, 1))
    gens = model.generate_many(requests)
    best: Rollout | None = None
    for gen in gens:
        node = tree.add(tree.root, gen.tokens, gen.text, gen.confidences, terminal=True)
        listener(NodeAdded(node.id, 0, 1, gen.text, len(gen.tokens), node.mean_confidence, False, True))
        reward = node.mean_confidence or 0.0
        rollout = Rollout(
            len(tree.rollouts),
            node.id,
            (),
            gen.text,
            reward,
            extract_output(gen.text),
            gen.finished,
            len(gen.confidences),
        )
        tree.rollouts.append(rollout)
        listener(RolloutScored(rollout.id, node.id, reward, rollout.answer, len(gen.tokens), gen.finished))
        listener(BackedUp(backup(tree, node, reward), reward))
        if best is None or (rollout.finished, reward) > (best.finished, best.reward):
            best = rollout
            listener(BestChanged(rollout.id, reward, rollout.answer, (0, node.id)))
    return tree, sum(len(g.tokens) for g in gens)


def run_baseline(
    model: Model,
    prompt: Sequence[int],
    config: SearchConfig,
    listener: Listener = ignore,
    clock: Callable[[], float] = time.monotonic,
) -> SearchResult:
    start = clock()
    evaluated0 = getattr(model, "evaluated", 0)
    n = 1 if config.strategy == "cot" else config.samples
    stopped = "done"
    error: str | None = None
    try:
        tree, generated = sample_answers(
            model, prompt, config, n, listener, greedy_all=config.strategy == "cot"
        )
    except KeyboardInterrupt:
        tree, generated, stopped = Tree(tuple(prompt)), 0, "interrupted"
    except MarcoError as exc:
        tree, generated, stopped, error = Tree(tuple(prompt)), 0, "error", str(exc)
    rollouts = tree.rollouts
    votes: dict[str, int] = {}
    chosen: Rollout | None = None
    if rollouts and config.strategy == "vote":
        counts = Counter(answer_key(r.answer) for r in rollouts if r.answer)
        votes = dict(counts.most_common())
        if counts:
            weight = {k: sum(r.reward for r in rollouts if answer_key(r.answer) == k) for k in counts}
            winner = max(counts, key=lambda k: (counts[k], weight[k]))
            chosen = max((r for r in rollouts if answer_key(r.answer) == winner), key=lambda r: r.reward)
    if rollouts and chosen is None:
        chosen = max(rollouts, key=lambda r: (r.finished, r.reward, -r.id))
    listener(Finished(stopped, 1, chosen.id if chosen else None))
    return result_from(
        config.strategy,
        tree,
        chosen,
        1 if rollouts else 0,
        generated,
        getattr(model, "evaluated", 0) - evaluated0,
        clock() - start,
        stopped,
        votes,
        error,
    )


def run_search(
    model: Model,
    prompt: Sequence[int],
    config: SearchConfig,
    listener: Listener = ignore,
    clock: Callable[[], float] = time.monotonic,
) -> SearchResult:
    """Run the configured strategy."""
    if config.strategy == "mcts":
        from marco_cli.search.mcts import Search

        return Search(model, prompt, config, listener, clock).run()
    return run_baseline(model, prompt, config, listener, clock)
