"""Search trees as training data (Marco-o1 v2, arXiv 2503.01461): SFT conversations, preference
pairs aligned on the tree, and the raw trees.

Two rollouts below the same node share their text up to that node by construction, so every
DPO pair states where its two sides diverge (`shared_prefix_chars`/`shared_prefix_tokens`, the
path of their deepest common node): a masked-DPO trainer can ignore the shared part. With gold
answers (a `marco bench` folder) correctness decides; without, the reward does (`margin`).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, get_args

from marco_cli.record.record import Record
from marco_cli.record.saved import JsonObject, NodeRecord, RolloutRecord
from marco_cli.runs.bench import grade
from marco_cli.search.arithmetic import wrong

ExportFormat = Literal["sft", "dpo", "step-dpo", "tree"]
LengthFilter = Literal["all", "shortest", "longest"]  # sft: all candidates, or a third of them
FORMATS: tuple[ExportFormat, ...] = get_args(ExportFormat)
LENGTHS: tuple[LengthFilter, ...] = get_args(LengthFilter)


@dataclass(frozen=True)
class Run:
    """One search record to export, with its gold answer when it came from a bench run."""

    record: Record
    gold: str | None
    source: str  # "run 12", or "bench-out/x cot #3"


@dataclass(frozen=True)
class Filters:
    """Which rollouts become examples, and which pairs preference pairs."""

    correct_only: bool = False
    min_reward: float | None = None
    length: LengthFilter = "all"  # sft: all candidates, or the shortest / longest third of them
    chosen_only: bool = False  # sft: only the rollout the search answered with
    margin: float = 0.0  # dpo without gold: the reward gap a pair needs
    prefer_short: bool = False  # dpo with gold: also the shorter of two correct sides over the longer
    # dpo: a side whose arithmetic holds over one with a wrong equation (search/arithmetic.py):
    # with gold, between sides equally correct; without, before the reward margin
    prefer_checked: bool = False
    max_pairs: int | None = None  # dpo: per question


@dataclass
class Report:
    runs: int = 0
    written: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Side:
    """A rollout as one side of an example: its whole response text and where it sits."""

    rollout: RolloutRecord
    path: tuple[int, ...]  # node ids root..start node
    tokens: int  # response tokens: the path's actions and the rollout's own
    correct: bool | None

    @property
    def text(self) -> str:
        return self.rollout.text

    @functools.cached_property  # read for every pair the side is in
    def checked(self) -> bool:
        """Every equation the response writes holds (none written counts as holding)."""
        return not wrong(self.text)


def _by_id(record: Record) -> dict[int, NodeRecord]:
    return {n.id: n for n in record.nodes}


def _path(node: int, nodes: dict[int, NodeRecord]) -> list[int]:
    """Node ids from the root to `node`."""
    path = [node]
    while path[-1] in nodes and (parent := nodes[path[-1]].parent) is not None:
        path.append(parent)
    return path[::-1]


def _sides(run: Run) -> list[Side]:
    """Every rollout with a distinct text, in rollout order."""
    nodes = _by_id(run.record)
    seen: set[str] = set()
    sides = []
    for rollout in run.record.rollouts:
        if rollout.text in seen:
            continue
        seen.add(rollout.text)
        path = _path(rollout.node, nodes)
        tokens = sum(nodes[i].tokens for i in path if i in nodes) + rollout.tokens
        correct = None if run.gold is None else grade(rollout.answer, run.gold)[1]
        sides.append(Side(rollout, tuple(path), tokens, correct))
    return sides


def _assistant_text(side: Side) -> str:
    """The response as <Thought>…</Thought><Output>…</Output> (kept as is when it has tags)."""
    text = side.text.strip()
    if "<Output>" in text:
        return text
    answer = side.rollout.answer
    thought = text[: text.rfind(answer)].strip() if answer and answer in text else text
    return f"<Thought>\n{thought}\n</Thought>\n<Output>\n{answer}\n</Output>"


def _reward(side: Side) -> float:
    return side.rollout.reward or 0.0


def sft_examples(run: Run, options: Filters, report: Report) -> Iterator[JsonObject]:
    candidates = [s for s in _sides(run) if s.rollout.finished and s.rollout.answer]
    if options.chosen_only:
        candidates = [s for s in candidates if s.rollout.id == run.record.chosen_rollout]
    if options.correct_only:
        if run.gold is None:
            report.skipped["no gold answer"] += 1
            return
        candidates = [s for s in candidates if s.correct]
    if options.min_reward is not None:
        candidates = [s for s in candidates if _reward(s) >= options.min_reward]
    if not candidates:
        report.skipped["no finished rollout passed the filters"] += 1
        return
    candidates.sort(key=lambda s: (s.tokens, s.rollout.id))
    third = math.ceil(len(candidates) / 3)
    if options.length == "shortest":
        candidates = candidates[:third]
    elif options.length == "longest":
        candidates = candidates[-third:]
    for side in candidates:
        report.written += 1
        yield {
            "messages": [*_messages(run.record), {"role": "assistant", "content": _assistant_text(side)}],
            "source": run.source,
            "reward": side.rollout.reward,
            "tokens": side.tokens,
            "correct": side.correct,
        }


def _messages(record: Record) -> list[dict[str, str]]:
    return [m.to_json() for m in record.messages]


def _shared(a: Side, b: Side, record: Record) -> tuple[int, int]:
    """Characters and tokens of the response text the two sides share: their deepest common
    node's path (the root holds the prompt, not response text)."""
    common = [x for x, y in zip(a.path, b.path, strict=False) if x == y]
    nodes = _by_id(record)
    along = [nodes[i] for i in common[1:]]
    return sum(len(n.text) for n in along), sum(n.tokens for n in along)


