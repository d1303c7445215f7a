"""A generation as a server's stream delivers it (`Streamed`), and the `Generation` it becomes:
the scored pieces kept, the stop reason read from the cut or the server's finish reason, and the
token ids (the server's, or the text re-tokenized where it gives none)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from marco_cli.contract import Generation, StopReason, StopRule
from marco_cli.engine.logprobs import Scored


@dataclass
class Streamed:
    """A generation as its stream arrives: the pieces so far, their top-5 means, the text, and
    how it ended (cut here, or the server's finish reason) with the prompt tokens it evaluated."""

    scored: list[Scored]
    means: list[float]
    text: str
    cut: StopReason | None = None
    finish: str | None = None
    evaluated: int = 0


def generation_of(
    scored: list[Scored],
    text: str,
    cut: StopReason | None,
    finish: str | None,
    stop: StopRule,
    limit: int,
    prompt: str,
    tokenize: Callable[[str], Sequence[int]],
) -> Generation:
    """What the search gets of one streamed or whole answer."""
    kept: list[tuple[float, float, float]] = []  # logprob, confidence, top-5 mean of each scored piece
    ends, offsets = 0, []
    for s in scored:
        ends += len(s.text.encode("utf-8"))
        confidence = s.confidence
        if s.logprob is not None and confidence is not None:
            kept.append((s.logprob, confidence, s.top_mean))
            offsets.append(ends)
    reason: StopReason
    if cut:
        reason = cut
    elif finish in ("length", "limit") or len(scored) >= limit:
        reason = "mini" if limit < stop.max_tokens else "max_tokens"
    elif finish in ("stop", "word") and stop.stop_texts and "<Output>" in (prompt + text)[-4000:]:
        text += stop.stop_texts[0]  # the server withholds the stop text it matched
        reason = "stop_text"
    else:
        reason = "eos"
    ids = tuple(s.token for s in scored if s.token is not None)
    server_ids = bool(scored) and len(ids) == len(scored)  # else the text, re-tokenized
    tokens = ids if server_ids else (tuple(tokenize(text)) if text else ())
    return Generation(
        tokens,
        text,
        tuple(k[0] for k in kept),
        tuple(k[1] for k in kept),
        reason,
        tuple(k[2] for k in kept),
        tuple(offsets),
    )
