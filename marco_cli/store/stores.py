"""Models other tools already keep on this machine: Ollama's store and LM Studio's folders,
loaded in place (no copy, no download).

Ollama's layout, as its source writes and reads it (ollama/ollama, `envconfig.Models`,
`types/model/name.go` `ParseNameBare`/`isValidPart`, `manifest/paths.go`, `manifest/manifest.go`):
the store is `$OLLAMA_MODELS`, else `~/.ollama/models` (the Linux service's is
`/usr/share/ollama/.ollama/models`). A name is `[HOST/][NAMESPACE/]MODEL[:TAG]` with the defaults
`registry.ollama.ai`, `library` and `latest`; each part starts with a letter, digit or `_` and
holds only those, `-` and `.` (not `.` in a namespace), at most 80 characters (a host 350, and
`:` for its port). The manifest of a name is `manifests/HOST/NAMESPACE/MODEL/TAG` (a JSON file),
or in the newer layout `manifests-v2/HOST/NAMESPACE/MODEL/TAG` with `ollama.com` as the public
host, where the tag is a link to (or a copy of) a content-addressed blob holding the manifest;
the v2 path is looked up first, and the public host under either spelling. A manifest's
`layers` name blobs by `digest` (`sha256:<64 hex>`, stored as `blobs/sha256-<hex>`); the model
is the layer of media type `application/vnd.ollama.image.model`; `...image.system` holds a system
prompt, `...image.params` a JSON object of parameters (`stop` among them), `...image.template`
the prompt template. A model blob's name claims its sha256; a blob is taken for a registry entry
only when its content hashes to the entry's pin (hashed once, remembered by size and mtime).

LM Studio keeps `PUBLISHER/REPO/FILE.gguf` under `$LMSTUDIO_MODELS`, else `~/.lmstudio/models`,
else the older `~/.cache/lm-studio/models`. A file there is taken for a registry entry by its hash
alone (a file's name says nothing: anything can be saved as `Marco-o1-Q4_K_M.gguf`); the hash is
computed only for a file of the pinned size (or of the pinned name, when no size is pinned).

These folders belong to other tools and are read as untrusted: a manifest that is not JSON (or
is nested too deep to read), a folder that cannot be read, a link that leads nowhere, a `.gguf`
that is not one: each is one error naming it, and a listing skips it with a warning.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from marco_cli.errors import MarcoError, clip
from marco_cli.store import hashes
from marco_cli.store.folders import is_file, is_folder, looks_there, walk
from marco_cli.store.gguf import is_gguf

Tool = Literal["ollama", "lmstudio"]
REMOVE_COMMAND: dict[Tool, str] = {
    "ollama": "ollama rm NAME",
    "lmstudio": "LM Studio's My Models (or lms rm)",
}
MODEL_LAYER = "application/vnd.ollama.image.model"
SYSTEM_LAYER = "application/vnd.ollama.image.system"
PARAMS_LAYER = "application/vnd.ollama.image.params"
LEGACY_HOST, V2_HOST = "registry.ollama.ai", "ollama.com"
SMALL = 256 * 1024  # bytes: the most a manifest or a text layer may hold
_DIGEST = re.compile(r"^sha256[:-]([0-9a-fA-F]{64})$")
_QUANT = re.compile(r"(?i)(?:^|[-_.:])((?:IQ|Q)\d(?:_[A-Z0-9]+)*|F16|BF16|F32)(?=$|[-_.])")


@dataclass(frozen=True)
class Pin:
    """A registry file whose sha256 (or name and size) identifies it in another tool's store."""

    sha256: str | None
    file: str
    exact_bytes: int | None
    entry: str
    quant: str
    prompt_style: str


@dataclass(frozen=True)
class StoreFileSpec:
    """A GGUF another tool keeps (`ollama:NAME[:TAG]`, `lmstudio:PUBLISHER/REPO[/FILE]`)."""

    tool: Tool
    ref: str  # as the user can type it again: ollama:marco-o1:latest
    path: Path
    quant: str | None
    prompt_style: str
    matches: str | None = None  # the registry entry and quant this very file is
    system: str | None = None  # Ollama's system layer (shown; marco keeps its own prompt)
    stops: tuple[str, ...] = ()  # Ollama's params layer `stop` (shown; the GGUF's EOS ends turns)

    @property
    def name(self) -> str:
        return self.ref

    @property
    def label(self) -> str:
        return self.ref


# Ollama ----------------------------------------------------------------------------------------
def ollama_roots() -> list[Path]:
    """Where Ollama keeps models: OLLAMA_MODELS alone when set, else the user's and the service's."""
    if os.environ.get("OLLAMA_MODELS"):
        return [Path(os.environ["OLLAMA_MODELS"]).expanduser()]
    return [Path.home() / ".ollama" / "models", Path("/usr/share/ollama/.ollama/models")]


