"""`marco models`, `pull`, `rm` and `doctor`: the registry and the local files."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from marco_cli.cli.flags import real, span, url_option
from marco_cli.engine.repack import Verdict
from marco_cli.errors import MarcoError, clip
from marco_cli.files import marco_home
from marco_cli.record.saved import JsonObject
from marco_cli.store import stores
from marco_cli.store.registry import EntrySpec, HfSource, ModelEntry, Registry, load_registry, parse_spec
from marco_cli.store.stores import StoreFileSpec
from marco_cli.ui.console import download_bar_class, err_console, out_console, visible, warn


def _human(size: int | None) -> str:
    if not size:
        return "?"
    return f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


def _planned_size(entry: ModelEntry, quant: str) -> int | None:
    for source in entry.sources:
        if isinstance(source, HfSource) and quant in source.files:
            sizes = [p.size for p in source.files[quant]]
            return sum(s for s in sizes if s) or None
    return None


@dataclass(frozen=True)
class ModelRow:
    """One registry model and quantization, and whether (and where) it is on this machine."""

    name: str
    quant: str
    default: bool  # the entry's default quantization
    default_model: bool  # the registry's default model
    size: int | None
    downloaded: bool
    path: str | None
    origin: str | None
    aliases: list[str]
    prompt_style: str
    context_length: int | None
    description: str
    store: str = "registry"  # or the tool whose store holds it: ollama, lmstudio
    matches: str | None = None  # another store's file that is this registry entry and quant
    system: str | None = None  # Ollama's system layer
    stops: list[str] = field(default_factory=list)  # Ollama's params `stop`
    prm: str | None = None  # a process reward model's format (--prm): it scores steps, never writes

    @property
    def label(self) -> str:
        return self.name if self.store != "registry" else f"{self.name}:{self.quant}"


def _store_rows(elsewhere: list[StoreFileSpec | MarcoError]) -> list[ModelRow]:
    """What Ollama's and LM Studio's stores hold (a broken Ollama model: a warning)."""
    rows = []
    for found in elsewhere:
        if isinstance(found, MarcoError):
            warn(str(found))
            continue
        rows.append(
            ModelRow(
                name=found.ref,
                quant=found.quant or "?",
                default=False,
                default_model=False,
                size=found.path.stat().st_size,
                downloaded=True,
                path=str(found.path),
                origin=found.tool,
                aliases=[],
                prompt_style=found.prompt_style,
                context_length=None,
                description=f"same file as {found.matches}" if found.matches else "",
                store=found.tool,
                matches=found.matches,
                system=found.system,
                stops=list(found.stops),
            )
        )
    return rows


def _rows(show_all: bool, registry: Registry, elsewhere: list[StoreFileSpec | MarcoError]) -> list[ModelRow]:
    """Every registry model and quant (only the default and local ones unless `show_all`);
    `elsewhere`: the other tools' stores, read once for all of them."""
    from marco_cli.store import download  # huggingface-hub: only for commands that read the cache

    rows = []
    for entry in registry.models.values():
        for quant in entry.quants():
            spec = parse_spec(f"{entry.name}:{quant}", registry)
            local = download.locate(spec, elsewhere=elsewhere)
            if not show_all and local is None and quant != entry.default_quant():
                continue
            size = sum(p.stat().st_size for p in local.parts) if local else None
            rows.append(
                ModelRow(
                    name=entry.name,
                    quant=quant,
                    default=quant == entry.default_quant(),
                    default_model=entry.name == registry.default,
                    size=size or _planned_size(entry, quant),
                    downloaded=local is not None,
                    path=str(local.path) if local else None,
                    origin=local.origin if local else None,
                    aliases=list(entry.aliases),
                    prompt_style=entry.prompt_style,
                    context_length=entry.context_length,
                    description=entry.description,
                    prm=entry.prm,
                )
            )
    return rows


