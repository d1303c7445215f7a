"""The repetition guard: is a generation's text ending in a loop?

Mean top-5 confidence rewards repetition (every repeated token is near-certain), and small
models fall into loops ("Sofia has 20 pencils left." until the token budget runs out). Both
engines ask `ends_in_loop` as text grows and stop the generation with the reason `loop`, which
never counts as a finished answer.

A tail is a loop when it is one unit (any text of `period` characters) repeated back to back at
least `min_repeats` times and covering at least `min_span` characters. The defaults come from
`benchmarks/loop_guard.py` (120 answers, greedy and T=0.6, guard off, 512-token budget): three
repeats flagged 2 of the 102 finished answers and 10 of the 18 that ran to the budget, firing
after a third of it; two repeats flagged 6 finished answers, four caught only 8 loops.

A counting loop repeats lines that differ only in their numbers ("23 + 1 = 24", "24 + 1 = 25",
...): the exact check never fires and the generation runs to the budget. The same check on the
text with every number masked catches it, with stricter thresholds (four repeats over 96
characters: an honest "Week 1: $20" enumeration needs nine lines to fire). Replayed on the
3,050 saved rollouts and samples of a 300-problem arithmetic bench (cot, mcts, vote@5): it stops
287 of the 298 that ran to the 512-token budget, and 30 of 2,374 finished answers, one of them
right. Run again with it (same problems, one run each), greedy spent 0.59x its tokens, the
default search 0.69x and vote@5 0.76x, for the same grades (docs/results.md, history: the loop guard).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_PERIOD = 400  # characters: a repeated paragraph of up to a few lines


@dataclass(frozen=True)
class LoopRule:
    min_repeats: int = 3
    min_span: int = 48  # short units (a digit, "ha ") must repeat until they cover this much
    min_period: int = 1
    max_period: int = MAX_PERIOD

    def window(self) -> int:
        """How many trailing characters the check can need."""
        return max(self.max_period * self.min_repeats, self.min_span + self.max_period)


DEFAULT_RULE = LoopRule()
COUNTING_RULE = LoopRule(min_repeats=4, min_span=96)  # on the text with its numbers masked
_NUMBER = re.compile(r"\d+")


def loop_period(text: str, rule: LoopRule = DEFAULT_RULE) -> int | None:
    """The period of the loop `text` ends in, or None.

    A string s has period p when s[:-p] == s[p:]; a loop is such a tail holding at least
    `min_repeats` units and `min_span` characters. Cheap enough to ask after every token
    (most periods fail on the last character).
    """
    last = len(text) - 1
    if last < 0:
        return None
    top = min(rule.max_period, len(text) // rule.min_repeats)
    for period in range(max(1, rule.min_period), top + 1):
        if text[last] != text[last - period]:
            continue
        span = max(period * rule.min_repeats, rule.min_span)
        if span > len(text):
            continue
        tail = text[-span:]
        if tail[:-period] == tail[period:] and tail.strip():
            return period
    return None


def mask_numbers(text: str) -> str:
    """Every run of digits as one "0": lines that differ only in their numbers become equal."""
    return _NUMBER.sub("0", text)


def ends_in_loop(text: str, rule: LoopRule = DEFAULT_RULE, counting: LoopRule | None = COUNTING_RULE) -> bool:
    """An exact loop under `rule`, or a counting loop (numbers masked) under `counting`."""
    if loop_period(text, rule) is not None:
        return True
    return counting is not None and loop_period(mask_numbers(text), counting) is not None
