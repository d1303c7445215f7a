"""Process reward models (PRMs) through their language-model head: `--value prm` asks a PRM,
loaded like any model, how likely each step is right, in the format its authors score with.

- `math-shepherd` (peiyi9979/math-shepherd-mistral-7b-prm, Wang et al. 2024): the question, a
  space, then the steps as `Step 1: ... ки` lines joined by a line break; a step's score is
  P("+") / (P("+") + P("-")) for the token after its `ки` tag, the two being the tokens of
  "+ -" (the model card's `tokenizer.encode("+ -")[1:]`, BOS dropped). The text is tokenized
  as a document (BOS first). A step's line breaks become spaces: the format's line break ends a
  step; a step that already starts with `Step N:` is numbered again, not twice.
- `rlhflow` (RLHFlow/Llama3.1-8B-PRM-Deepseek-Data and -Mistral-Data): a conversation in the
  PRM's own chat template, the first user turn the question, a space and the first step, each
  later step a user turn, every earlier step answered "+" by the assistant; a step's score is
  P("+") / (P("+") + P("-")) for the assistant's reply to it (the generation prompt after its
  turn: the position the authors read, `logits[:, -3]` of the conversation ending "+<eot>").

The two probabilities are read exactly (`ChatEngine.pair_odds`: the two raw logits locally, an
equal logit bias on llama-server), not from a top-5 list that may hold neither. Scores are cached
by the path they judge; every token the PRM evaluated is counted (`tokens`), and the record adds
them to the verifier's so a comparison stays compute-matched.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from marco_cli.contract import ChatEngine, PrmFormat
from marco_cli.errors import MarcoError
from marco_cli.search.values import Step, StepValued

STEP_TAG = "ки"  # math-shepherd's step tag (Cyrillic, one token in Mistral's vocabulary)
_NUMBERED = re.compile(r"Step \d+:\s?")


def shepherd_step(text: str) -> str:
    """One step as a math-shepherd line: its whitespace runs (line breaks included) one space,
    a leading `Step N:` dropped (the format numbers the steps)."""
    flat = " ".join(text.split())
    numbered = _NUMBERED.match(flat)
    return flat[numbered.end() :] if numbered else flat


def shepherd_text(question: str, steps: Sequence[str]) -> str:
    """math-shepherd's input for `steps`: `{question} Step 1: ... ки\\nStep 2: ... ки`."""
    lines = [f"Step {i}: {shepherd_step(step)} {STEP_TAG}" for i, step in enumerate(steps, 1)]
    return f"{question} " + "\n".join(lines)


def rlhflow_messages(question: str, steps: Sequence[str]) -> list[dict[str, str]]:
    """RLHFlow's conversation up to the last step's user turn (the reply to it is scored)."""
    messages: list[dict[str, str]] = []
    for i, step in enumerate(steps):
        if i:
            messages.append({"role": "assistant", "content": "+"})
        text = f"{question} {step.strip()}" if i == 0 else step.strip()
        messages.append({"role": "user", "content": text})
    return messages


def steps_of(step: Step, before: str) -> list[str]:
    """The path's steps, the new one last: the earlier steps as the search made them, else the
    response before split at its lines."""
    earlier = list(step.earlier) if step.earlier else [line for line in before.splitlines() if line.strip()]
    return [s for s in earlier if s.strip()] + [step.text]


class Prm:
    """A `StepValue` (values.py) over a PRM: `prm(question, before, step)` -> P("+")."""

    def __init__(self, engine: ChatEngine, form: PrmFormat, question: str) -> None:
        self.engine, self.form, self.question = engine, form, question
        self.pair = self._pair()
        self.cache: dict[tuple[str, ...], float] = {}
        self.tokens = 0  # evaluated (prompt tokens not already cached) and generated
        self.asked = 0  # scores computed (cache hits excluded)

    def _pair(self) -> tuple[int, int]:
        """The ("+", "-") token ids, as the format's authors encode them."""
        if self.form == "math-shepherd":
            pair = self.engine.tokenize("+ -")
            if len(pair) != 2:
                raise MarcoError(
                    f"the PRM's vocabulary spells '+ -' as {len(pair)} tokens, not 2: "
                    "not a math-shepherd model (--prm-format rlhflow?)",
                    code=2,
                )
            return pair[0], pair[1]
        plus, minus = self.engine.tokenize("+"), self.engine.tokenize("-")
        if not plus or not minus:
            raise MarcoError("the PRM's vocabulary has no '+' or '-' token", code=2)
        return plus[-1], minus[-1]

    def prompt(self, steps: Sequence[str]) -> list[int]:
        """The PRM's input whose next token is scored, as token ids."""
        if self.form == "math-shepherd":
            return self.engine.document_tokens(shepherd_text(self.question, steps))
        try:
            return self.engine.build_prompt(rlhflow_messages(self.question, steps), "bare")
        except MarcoError as exc:
            raise MarcoError(f"the PRM's input does not fit: {exc}", code=exc.code) from None

    def score(self, steps: Sequence[str]) -> float:
        """P("+") / (P("+") + P("-")) for the last of `steps` after the ones before it."""
        key = tuple(steps)
        if key in self.cache:
            return self.cache[key]
        evaluated = self.engine.evaluated
        value = self.engine.pair_odds(self.prompt(steps), self.pair)
        self.tokens += self.engine.evaluated - evaluated
        self.asked += 1
        self.cache[key] = value
        return value

    def __call__(self, question: str, before: str, step: Step) -> StepValued:
        return StepValued(self.score(steps_of(step, before)))
