"""What many test modules share: one CliRunner (stdout and stderr apart, as a pipe sees them), and
the one-line error contract every hostile case is held to, and a small disk to fill or freeze."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

runner = CliRunner()


def one_line_error(result, code: int) -> str:
    """The case's contract: exit `code`, one line on stderr, no traceback. Returns the line."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    said = result.stderr.strip()
    if "Usage:" in said:  # Click's own usage errors: a box; the message is its one "Invalid" line
        said = next(line for line in said.splitlines() if "Invalid" in line or "Error" in line)
    else:
        assert said.count("\n") == 0, said
    assert len(said) < 400, said
    return said


def no_traceback(result) -> None:
    assert ("Traceback" not in result.output and result.exception is None) or isinstance(
        result.exception, SystemExit
    ), result.output


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` for a full or read-only disk (`remount` changes it);
    the test is skipped, saying why, where this machine cannot mount one (not root)."""
    path.mkdir(exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)
