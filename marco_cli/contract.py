"""The search contract, in one place: what the search asks of a model and what it gets back.

Like mctx's `RecurrentFn` -> `RecurrentFnOutput`: the search hands a model `Request`s (a prefix,
`Sampling`, a `StopRule`) and receives `Generation`s; `Model` is the narrow protocol the search
needs, `ChatEngine` what a command needs on top. The closed vocabularies are `Literal` types.
Both engines (llama.cpp in-process, a server over HTTP) and the tests' scripted model implement
it; nothing here imports any of them, so this module sits below both the engine and the search.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Protocol, get_args

Granularity = Literal["step", "mini-64", "mini-32"]
StepBreak = Literal["line", "blank"]  # where a step ends: a line break, or a blank line
GRANULARITIES: tuple[Granularity, ...] = get_args(Granularity)
MINI_STEP_TOKENS: dict[Granularity, int] = {"mini-64": 64, "mini-32": 32}  # the paper's mini-steps
# where a generation may end besides EOS, stop texts and its budget: a step, a mini-step, or
# only at the answer's end (`rollout`)
StopAt = Granularity | Literal["rollout"]
# why a generation ended: EOS or a stop text (finished), a step or mini-step boundary, a
# repetition loop, the token budget, a full context, DeepConf online's confidence stop
StopReason = Literal["eos", "stop_text", "step", "mini", "loop", "max_tokens", "context", "low_confidence"]
# how a process reward model reads a path and is scored (search/prm.py)
PrmFormat = Literal["math-shepherd", "rlhflow"]
PRM_FORMATS: tuple[PrmFormat, ...] = get_args(PrmFormat)
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
    # CoT-decoding (Wang & Zhou 2024): the first token is the model's `first_rank`-th most
    # likely one (0: greedy's), the rest as above; None: the first token like the rest
    first_rank: int | None = None


@dataclass(frozen=True)
class StopRule:
    """When a generation ends, besides EOS and the context size.

    granularity: `step` (end of a reasoning step), `mini-64`/`mini-32` (that many tokens),
    or `rollout` (only the stop texts, EOS and max_tokens end it).
    step_break: `line` (a line break after non-empty text) or `blank` (a blank line).
    """

    granularity: StopAt = "rollout"  # rollout: to the answer's end
    max_tokens: int = 1024
    stop_texts: tuple[str, ...] = (OUTPUT_END,)
    step_break: StepBreak = "line"
    loop_guard: bool = True  # stop with reason `loop` when the text ends in a repetition loop
    # DeepConf online: stop with reason `low_confidence` once the mean token confidence of the
    # last `confidence_window` tokens falls below this (None: never)
    min_confidence: float | None = None
    confidence_window: int = 32

    def token_limit(self) -> int:
        mini = MINI_STEP_TOKENS.get(self.granularity) if self.granularity != "rollout" else None
        return self.max_tokens if mini is None else min(self.max_tokens, mini)


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

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
        /,
    ) -> None: ...


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


TokenCallback = Callable[[int], None]


class Model(Protocol):
    """What the search reads from a language model (the engine, or a scripted fake)."""

    @property
    def evaluated(self) -> int:
        """Tokens the model has evaluated so far (prompts and generated tokens)."""
        ...

    @property
    def parallel(self) -> int:
        """Requests it runs at once: a baseline hands it that many per call."""
        ...

    def generate_many(
        self, requests: Sequence[Request], on_token: TokenCallback | None = None
    ) -> list[Generation]:
        """Generate every request; call `on_token(n)` as tokens are produced (progress)."""
        ...

    def tokenize(self, text: str) -> list[int]: ...


class ChatEngine(Model, Protocol):
    """The search's `Model` plus what a command needs from an engine: the conversation as
    prompt tokens, the settings it really runs with (for the record), decode statistics, an
    interrupt hook for long decodes, and closing. `Engine` (llama.cpp in-process) and
    `RemoteEngine` (a server) implement it; tests use a scripted one."""

    def build_prompt(self, messages: Sequence[dict[str, str]], style: str) -> list[int]:
        """Render and tokenize; a prompt that does not fit the context is a usage error."""
        ...

    def document_tokens(self, text: str) -> list[int]:
        """`text` tokenized as its tokenizer encodes a document (Hugging Face's
        `tokenizer.encode`): the BOS first where the vocabulary adds one, special tokens
        spelled out as text."""
        ...

    def pair_odds(self, prefix: Sequence[int], pair: tuple[int, int]) -> float:
        """P(a) / (P(a) + P(b)) for the token after `prefix`, `pair` = (a, b), from the raw
        distribution and exact (a process reward model's "+" against "-"); a MarcoError where
        the backend cannot give both probabilities."""
        ...

    def settings(self) -> dict[str, int | bool]:
        """What the engine actually used (threads, context, parallel, ...), for the record."""
        ...

    @property
    def decode_sizes(self) -> dict[int, int]:
        """How many generation decodes held 1, 2, ... branches (empty where not known)."""
        ...

    def watch_interrupts(self, watch: InterruptWatch) -> None:
        """Let long decodes stop mid-way when `watch` says so (a no-op where there are none)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> ChatEngine: ...

    def __exit__(self, *exc: object) -> None: ...
