"""Signals end a command the way Ctrl-C does: SIGTERM and SIGHUP raise KeyboardInterrupt too, so
the search stops, the best answer is printed, the record is saved and the terminal restored;
the exit code is 128 + the signal (130, 143, 129).

Ctrl-C must also reach a long `llama_decode` (a prompt chunk can take seconds on a CPU), which
Python cannot interrupt. The engine's abort callback asks `WATCH.pending()` between graph nodes;
while a decode is watched the handler only records the signal (raising inside a C callback
would be lost), and the decode raises KeyboardInterrupt once it has stopped. The C-level
handler also writes the signal to a wakeup pipe, for a callback that runs on another thread.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType, TracebackType

_WATCHED = {int(signal.SIGINT), int(signal.SIGTERM), int(signal.SIGHUP)}


class Watch:
    """The engine's interrupt hook: `with WATCH:` around a decode, `pending()` inside it."""

    def __init__(self) -> None:
        self.received = signal.SIGINT
        self.depth = 0
        self.deferred = False
        self.wake: int | None = None  # read end of the wakeup pipe

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received = signal.Signals(signum)
        if self.depth:
            self.deferred = True
            return
        raise KeyboardInterrupt

    def install(self) -> None:
        """Install the handlers and the wakeup pipe (main thread only)."""
        self.received, self.deferred = signal.SIGINT, False
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self.handle)
        if self.wake is None:
            read, write = os.pipe()
            os.set_blocking(read, False)
            os.set_blocking(write, False)
            signal.set_wakeup_fd(write, warn_on_full_buffer=False)
            self.wake = read
        self.drain()

    def drain(self) -> bool:
        """Empty the wakeup pipe; True when it held one of our signals."""
        seen = False
        while self.wake is not None:
            try:
                data = os.read(self.wake, 64)
            except OSError:
                break
            if not data:
                break
            seen = seen or any(b in _WATCHED for b in data)
        return seen

    def pending(self) -> bool:
        return self.deferred or self.drain()

    def __enter__(self) -> Watch:
        self.drain()
        self.depth += 1
        return self

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.depth -= 1
        if self.deferred and not self.depth:
            self.deferred = False
            raise KeyboardInterrupt

    def exit_code(self) -> int:
        return 128 + int(self.received)


WATCH = Watch()
install = WATCH.install
exit_code = WATCH.exit_code
