"""Consoles and the download progress bar. Everything but the answer goes to stderr."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


def err_console() -> Console:
    """A console on the current sys.stderr (Rich honours NO_COLOR and TERM=dumb itself)."""
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def out_console() -> Console:
    """stdout; when it is not a terminal, wide enough that tables are not cut."""
    width = None if sys.stdout.isatty() else 160
    return Console(file=sys.stdout, highlight=False, soft_wrap=True, width=width)


# C0 controls but tab and newline, DEL, and C1 controls: what a terminal acts on instead of
# showing (ESC starts the sequences that retitle, clear or rewrite a screen)
_CONTROLS = {c: f"^{chr(c + 64)}" for c in range(32) if chr(c) not in "\t\n"}
_CONTROLS |= {127: "^?", **{c: f"\\x{c:02x}" for c in range(0x80, 0xA0)}}


def visible(text: str) -> str:
    """Stored or received text as a terminal may show it: control characters in caret notation
    (ESC as ^[, as `cat -v` shows it), so a question holding escape sequences cannot retitle,
    clear or rewrite the operator's terminal. Every place that prints stored text uses it."""
    return text.translate(_CONTROLS)


def fail(message: str) -> None:
    """Print one error line on stderr (`message` is markup; its text parts are made visible)."""
    err_console().print(f"[bold red]error:[/] {visible(message)}", markup=True, highlight=False)


def warn(message: str) -> None:
    """One warning line on stderr (the text is not markup)."""
    err_console().print(f"[yellow]warning:[/] {escape(visible(message))}", highlight=False)


def warn_bad_line(path: Path, number: int, why: str) -> None:
    warn(f"{path}:{number} skipped: {why}")


def download_bar_class(console: Console) -> type | None:
    """A tqdm-compatible class drawing Rich bars (size, speed, ETA); None when not a terminal."""
    if not console.is_terminal or console.is_dumb_terminal:
        return None
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )

    class RichBar:
        # tqdm's constructor as huggingface_hub calls it: its other arguments are ignored (Any)
        def __init__(
            self, *args: Any, total: int | None = None, initial: int = 0, desc: str = "", **kwargs: Any
        ) -> None:
            if not progress.live.is_started:
                progress.start()
            self.task = progress.add_task(desc or "download", total=total, completed=initial)

        def update(self, n: int = 1) -> None:
            progress.update(self.task, advance=n)

        def close(self) -> None:
            progress.refresh()
            if progress.finished:
                progress.stop()

        def __enter__(self) -> RichBar:
            return self

        def __exit__(self, *exc: object) -> None:
            self.close()

    return RichBar
