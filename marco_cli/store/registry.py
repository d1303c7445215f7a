"""The model registry: `models.yaml` (shipped) merged with the user's file, validated into
frozen dataclasses, and the parsing of model specs (`NAME[:QUANT]`, a `.gguf` path, `hf:REPO/FILE`).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from marco_cli.contract import PRM_FORMATS, PrmFormat
from marco_cli.errors import MarcoError, clip
from marco_cli.files import marco_home, user_path
from marco_cli.store.stores import Pin, StoreFileSpec, resolve_lmstudio, resolve_ollama

PROMPT_STYLES = ("marco", "plain")
_SIZE_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


@dataclass(frozen=True)
class FilePart:
    """One GGUF file (or one part of a split GGUF)."""

    name: str
    size: int | None = None  # approximate bytes, for display and planning
    exact_bytes: int | None = None  # verified after download when given
    sha256: str | None = None  # verified after download when given


@dataclass(frozen=True)
class HfSource:
    repo: str
    default_quant: str
    files: dict[str, tuple[FilePart, ...]]
    revision: str = "main"


@dataclass(frozen=True)
class PackageSource:
    package: str
    resource: str
    quant: str
    install: str


Source = HfSource | PackageSource


@dataclass(frozen=True)
class ModelEntry:
    name: str
    aliases: tuple[str, ...]
    description: str
    architecture: str
    parameters: str
    context_length: int | None  # the model's trained context, informational (`models --json`);
    # the engine reads the real one from the GGUF file
    license: str
    prompt_style: str
    sources: tuple[Source, ...]
    prm: PrmFormat | None = None  # a process reward model: the format it scores steps in

    def quants(self) -> list[str]:
        seen: list[str] = []
        for source in self.sources:
            names = list(source.files) if isinstance(source, HfSource) else [source.quant]
            seen.extend(q for q in names if q not in seen)
        return seen

    def default_quant(self) -> str:
        first = self.sources[0]
        return first.default_quant if isinstance(first, HfSource) else first.quant


@dataclass(frozen=True)
class Registry:
    default: str
    models: dict[str, ModelEntry]

    def names(self) -> list[str]:
        return list(self.models)

    def pins(self) -> list[Pin]:
        """Every registry file another tool's store can be matched against."""
        return pins_of(self.models.values())

    def lookup(self, name: str) -> ModelEntry:
        key = name.lower()
        if key in self.models:
            return self.models[key]
        for entry in self.models.values():
            if key in (a.lower() for a in entry.aliases):
                return entry
        known = self.names() + [a for e in self.models.values() for a in e.aliases]
        close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise MarcoError(f"unknown model '{clip(name)}'.{hint} Run 'marco models' to list them.")


@dataclass(frozen=True)
class EntrySpec:
    """A registry entry at one of its quants (`marco-o1:Q8_0`)."""

    entry: ModelEntry
    quant: str

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def label(self) -> str:
        return f"{self.entry.name}:{self.quant}"

    @property
    def prompt_style(self) -> str:
        return self.entry.prompt_style


@dataclass(frozen=True)
class FileSpec:
    """A GGUF file on this machine, given by its path."""

    path: Path
    quant: None = None
    prompt_style: str = "plain"

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def label(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class HfFileSpec:
    """One file of a Hugging Face repository (`hf:OWNER/REPO/FILE.gguf`)."""

    repo: str
    file: str
    quant: None = None
    prompt_style: str = "plain"

    @property
    def name(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        return f"hf:{self.repo}/{self.file}"


# What the user asked for: a registry entry with a quant, a local file, a file on the Hub, or
# a model another tool keeps (Ollama, LM Studio).
ModelSpec = EntrySpec | FileSpec | HfFileSpec | StoreFileSpec


def pins_of(entries: Iterable[ModelEntry]) -> list[Pin]:
    """The first file of each quant of each entry's Hub sources: what identifies that quant in
    another tool's store (its sha256, or its file name and size)."""
    return [
        Pin(parts[0].sha256, parts[0].name, parts[0].exact_bytes, entry.name, quant, entry.prompt_style)
        for entry in entries
        for source in entry.sources
        if isinstance(source, HfSource)
        for quant, parts in source.files.items()
    ]


def parse_size(value: Any, where: str) -> int:  # Any: a value from YAML, checked here
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]?B)\s*", str(value), re.IGNORECASE)
    if not match:
        raise MarcoError(f"{where}: size '{value}' is not like '4.68 GB'")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])


