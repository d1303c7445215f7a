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
from marco_cli.contract import PRM_FORMATS, ChatEngine, PrmFormat
from marco_cli.errors import MarcoError, clip
from marco_cli.record.record import ModelInfo
from marco_cli.search.verifier import RANKS
from marco_cli.store.registry import ModelEntry, ModelSpec, Registry, load_registry, parse_spec
from marco_cli.tasks import Aides, Opened
from marco_cli.ui.console import download_bar_class, err_console, warn


@dataclass(frozen=True)
class Session:
    """One command's opened model with the command's name and options, the verifier model
    when `--verifier`/`--verifier-backend` named another one, and the process reward model a
    run ranking by `--value prm` asks. `with session:` closes them all."""

    command: str
    opened: Opened
    options: Options
    verifier: Opened | None = None
    prm: Opened | None = None
    prm_format: PrmFormat = "math-shepherd"

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            for aide in (self.verifier, self.prm):
                if aide is not None:
                    aide.engine.close()
        finally:
            self.engine.close()

    @property
    def aides(self) -> Aides:
        return Aides(self.verifier, self.prm, self.prm_format)

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


def prm_options(options: Options) -> Options | None:
    """The options the process reward model opens with: `--prm` (default with `--prm-backend`:
    the model that server runs) on `--prm-backend` (default: in-process). None: neither given."""
    engine = options.engine
    if engine.prm is None and engine.prm_backend is None:
        return None
    own = replace(engine, backend=engine.prm_backend, parallel=None, prm=None, prm_backend=None)
    return replace(options, model=engine.prm or options.model, engine=own)


def _entry_named(model: str, registry: Registry) -> ModelEntry | None:
    """The registry entry a model spec names (None: a file, or a Hub, Ollama or LM Studio
    spec); an unknown name is the registry's error."""
    if model.endswith(".gguf") or model.startswith(("hf:", "ollama:", "lmstudio:")):
        return None
    return registry.lookup(model.split(":")[0])


def prm_format(options: Options, registry: Registry) -> PrmFormat:
    """`--prm-format`, else the format the PRM's registry entry names; a usage error when
    neither says (a GGUF file or a server's model that is not in the registry)."""
    given = options.engine.prm_format
    if given is not None:
        return next(f for f in PRM_FORMATS if f == str(given).lower())
    named = options.engine.prm
    entry = _entry_named(named, registry) if named is not None else None
    if entry is not None and entry.prm is not None:
        return entry.prm
    shown = clip(named or options.engine.prm_backend or "", 60)
    raise MarcoError(
        f"say how the process reward model '{shown}' reads a path: --prm-format "
        f"{' or '.join(PRM_FORMATS)} (only registry PRMs are known)",
        code=2,
    )


def _open_prm(options: Options, wanted_prm: bool) -> Opened | None:
    """The PRM when the run asks one and `--prm`/`--prm-backend` names it (one named that
    nothing asks is said and not opened)."""
    wanted = prm_options(options)
    if wanted is None or not wanted_prm:
        if wanted is not None:
            warn("--prm/--prm-backend not opened: no run here ranks steps by --value prm")
        return None
    try:
        return engine_factory(wanted, 1)
    except MarcoError as exc:
        shown = clip(wanted.engine.backend or wanted.model, 60)
        raise MarcoError(f"the process reward model ({shown}): {exc}", code=exc.code) from None


def open_session(
    command: str, options: Options, branches: int, judged: bool = True, wanted_prm: bool = False
) -> Session:
    """The command's model, its verifier when another is named and its process reward model
    when a run asks one (both opened after it: a model that cannot load fails before they are
    loaded for nothing). `judged`: whether any reward of the command asks a verifier; a verifier
    nothing asks is said and not opened; `wanted_prm`: whether a run ranks by `--value prm`."""
    if wanted_prm and prm_options(options) is None:
        raise MarcoError(
            "--value prm needs a process reward model: --prm MODEL (or --prm-backend URL)", code=2
        )
    registry = load_registry()
    # the PRM's format before any model loads: a PRM it cannot read must not cost the loading
    form = prm_format(options, registry) if wanted_prm else "math-shepherd"
    _warn_if_prm(options.model, registry)
    wanted = verifier_options(options)
    if wanted is not None and not judged:
        warn(
            "--verifier/--verifier-backend not opened: no reward of this run asks a verifier "
            "(judge, answered+judge and finished+judge-steps do)"
        )
        wanted = None
    opened = engine_factory(options, branches)
    verifier: Opened | None = None
    try:
        try:
            verifier = engine_factory(wanted, RANKS) if wanted is not None else None
        except MarcoError as exc:
            raise MarcoError(f"the verifier ({_named(options)}): {exc}", code=exc.code) from None
        prm = _open_prm(options, wanted_prm)
    except BaseException:
        for aide in (verifier, opened):
            if aide is not None:
                aide.engine.close()
        raise
    return Session(command, opened, options, verifier, prm, form)


def _warn_if_prm(model: str, registry: Registry) -> None:
    """A registry PRM named as the searching model is said: it scores steps, its answers are
    not answers (it still runs: a user may mean it)."""
    try:
        entry = _entry_named(model, registry)
    except MarcoError:
        return  # an unknown name is said where the model opens
    if entry is not None and entry.prm is not None:
        warn(f"{entry.name} is a process reward model: it scores steps (--prm {entry.name}), not answers")


def _named(options: Options) -> str:
    """The verifier as the user named it, for its errors."""
    engine = options.engine
    return clip(engine.verifier_backend or engine.verifier or "the searching model", 60)


def engine_settings(engine: ChatEngine) -> dict[str, int | bool]:
    """What the engine actually used, for the record's settings."""
    return engine.settings()
