"""What many test modules share: one CliRunner (stdout and stderr apart, as a pipe sees them), and
the one-line error contract every hostile case is held to."""

from __future__ import annotations

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
