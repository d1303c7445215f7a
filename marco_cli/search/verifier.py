"""The generative verifier behind `--reward judge` and `judge-steps` (Zhang et al. 2024,
Generative Verifiers): a model is asked whether an answer (outcome) or a step (process) is
correct, and the value is its probability of answering "Yes".

The prompts are here, in `PROMPTS`, and nowhere else. P(Yes) is read from the top-5 first
tokens of the verifier's reply (five one-token requests of rank 0..4 over one prompt: every
engine can serve them, and the engines evaluate the shared prompt once): the probability of
the tokens that spell "yes" over that of "yes" and "no" together, so that mass on formatting
tokens (a space, "The") does not count as doubt. With neither among the five the verifier has
no opinion: 0.5. A PRM-style model that answers the same question works the same way.

Judgements are cached by what was asked (the same rollout judged twice costs nothing), and
every token the verifier evaluated or generated is counted (`tokens`), so a comparison with
plain sampling stays compute-matched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from marco_cli.contract import Generation, Model, Request, Sampling, StopRule
from marco_cli.errors import MarcoError
from marco_cli.search.rewards import JudgeKind

Messages = list[dict[str, str]]
Render = Callable[[Messages], list[int]]  # chat messages -> the verifier's prompt tokens
RANKS = 5  # the reply's first tokens read, likeliest first
YES, NO = frozenset(("yes",)), frozenset(("no",))
NO_OPINION = 0.5

PROMPTS: dict[JudgeKind, str] = {
    "answer": (
        "Check a proposed solution to a question.\n\n"
        "Question:\n{question}\n\n"
        "Proposed solution:\n{text}\n\n"
        "Is the proposed solution correct, with a right final answer? Answer Yes or No."
    ),
    "step": (
        "Check one step of a solution to a question.\n\n"
        "Question:\n{question}\n\n"
        "The solution so far:\n{before}\n\n"
        "Its next step:\n{text}\n\n"
        "Is this next step correct? Answer Yes or No."
    ),
}


def _word(text: str) -> str:
    return text.strip().strip(".,!:;\"'*").lower()


def p_yes(first_tokens: Sequence[Generation]) -> float:
    """P(Yes) from one-token replies (each with its token's log-probability): yes over yes + no."""
    yes = no = 0.0
    for gen in first_tokens:
        if not gen.tokens or not gen.logprobs:
            continue
        word, p = _word(gen.text), math.exp(gen.logprobs[0])
        yes += p if word in YES else 0.0
        no += p if word in NO else 0.0
    return yes / (yes + no) if yes + no > 0 else NO_OPINION


class Verifier:
    """A `Judge` (rewards.py) over a model: `verifier(kind, before, text)` -> P(Yes)."""

    def __init__(self, model: Model, render: Render, question: str) -> None:
        self.model, self.render, self.question = model, render, question
        self.cache: dict[tuple[JudgeKind, str, str], float] = {}
        self.tokens = 0  # evaluated (prompt tokens not already cached) and generated
        self.asked = 0  # judgements computed (cache hits excluded)

    def prompt(self, kind: JudgeKind, before: str, text: str) -> list[int]:
        """The verifier's question as its prompt tokens; one its context cannot hold is an error
        that names the verifier (the search's own prompt fitted)."""
        shown_before = before.strip() or "(nothing yet: this is the first step)"
        content = PROMPTS[kind].format(question=self.question, before=shown_before, text=text.strip())
        try:
            return self.render([{"role": "user", "content": content}])
        except MarcoError as exc:
            raise MarcoError(f"the verifier's question does not fit: {exc}", code=exc.code) from None

    def __call__(self, kind: JudgeKind, before: str, text: str) -> float:
        key = (kind, before, text)
        if key in self.cache:
            return self.cache[key]
        prompt = tuple(self.prompt(kind, before, text))
        one_token = StopRule(granularity="rollout", max_tokens=1, stop_texts=(), loop_guard=False)
        requests = [Request(prompt, Sampling(first_rank=rank), one_token) for rank in range(RANKS)]
        evaluated = self.model.evaluated
        replies = self.model.generate_many(requests)
        self.tokens += self.model.evaluated - evaluated + sum(len(g.tokens) for g in replies)
        self.asked += 1
        self.cache[key] = value = p_yes(replies)
        return value
