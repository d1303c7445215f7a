"""The parts of a saved tree: a node and a rollout as the run record keeps them, their JSON
form (written and read back, also as earlier schemas wrote it), and the search data a saved
tree is rebuilt from for re-scoring. `record` assembles them into the whole run record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, cast

from marco_cli.search.rewards import Scored
from marco_cli.search.tree import ROLLOUT_STATUSES, Node, Rollout, RolloutStatus

# a record in its JSON form: Any is the JSON-in boundary, every field is checked as it is read
JsonObject = dict[str, Any]


class RecordError(ValueError):
    """A JSON object that is not a run record (a damaged history row or bench line)."""


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def optional_float(value: object) -> float | None:
    return None if value is None else float(cast(float, value))


@dataclass(frozen=True)
class NodeRecord:
    """A tree node as saved: its action's text and token count, mean confidence, visits and
    mean value (token ids and per-token confidences are not saved)."""

    id: int
    parent: int | None
    depth: int
    text: str
    tokens: int
    confidence: float | None
    visits: int
    value: float | None
    reflection: bool
    terminal: bool
    refuted: tuple[str, ...] = ()  # why a step check refuted the step (`--reward check`, `judge-steps`)
    judged: float | None = None  # the verifier's P(Yes) for the step (`judge-steps`)
    pruned: bool = False  # a step search valued it below the paths it kept (beam, dvts)


@dataclass(frozen=True)
class RolloutRecord:
    """A rollout as saved: where it started, its whole text, reward and answer."""

    id: int
    node: int
    tokens: int
    reward: float | None
    confidence: float | None  # the paper's value (mean top-5 confidence), whatever the reward
    answer: str
    status: RolloutStatus
    text: str
    trace_confidence: float | None = None  # DeepConf's lowest group confidence of the whole text
    answer_confidence: float | None = None  # the answer tokens' mean confidence
    judged: float | None = None  # the verifier's P(Yes) for the answer (`--reward judge`)

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    def scored(self) -> Scored:
        """What a reward sees of this saved rollout (re-scoring, value signals)."""
        return Scored(
            self.confidence or 0.0, self.finished, self.answer, self.answer_confidence, self.text, self.judged
        )


# JSON <-> typed, field by field ----------------------------------------------------------------


def node_record(n: Node) -> NodeRecord:
    return NodeRecord(
        n.id,
        n.parent,
        n.depth,
        n.text,
        len(n.tokens) if n.parent is not None else 0,
        rounded(n.mean_confidence),
        n.visits,
        rounded(n.mean_value),
        n.reflection,
        n.terminal,
        n.refuted,
        rounded(n.judged),
        n.pruned,
    )


def rollout_record(r: Rollout) -> RolloutRecord:
    return RolloutRecord(
        r.id,
        r.node,
        len(r.tokens),
        rounded(r.reward),
        rounded(r.confidence),
        r.answer,
        r.status,
        r.text,
        rounded(r.trace_confidence),
        rounded(r.answer_confidence),
        rounded(r.judged),
    )


def rollout_json(r: RolloutRecord) -> JsonObject:
    out: JsonObject = {
        "id": r.id,
        "node": r.node,
        "tokens": r.tokens,
        "reward": r.reward,
        "confidence": r.confidence,
        "answer": r.answer,
        "finished": r.finished,
        "status": r.status,
        "text": r.text,
    }
    # optional: only where the engine gave top-5 log-probabilities (not every HTTP backend) and,
    # for the answer's, where the rollout has an answer
    if r.trace_confidence is not None:
        out["trace_confidence"] = r.trace_confidence
    if r.answer_confidence is not None:
        out["answer_confidence"] = r.answer_confidence
    if r.judged is not None:  # only under a reward that asks the verifier
        out["judged"] = r.judged
    return out


def node_json(n: NodeRecord) -> JsonObject:
    out: JsonObject = {**asdict(n), "refuted": list(n.refuted)}  # JSON lists
    if n.judged is None:  # only under `judge-steps`
        del out["judged"]
    if not n.pruned:  # only in a step search's tree
        del out["pruned"]
    return out


def _status(raw: Mapping[str, Any]) -> RolloutStatus:
    status = raw.get("status") or ("finished" if raw.get("finished") else "budget")  # schema 1
    if status not in ROLLOUT_STATUSES:
        raise RecordError(f"unknown rollout status {status!r}")
    return cast(RolloutStatus, status)


def parse_rollout(raw: Mapping[str, Any]) -> RolloutRecord:
    return RolloutRecord(
        id=int(raw["id"]),
        node=int(raw["node"]),
        tokens=int(raw.get("tokens", 0)),
        reward=optional_float(raw.get("reward")),
        confidence=optional_float(raw.get("confidence")),
        answer=str(raw.get("answer") or ""),
        status=_status(raw),
        text=str(raw.get("text", "")),
        trace_confidence=optional_float(raw.get("trace_confidence")),
        answer_confidence=optional_float(raw.get("answer_confidence")),
        judged=optional_float(raw.get("judged")),
    )


def parse_node(raw: Mapping[str, Any]) -> NodeRecord:
    parent = raw.get("parent")
    return NodeRecord(
        id=int(raw["id"]),
        parent=None if parent is None else int(parent),
        depth=int(raw.get("depth", 0)),
        text=str(raw.get("text", "")),
        tokens=int(raw.get("tokens", 0)),
        confidence=optional_float(raw.get("confidence")),
        visits=int(raw.get("visits", 0)),
        value=optional_float(raw.get("value")),
        reflection=bool(raw.get("reflection", False)),
        terminal=bool(raw.get("terminal", False)),
        refuted=tuple(str(r) for r in raw.get("refuted") or ()),
        judged=optional_float(raw.get("judged")),
        pruned=bool(raw.get("pruned", False)),
    )


# the saved tree as search data (re-scoring) ----------------------------------------------------


def saved_node(raw: NodeRecord) -> Node:
    count = raw.tokens
    return Node(
        raw.id,
        raw.parent,
        raw.depth,
        tuple(range(count)),
        raw.text,
        () if raw.confidence is None else (raw.confidence,) * max(1, count),
        terminal=raw.terminal,
        reflection=raw.reflection,
        refuted=raw.refuted,
        judged=raw.judged,
        pruned=raw.pruned,
        visits=raw.visits,
        value_sum=(raw.value or 0.0) * raw.visits,
    )


def saved_rollout(raw: RolloutRecord) -> Rollout:
    reward = raw.reward or 0.0
    return Rollout(
        raw.id,
        raw.node,
        tuple(range(raw.tokens)),
        raw.text,
        reward,
        raw.answer,
        raw.status,
        raw.tokens,
        reward if raw.confidence is None else raw.confidence,
        raw.trace_confidence,
        raw.answer_confidence,
        raw.judged,
    )
