"""The seam between the commands and the engines: a frozen `Session` built by `open_session`.

Every engine a command uses comes from `engine_factory`, one replaceable function: tests swap
in a scripted model there (as simonw/llm's tests register a mock model through the real plugin
hook) and see exactly which options reached the engine, without loading one.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import typer

from marco_cli.cli import signals
from marco_cli.cli.options import EngineOptions, Options
from marco_cli.contract import ChatEngine
from marco_cli.errors import MarcoError, clip
from marco_cli.record.record import ModelInfo
from marco_cli.search.verifier import RANKS
from marco_cli.store.registry import ModelSpec, load_registry, parse_spec
from marco_cli.tasks import Opened
from marco_cli.ui.console import download_bar_class, err_console, warn


@dataclass(frozen=True)
class Session:
    """One command's opened model with the command's name and options, and the verifier model
    when `--verifier`/`--verifier-backend` named another one. `with session:` closes both."""

    command: str
    opened: Opened
    options: Options
    verifier: Opened | None = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.verifier is not None:
                self.verifier.engine.close()
        finally:
            self.engine.close()

    @property
    def engine(self) -> ChatEngine:
        return self.opened.engine

    @property
    def style(self) -> str:
        return self.opened.style

    @property
    def info(self) -> ModelInfo:
        return self.opened.info


if TYPE_CHECKING:
    from marco_cli.store.download import LocalModel

EngineFactory = Callable[[Options, int], Opened]


def _local_model(model: str, yes: bool) -> tuple[ModelSpec, LocalModel]:
    from marco_cli.store import download  # huggingface-hub loads only when a model is opened

    spec = parse_spec(model, load_registry())
    local = download.locate(spec, verify=True)
    if local is not None:
        return spec, local
    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    if not yes and not interactive:
        raise MarcoError(f"{spec.label} is not downloaded: run 'marco pull {model}' (or pass --yes)")
    if not yes:
        typer.confirm(f"{spec.label} is not downloaded. Download it now?", abort=True, err=True)
    return spec, download.pull(spec, tqdm_class=download_bar_class(err_console()))


def _remote_style(model: str) -> str:
    """The prompt style for a model a server runs: the registry entry's (an `ollama:` name
    by its base name, since that store may be on another machine), else plain."""
    registry = load_registry()
    if model.startswith("ollama:"):
        base = model.removeprefix("ollama:").split(":")[0].split("/")[-1]
        return registry.models[base].prompt_style if base in registry.models else "plain"
    return "plain" if model.endswith(".gguf") else parse_spec(model, registry).prompt_style


def _open_remote(model: str, options: EngineOptions, branches: int) -> Opened:
    """A server's engine: Ollama's own API when `/api/version` says Ollama (the model it runs
    is `-m`, without `ollama:`), else llama-server's or an OpenAI-compatible one."""
    from marco_cli.engine.ollama import connect

    local_only = model.endswith(".gguf") or model.startswith(("hf:", "lmstudio:"))
    named = None if local_only else model.removeprefix("ollama:")  # the name Ollama runs
    engine = connect(
        options.backend or "",
        named,
        timeout=options.timeout,
        parallel=options.parallel,
        fallback_parallel=branches,
    )
    style = _remote_style(model)
    info = ModelInfo(engine.model, None, None, f"remote {engine.root}", style)
    return Opened(engine, style, info)


def open_engine(chosen: Options, branches: int) -> Opened:
    """The real factory: a RemoteEngine for --backend, else the local llama.cpp engine.

    `branches` is how many requests a search step sends together (children or samples): the
    remote engine keeps that many in flight unless --parallel says otherwise; locally
    --parallel K gives K KV streams decoded together (default 1).
    """
    model, options = chosen.model, chosen.engine
    if options.backend:
        return _open_remote(model, options, branches)
    from marco_cli.engine.llama import Engine

    spec, local = _local_model(model, chosen.output.yes)
    parallel = options.parallel or 1
    local_engine = Engine(
        local.path,
        ctx=options.ctx,
        gpu_layers=options.gpu_layers,
        cpu=options.cpu,
        threads=options.threads,
        verbose=options.verbose,
        n_seq=parallel,
        parallel=parallel,
        repack=options.repack,
    )
    verdict = local_engine.repack_verdict
    if verdict.source == "probe" and not verdict.repack:
        warn(f"{verdict.reason}: running without weight repacking (remembered; --repack to force)")
    local_engine.watch_interrupts(signals.WATCH)
    info = ModelInfo(spec.name, str(local.path), spec.quant, local.origin, spec.prompt_style)
    return Opened(local_engine, spec.prompt_style, info)


engine_factory: EngineFactory = open_engine


def verifier_options(options: Options) -> Options | None:
    """The options the verifier model opens with: `--verifier` (default: -m) on
    `--verifier-backend` (default: in-process), the engine's other settings as the search's.
    None when neither is given: the searching model judges."""
    engine = options.engine
    if engine.verifier is None and engine.verifier_backend is None:
        return None
    own = replace(
        engine, backend=engine.verifier_backend, parallel=None, verifier=None, verifier_backend=None
    )
    return replace(options, model=engine.verifier or options.model, engine=own)


def open_session(command: str, options: Options, branches: int, judged: bool = True) -> Session:
    """The command's model, and its verifier when another is named (opened second: a model
    that cannot load fails before the verifier is loaded for nothing). `judged`: whether any
    reward of the command asks a verifier; a verifier nothing asks is said and not opened."""
    wanted = verifier_options(options)
    if wanted is not None and not judged:
        warn(
            "--verifier/--verifier-backend not opened: no reward of this run asks a verifier "
            "(judge, answered+judge and finished+judge-steps do)"
        )
        wanted = None
    opened = engine_factory(options, branches)
    if wanted is None:
        return Session(command, opened, options)
    try:
        verifier = engine_factory(wanted, RANKS)
    except MarcoError as exc:
        opened.engine.close()
        raise MarcoError(f"the verifier ({_named(wanted)}): {exc}", code=exc.code) from None
    except BaseException:
        opened.engine.close()
        raise
    return Session(command, opened, options, verifier)


def _named(wanted: Options) -> str:
    """The verifier as the user named it, for its errors."""
    return clip(wanted.engine.backend or wanted.model or "the searching model", 60)


def engine_settings(engine: ChatEngine) -> dict[str, int | bool]:
    """What the engine actually used, for the record's settings."""
    return engine.settings()
