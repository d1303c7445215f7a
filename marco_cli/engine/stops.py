"""The stop rules both engines apply while a generation grows, in one place: the local decoder
calls `cut_reason` after every token, the remote engine on every streamed piece."""

from __future__ import annotations

from collections.abc import Sequence
from typing import AnyStr

from marco_cli.contract import StepBreak, StopReason, StopRule
from marco_cli.engine.repetition import COUNTING_RULE, DEFAULT_RULE, ends_in_loop

LOOP_WINDOW = max(DEFAULT_RULE.window(), COUNTING_RULE.window())  # characters the guard looks back over


def cut_reason(
    text: str | bytes | bytearray, before: int, stop: StopRule, context: str, top_means: Sequence[float]
) -> StopReason | None:
    """Does the generation end early now that `text[before:]` arrived: `loop` (the repetition
    guard, over the prefix's last text `context` and the new text), `low_confidence`
    (DeepConf online) or `step` (a reasoning step closed)? In that order; None: go on."""
    if stop.loop_guard:
        recent = text[-4 * LOOP_WINDOW :]
        recent_text = recent if isinstance(recent, str) else bytes(recent).decode("utf-8", "ignore")
        if ends_in_loop((context + recent_text)[-LOOP_WINDOW:]):
            return "loop"
    if confidence_dropped(top_means, stop):
        return "low_confidence"
    if stop.granularity == "step" and ends_step(text, before, stop.step_break):
        return "step"
    return None


def confidence_dropped(top_means: Sequence[float], stop: StopRule) -> bool:
    """DeepConf online's early stop, one rule for both engines: the newest window's group
    confidence (mean of minus the top-5 mean log-probs) is below `stop.min_confidence`."""
    window = stop.confidence_window
    if stop.min_confidence is None or len(top_means) < window:
        return False
    return -sum(top_means[-window:]) / window < stop.min_confidence


def ends_step(text: str | bytes | bytearray, before: int, mode: StepBreak) -> bool:
    """Has the newest piece, text[before:], closed a reasoning step?

    `line`: a line break after non-empty text; `blank`: a blank line after non-empty text.
    The local engine asks on bytes, the remote one on text.
    """
    if isinstance(text, str):
        return _ends_step(text, before, mode, "\n")
    return _ends_step(bytes(text), before, mode, b"\n")


def _ends_step(text: AnyStr, before: int, mode: str, nl: AnyStr) -> bool:
    cut = text.find(nl, before)
    if cut < 0:
        return False
    if mode == "blank":
        blank = nl + nl
        return blank in text[max(0, before - 1) :] and bool(text[: text.rfind(blank)].strip())
    return bool(text[:cut].strip())
