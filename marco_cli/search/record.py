"""The JSON record of a run: question, model, settings, every node and rollout, the answer.

The schema is documented in the README ("JSON output"); `SCHEMA_VERSION` changes with it.
"""

from __future__ import annotations

from typing import Any

from marco_cli.search.config import SearchConfig, SearchResult
from marco_cli.search.core import rollout_counts
from marco_cli.search.tree import Node, Rollout, Tree

SCHEMA_VERSION = 2  # 2: rollouts carry status and confidence; rollout_stats


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def tree_to_dict(tree: Tree) -> dict[str, Any]:
    nodes = [
        {
            "id": n.id,
            "parent": n.parent,
            "depth": n.depth,
            "text": n.text,
            "tokens": len(n.tokens) if n.parent is not None else 0,
            "confidence": _round(n.mean_confidence),
            "visits": n.visits,
            "value": _round(n.mean_value),
            "reflection": n.reflection,
            "terminal": n.terminal,
        }
        for n in tree.nodes
    ]
    rollouts = [
        {
            "id": r.id,
            "node": r.node,
            "tokens": len(r.tokens),
            "reward": _round(r.reward),
            "confidence": _round(r.confidence),
            "answer": r.answer,
            "finished": r.finished,
            "status": r.status,
            "text": r.text,
            # sampled answers only (best-of-n, vote, deepconf): DeepConf's lowest group confidence
            **({} if r.trace_confidence is None else {"trace_confidence": _round(r.trace_confidence)}),
            # the answer tokens' mean confidence (the `answer` reward; absent in older records)
            **({} if r.answer_confidence is None else {"answer_confidence": _round(r.answer_confidence)}),
        }
        for r in tree.rollouts
    ]
    return {"nodes": nodes, "rollouts": rollouts}


def result_to_dict(
    result: SearchResult,
    question: str,
    model: dict[str, Any],
    config: SearchConfig,
    messages: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """`messages` is the conversation the model answered (system and user turns): training
    data exported from the record starts from it."""
    tree = tree_to_dict(result.tree)
    return {
        "schema": SCHEMA_VERSION,
        "question": question,
        "messages": messages or [{"role": "user", "content": question}],
        "model": model,
        "settings": config.as_dict(),
        "answer": result.answer,
        "thought": result.thought,
        "response": result.text,
        "confidence": _round(result.reward),
        "chosen_rollout": result.rollout,
        "path": result.path,
        "votes": result.votes,
        "nodes": tree["nodes"],
        "rollouts": tree["rollouts"],
        "rollout_stats": rollout_counts(result.tree.rollouts),
        "stopped": result.stopped,
        "error": result.error,
        "iterations": result.iterations,
        "tokens": {"generated": result.generated_tokens, "evaluated": result.evaluated_tokens},
        "seconds": round(result.seconds, 3),
    }


def tree_from_dict(record: dict[str, Any]) -> Tree:
    """A saved record's tree again, enough to answer it by any rule (`core.choose`): nodes with
    their parents, visits and values, and every rollout. Token ids and per-token confidences are
    not saved, so nodes carry the tokens' count and mean confidence only."""
    nodes = record["nodes"]
    tree = Tree(())
    tree.nodes = []
    for raw in nodes:
        mean = raw.get("confidence")
        node = Node(
            raw["id"],
            raw["parent"],
            raw["depth"],
            tuple(range(raw.get("tokens", 0))),
            raw["text"],
            () if mean is None else (mean,) * max(1, raw.get("tokens", 0)),
            terminal=raw.get("terminal", False),
            reflection=raw.get("reflection", False),
            visits=raw.get("visits", 0),
            value_sum=(raw.get("value") or 0.0) * raw.get("visits", 0),
        )
        tree.nodes.append(node)
    for node in tree.nodes:
        if node.parent is not None:
            tree.nodes[node.parent].children.append(node.id)
    for raw in record["rollouts"]:
        status = raw.get("status") or ("finished" if raw.get("finished") else "budget")
        reward, confidence = raw.get("reward") or 0.0, raw.get("confidence")
        tree.rollouts.append(
            Rollout(
                raw["id"],
                raw["node"],
                tuple(range(raw.get("tokens", 0))),
                raw["text"],
                reward,
                raw.get("answer", ""),
                status,
                raw.get("tokens", 0),
                reward if confidence is None else confidence,
                raw.get("trace_confidence"),
                raw.get("answer_confidence"),
            )
        )
    return tree
