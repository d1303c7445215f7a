"""What many test modules share: one CliRunner (stdout and stderr apart, as a pipe sees them)."""

from __future__ import annotations

from typer.testing import CliRunner

runner = CliRunner()