def models_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    show_all: bool = typer.Option(
        False, "--all", help="List every quantization, and what Ollama's and LM Studio's stores hold."
    ),
) -> None:
    """List the models marco knows, and which are on this machine."""
    registry = load_registry()
    elsewhere = stores.all_models(registry.pins())
    rows = _rows(show_all, registry, elsewhere)
    if show_all:
        rows += _store_rows(elsewhere)
    if as_json:
        print(json.dumps([asdict(row) for row in rows], indent=2))
        return
    table = Table(title="marco models", title_justify="left")
    for column in ("name", "quant", "size", "local", "path"):
        table.add_column(column, overflow="fold")
    for row in rows:
        name = row.name + (" (default)" if row.default_model and row.default else "")
        name += f" (= {row.matches})" if row.matches else ""
        name += " (PRM: --prm)" if row.prm else ""
        local = "[green]yes[/]" if row.downloaded else "[dim]no[/]"
        if row.downloaded and row.origin in stores.REMOVE_COMMAND:
            local = f"[green]{row.origin}[/]"
        shown = (Text(visible(name)), Text(visible(row.quant)), _human(row.size), local)
        table.add_row(*shown, Text(visible(row.path or "")))  # names read from disk: escapes shown
    console = out_console()
    console.print(table)
    for row in rows:  # what Ollama's manifest adds: shown, not used (docs/models.md: Ollama and LM Studio)
        said = [f"system {clip(row.system, 60)!r}"] if row.system else []
        said += [f"stop {', '.join(map(repr, row.stops))}"] if row.stops else []
        if said:
            console.print(visible(f"{row.name}: {' · '.join(said)}"), highlight=False, markup=False)


def pull_cmd(
    model: str = typer.Argument(..., help="NAME[:QUANT], hf:OWNER/REPO/FILE.gguf"),
) -> None:
    """Download a model into the Hugging Face cache (or find it in a package or the cache)."""
    from marco_cli.store import download  # huggingface-hub: only for commands that read the cache

    spec = parse_spec(model, load_registry())
    console = err_console()
    local = download.pull(spec, tqdm_class=download_bar_class(console))
    console.print(f"{spec.label}: {local.path} ({local.origin})")
    if not sys.stdout.isatty():
        print(local.path)


def rm_cmd(
    model: str = typer.Argument(..., help="NAME[:QUANT]"),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask."),
) -> None:
    """Remove a model's downloaded files from the cache."""
    from marco_cli.store import download  # huggingface-hub: only for commands that read the cache

    spec = parse_spec(model, load_registry())
    if isinstance(spec, StoreFileSpec):
        how = stores.REMOVE_COMMAND[spec.tool].replace("NAME", spec.ref.split(":", 1)[1])
        raise MarcoError(
            f"{spec.ref} is {spec.tool}'s: marco never deletes from another tool's store ({how})", code=2
        )
    if not isinstance(spec, EntrySpec):
        raise MarcoError("marco rm takes a registry name; delete other files yourself")
    local = download.locate(spec)
    if local is not None and local.origin.startswith(("ollama:", "lmstudio:")):
        tool = local.origin.split(":", 1)[0]
        raise MarcoError(
            f"{spec.label} is used from {local.origin}, which marco never deletes (use {tool}'s own command)",
            code=2,
        )
    if local is None or not local.origin.startswith("hf"):
        raise MarcoError(f"{spec.label} has no downloaded files to remove")
    if not yes:
        if not sys.stdin.isatty():
            raise MarcoError("refusing to delete without --yes when not on a terminal", code=2)
        typer.confirm(f"Delete {len(local.parts)} file(s) of {spec.label}?", abort=True)
    removed = download.remove(spec)
    for path in removed:
        err_console().print(f"removed {path}")


def _doctor_backend(url: str, as_json: bool, timeout: float) -> None:
    from marco_cli.engine.ollama import connect

    report = connect(url, retries=1, timeout=timeout).describe()
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        console = out_console()
        for key in ("url", "model", "server", "slots", "in_flight", "logprobs"):
            console.print(f"{key:<17} {report[key]}", highlight=False)
    if not report["logprobs"]:
        raise MarcoError(report["problem"] or "the server returns no per-token logprobs")


