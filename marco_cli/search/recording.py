"""A `Model` that passes every call to another and keeps what it generated: for tests that
compare the search's numbers with the engine's, and benchmarks that count what a naive engine
would have evaluated."""

from __future__ import annotations

from collections.abc import Sequence

from marco_cli.contract import Generation, Model, Request, TokenCallback


class Recording:
    """Wraps `model`; `seen` holds (prefix, generation) for every request, in order."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.seen: list[tuple[tuple[int, ...], Generation]] = []

    def generate_many(
        self, requests: Sequence[Request], on_token: TokenCallback | None = None
    ) -> list[Generation]:
        gens = self.model.generate_many(requests, on_token)
        self.seen.extend((r.prefix, g) for r, g in zip(requests, gens, strict=True))
        return gens

    def tokenize(self, text: str) -> list[int]:
        return self.model.tokenize(text)

    @property
    def evaluated(self) -> int:
        return self.model.evaluated

    @property
    def parallel(self) -> int:
        return self.model.parallel

    @property
    def naive_evaluated(self) -> int:
        """Tokens an engine that re-evaluates every prefix from scratch would have evaluated:
        each request's prefix plus its generated tokens but the last."""
        return sum(len(prefix) + max(len(gen.tokens) - 1, 0) for prefix, gen in self.seen)