def _prefers(a: Side, b: Side, options: Filters, gold: bool) -> bool:
    """Is a to be chosen over b?"""
    arithmetic = options.prefer_checked and a.checked != b.checked  # one side holds a wrong equation
    if gold:
        if a.correct and not b.correct:
            return True
        if arithmetic and a.correct == b.correct:
            return a.checked
        return bool(options.prefer_short and a.correct and b.correct and a.tokens < b.tokens)
    if arithmetic:
        return a.checked
    gap = _reward(a) - _reward(b)
    return gap > 0 and gap >= options.margin


def dpo_pairs(run: Run, options: Filters, report: Report) -> Iterator[JsonObject]:
    sides = _sides(run)
    gold = run.gold is not None
    pairs = [(a, b) for a, b in itertools.permutations(sides, 2) if _prefers(a, b, options, gold)]
    if not pairs:
        why = "all sides equally good (or one side only)" if gold else "no two rewards differ by the margin"
        report.skipped[why] += 1
        return
    pairs.sort(key=lambda p: (-_reward(p[0]), _reward(p[1]), p[0].tokens))
    for chosen, rejected in pairs[: options.max_pairs]:
        chars, tokens = _shared(chosen, rejected, run.record)
        report.written += 1
        yield {
            "prompt": _messages(run.record),
            "chosen": [{"role": "assistant", "content": chosen.text}],
            "rejected": [{"role": "assistant", "content": rejected.text}],
            "shared_prefix_chars": chars,
            "shared_prefix_tokens": tokens,
            "chosen_reward": chosen.rollout.reward,
            "rejected_reward": rejected.rollout.reward,
            "chosen_correct": chosen.correct,
            "rejected_correct": rejected.correct,
            "source": run.source,
        } | (
            {"chosen_checked": chosen.checked, "rejected_checked": rejected.checked}
            if options.prefer_checked
            else {}
        )


def _leading_right(run: Run, nodes: dict[int, NodeRecord]) -> set[int]:
    """The nodes with a rollout at or below them that answers right (the gold's grading)."""
    gold = run.gold
    right = [r.node for r in run.record.rollouts if gold is not None and grade(r.answer, gold)[1]]
    return {i for node in right for i in _path(node, nodes)}


def step_pairs(run: Run, options: Filters, report: Report) -> Iterator[JsonObject]:
    """Step-level pairs from a step search's tree (beam, dvts): under one parent, a step the
    search kept over a sibling it pruned, both continuing the same response (Step-DPO's
    shape: the same prefix, one next step each). The kept step's value must beat the pruned
    one's by `margin`; with gold answers it must also lead to a right answer."""
    nodes = _by_id(run.record)
    pruned = [n for n in run.record.nodes if n.pruned and n.parent is not None]
    if not pruned:
        report.skipped["no pruned step (not a step search)"] += 1
        return
    kept: dict[int | None, list[NodeRecord]] = {}
    for n in run.record.nodes:
        if not n.pruned:
            kept.setdefault(n.parent, []).append(n)
    right = _leading_right(run, nodes) if run.gold is not None else None
    written = 0
    for loser in pruned:
        gap = max(options.margin, 1e-12)
        winners = [w for w in kept.get(loser.parent, []) if (w.value or 0.0) - (loser.value or 0.0) >= gap]
        if right is not None:
            winners = [w for w in winners if w.id in right]
        before = [nodes[i] for i in _path(loser.parent or 0, nodes)[1:]]
        prefix = "".join(n.text for n in before)
        for winner in winners:
            if options.max_pairs is not None and written >= options.max_pairs:
                return
            written += 1
            report.written += 1
            yield {
                "prompt": _messages(run.record),
                "chosen": [{"role": "assistant", "content": prefix + winner.text}],
                "rejected": [{"role": "assistant", "content": prefix + loser.text}],
                "shared_prefix_chars": len(prefix),
                "shared_prefix_tokens": sum(n.tokens for n in before),
                "depth": loser.depth,
                "chosen_value": winner.value,
                "rejected_value": loser.value,
                "source": run.source,
            }
    if not written:
        why = "no kept step leads to a right answer" if run.gold is not None else "no value gap"
        report.skipped[f"{why} over a pruned sibling"] += 1


def tree_object(run: Run, report: Report) -> Iterator[JsonObject]:
    """The raw tree: the record's tree fields, as its JSON form has them."""
    report.written += 1
    yield run.record.tree_json(run.source, run.gold)


Writer = Callable[[Run, Filters, Report], Iterator[JsonObject]]
WRITERS: dict[ExportFormat, Writer] = {
    "sft": sft_examples,
    "dpo": dpo_pairs,
    "step-dpo": step_pairs,
    "tree": lambda run, _options, report: tree_object(run, report),
}


def export(runs: list[Run], fmt: ExportFormat, options: Filters) -> tuple[list[JsonObject], Report]:
    report = Report(runs=len(runs))
    write = WRITERS[fmt]
    lines = [line for run in runs for line in write(run, options, report)]
    return lines, report
