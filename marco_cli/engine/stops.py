"""The stop rules both engines apply while a generation grows, in one place: the local decoder
calls `cut_reason` after every token, the remote engine on every streamed piece."""

from __future__ import annotations

from collections.abc import Sequence

from marco_cli.engine.repetition import DEFAULT_RULE, ends_in_loop
from marco_cli.engine.types import StopReason, StopRule, confidence_dropped, ends_step

LOOP_WINDOW = DEFAULT_RULE.window()  # characters the repetition guard looks back over


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
