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
"""

from __future__ import annotations

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


def ends_in_loop(text: str, rule: LoopRule = DEFAULT_RULE) -> bool:
    return loop_period(text, rule) is not None
