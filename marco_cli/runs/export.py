"""Search trees as training data (Marco-o1 v2, arXiv 2503.01461): SFT conversations, preference
pairs aligned on the tree, and the raw trees.

Two rollouts below the same node share their text up to that node by construction, so every
DPO pair states where its two sides diverge (`shared_prefix_chars`/`shared_prefix_tokens`, the
path of their deepest common node): a masked-DPO trainer can ignore the shared part. With gold
answers (a `marco bench` folder) correctness decides; without, the reward does (`margin`).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from marco_cli.runs.bench import grade

LENGTHS = ("all", "shortest", "longest")
FORMATS = ("sft", "dpo", "tree")


@dataclass(frozen=True)
class Run:
    """One search record to export, with its gold answer when it came from a bench run."""

    record: dict[str, Any]
    gold: str | None
    source: str  # "run 12", or "bench-out/x cot #3"


@dataclass(frozen=True)
class Options:
    correct_only: bool = False
    min_reward: float | None = None
    length: str = "all"  # sft: all candidates, or the shortest / longest third of them
    chosen_only: bool = False  # sft: only the rollout the search answered with
    margin: float = 0.0  # dpo without gold: the reward gap a pair needs
    prefer_short: bool = False  # dpo with gold: also the shorter of two correct sides over the longer
    max_pairs: int | None = None  # dpo: per question


@dataclass
class Report:
    runs: int = 0
    written: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Side:
    """A rollout as one side of an example: its whole response text and where it sits."""

    rollout: dict[str, Any]
    path: tuple[int, ...]  # node ids root..start node
    tokens: int  # response tokens: the path's actions and the rollout's own
    correct: bool | None

    @property
    def text(self) -> str:
        return str(self.rollout["text"])


def _sides(run: Run) -> list[Side]:
    """Every rollout with a distinct text, in rollout order."""
    nodes = {n["id"]: n for n in run.record.get("nodes", [])}
    seen: set[str] = set()
    sides = []
    for rollout in run.record.get("rollouts", []):
        if rollout["text"] in seen:
            continue
        seen.add(rollout["text"])
        path = [rollout["node"]]
        while nodes.get(path[-1], {}).get("parent") is not None:
            path.append(nodes[path[-1]]["parent"])
        path.reverse()
        tokens = sum(nodes[i]["tokens"] for i in path if i in nodes) + rollout["tokens"]
        correct = None if run.gold is None else grade(rollout["answer"], run.gold)[1]
        sides.append(Side(rollout, tuple(path), tokens, correct))
    return sides


def _assistant_text(side: Side) -> str:
    """The response as <Thought>…</Thought><Output>…</Output> (kept as is when it has tags)."""
    text = side.text.strip()
    if "<Output>" in text:
        return text
    answer = side.rollout["answer"]
    thought = text[: text.rfind(answer)].strip() if answer and answer in text else text
    return f"<Thought>\n{thought}\n</Thought>\n<Output>\n{answer}\n</Output>"


def sft_examples(run: Run, options: Options, report: Report) -> Iterator[dict[str, Any]]:
    candidates = [s for s in _sides(run) if s.rollout.get("finished") and s.rollout["answer"]]
    if options.chosen_only:
        chosen = run.record.get("chosen_rollout")
        candidates = [s for s in candidates if s.rollout["id"] == chosen]
    if options.correct_only:
        if run.gold is None:
            report.skipped["no gold answer"] += 1
            return
        candidates = [s for s in candidates if s.correct]
    if options.min_reward is not None:
        candidates = [s for s in candidates if (s.rollout["reward"] or 0.0) >= options.min_reward]
    if not candidates:
        report.skipped["no finished rollout passed the filters"] += 1
        return
    candidates.sort(key=lambda s: (s.tokens, s.rollout["id"]))
    third = math.ceil(len(candidates) / 3)
    if options.length == "shortest":
        candidates = candidates[:third]
    elif options.length == "longest":
        candidates = candidates[-third:]
    for side in candidates:
        report.written += 1
        yield {
            "messages": [*run.record["messages"], {"role": "assistant", "content": _assistant_text(side)}],
            "source": run.source,
            "reward": side.rollout["reward"],
            "tokens": side.tokens,
            "correct": side.correct,
        }


def _shared(a: Side, b: Side, record: dict[str, Any]) -> tuple[int, int]:
    """Characters and tokens of the response text the two sides share: their deepest common
    node's path (the root holds the prompt, not response text)."""
    common = [x for x, y in zip(a.path, b.path, strict=False) if x == y]
    nodes = {n["id"]: n for n in record["nodes"]}
    along = [nodes[i] for i in common[1:]]
    return sum(len(n["text"]) for n in along), sum(n["tokens"] for n in along)


def _prefers(a: Side, b: Side, options: Options, gold: bool) -> bool:
    """Is a to be chosen over b?"""
    if gold:
        if a.correct and not b.correct:
            return True
        return bool(options.prefer_short and a.correct and b.correct and a.tokens < b.tokens)
    gap = (a.rollout["reward"] or 0.0) - (b.rollout["reward"] or 0.0)
    return gap > 0 and gap >= options.margin


def dpo_pairs(run: Run, options: Options, report: Report) -> Iterator[dict[str, Any]]:
    sides = _sides(run)
    gold = run.gold is not None
    pairs = [(a, b) for a, b in itertools.permutations(sides, 2) if _prefers(a, b, options, gold)]
    if not pairs:
        why = "all sides equally good (or one side only)" if gold else "no two rewards differ by the margin"
        report.skipped[why] += 1
        return
    pairs.sort(key=lambda p: (-(p[0].rollout["reward"] or 0.0), p[1].rollout["reward"] or 0.0, p[0].tokens))
    for chosen, rejected in pairs[: options.max_pairs]:
        chars, tokens = _shared(chosen, rejected, run.record)
        report.written += 1
        yield {
            "prompt": run.record["messages"],
            "chosen": [{"role": "assistant", "content": chosen.text}],
            "rejected": [{"role": "assistant", "content": rejected.text}],
            "shared_prefix_chars": chars,
            "shared_prefix_tokens": tokens,
            "chosen_reward": chosen.rollout["reward"],
            "rejected_reward": rejected.rollout["reward"],
            "chosen_correct": chosen.correct,
            "rejected_correct": rejected.correct,
            "source": run.source,
        }


def tree_object(run: Run, report: Report) -> Iterator[dict[str, Any]]:
    record = run.record
    report.written += 1
    yield {
        "source": run.source,
        "question": record["question"],
        "messages": record.get("messages"),
        "gold": run.gold,
        "answer": record["answer"],
        "chosen_rollout": record["chosen_rollout"],
        "path": record["path"],
        "nodes": record["nodes"],
        "rollouts": record["rollouts"],
        "settings": record["settings"],
    }


def export(runs: list[Run], fmt: str, options: Options) -> tuple[list[dict[str, Any]], Report]:
    report = Report(runs=len(runs))
    lines: list[dict[str, Any]] = []
    for run in runs:
        if fmt == "tree":
            lines.extend(tree_object(run, report))
        elif fmt == "sft":
            lines.extend(sft_examples(run, options, report))
        else:
            lines.extend(dpo_pairs(run, options, report))
    return lines, report
