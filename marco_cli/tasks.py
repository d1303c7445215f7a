"""The tasks a command runs: a question or a text to translate, as chat messages, searched and
turned into the JSON record. No terminal code here."""

from __future__ import annotations

from dataclasses import dataclass

from marco_cli.contract import ChatEngine
from marco_cli.engine.prompt import with_system_prompt
from marco_cli.errors import UsageError
from marco_cli.record.record import Message, ModelInfo, Record
from marco_cli.search.config import SearchConfig
from marco_cli.search.events import Listener, ignore
from marco_cli.search.strategies import run_search


@dataclass(frozen=True)
class Opened:
    """A ready engine, the prompt style to render with, and the record's `model` entry: what a
    command (solve, translate, bench) and the server run their tasks on."""

    engine: ChatEngine
    style: str
    info: ModelInfo


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
) -> Record:
    """One search over one prompt; the record of it (also after Ctrl-C or a backend
    failure: see `stopped` and `error`). `prompt`: the conversation already tokenized."""
    if not question.strip():
        raise UsageError("the prompt is empty")
    if prompt is None:
        prompt = engine.build_prompt(messages, style)
    result = run_search(engine, prompt, config, listener)
    answered = [Message(m["role"], m["content"]) for m in with_system_prompt(messages, style, None)]
    return Record.of(result, question, info, config, answered)
