"""The tasks a command runs: a question or a text to translate, as chat messages, searched and
turned into the JSON record. No terminal code here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from marco_cli.contract import ChatEngine, PrmFormat
from marco_cli.engine.prompt import with_system_prompt
from marco_cli.errors import UsageError
from marco_cli.record.record import Message, ModelInfo, Record
from marco_cli.search.config import SearchConfig
from marco_cli.search.events import Listener, ignore
from marco_cli.search.prm import Prm
from marco_cli.search.strategies import needs_prm, needs_verifier, run_search
from marco_cli.search.values import PRM_MISSING
from marco_cli.search.verifier import Verifier


@dataclass(frozen=True)
class Opened:
    """A ready engine, the prompt style to render with, and the record's `model` entry: what a
    command (solve, translate, bench) and the server run their tasks on."""

    engine: ChatEngine
    style: str
    info: ModelInfo


@dataclass(frozen=True)
class Aides:
    """The models beside the searching one: the verifier a `judge` reward asks (None: the
    searching model) and the process reward model `--value prm` asks, with its format."""

    verifier: Opened | None = None
    prm: Opened | None = None
    prm_format: PrmFormat = "math-shepherd"


NO_AIDES = Aides()  # the searching model judges; no PRM


TRANSLATE_INSTRUCTION = (
    "Translate the following text {source}into {target}. It may use slang, idioms or colloquial "
    "phrasing: translate what it means, the way a native {target} speaker would say it, not word "
    "for word. Give only the translation in the output.\n\n{text}"
)


def solve_messages(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


def translate_messages(text: str, target: str, source: str | None) -> list[dict[str, str]]:
    src = f"from {source} " if source else ""
    return [{"role": "user", "content": TRANSLATE_INSTRUCTION.format(source=src, target=target, text=text)}]


def wants_number(question: str) -> bool:
    """A question that holds a number is taken to want one (answer extraction prefers it)."""
    return any(c.isdigit() for c in question)


def run_task(
    engine: ChatEngine,
    style: str,
    info: ModelInfo,
    question: str,
    messages: list[dict[str, str]],
    config: SearchConfig,
    listener: Listener = ignore,
    prompt: list[int] | None = None,
    aides: Aides = NO_AIDES,
) -> Record:
    """One search over one prompt; the record of it (also after Ctrl-C or a backend
    failure: see `stopped` and `error`). `prompt`: the conversation already tokenized.
    `aides`: the verifier a `judge` reward asks (default: the searching model) and the PRM
    `--value prm` asks (none: a usage error). Their tokens are counted as the verifier's."""
    if not question.strip():
        raise UsageError("the prompt is empty")
    if needs_prm(config) and aides.prm is None:
        raise UsageError(PRM_MISSING)
    if prompt is None:
        prompt = engine.build_prompt(messages, style)
    judge = None
    if needs_verifier(config):
        judge = judge_for(aides.verifier or Opened(engine, style, info), messages)
    prm = prm_for(aides.prm, aides.prm_format, messages) if needs_prm(config) and aides.prm else None
    result = run_search(engine, prompt, config, listener, judge=judge, question=question, prm=prm)
    answered = [Message(m["role"], m["content"]) for m in with_system_prompt(messages, style, None)]
    spent = (judge.tokens if judge else 0) + (prm.tokens if prm else 0)
    return Record.of(result, question, info, config, answered, spent)


def prm_for(prm: Opened, form: PrmFormat, messages: list[dict[str, str]]) -> Prm:
    """The PRM of one task, shown the task as the user asked it (the last user turn)."""
    return Prm(prm.engine, form, _asked(messages))


def _asked(messages: list[dict[str, str]]) -> str:
    """The task as the user asked it: the last user turn."""
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")


def judge_for(verifier: Opened, messages: list[dict[str, str]]) -> Verifier:
    """The verifier of one task: it is shown the task as the user asked it (the last user turn:
    the question, or translate's whole instruction) in its own model's prompt style."""
    engine, style = verifier.engine, verifier.style
    return Verifier(engine, lambda chat: engine.build_prompt(chat, style), _asked(messages))


def _flag(name: str) -> str:
    return f"--{name}"


def no_answer_hint(stats: Mapping[str, int], max_tokens: int, option: Callable[[str], str] = _flag) -> str:
    """Why a search that generated rollouts has no answer, and what would help, truthfully.
    `option` spells a setting's name as the reader sets it (`--max-tokens`, `max_tokens`)."""
    parts = [
        f"{stats.get(k, 0)} {what}"
        for k, what in (
            ("finished", "finished without stating an answer"),
            ("loop", "looped"),
            ("budget", f"hit the {max_tokens}-token budget"),
            ("context", "filled the context"),
            ("low_confidence", "were stopped as unconfident"),
        )
        if stats.get(k, 0)
    ]
    helps = []
    if stats.get("budget", 0):
        helps.append(f"a larger {option('max-tokens')}")
    if stats.get("context", 0):
        helps.append(f"a larger {option('ctx')}")
    if stats.get("finished", 0) or stats.get("loop", 0) or not helps:
        helps.append(f"more {option('iterations')}")
    return f"no answer: no rollout gave one ({', '.join(parts)}); try {' or '.join(helps)}"
