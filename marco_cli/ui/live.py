"""The live search view: a Rich Live display fed by search events, redrawn a few times a second."""

from __future__ import annotations

import threading
import time

from rich.console import Console, Group, RenderableType
from rich.live import Live

from marco_cli.search import events as ev
from marco_cli.ui.tree_view import TreeSnapshot, render_tree, status_line


class LiveSearchView:
    """Use as a context manager and pass it to the search as its listener."""

    def __init__(self, console: Console, question: str, strategy: str) -> None:
        self.console = console
        self.snapshot = TreeSnapshot(question)
        self.strategy = strategy
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._live = Live(
            self,
            console=console,
            refresh_per_second=4,
            transient=False,
            vertical_overflow="crop",
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def __call__(self, event: ev.Event) -> None:
        with self._lock:
            self.snapshot.apply(event)

    def __rich__(self) -> RenderableType:
        with self._lock:
            height = self.console.size.height
            tree = render_tree(self.snapshot, width=self.console.size.width, max_lines=max(5, height - 4))
            return Group(tree, status_line(self.snapshot, time.monotonic() - self._start, self.strategy))

    def __enter__(self) -> LiveSearchView:
        self._start = time.monotonic()
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.refresh()
        self._live.stop()