def _repack_json(verdict: Verdict | None, amx: list[str]) -> JsonObject:
    if verdict is None:
        reason = "AMX present: probed at the first model load"
        return {"repack": None, "source": "undecided", "reason": reason}
    return {"repack": verdict.repack, "source": verdict.source, "reason": verdict.reason, "amx": amx}


def _repack_line(verdict: Verdict | None) -> str:
    if verdict is None:
        return "not decided yet (AMX present: probed at the first model load; undecided)"
    state = "on" if verdict.repack else "off"
    return f"{state} ({escape(verdict.reason)}; {verdict.source})"


def doctor_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    backend: str | None = typer.Option(
        None, callback=url_option, help="Check a server instead: reachable, model, logprobs, slots."
    ),
    timeout: float = typer.Option(
        10.0,
        callback=real(0.1, 86_400),
        metavar=span(0.1, 86_400),
        help="Seconds to wait for the server (--backend).",
    ),
) -> None:
    """Report the llama.cpp build, GPU offload, paths and local models (or a server's fitness)."""
    from marco_cli.store import download  # huggingface-hub: only for commands that read the cache

    if backend:
        return _doctor_backend(backend, as_json, timeout)
    from marco_cli.engine import llama, repack

    gpu = llama.gpu_offload_supported()
    try:
        known = load_registry()
        rows = _rows(False, known, stores.all_models(known.pins()))
        present, registry = [row.label for row in rows if row.downloaded], "ok"
    except MarcoError as exc:  # a broken models.yaml is one of the things doctor reports
        present, registry = [], str(exc)
    verdict = repack.without_probe()
    home = marco_home()
    hf_endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    if as_json:
        report = {
            "llama_cpp_python": llama.library_version(),
            "gpu_offload": gpu,
            "system_info": llama.system_info(),
            "physical_cores": llama.physical_cores(),
            "repack": _repack_json(verdict, repack.risky_features(repack.cpu_flags())),
            "marco_home": str(home),
            "user_models_yaml": str(home / "models.yaml"),
            "hf_cache": str(download.hf_cache_dir()),
            "hf_endpoint": hf_endpoint,
            "offline": download.offline(),
            "registry": registry,
            "models_present": present,
            "stores": {tool: [str(p) for p in paths] for tool, paths in stores.found_stores().items()},
        }
        print(json.dumps(report, indent=2))
        return
    console = out_console()
    console.print(f"llama-cpp-python  {llama.library_version()}")
    state = "[green]supported[/]" if gpu else "[yellow]not in this build (CPU only)[/]"
    console.print(f"GPU offload       {state}")
    console.print(f"build             {llama.system_info()}")
    console.print(f"physical cores    {llama.physical_cores()}")
    console.print(f"weight repacking  {_repack_line(verdict)}", highlight=False)
    if not gpu:
        console.print(
            '  rebuild for NVIDIA:  CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall '
            "--no-cache-dir llama-cpp-python\n"
            '  rebuild for Apple:   CMAKE_ARGS="-DGGML_METAL=on" pip install --force-reinstall '
            "--no-cache-dir llama-cpp-python"
        )
    console.print(f"config            {home / 'models.yaml'}")
    if registry != "ok":
        console.print(f"registry          [red]{escape(registry)}[/]")
    console.print(f"HF cache          {download.hf_cache_dir()}  (endpoint {hf_endpoint})")
    console.print(f"offline           {download.offline()}")
    console.print(f"models present    {', '.join(present) or 'none'}")
    for tool, paths in stores.found_stores().items():
        where = ", ".join(str(p) for p in paths) or "not found"
        console.print(f"{tool + ' store':<17} {where}", highlight=False, markup=False)


COMMANDS = {"models": models_cmd, "pull": pull_cmd, "rm": rm_cmd, "doctor": doctor_cmd}
