"""`marco serve`: the search behind an OpenAI-compatible HTTP API (marco_cli/server).

A request's search settings are checked by the same Click parameters as `marco solve`'s
options (a request's `{"marco": {"iterations": 0}}` fails exactly as `--iterations 0` does),
with the command line's own values as the defaults.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from marco_cli import tasks
from marco_cli.cli.flags import ClickException
from marco_cli.cli.option_table import SEARCH
from marco_cli.cli.options import Options, config_from, search_parser, with_options
from marco_cli.cli.session import engine_settings, open_session, prm_options
from marco_cli.cli.settings import SettingError, settings_argv
from marco_cli.contract import ChatEngine
from marco_cli.errors import MarcoError, UsageError
from marco_cli.record.record import Record
from marco_cli.runs import history
from marco_cli.search import strategies
from marco_cli.search.config import SearchConfig
from marco_cli.ui.console import err_console, warn

if TYPE_CHECKING:  # the serve extra is imported only when `marco serve` runs
    from starlette.applications import Starlette

    from marco_cli.server.protocol import ChatRequest
    from marco_cli.server.runner import Runner

_UNUSED_OUTPUT = ("as_json", "hide_thought", "quiet", "html")


def _argv(settings: Mapping[str, object]) -> list[str]:
    from marco_cli.server.protocol import ApiError

    try:
        return settings_argv(settings, SEARCH, "search option")
    except SettingError as exc:
        raise ApiError(400, str(exc), param=f"marco.{exc.name}") from None


def configurer(defaults: Mapping[str, Any]) -> Callable[[ChatRequest, str | None], SearchConfig]:
    """The server's `configure`: a request's settings over the command line's, as a SearchConfig."""
    from marco_cli.server.protocol import ApiError

    parser = search_parser()

    def configure(request: ChatRequest, strategy: str | None) -> SearchConfig:
        settings = dict(request.settings)
        if strategy is not None:
            settings.setdefault("strategy", strategy)
        argv = _argv(settings)
        try:
            with parser.make_context("marco serve", argv, default_map=dict(defaults)) as ctx:
                search = parser.callback(**ctx.params)
        except ClickException as exc:
            raise ApiError(400, exc.format_message(), param="marco") from None
        try:
            config = config_from(search, numeric_answer=tasks.wants_number(request.question))
        except MarcoError as exc:
            raise ApiError(400, str(exc), param="marco") from None
        return config

    return configure


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def served_name(model: str) -> str:
    """The model id clients ask for: `-m` as given (a .gguf path: its file name's stem)."""
    return Path(model).stem if model.endswith(".gguf") else model


def model_ids(base: str) -> dict[str, str | None]:
    """The ids served: the model's (its default strategy), and `MODEL:STRATEGY` for each in the table."""
    return {base: None, **{f"{base}:{s}": s for s in strategies.names()}}


@with_options(exclude=_UNUSED_OUTPUT)
def serve_cmd(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="MARCO_API_KEY", help="Require this key (Authorization: Bearer KEY)."),
    ] = None,
    queue: Annotated[int, typer.Option(min=0, max=10_000, help="Requests that may wait for a search.")] = 16,
    *,
    options: Options,
) -> None:
    """Serve the search behind an OpenAI-compatible API (/v1/chat/completions, /v1/models)."""
    if api_key is not None and not api_key.strip():
        raise UsageError("--api-key is empty: give a key, or leave it out to serve without one")
    try:
        import uvicorn  # noqa: F401  (the extra's server, used by _run)

        from marco_cli.server.app import ServerSettings, build_app
        from marco_cli.server.runner import Runner, Served
    except ImportError as exc:
        raise MarcoError(
            f"marco serve needs its extra: pip install 'marco-cli[serve]' ({exc.name} is missing)"
        ) from None
    listening = _bind(host, port)  # a taken port fails before the model loads
    config = config_from(options.search)
    # a PRM named is opened: a request may ask a step search to rank by it
    named_prm = prm_options(options) is not None
    session = open_session("serve", options, strategies.branches(config), wanted_prm=named_prm)
    engine = session.engine
    local = options.engine.backend is None
    served = Served(session.opened, _finisher(engine, options.output.no_log), session.aides)
    # one search at a time on an in-process engine: the searching one, a verifier's or a PRM's
    local_verifier = (session.verifier is not None and options.engine.verifier_backend is None) or (
        session.prm is not None and options.engine.prm_backend is None
    )
    workers = 1 if local or local_verifier else int(engine.parallel)
    runner = Runner(served, workers, queue)
    ids = model_ids(served_name(options.model))
    app = build_app(runner, ServerSettings(ids, configurer(options.search), api_key))
    console = err_console()
    if not _loopback(host) and api_key is None:
        warn(f"listening on {host} without --api-key: anyone who can reach it can run searches")
    at = "one search at a time" if local else f"{workers} searches at a time"
    bound_host, bound_port = listening.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    console.print(
        f"marco serve: {next(iter(ids))} on http://{shown}:{bound_port}/v1 ({at}, {queue} may wait)",
        highlight=False,
        markup=False,
    )
    with session:
        try:
            _run(app, runner, listening)
        finally:
            runner.close()


def _finisher(engine: ChatEngine, no_log: bool) -> Callable[[Record], Record]:
    """What happens to a served run's record: the engine's settings, the history, a log line."""
    console = err_console()

    def finish(record: Record) -> Record:
        record = record.with_engine(engine_settings(engine))
        if not no_log:
            run_id, warning = history.save_or_keep("serve", record)
            record = record.with_run_id(run_id)
            if warning:
                warn(warning)
        console.print(
            f"run {record.run_id or '-'}: {record.answer[:60]!r} ({record.search.strategy}, "
            f"{record.iterations} iterations, {record.tokens.generated} tokens, "
            f"{record.seconds:.1f} s, {record.stopped})",
            highlight=False,
            markup=False,
        )
        return record

    return finish


def _run(app: Starlette, runner: Runner, listening: socket.socket) -> None:
    """uvicorn on the bound socket; a signal first ends every search (as interrupted, saved)."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            runner.cancel_all()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=30)
    Server(config).run(sockets=[listening])


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a taken port is a one-line error and port 0
    can be said as the port it became."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        raise MarcoError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", code=2) from None
    sock.set_inheritable(True)
    return sock


COMMANDS = {"serve": serve_cmd}
