"""Where marco keeps its own files (`marco_home`), and writing the files a user asked for
(pages, exports, bench folders) with one clear error.

A folder where a file was meant, a read-only folder or a full disk (/dev/full) is a one-line
runtime error that names the path, never a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

from marco_cli.errors import MarcoError


def marco_home() -> Path:
    """The history, the user's models.yaml and the repack verdict: `$MARCO_HOME`, else
    ~/.config/marco."""
    return Path(os.environ.get("MARCO_HOME") or Path.home() / ".config" / "marco")


def user_path(text: str, what: str) -> Path:
    """A path the user typed, `~` and `~NAME` expanded; `~NAME` of a user this machine does not
    have is a usage error naming `what` (pathlib raises RuntimeError there)."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        shown = text if len(text) <= 80 else text[:79] + "…"
        raise MarcoError(f"cannot read {what} '{shown}': no such user's home", code=2) from None


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def write_text(path: Path, text: str) -> None:
    if path.is_dir():
        raise MarcoError(f"cannot write {path}: it is a folder; name a file")
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise MarcoError(f"cannot write {path}: {_reason(exc)}") from None


def check_writable(path: Path | None) -> None:
    """Before the work that ends in writing `path` (a search's page): a target that cannot be
    written is a usage error now, not after the minutes the search took."""
    if path is None:
        return
    if path.is_dir():
        raise MarcoError(f"cannot write {path}: it is a folder; name a file", code=2)
    folder = path.parent  # "." for a bare file name
    if not folder.is_dir():
        raise MarcoError(f"cannot write {path}: the folder {folder} does not exist", code=2)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise MarcoError(f"cannot write {path}: the folder {folder} is not writable", code=2)


def replace_text(path: Path, text: str) -> None:
    """Write `text` to a file beside `path`, then rename it over `path`: a kill midway leaves
    the old file whole, never half of the new one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def make_folder(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise MarcoError(f"{path} is a file, not a folder; name a folder", code=2)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MarcoError(f"cannot create the folder {path}: {_reason(exc)}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise MarcoError(f"cannot write in {path}: permission denied")


def read_utf8(path: Path) -> str:
    """A text file the user gave, as UTF-8 (another encoding is a usage error with its offset)."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise MarcoError(
            f"{path}: byte {exc.start} is not UTF-8; convert the file to UTF-8", code=2
        ) from None
    except OSError as exc:
        raise MarcoError(f"cannot read {path}: {_reason(exc)}") from None
