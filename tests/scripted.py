"""A scripted model for the pure search logic: fixed candidate texts and token confidences.

Tokens are character codes. The state is the text generated so far; `actions[state]` lists
the candidate next actions, likeliest first (greedy takes the first, each sampled request the
next one, a request with `first_rank` k the k-th), and `rollouts[state]` is the completion a
rollout from that state produces. A rollout may name its stop reason as a third element
(e.g. "loop" or "max_tokens"); otherwise it is "stop_text" when the text closes </Output> and
"eos" when not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from marco_cli.contract import Generation, Request
from marco_cli.errors import MarcoError

PROMPT = "Q?"


@dataclass
class ScriptedModel:
    actions: dict[str, list[tuple[str, float]]]
    rollouts: dict[str, tuple[str, float] | tuple[str, float, str]]
    default_rollout: tuple[str, float] = ("<Output>0</Output>", 0.5)
    fallback: Callable[[str], tuple[str, float]] | None = None  # state -> rollout
    more_actions: Callable[[str], list[tuple[str, float]]] | None = None  # state -> actions
    clock_step: float = 0.0
    now: float = 0.0
    calls: list[tuple[str, str, int]] = field(default_factory=list)  # (state, mode, n requests)
    picks: dict[str, int] = field(default_factory=dict)
    evaluated: int = 0
    parallel: int = 64  # requests per call a baseline may hand it

    @property
    def prompt(self) -> list[int]:
        return self.tokenize(PROMPT)

    def tokenize(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def clock(self) -> float:
        return self.now

    def _fallback(self, state: str) -> tuple[str, float]:
        return self.fallback(state) if self.fallback else self.default_rollout

    def _one(self, request: Request) -> Generation:
        prefix, sampling, stop = request.prefix, request.sampling, request.stop
        state = "".join(chr(t) for t in prefix[len(PROMPT) :])
        if stop.granularity == "rollout":
            text, conf, *named = self.rollouts.get(state) or self._fallback(state)
            reason = named[0] if named else ("stop_text" if "</Output>" in text else "eos")
        else:
            options = self.actions.get(state) or (
                self.more_actions(state) if self.more_actions else [self._fallback(state)]
            )
            index = 0
            if sampling.first_rank is not None:  # CoT-decoding: candidates are in likelihood order
                index = min(sampling.first_rank, len(options) - 1)
            elif sampling.temperature > 0:  # sampled candidates in turn, after the greedy one
                self.picks[state] = self.picks.get(state, 0) + 1
                index = self.picks[state] % len(options)
            text, conf = options[index]
            reason = "stop_text" if "</Output>" in text else "step"
        if len(text) > stop.max_tokens:
            text, reason = text[: stop.max_tokens], "max_tokens"
        dropped = stop.min_confidence is not None and 5.0 * conf < stop.min_confidence
        if dropped and len(text) > stop.confidence_window:  # DeepConf online's stop, as the engines
            text, reason = text[: stop.confidence_window], "low_confidence"
        tokens = tuple(ord(c) for c in text)
        # DeepConf's token confidence (minus the top-k mean log-prob) grows with conf here
        top_means = tuple(-5.0 * conf for _ in tokens)
        offsets = tuple(len(text[: i + 1].encode("utf-8")) for i in range(len(text)))
        return Generation(
            tokens, text, tuple(-0.1 for _ in tokens), tuple(conf for _ in tokens), reason, top_means, offsets
        )

    def generate_many(
        self, requests: Sequence[Request], on_token: Callable[[int], None] | None = None
    ) -> list[Generation]:
        self.now += self.clock_step
        if requests:
            state = "".join(chr(t) for t in requests[0].prefix[len(PROMPT) :])
            self.calls.append((state, requests[0].stop.granularity, len(requests)))
        gens = [self._one(r) for r in requests]
        for _ in range(max((len(g.tokens) for g in gens), default=0)):
            if on_token is not None:  # one call per decode step, as the engine does
                on_token(len(gens))
        return gens


class ScriptedEngine(ScriptedModel):
    """The scripted model with the engine's prompt and resource methods, for CLI tests. A user
    message holding "TOO LONG" is refused as the real engine refuses an over-long prompt."""

    messages: list[list[dict[str, str]]]

    def build_prompt(self, messages: Sequence[dict[str, str]], style: str) -> list[int]:
        self.messages.append(list(messages))
        if any("TOO LONG" in m["content"] for m in messages):
            raise MarcoError("the prompt is 9999 tokens, longer than the 2048-token context", code=2)
        return self.prompt

    def document_tokens(self, text: str) -> list[int]:
        return self.tokenize(text)

    def pair_odds(self, prefix: Sequence[int], pair: tuple[int, int]) -> float:
        """As a PRM: P(+) 0.75 for whatever it is shown (the scripted PRM of tests/test_prm.py
        knows its steps)."""
        self.evaluated += len(prefix)
        return 0.75

    def settings(self) -> dict[str, int | bool]:
        return {"parallel": self.parallel}

    @property
    def decode_sizes(self) -> dict[int, int]:
        return {}

    def watch_interrupts(self, watch: object) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> ScriptedEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        return None
