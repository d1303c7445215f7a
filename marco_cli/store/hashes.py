"""A file's sha256, hashed once and remembered by its real path, size and mtime: the download
cache and the other tools' stores both check the registry's pinned hashes, and a 4.7 GB file
is not hashed again on every run (a file replaced or rewritten in place changes its size or
mtime, and is hashed again)."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

from marco_cli.files import marco_home


def sha256_of(path: Path) -> str:
    """The file's sha256, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _memo_path() -> Path:
    return marco_home() / "verified.json"


def _memo_key(path: Path) -> tuple[str, list[object]]:
    real = path.resolve()
    stat = real.stat()
    return str(real), [stat.st_size, stat.st_mtime_ns]


def _memo() -> dict[str, object]:
    try:
        loaded = json.loads(_memo_path().read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def remember(path: Path, sha256: str) -> None:
    """Best effort: a memo that cannot be written costs a hash next time, nothing more."""
    key, identity = _memo_key(path)
    memo = {**_memo(), key: [*identity, sha256]}
    with contextlib.suppress(OSError):
        _memo_path().parent.mkdir(parents=True, exist_ok=True)
        tmp = _memo_path().with_suffix(".tmp")
        tmp.write_text(json.dumps(memo), encoding="utf-8")
        tmp.replace(_memo_path())


def remembered(path: Path) -> str | None:
    """The sha256 remembered for this very file (same size and mtime), or None."""
    key, identity = _memo_key(path)
    entry = _memo().get(key)
    if isinstance(entry, list) and len(entry) == 3 and entry[:2] == identity and isinstance(entry[2], str):
        return entry[2]
    return None


def matches(path: Path, sha256: str) -> bool:
    """Does the file hash to `sha256`? Hashed at most once per size and mtime; a match is
    remembered (a mismatch too, so a wrong file is not hashed on every listing)."""
    try:
        known = remembered(path)
        if known is None:
            known = sha256_of(path)
            remember(path, known)
    except OSError:
        return False
    return known == sha256.lower()