def _valid_part(kind: str, part: str) -> bool:
    """Ollama's isValidPart: a letter, digit or `_` first; then those, `-`, `.` (not in a
    namespace) and `:` (only in a host); 1-80 characters (a host 350)."""
    limit = 350 if kind == "host" else 80
    if not 1 <= len(part) <= limit or not re.match(r"\w", part[0], re.ASCII):
        return False
    extra = {"host": "-.:", "namespace": "-"}.get(kind, "-.")
    return all(c.isascii() and (c.isalnum() or c == "_" or c in extra) for c in part)


def _public(host: str) -> bool:
    """Ollama's own registry, under either of its names."""
    return host.lower() in (LEGACY_HOST, V2_HOST)


@dataclass(frozen=True)
class OllamaName:
    host: str
    namespace: str
    model: str
    tag: str

    @property
    def short(self) -> str:
        """As `ollama list` shows it: the library's models without host and namespace."""
        if _public(self.host) and self.namespace == "library":
            return f"{self.model}:{self.tag}"
        prefix = "" if _public(self.host) else f"{self.host}/"
        return f"{prefix}{self.namespace}/{self.model}:{self.tag}"


def parse_ollama_name(text: str) -> OllamaName:
    """`[HOST/][NAMESPACE/]MODEL[:TAG]`, as Ollama's ParseNameBare reads it, with its defaults;
    every part checked by its rules, so a name can never leave the store."""
    rest, tag = text, "latest"
    if text.rfind(":") > text.rfind("/"):
        rest, tag = text.rsplit(":", 1)
    parts = rest.split("/")
    if len(parts) > 3:
        raise MarcoError(f"'ollama:{clip(text)}' is not like ollama:[NAMESPACE/]NAME[:TAG]", code=2)
    model = parts[-1]
    namespace = parts[-2] if len(parts) >= 2 else "library"
    host = parts[-3] if len(parts) == 3 else LEGACY_HOST
    name = OllamaName(host, namespace, model, tag)
    for kind, part in (("host", host), ("namespace", namespace), ("model", model), ("tag", tag)):
        if not _valid_part(kind, part):
            raise MarcoError(
                f"'ollama:{clip(text)}': its {kind} '{clip(part, 40)}' is not a name Ollama allows", code=2
            )
    return name


def _manifest_paths(root: Path, name: OllamaName) -> Iterator[Path]:
    """The v2 manifest first, then the legacy one, the public host under both spellings."""
    for folder, hosts in (("manifests-v2", (V2_HOST, LEGACY_HOST)), ("manifests", (LEGACY_HOST, V2_HOST))):
        for host in hosts if _public(name.host) else (name.host,):
            yield root / folder / host / name.namespace / name.model / name.tag


def ollama_names(root: Path) -> list[tuple[OllamaName, Path]]:
    """Every name in one store (both layouts), as `ollama list` would list it."""
    found: dict[str, tuple[OllamaName, Path]] = {}
    for folder in ("manifests-v2", "manifests"):
        base = root / folder
        for path in walk(base, 4, "Ollama's store"):
            host, namespace, model, tag = path.relative_to(base).parts
            name = OllamaName(host, namespace, model, tag)
            if name.short not in found and is_file(path, "Ollama's manifest"):
                found[name.short] = (name, path)
    return sorted(found.values(), key=lambda item: item[0].short)


def _blob(root: Path, digest: object, where: Path) -> Path:
    match = _DIGEST.match(digest) if isinstance(digest, str) else None
    if match is None:
        raise MarcoError(f"Ollama's manifest {where} names a blob by something that is not a sha256 digest")
    return root / "blobs" / f"sha256-{match[1].lower()}"


def _head(path: Path) -> str:
    """A small text file another tool wrote (a manifest, a params or system layer), read up to
    `SMALL` bytes: a layer that names the model's 5 GB blob is not read into memory."""
    with open(path, "rb") as handle:
        data = handle.read(SMALL + 1)
    if len(data) > SMALL:
        raise ValueError(f"larger than {SMALL // 1024} KB")
    return data.decode("utf-8", errors="replace")


def _layers(path: Path) -> list[dict[str, object]]:
    try:
        manifest = json.loads(_head(path))
    except (OSError, ValueError, RecursionError) as exc:
        why = (
            exc.strerror
            if isinstance(exc, OSError)
            else "nested too deep"
            if isinstance(exc, RecursionError)
            else str(exc)
            if str(exc).startswith("larger")
            else "not JSON"
        )
        raise MarcoError(f"Ollama's manifest {path} cannot be read ({why})") from None
    layers = manifest.get("layers") if isinstance(manifest, dict) else None
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise MarcoError(f"Ollama's manifest {path} has no list of layers")
    return layers


