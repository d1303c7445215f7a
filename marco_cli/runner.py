"""Wiring for the commands: a model spec to a loaded engine, a task to a prompt, a search to a
JSON record. No terminal code here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marco_cli import download
from marco_cli.engine.llama import Engine
from marco_cli.errors import MarcoError
from marco_cli.registry import ModelSpec, load_registry, parse_spec
from marco_cli.search.config import SearchConfig
from marco_cli.search.core import run_search
from marco_cli.search.events import Listener, ignore
from marco_cli.search.record import result_to_dict

TRANSLATE_INSTRUCTION = (
    "Translate the following text {source}into {target}. It may use slang, idioms or colloquial "
    "phrasing: translate what it means, the way a native {target} speaker would say it, not word "
    "for word. Give only the translation in the output.\n\n{text}"
)


@dataclass(frozen=True)
class EngineOptions:
    gpu_layers: int | None = None
    cpu: bool = False
    ctx: int | None = None
    threads: int | None = None
    verbose: bool = False
    parallel: int = 1  # KV sequences decoded together (1: one sequence with saved copies)


def resolve(model: str) -> tuple[ModelSpec, download.LocalModel | None]:
    spec = parse_spec(model, load_registry())
    return spec, download.locate(spec)


def open_engine(path: Path, options: EngineOptions) -> Engine:
    return Engine(
        path,
        ctx=options.ctx,
        gpu_layers=options.gpu_layers,
        cpu=options.cpu,
        threads=options.threads,
        verbose=options.verbose,
    )


def model_info(spec: ModelSpec, local: download.LocalModel) -> dict[str, Any]:
    name = spec.entry.name if spec.entry else spec.label
    return {
        "name": name,
        "file": str(local.path),
        "quant": spec.quant,
        "origin": local.origin,
        "prompt_style": spec.prompt_style,
    }


def solve_messages(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


def translate_messages(text: str, target: str, source: str | None) -> list[dict[str, str]]:
    src = f"from {source} " if source else ""
    return [{"role": "user", "content": TRANSLATE_INSTRUCTION.format(source=src, target=target, text=text)}]


def remote_info(engine: Any, style: str) -> dict[str, Any]:
    return {
        "name": engine.model,
        "file": None,
        "quant": None,
        "origin": f"remote {engine.root}",
        "prompt_style": style,
    }


def run_task(
    engine: Any,
    style: str,
    info: dict[str, Any],
    question: str,
    messages: list[dict[str, str]],
    config: SearchConfig,
    listener: Listener = ignore,
) -> dict[str, Any]:
    """One search over one prompt; the JSON record of it (also after Ctrl-C or a backend
    failure: see `stopped` and `error`)."""
    if not question.strip():
        raise MarcoError("the prompt is empty", code=2)
    prompt = engine.build_prompt(messages, style)
    result = run_search(engine, prompt, config, listener)
    return result_to_dict(result, question, info, config)
