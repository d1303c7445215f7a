"""Cheap checks on a GGUF file before anyone hands it to llama.cpp."""

from __future__ import annotations

from pathlib import Path

from marco_cli.errors import MarcoError

MAGIC = b"GGUF"


def is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == MAGIC
    except OSError:
        return False


def check_gguf(path: Path) -> None:
    """Raise a one-line MarcoError when `path` is missing, empty or not a GGUF file."""
    if not path.exists():
        raise MarcoError(f"model file not found: {path}")
    if path.is_dir():
        raise MarcoError(f"model path is a directory, not a GGUF file: {path}")
    if path.stat().st_size < 32 or not is_gguf(path):
        raise MarcoError(f"not a GGUF file (bad magic bytes): {path}")
