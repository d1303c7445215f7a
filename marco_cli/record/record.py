"""The run record: one frozen, typed value from the search to every consumer (solve's output,
the history, bench folders, export, the terminal and HTML views, the server).

The JSON form is documented in docs/usage.md ("JSON output") and `SCHEMA_VERSION` changes with
it. `Record.to_json` writes it and `Record.from_json` reads it back, also records written by
earlier versions (schema 1: rollouts without `status`, no `rollout_stats`), so history rows
and bench folders made before a change still load, show, export and render. Nothing outside
this module and `saved` (its nodes and rollouts) reads a record by string keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from marco_cli.errors import clip
from marco_cli.record.saved import (
    JsonObject,
    NodeRecord,
    RecordError,
    RolloutRecord,
    node_json,
    node_record,
    optional_float,
    parse_node,
    parse_rollout,
    rollout_json,
    rollout_record,
    rounded,
    saved_node,
    saved_rollout,
)
from marco_cli.search import strategies
from marco_cli.search.config import SearchConfig, SearchResult
from marco_cli.search.events import STOP_WHYS, StopWhy
from marco_cli.search.rewards import parse_reward, reward_function
from marco_cli.search.rules import ALIASES, RuleName
from marco_cli.search.tree import ROLLOUT_STATUSES, Tree

# 2: rollouts carry status and confidence; rollout_stats; 3: select reward-vote; 4: `select` is
# the rule that answered, for every strategy
SCHEMA_VERSION = 4
EngineSettings = dict[str, int | bool]  # what the engine ran with (threads, n_ctx, parallel, ...)
_SEARCH_FIELDS = frozenset(f.name for f in fields(SearchConfig))


@dataclass(frozen=True)
class Message:
    """One chat turn of the conversation the model answered."""

    role: str
    content: str

    def to_json(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class ModelInfo:
    """Which model answered: its registry name (or the server's id), file, quantization, where
    it came from, and the prompt style it was rendered with."""

    name: str
    file: str | None = None
    quant: str | None = None
    origin: str = ""
    prompt_style: str = "plain"

    @property
    def label(self) -> str:
        """`name:QUANT`, as bench folders and `marco log` name the model."""
        return self.name + (f":{self.quant}" if self.quant else "")


@dataclass(frozen=True)
class TokenCounts:
    generated: int  # tokens the search sampled (every branch, kept or not)
    evaluated: int  # tokens the model evaluated (prompts and generated tokens, cache misses)
    verifier: int = 0  # tokens the verifier evaluated and generated (`--reward judge`), besides


@dataclass(frozen=True)
class Record:
    """One search over one prompt, as every consumer sees it."""

    question: str
    messages: tuple[Message, ...]
    model: ModelInfo
    search: SearchConfig  # the search's settings (JSON: `settings`, with `engine`'s merged in)
    answer: str
    thought: str
    response: str  # the chosen rollout's whole text
    reward: float | None  # the chosen rollout's reward (JSON: `confidence`)
    chosen_rollout: int | None
    path: tuple[int, ...]  # node ids, root to the chosen rollout's start
    votes: dict[str, int]  # finished rollouts per answer
    nodes: tuple[NodeRecord, ...]
    rollouts: tuple[RolloutRecord, ...]
    stopped: StopWhy
    error: str | None
    iterations: int
    tokens: TokenCounts
    seconds: float
    engine: EngineSettings = field(default_factory=dict)
    run_id: int | None = None  # its id in the history, once saved
    schema: int = SCHEMA_VERSION

    @property
    def rollout_stats(self) -> dict[str, int]:
        """Rollouts per status (finished, loop, budget, context, low_confidence)."""
        counts: dict[str, int] = dict.fromkeys(ROLLOUT_STATUSES, 0)
        for r in self.rollouts:
            counts[r.status] += 1
        return counts

    @property
    def chosen(self) -> RolloutRecord | None:
        return next((r for r in self.rollouts if r.id == self.chosen_rollout), None)

    @property
    def rule(self) -> RuleName:
        """The answer rule that chose the answer: `--select`, else the strategy's own."""
        return strategies.answer_rule(self.search)

    def with_engine(self, settings: EngineSettings) -> Record:
        return replace(self, engine={**self.engine, **settings})

    def with_run_id(self, run_id: int | None) -> Record:
        return replace(self, run_id=run_id)

    # building ------------------------------------------------------------------------------------
    @classmethod
    def of(
        cls,
        result: SearchResult,
        question: str,
        model: ModelInfo,
        config: SearchConfig,
        messages: Sequence[Message] = (),
        verifier_tokens: int = 0,
    ) -> Record:
        """The record of a finished search. `messages` is the conversation the model answered
        (system and user turns): training data exported from the record starts from it.
        `verifier_tokens`: what a verifier spent judging (search/verifier.py)."""
        return cls(
            question=question,
            messages=tuple(messages) or (Message("user", question),),
            model=model,
            search=config,
            answer=result.answer,
            thought=result.thought,
            response=result.text,
            reward=rounded(result.reward),
            chosen_rollout=result.rollout,
            path=tuple(result.path),
            votes=dict(result.votes),
            nodes=tuple(node_record(n) for n in result.tree.nodes),
            rollouts=tuple(rollout_record(r) for r in result.tree.rollouts),
            stopped=result.stopped,
            error=result.error,
            iterations=result.iterations,
            tokens=TokenCounts(result.generated_tokens, result.evaluated_tokens, verifier_tokens),
            seconds=round(result.seconds, 3),
        )

    def tree(self) -> Tree:
        """The saved tree again, enough to answer it by any rule (`rules.choose`): nodes with their
        parents, visits and values, and every rollout. Nodes carry their tokens' count and mean
        confidence only (stand-in token ids and a constant per-token confidence)."""
        tree = Tree(())
        tree.nodes = [saved_node(raw) for raw in self.nodes]
        for node in tree.nodes:
            if node.parent is not None:
                tree.nodes[node.parent].children.append(node.id)
        tree.rollouts = [saved_rollout(raw) for raw in self.rollouts]
        return tree

    def rescored(self, reward: str) -> Record:
        """The saved tree with every rollout's reward recomputed under `reward`, for rules that
        read rewards. Node values stay the run's: the tree grew as it grew. A reward needs no new
        generation, except the verifier's verdicts: `judge` reads those the run saved, and a
        record without them raises ValueError."""
        value = reward_function(reward)
        unjudged = any(r.answer and r.judged is None for r in self.rollouts)
        if unjudged and parse_reward(reward).judges_answers:
            raise ValueError(
                f"reward '{clip(reward, 60)}' needs the verifier's verdicts, and this run has none"
            )
        rollouts = tuple(replace(r, reward=rounded(value(r.scored()))) for r in self.rollouts)
        return replace(self, rollouts=rollouts, search=replace(self.search, reward=reward))

    # JSON ----------------------------------------------------------------------------------------
    def to_json(self) -> JsonObject:
        out: JsonObject = {
            "schema": self.schema,
            "question": self.question,
            "messages": [m.to_json() for m in self.messages],
            "model": asdict(self.model),
            "settings": {**strategies.saved_settings(self.search), **self.engine},
            "answer": self.answer,
            "thought": self.thought,
            "response": self.response,
            "confidence": rounded(self.reward),
            "chosen_rollout": self.chosen_rollout,
            "path": list(self.path),
            "votes": dict(self.votes),
            "nodes": [node_json(n) for n in self.nodes],
            "rollouts": [rollout_json(r) for r in self.rollouts],
            "rollout_stats": self.rollout_stats,
            "stopped": self.stopped,
            "error": self.error,
            "iterations": self.iterations,
            "tokens": asdict(self.tokens),
            "seconds": self.seconds,
        }
        if self.run_id is not None:
            out["run_id"] = self.run_id
        return out

    def tree_json(self, source: str, gold: str | None) -> JsonObject:
        """The conversation and the tree as the JSON form has them, with where the run came from
        and its gold answer (export's `tree` format)."""
        saved = self.to_json()
        head = {"source": source, "question": saved["question"], "messages": saved["messages"]}
        return head | {"gold": gold} | {k: saved[k] for k in TREE_FIELDS}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Record:  # Any: JSON in, checked field by field
        """A record from its JSON form (any schema so far); `RecordError` when it is not one."""
        try:
            return _parse(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, RecordError):
                raise
            raise RecordError(f"not a run record ({type(exc).__name__}: {exc})") from None


TREE_FIELDS = ("answer", "chosen_rollout", "path", "nodes", "rollouts", "settings")

# JSON <-> typed, field by field ----------------------------------------------------------------


# setting values earlier versions wrote under names that have changed since: schema 1's reward
# `rollout` (the rollout's mean confidence), schemas 1-2's answer rule `vote` (summed reward)
_LEGACY_VALUES = {("reward", "rollout"): "paper", **{("select", old): new for old, new in ALIASES.items()}}


def _split_settings(raw: Mapping[str, Any], schema: int) -> tuple[SearchConfig, EngineSettings]:
    """The saved settings: the search's own fields (missing ones at today's defaults, renamed
    values under today's names), and the engine's (whole numbers and switches).

    The saved `select` is the rule that answered; where it is the strategy's own for that reward
    it reads back as None (so a record round-trips). Before schema 4 the sampling strategies
    answered by their own rule whatever `select` said: such a record says so now."""
    search = {k: _LEGACY_VALUES.get((k, v), v) for k, v in raw.items() if k in _SEARCH_FIELDS}
    engine = {k: v for k, v in raw.items() if k not in _SEARCH_FIELDS and isinstance(v, int | bool)}
    config = SearchConfig(**search)
    if config.strategy not in strategies.names():  # a strategy registered by the run that saved it
        return config, engine
    spec = strategies.strategy(config.strategy)
    if schema < 4 and spec.budget != "iterations":  # all but the tree search (it counts iterations)
        config = replace(config, select=spec.own_rule)
    if config.select == strategies.own_rule(config.strategy, config.reward):
        config = replace(config, select=None)
    return config, engine


def _stop_why(value: object) -> StopWhy:
    if value not in STOP_WHYS:
        raise RecordError(f"unknown stop reason {value!r}")
    return value


def _parse(data: Mapping[str, Any]) -> Record:
    if not isinstance(data, Mapping):
        raise RecordError("a run record is a JSON object")
    model = data.get("model") or {}
    search, engine = _split_settings(data.get("settings") or {}, int(data.get("schema", 1)))
    question = str(data["question"])
    messages = tuple(Message(str(m["role"]), str(m["content"])) for m in data.get("messages") or ())
    tokens = data.get("tokens") or {}
    run_id = data.get("run_id")
    return Record(
        question=question,
        messages=messages or (Message("user", question),),
        model=ModelInfo(
            **{"name": "?", **{f.name: model[f.name] for f in fields(ModelInfo) if f.name in model}}
        ),
        search=search,
        answer=str(data.get("answer") or ""),
        thought=str(data.get("thought") or ""),
        response=str(data.get("response") or ""),
        reward=optional_float(data.get("confidence")),
        chosen_rollout=data.get("chosen_rollout"),
        path=tuple(int(i) for i in data.get("path") or (0,)),
        votes={str(k): int(v) for k, v in (data.get("votes") or {}).items()},
        nodes=tuple(parse_node(n) for n in data.get("nodes") or ()),
        rollouts=tuple(parse_rollout(r) for r in data.get("rollouts") or ()),
        stopped=_stop_why(data.get("stopped", "done")),
        error=data.get("error"),
        iterations=int(data.get("iterations", 0)),
        tokens=TokenCounts(
            int(tokens.get("generated", 0)), int(tokens.get("evaluated", 0)), int(tokens.get("verifier", 0))
        ),
        seconds=float(data.get("seconds", 0.0)),
        engine=engine,
        run_id=None if run_id is None else int(run_id),
        schema=int(data.get("schema", 1)),
    )
