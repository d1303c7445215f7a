"""Reading folders that belong to other tools (Ollama's store, LM Studio's models) as untrusted:
a folder that cannot be read, a link that leads nowhere or back to itself, is one error naming
the path (pathlib raises PermissionError from `is_file`, and glob skips what it cannot read)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from marco_cli.errors import MarcoError


def is_folder(folder: Path, what: str) -> bool:
    """A folder is there (one on the way that cannot be read is an error naming it)."""
    try:
        return folder.is_dir()
    except OSError as exc:
        raise MarcoError(f"cannot read {what} at {folder}: {exc.strerror or exc}") from None


def walk(base: Path, depth: int, what: str) -> list[Path]:
    """Every path `depth` folders below `base`, sorted, hidden names (`.DS_Store`) left out as
    glob leaves them; a folder on the way that cannot be read is an error naming it (glob would
    skip it silently). No `base`: nothing."""
    level = [base]
    for _ in range(depth):
        below = []
        for folder in level:
            try:
                if not folder.is_dir():
                    continue
                below += sorted(p for p in folder.iterdir() if not p.name.startswith("."))
            except OSError as exc:
                raise MarcoError(f"cannot read {what} at {folder}: {exc.strerror or exc}") from None
        level = below
    return level


def is_file(path: Path, what: str) -> bool:
    """A plain file is there; nothing there is False; anything else (unreadable, a link loop)
    is an error naming the path."""
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        if path.is_symlink():
            raise MarcoError(f"{what} {path} is a link to nothing ({os.readlink(path)})") from None
        return False
    except OSError as exc:
        why = "a link that leads back to itself" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
        raise MarcoError(f"cannot read {what} {path}: {why}") from None
    return path.is_file()


def looks_there(folder: Path) -> bool:
    """For a report: a folder that cannot even be looked at is reported as there."""
    try:
        return folder.is_dir()
    except OSError:
        return True