# Any out: the value passed the isinstance check against `kind`, which the type system cannot
# carry from a runtime `type` argument (the YAML boundary)
def _require(mapping: dict[str, object], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in mapping:
        raise MarcoError(f"{where}: missing field '{key}'")
    value = mapping[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise MarcoError(f"{where}: field '{key}' must be a {name}")
    return value


def _positive(value: int, key: str, where: str) -> int:
    if value <= 0:
        raise MarcoError(f"{where}: field '{key}' must be a positive number, got {value}")
    return value


def _relative_file(name: str, key: str, where: str) -> str:
    """A file inside its package or repository: no absolute path and no '..' (a registry entry
    must not point at /etc/passwd, nor a download land outside the cache)."""
    parts = name.replace("\\", "/").split("/")
    if not name or name.startswith(("/", "~")) or any(p in ("", ".", "..") for p in parts):
        raise MarcoError(f"{where}: field '{key}' must be a file inside the package or repo, not '{name}'")
    return name


def _parse_part(raw: Any, where: str) -> FilePart:
    if isinstance(raw, str):
        return FilePart(name=_relative_file(raw, "file", where))
    if not isinstance(raw, dict):
        raise MarcoError(f"{where}: a file must be a name or a mapping with 'file'")
    name = _relative_file(_require(raw, "file", str, where), "file", where)
    size = parse_size(raw["size"], where) if "size" in raw else None
    exact = _require(raw, "bytes", int, where) if "bytes" in raw else None
    sha = _require(raw, "sha256", str, where).lower() if "sha256" in raw else None
    if sha is not None and not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise MarcoError(f"{where}: field 'sha256' must be 64 hex digits")
    return FilePart(name=name, size=size if size is not None else exact, exact_bytes=exact, sha256=sha)


def _parse_source(raw: Any, where: str) -> Source:
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in ("hf", "package"):
        raise MarcoError(f"{where}: a source must be a mapping with one key, 'hf' or 'package'")
    kind, body = next(iter(raw.items()))
    where = f"{where} ({kind})"
    if not isinstance(body, dict):
        raise MarcoError(f"{where}: must be a mapping")
    if kind == "package":
        return PackageSource(
            package=_require(body, "name", str, where),
            resource=_relative_file(_require(body, "resource", str, where), "resource", where),
            quant=_require(body, "quant", str, where),
            install=str(body.get("install", f"pip install {body['name']}")),
        )
    repo = _require(body, "repo", str, where)
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
        raise MarcoError(f"{where}: field 'repo' must look like 'owner/name', got '{repo}'")
    raw_files = _require(body, "files", dict, where)
    if not raw_files:
        raise MarcoError(f"{where}: field 'files' is empty")
    files: dict[str, tuple[FilePart, ...]] = {}
    for quant, spec in raw_files.items():
        parts = spec if isinstance(spec, list) else [spec]
        if not parts:
            raise MarcoError(f"{where}: quant '{quant}' lists no files")
        files[str(quant)] = tuple(_parse_part(p, f"{where} quant '{quant}'") for p in parts)
    default = str(body.get("default_quant", next(iter(files))))
    if default not in files:
        raise MarcoError(f"{where}: default_quant '{default}' is not one of {', '.join(files)}")
    return HfSource(repo=repo, default_quant=default, files=files, revision=str(body.get("revision", "main")))


def _context_length(raw: dict[str, Any], where: str) -> int | None:
    """Optional: registries from before it was optional still load, and a wrong value is still an error."""
    if "context_length" not in raw:
        return None
    return _positive(_require(raw, "context_length", int, where), "context_length", where)


def _parse_entry(name: str, raw: Any, where: str) -> ModelEntry:
    where = f"{where}: model '{name}'"
    if not isinstance(raw, dict):
        raise MarcoError(f"{where}: must be a mapping")
    style = str(raw.get("prompt_style", "plain"))
    if style not in PROMPT_STYLES:
        raise MarcoError(f"{where}: field 'prompt_style' must be one of {', '.join(PROMPT_STYLES)}")
    aliases = raw.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise MarcoError(f"{where}: field 'aliases' must be a list of names")
    sources = _require(raw, "sources", list, where)
    if not sources:
        raise MarcoError(f"{where}: field 'sources' is empty")
    prm = raw.get("prm")
    formats = {str(f): f for f in PRM_FORMATS}
    if prm is not None and prm not in formats:
        raise MarcoError(f"{where}: field 'prm' must be one of {', '.join(PRM_FORMATS)}")
    return ModelEntry(
        name=name.lower(),
        aliases=tuple(aliases),
        description=str(raw.get("description", "")),
        architecture=str(raw.get("architecture", "unknown")),
        parameters=str(raw.get("parameters", "?")),
        context_length=_context_length(raw, where),
        license=str(raw.get("license", "unknown")),
        prompt_style=style,
        sources=tuple(_parse_source(s, f"{where} source {i + 1}") for i, s in enumerate(sources)),
        prm=formats[prm] if prm is not None else None,
    )


def parse_registry(text: str, where: str, base: Registry | None = None) -> Registry:
    """Parse one models.yaml; entries override same-named entries of `base`."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise MarcoError(f"{where}:{line} is not valid YAML") from None
    except RecursionError:  # PyYAML composes recursively: 100,000 `[` is no registry
        raise MarcoError(f"{where}: is nested too deep to be a models.yaml") from None
    if data is None and base is not None:
        return base
    if not isinstance(data, dict):
        raise MarcoError(f"{where}: must be a mapping with a 'models' key")
    raw_models = data.get("models", {})
    if not isinstance(raw_models, dict):
        raise MarcoError(f"{where}: field 'models' must be a mapping of name to entry")
    models = dict(base.models) if base else {}
    for name, raw in raw_models.items():
        entry = _parse_entry(str(name), raw, where)
        models[entry.name] = entry
    default = str(data.get("default", base.default if base else next(iter(models), "")))
    if default.lower() not in models:
        raise MarcoError(f"{where}: default model '{default}' is not defined")
    return Registry(default=default.lower(), models=models)


def load_registry() -> Registry:
    """The shipped registry, overridden by `$MARCO_HOME/models.yaml` when it exists."""
    shipped = resources.files("marco_cli").joinpath("models.yaml").read_text(encoding="utf-8")
    registry = parse_registry(shipped, "models.yaml (shipped)")
    user = marco_home() / "models.yaml"
    if user.is_file():
        try:
            text = user.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise MarcoError(f"{user}: byte {exc.start} is not UTF-8; save the file as UTF-8") from None
        except OSError as exc:
            raise MarcoError(f"{user}: cannot be read ({exc.strerror})") from None
        registry = parse_registry(text, str(user), base=registry)
    return registry


def _hf_spec(text: str) -> HfFileSpec:
    """`hf:OWNER/REPO/FILE.gguf`, checked by the Hub's own rules for repo ids (huggingface-hub's
    `validate_repo_id`: characters, length 96) and kept inside the cache (no `..`)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    parts = text[3:].split("/", 2)
    if len(parts) != 3 or not all(parts) or not parts[2].endswith(".gguf"):
        raise MarcoError(f"'{clip(text)}' is not like hf:OWNER/REPO/FILE.gguf", code=2)
    names = [*parts[:2], *parts[2].split("/")]
    if any(p in (".", "..") or not re.fullmatch(r"[\w.-]+", p) for p in names):
        raise MarcoError(
            f"'{clip(text)}': owner, repo and file names cannot hold '..' or odd characters", code=2
        )
    if any(len(p) > 255 for p in names):
        raise MarcoError(f"'{clip(text)}': a name is longer than 255 characters", code=2)
    repo = f"{parts[0]}/{parts[1]}"
    try:
        validate_repo_id(repo)
    except HFValidationError as exc:
        why = str(exc).split(". ")[0]
        raise MarcoError(f"'{clip(text)}' names no Hugging Face repo ({clip(why, 120)})", code=2) from None
    return HfFileSpec(repo, parts[2])


def parse_spec(text: str, registry: Registry) -> ModelSpec:
    """`NAME[:QUANT]`, a path to a `.gguf` file, `hf:OWNER/REPO/FILE.gguf`, `ollama:NAME[:TAG]`
    or `lmstudio:PUBLISHER/REPO[/FILE.gguf]`."""
    text = text.strip()
    if not text:
        raise MarcoError("empty model name")
    if text.startswith("hf:"):
        return _hf_spec(text)
    if text.startswith("ollama:"):
        return resolve_ollama(text.removeprefix("ollama:"), registry.pins())
    if text.startswith("lmstudio:"):
        return resolve_lmstudio(text.removeprefix("lmstudio:"), registry.pins())
    if text.endswith(".gguf") or os.sep in text or text.startswith("."):
        path = user_path(text, "the model path")
        try:
            found, folder = path.is_file(), path.is_dir()
        except OSError as exc:  # a name too long for the file system, a loop of links
            raise MarcoError(f"cannot read the model path '{clip(text)}': {exc.strerror}", code=2) from None
        if folder:
            raise MarcoError(f"the model path {clip(str(path))} is a folder, not a GGUF file", code=2)
        if not found:
            raise MarcoError(f"model file not found: {clip(str(path))}")
        return FileSpec(path.resolve())
    name, _, quant = text.partition(":")
    entry = registry.lookup(name)
    quants = entry.quants()
    if not quant:
        return EntrySpec(entry, entry.default_quant())
    match = next((q for q in quants if q.lower() == quant.lower()), None)
    if match is None:
        raise MarcoError(f"model '{entry.name}' has no quant '{quant}'; it has {', '.join(quants)}")
    return EntrySpec(entry, match)