def _layer_text(root: Path, layers: Sequence[dict[str, object]], kind: str, where: Path) -> str | None:
    layer = next((item for item in layers if item.get("mediaType") == kind), None)
    if layer is None:
        return None
    try:
        return _head(_blob(root, layer.get("digest"), where))
    except (OSError, ValueError):
        return None


def _stops(params: str | None) -> tuple[str, ...]:
    try:
        stop = json.loads(params or "{}").get("stop", [])
    except (ValueError, AttributeError, RecursionError):
        return ()
    return tuple(str(s) for s in stop) if isinstance(stop, list) else (str(stop),)


def _find_manifest(text: str, name: OllamaName) -> tuple[Path, Path]:
    roots = ollama_roots()
    for root in roots:
        for path in _manifest_paths(root, name):
            if is_file(path, "Ollama's manifest"):
                return root, path
    present = [root for root in roots if is_folder(root, "Ollama's store")]
    known = [n.short for root in present for n, _ in ollama_names(root)]
    if not present:
        where = " or ".join(str(r) for r in roots)
        raise MarcoError(f"no Ollama store at {where} (set OLLAMA_MODELS to where `ollama` keeps models)")
    close = difflib.get_close_matches(name.short, known, n=3, cutoff=0.4)
    hint = f"; close: {', '.join(close)}" if close else f"; it has {len(known)} (marco models --all)"
    raise MarcoError(f"Ollama has no model '{clip(text)}' ({name.short}){hint}")


def resolve_ollama(text: str, pins: Sequence[Pin]) -> StoreFileSpec:
    """`ollama:NAME[:TAG]` as the GGUF blob its manifest names, checked."""
    name = parse_ollama_name(text)
    root, manifest = _find_manifest(text, name)
    return _from_manifest(root, name, manifest, pins)


def _from_manifest(root: Path, name: OllamaName, manifest: Path, pins: Sequence[Pin]) -> StoreFileSpec:
    """The model a manifest names: its blob, checked to be a GGUF, matched to the registry by the
    blob's name (its sha256), with the system and stop layers."""
    layers = _layers(manifest)
    model = next((layer for layer in layers if layer.get("mediaType") == MODEL_LAYER), None)
    if model is None:
        raise MarcoError(f"Ollama's manifest {manifest} has no model layer ({MODEL_LAYER})")
    blob = _blob(root, model.get("digest"), manifest)
    if not is_file(blob, f"Ollama's blob for {name.short}"):
        raise MarcoError(f"Ollama's blob {blob} for {name.short} is missing: run `ollama pull {name.short}`")
    if not is_gguf(blob):
        raise MarcoError(f"Ollama's blob {blob} for {name.short} is not a GGUF file (bad magic bytes)")
    digest = blob.name.removeprefix("sha256-")
    pin = next((p for p in pins if p.sha256 == digest and hashes.matches(blob, digest)), None)
    return StoreFileSpec(
        "ollama",
        f"ollama:{name.short}",
        blob,
        pin.quant if pin else _quant(name.tag),
        pin.prompt_style if pin else "plain",
        f"{pin.entry}:{pin.quant}" if pin else None,
        _layer_text(root, layers, SYSTEM_LAYER, manifest),
        _stops(_layer_text(root, layers, PARAMS_LAYER, manifest)),
    )


def _quant(text: str) -> str | None:
    found = _QUANT.search(text)
    return found[1].upper() if found else None


# LM Studio ---------------------------------------------------------------------------------------
def lmstudio_roots() -> list[Path]:
    if os.environ.get("LMSTUDIO_MODELS"):
        return [Path(os.environ["LMSTUDIO_MODELS"]).expanduser()]
    return [Path.home() / ".lmstudio" / "models", Path.home() / ".cache" / "lm-studio" / "models"]


def _identifies(pin: Pin, path: Path, size: int) -> bool:
    """Is this file the pinned one? By its hash only, computed for a file of the pinned size
    (or, with no size pinned, of the pinned name): a name alone proves nothing."""
    if pin.sha256 is None:
        return False
    candidate = size == pin.exact_bytes if pin.exact_bytes is not None else path.name == pin.file
    return candidate and hashes.matches(path, pin.sha256)


def _lmstudio_spec(path: Path, root: Path, pins: Sequence[Pin]) -> StoreFileSpec:
    size = path.stat().st_size
    pin = next((p for p in pins if _identifies(p, path, size)), None)
    ref = "lmstudio:" + "/".join(path.relative_to(root).parts)
    quant = pin.quant if pin else _quant(path.stem)
    matches = f"{pin.entry}:{pin.quant}" if pin else None
    return StoreFileSpec("lmstudio", ref, path, quant, pin.prompt_style if pin else "plain", matches)


