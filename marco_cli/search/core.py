"""What every strategy shares: scoring a rollout, tracking the chosen answer (by a rule from
rules.py), and the run's ending (`guard`, `end_run`). The strategies themselves are in mcts.py
and baselines.py, each declared as a spec (spec.py) in strategies.py's table.

A loop must never win a search. Mean top-5 confidence rewards repetition (a rollout repeating
one sentence to the token budget scores 0.97-0.99), so the default reward (`finished`) keeps the
paper's value only for finished rollouts that state an answer and gives every looping, cut-off or
answerless one 0; `paper` is the paper's mean confidence as is, for faithful reproduction. Either
way the answer is chosen among finished rollouts only: no finished rollout means no answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from marco_cli.contract import FINISHED_REASONS, Generation, StopReason
from marco_cli.errors import MarcoError
from marco_cli.search.answers import extract_output, extract_thought
from marco_cli.search.config import SearchConfig, SearchResult
from marco_cli.search.deepconf import DEFAULT_KEEP, lowest_group_confidence, token_confidences
from marco_cli.search.events import BestChanged, Finished, Listener, NodeAdded, RolloutScored, StopWhy
from marco_cli.search.rewards import Scored
from marco_cli.search.rules import Ballot, RuleName, answer_votes, choose
from marco_cli.search.scoring import Scoring
from marco_cli.search.tree import Node, Rollout, RolloutStatus, Tree


def status_of(stop_reason: StopReason | None) -> RolloutStatus:
    """A rollout's status from the stop reason of the generation that ended it (None: a node
    rebuilt from a saved record, which keeps no reason: the budget)."""
    if stop_reason in FINISHED_REASONS:
        return "finished"
    if stop_reason == "loop" or stop_reason == "context" or stop_reason == "low_confidence":
        return stop_reason
    return "budget"


def span_confidence(
    text: str, offsets: Sequence[int], confidences: Sequence[float], answer: str
) -> float | None:
    """Mean confidence of the tokens whose text overlaps the last occurrence of `answer` in
    `text` (`offsets`: where each token's text ends, in UTF-8 bytes); None when not there."""
    if not answer or not offsets or len(offsets) != len(confidences):
        return None
    raw, needle = text.encode("utf-8"), answer.encode("utf-8")
    at = raw.rfind(needle)
    if at < 0:
        return None
    starts = (0, *offsets[:-1])
    picked = [
        c for a, b, c in zip(starts, offsets, confidences, strict=True) if b > at and a < at + len(needle)
    ]
    return sum(picked) / len(picked) if picked else None


def answer_confidence(tree: Tree, node: Node, gen: Generation | None, answer: str) -> float | None:
    """CoT-decoding's signal (Wang & Zhou 2024): how sure the model was of the tokens that
    wrote the answer, not of the whole text. Looked for in the rollout's own tail, then in the
    path's actions, last first."""
    if gen is not None:
        found = span_confidence(gen.text, gen.offsets, gen.confidences, answer)
        if found is not None:
            return found
    for step in reversed(tree.path(node)[1:]):
        found = span_confidence(step.text, step.offsets, step.confidences, answer)
        if found is not None:
            return found
    return None


def score(tree: Tree, node: Node, gen: Generation | None, config: SearchConfig, scoring: Scoring) -> Rollout:
    """The scored rollout that continued `node` with `gen` (None: the node itself ends the
    answer), numbered as the tree's next one; `tree.add_rollout` keeps it. Its DeepConf trace
    confidence spans the whole text, path and tail: a branch's shared steps count in each of
    its rollouts (None where the engine gives no top-5 log-probabilities). Under a `judge` gate
    the verifier is asked about a rollout with an answer (one without has nothing to judge)."""
    tail = gen.confidences if gen else ()
    head = tree.path_confidences(node) if scoring.whole_path else list(node.confidences)
    scored = [*head, *tail]
    confidence = sum(scored) / len(scored) if scored else 0.0
    text = tree.response_text(node) + (gen.text if gen else "")
    status = status_of(gen.stop_reason if gen else node.stop_reason)
    answer = extract_output(text, config.numeric_answer) if status == "finished" else ""
    answer_conf = answer_confidence(tree, node, gen, answer) if answer else None
    top_means = [*tree.path_top_means(node), *(gen.top_means if gen else ())]
    judge = scoring.judge if scoring.judges_answers else None
    judged = judge("answer", "", text) if judge is not None and answer else None
    return Rollout(
        id=tree.next_rollout_id,
        node=node.id,
        tokens=gen.tokens if gen else (),
        text=text,
        reward=scoring.reward(Scored(confidence, status == "finished", answer, answer_conf, text, judged)),
        answer=answer,
        status=status,
        n_scored=len(scored),
        confidence=confidence,
        trace_confidence=lowest_group_confidence(token_confidences(top_means), config.deepconf_window),
        answer_confidence=answer_conf,
        judged=judged,
    )


def node_added(node: Node) -> NodeAdded:
    """What the listener is told of a node just added to the tree."""
    parent = node.parent if node.parent is not None else 0
    return NodeAdded(
        node.id, parent, node.depth, node.text, len(node.tokens), node.mean_confidence, node.reflection,
        node.terminal,
    )  # fmt: skip


def rollout_scored(rollout: Rollout) -> RolloutScored:
    return RolloutScored(
        rollout.id, rollout.node, rollout.reward, rollout.answer, len(rollout.tokens), rollout.finished
    )


class Chooser:
    """Tracks the chosen rollout as rollouts arrive, and says when it changes (the live view's
    marked path is always the one the answer would come from)."""

    def __init__(self, tree: Tree, rule: RuleName, listener: Listener, keep: float = DEFAULT_KEEP) -> None:
        self.tree, self.rule, self.keep, self.emit = tree, rule, keep, listener
        self.chosen: Rollout | None = None

    def update(self) -> Rollout | None:
        chosen = choose(Ballot.of(self.tree, self.keep), self.rule)
        if chosen is not None and chosen != self.chosen:
            path = tuple(n.id for n in self.tree.path(self.tree.nodes[chosen.node]))
            self.emit(BestChanged(chosen.id, chosen.reward, chosen.answer, path))
        self.chosen = chosen
        return chosen


@dataclass(frozen=True)
class RunCost:
    """What a finished run spent: iterations, tokens generated and evaluated, seconds."""

    iterations: int
    generated: int
    evaluated: int
    seconds: float


def guard(body: Callable[[], StopWhy]) -> tuple[StopWhy, str | None]:
    """Run a strategy's body (it returns why it stopped). Ctrl-C and a failing model end it
    too, keeping what it built: (why it stopped, the error's message)."""
    try:
        return body(), None
    except KeyboardInterrupt:
        return "interrupted", None
    except MarcoError as exc:  # the model failed (a server went away)
        return "error", str(exc)


def end_run(
    config: SearchConfig,
    tree: Tree,
    chosen: Rollout | None,
    cost: RunCost,
    stopped: StopWhy,
    error: str | None,
    listener: Listener,
) -> SearchResult:
    """Every strategy's ending: say `Finished`, and the result from the tree and the chosen rollout."""
    listener(Finished(stopped, cost.iterations, chosen.id if chosen else None))
    text = chosen.text if chosen else ""
    path = [n.id for n in tree.path(tree.nodes[chosen.node])] if chosen else [0]
    counts, _ = answer_votes(tree.rollouts)
    return SearchResult(
        strategy=config.strategy,
        answer=chosen.answer if chosen else "",
        thought=extract_thought(text),
        text=text,
        reward=chosen.reward if chosen else None,
        rollout=chosen.id if chosen else None,
        path=path,
        tree=tree,
        iterations=cost.iterations,
        generated_tokens=cost.generated,
        evaluated_tokens=cost.evaluated,
        seconds=cost.seconds,
        stopped=stopped,
        votes=dict(counts.most_common()),
        error=error,
    )
