"""Plain data shared by the engine and the search: sampling settings, stop rules, generations.

Nothing here touches llama.cpp, so the search core can import it freely.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

Granularity = Literal["step", "mini-64", "mini-32"]
GRANULARITIES: tuple[Granularity, ...] = get_args(Granularity)
# why a generation ended: EOS or a stop text (finished), a step or mini-step boundary, a
# repetition loop, the token budget, a full context, DeepConf online's confidence stop
StopReason = Literal["eos", "stop_text", "step", "mini", "loop", "max_tokens", "context", "low_confidence"]
REFLECTION_PHRASE = "Wait! Maybe I made some mistakes! I need to rethink from scratch."
OUTPUT_END = "</Output>"


@dataclass(frozen=True)
class Sampling:
    """How to pick each token. temperature 0 is greedy; the other knobs apply when sampling."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class StopRule:
    """When a generation ends, besides EOS and the context size.

    granularity: `step` (end of a reasoning step), `mini-64`/`mini-32` (that many tokens),
    or `rollout` (only the stop texts, EOS and max_tokens end it).
    step_break: `line` (a line break after non-empty text) or `blank` (a blank line).
    """

    granularity: Granularity | Literal["rollout"] = "rollout"  # rollout: to the answer's end
    max_tokens: int = 1024
    stop_texts: tuple[str, ...] = (OUTPUT_END,)
    step_break: str = "line"
    loop_guard: bool = True  # stop with reason `loop` when the text ends in a repetition loop
    # DeepConf online: stop with reason `low_confidence` once the mean token confidence of the
    # last `confidence_window` tokens falls below this (None: never)
    min_confidence: float | None = None
    confidence_window: int = 32

    def token_limit(self) -> int:
        if self.granularity.startswith("mini-"):
            return min(self.max_tokens, int(self.granularity.split("-", 1)[1]))
        return self.max_tokens


@dataclass(frozen=True)
class Request:
    """One generation to run: continue `prefix` (token ids), pick tokens by `sampling`, end by `stop`."""

    prefix: tuple[int, ...]
    sampling: Sampling
    stop: StopRule

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", tuple(self.prefix))


class InterruptWatch(Protocol):
    """Signals seen during a decode: entered around it, asked between its graph nodes."""

    def pending(self) -> bool: ...

    def __enter__(self) -> object: ...

    def __exit__(self, *exc: object) -> None: ...


FINISHED_REASONS: tuple[StopReason, ...] = ("eos", "stop_text")
PATH_ENDS: tuple[StopReason, ...] = (*FINISHED_REASONS, "loop", "max_tokens", "context", "low_confidence")


@dataclass(frozen=True)
class Generation:
    """New tokens from one generate call, with per-token scores from the raw distribution."""

    tokens: tuple[int, ...]
    text: str
    logprobs: tuple[float, ...]
    confidences: tuple[float, ...]
    stop_reason: StopReason
    top_means: tuple[float, ...] = ()  # mean log-prob of the top-5 tokens at each (DeepConf)
    # where each scored token's text ends in `text`, in UTF-8 bytes: which tokens wrote the
    # answer (the `answer` reward); empty where unknown
    offsets: tuple[int, ...] = ()

    @property
    def finished(self) -> bool:
        """True when the answer is complete (EOS or a stop text). A loop, the token budget or a
        full context cut the answer off: it is never finished."""
        return self.stop_reason in FINISHED_REASONS

    @property
    def ends_path(self) -> bool:
        """Nothing can follow on this path: finished, looping, or out of room."""
        return self.stop_reason in PATH_ENDS

    @property
    def mean_confidence(self) -> float | None:
        if not self.confidences:
            return None
        return sum(self.confidences) / len(self.confidences)


def confidence_dropped(top_means: Sequence[float], stop: StopRule) -> bool:
    """DeepConf online's early stop, one rule for both engines: the newest window's group
    confidence (mean of minus the top-5 mean log-probs) is below `stop.min_confidence`."""
    window = stop.confidence_window
    if stop.min_confidence is None or len(top_means) < window:
        return False
    return -sum(top_means[-window:]) / window < stop.min_confidence


def ends_step(text: str | bytes | bytearray, before: int, mode: str) -> bool:
    """Has the newest piece, text[before:], closed a reasoning step?

    `line`: a line break after non-empty text; `blank`: a blank line after non-empty text.
    The local engine asks on bytes, the remote one on text.
    """
    nl = "\n" if isinstance(text, str) else b"\n"
    cut = text.find(nl, before)
    if cut < 0:
        return False
    if mode == "blank":
        blank = nl + nl
        return blank in text[max(0, before - 1) :] and bool(text[: text.rfind(blank)].strip())
    return bool(text[:cut].strip())