def _is_model(path: Path) -> bool:
    """A GGUF file that is a model (an `mmproj` file is an image projector, not a model)."""
    return path.name.endswith(".gguf") and not path.name.startswith("mmproj") and path.is_file()


def _ggufs(folder: Path) -> list[Path]:
    """The model files in one LM Studio repo folder (a `.gguf` that is not a GGUF left out)."""
    return [p for p in walk(folder, 1, "LM Studio's folder") if _is_model(p) and is_gguf(p)]


def resolve_lmstudio(text: str, pins: Sequence[Pin]) -> StoreFileSpec:
    """`lmstudio:PUBLISHER/REPO[/FILE.gguf]` inside LM Studio's folder (no other path)."""
    parts = text.split("/")
    if len(parts) not in (2, 3) or any(
        p in ("", ".", "..") or not re.fullmatch(r"[\w.@+-]+", p) for p in parts
    ):
        raise MarcoError(f"'lmstudio:{clip(text)}' is not like lmstudio:PUBLISHER/REPO[/FILE.gguf]", code=2)
    roots = [r for r in lmstudio_roots() if is_folder(r, "LM Studio's folder")]
    if not roots:
        where = " or ".join(str(r) for r in lmstudio_roots())
        raise MarcoError(f"no LM Studio models folder at {where} (set LMSTUDIO_MODELS)")
    for root in roots:
        folder = root / parts[0] / parts[1]
        if not is_folder(folder, "LM Studio's folder"):
            continue
        files = [folder / parts[2]] if len(parts) == 3 else _ggufs(folder)
        if len(files) > 1:
            names = ", ".join(f.name for f in files)
            raise MarcoError(
                f"lmstudio:{clip(text)} holds {len(files)} models ({clip(names, 160)}): name one", code=2
            )
        if files and files[0].is_file():
            if not is_gguf(files[0]):
                raise MarcoError(f"{files[0]} is not a GGUF file (bad magic bytes)")
            return _lmstudio_spec(files[0], root, pins)
    known = [s.ref.removeprefix("lmstudio:") for s in lmstudio_models(pins) if isinstance(s, StoreFileSpec)]
    close = difflib.get_close_matches(text, known, n=3, cutoff=0.4)
    hint = f"; close: {', '.join(close)}" if close else ""
    raise MarcoError(f"LM Studio has no model '{clip(text)}'{hint}")


def lmstudio_models(pins: Sequence[Pin]) -> list[StoreFileSpec | MarcoError]:
    """Every model in LM Studio's folders (an unreadable folder or a `.gguf` that is not a GGUF
    as its error, so that a listing warns and goes on)."""
    found: list[StoreFileSpec | MarcoError] = []
    for root in lmstudio_roots():
        for repo in _folders_below(root, found):
            try:
                files = walk(repo, 1, "LM Studio's folder")
            except MarcoError as exc:
                found.append(exc)
                continue
            for path in files:
                if not _is_model(path):
                    continue
                if is_gguf(path):
                    found.append(_lmstudio_spec(path, root, pins))
                else:
                    found.append(MarcoError(f"LM Studio's {path} is not a GGUF file (bad magic bytes)"))
    return found


def _folders_below(root: Path, errors: list[StoreFileSpec | MarcoError]) -> list[Path]:
    """PUBLISHER/REPO folders under an LM Studio root; an unreadable one goes to `errors`."""
    repos: list[Path] = []
    try:
        publishers = walk(root, 1, "LM Studio's folder")
    except MarcoError as exc:
        errors.append(exc)
        return repos
    for publisher in publishers:
        try:
            repos += [p for p in walk(publisher, 1, "LM Studio's folder") if p.is_dir()]
        except MarcoError as exc:
            errors.append(exc)
    return repos


def ollama_models(pins: Sequence[Pin]) -> list[StoreFileSpec | MarcoError]:
    """Every Ollama model on this machine, resolved (a broken one as its error)."""
    found: list[StoreFileSpec | MarcoError] = []
    for root in ollama_roots():
        try:
            names = ollama_names(root) if is_folder(root, "Ollama's store") else []
        except MarcoError as exc:
            found.append(exc)
            continue
        for name, manifest in names:
            try:
                found.append(_from_manifest(root, name, manifest, pins))
            except MarcoError as exc:
                found.append(exc)
    return found


def all_models(pins: Sequence[Pin]) -> list[StoreFileSpec | MarcoError]:
    """What both stores hold (a broken model or unreadable folder as its error), read once."""
    return [*ollama_models(pins), *lmstudio_models(pins)]


def found_stores() -> dict[Tool, list[Path]]:
    """The store folders on this machine, for `marco doctor`."""
    return {
        "ollama": [r for r in ollama_roots() if looks_there(r)],
        "lmstudio": [r for r in lmstudio_roots() if looks_there(r)],
    }
