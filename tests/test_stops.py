"""Where a step action ends (engine/stops.py), on text and on bytes."""

from __future__ import annotations

import pytest

from marco_cli.engine.stops import ends_step


@pytest.mark.parametrize(
    ("text", "before", "mode", "want"),
    [
        ("step one\n", 0, "line", True),
        ("\n\nstep", 0, "line", False),  # leading blank lines do not end a step
        ("step one\n", 0, "blank", False),
        ("step one\n\n", 9, "blank", True),
        ("\n\n", 0, "blank", False),
        (b"bytes too\n", 0, "line", True),
        ("a\nb", 2, "line", False),  # the newest piece holds no line break
    ],
)
def test_ends_step(text: str | bytes, before: int, mode: str, want: bool) -> None:
    assert ends_step(text, before, mode) is want
