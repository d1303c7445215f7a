"""Searches for the server: a bounded queue in front of worker threads, one search per worker.

A local model holds one llama.cpp context, so one worker runs one search at a time; a remote
backend gets as many workers as its server has slots. The search is synchronous code; it runs
on a worker thread and reports to the request's event loop through `Job.updates` (thread-safe
hand-over with `call_soon_threadsafe`). A job whose client went away, or every job when the
server shuts down, is cancelled: its listener raises KeyboardInterrupt at the next event (the
search ends the way Ctrl-C ends it: partial tree, best answer so far, record saved), and a long
prompt decode on the local engine stops between graph nodes through `CancelWatch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from marco_cli import tasks
from marco_cli.errors import MarcoError
from marco_cli.record.record import Record
from marco_cli.search.config import SearchConfig
from marco_cli.search.events import (
    BestChanged,
    Event,
    Finished,
    IterationStarted,
    NodeAdded,
    RolloutScored,
    TokensGenerated,
)
from marco_cli.tasks import Opened

_SNIPPET = 100  # characters of a node's text shown in the streamed progress
# events of a search still working: a cancelled job stops at one of these; the events of its
# ending (the best answer, Finished) pass, or the interrupted search could not say its answer
_WORK = (IterationStarted, TokensGenerated, NodeAdded, RolloutScored)


def progress_line(event: Event) -> str | None:
    """One line of streamed thinking per search event (None: nothing worth a line)."""
    if isinstance(event, IterationStarted):
        return f"iteration {event.iteration}/{event.total}\n"
    if isinstance(event, NodeAdded):
        text = " ".join(event.text.split())
        text = text if len(text) <= _SNIPPET else text[: _SNIPPET - 1] + "…"
        where = "root" if event.parent in (None, 0) else f"node {event.parent}"
        conf = "" if event.confidence is None else f", confidence {event.confidence:.2f}"
        return f"+ node {event.node} under {where}{conf}: {text}\n"
    if isinstance(event, RolloutScored):
        said = f"answer {event.answer!r}" if event.answer else "no answer"
        how = "finished" if event.finished else "stopped"
        return f"rollout {event.rollout} {how}: {said} (reward {event.reward:.3f}, {event.n_tokens} tokens)\n"
    if isinstance(event, BestChanged):
        return f"best so far: {event.answer!r} (reward {event.reward:.3f})\n"
    if isinstance(event, Finished):
        return f"search stopped ({event.reason}) after {event.iterations} iterations\n"
    return None


class CancelWatch:
    """The engine's interrupt hook for one job: a long decode stops once the job is cancelled."""

    def __init__(self, cancelled: threading.Event) -> None:
        self.cancelled = cancelled

    def pending(self) -> bool:
        return self.cancelled.is_set()

    def __enter__(self) -> CancelWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cancelled.is_set() and exc[0] is None:
            raise KeyboardInterrupt


@dataclass(frozen=True)
class Started:
    """The prompt fit: the search begins."""

    prompt_tokens: int


@dataclass(frozen=True)
class Progress:
    """A line of the search's progress (streams only)."""

    text: str


@dataclass(frozen=True)
class Done:
    record: Record


@dataclass(frozen=True)
class Failed:
    error: MarcoError


Update = Started | Progress | Done | Failed


@dataclass(eq=False)
class Job:
    """One request's search. The worker puts `Started`, then (for a stream) `Progress` lines,
    then `Done` or `Failed` on `updates`."""

    question: str
    messages: list[dict[str, str]]
    config: SearchConfig
    loop: asyncio.AbstractEventLoop
    stream: bool = False  # only a stream shows progress: a whole answer gets none formatted
    updates: asyncio.Queue[Update] = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    started: bool = False  # a worker took it (set under the runner's lock)

    def send(self, update: Update) -> None:
        with contextlib.suppress(RuntimeError):  # a closed event loop: nobody left to tell
            self.loop.call_soon_threadsafe(self.updates.put_nowait, update)


class QueueFull(Exception):
    """Every worker is busy and the queue holds its maximum."""


class ShuttingDown(MarcoError):
    """The server stopped before this job's search began (HTTP 503 with Retry-After)."""


@dataclass(frozen=True)
class Served:
    """The model as the command opened it, and what happens to each finished record."""

    model: Opened
    finish: Callable[[Record], Record]  # adds engine settings, saves in the history
    aides: tasks.Aides = tasks.NO_AIDES  # the verifier a `judge` reward asks (None: `model`), the PRM


class Runner:
    """Runs jobs on `workers` threads with at most `queue` more waiting."""

    def __init__(self, served: Served, workers: int, queue: int) -> None:
        self.served, self.workers, self.capacity = served, workers, workers + queue
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="marco-search")
        self._lock = threading.Lock()
        self._jobs: set[Job] = set()
        self.running = 0
        self.generated = 0  # tokens every search has generated so far (live)
        self.closing = False

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._jobs) - self.running

    def submit(self, job: Job) -> None:
        with self._lock:
            if self.closing:
                raise QueueFull("the server is shutting down")
            if len(self._jobs) >= self.capacity:
                raise QueueFull(
                    f"{self.running} searches running and {len(self._jobs) - self.running} queued"
                )
            self._jobs.add(job)
        self._pool.submit(self._work, job)

    def cancel_all(self) -> None:
        """Shutdown: no new jobs; a queued one is answered at once (its search never starts), a
        running one ends as interrupted (its record saved) at its next search event."""
        with self._lock:
            self.closing = True
            for job in self._jobs:
                job.cancelled.set()
                if not job.started:
                    job.send(Failed(ShuttingDown("the server is shutting down; retry later")))

    def close(self) -> None:
        """Wait for the workers (their runs are saved) and release them."""
        self.cancel_all()
        self._pool.shutdown(wait=True)

    def _listener(self, job: Job) -> Callable[[Event], None]:
        def listen(event: Event) -> None:
            if isinstance(event, TokensGenerated):
                with self._lock:
                    self.generated += event.n
            if job.cancelled.is_set() and isinstance(event, _WORK):
                raise KeyboardInterrupt  # the search ends here, as on Ctrl-C
            line = progress_line(event) if job.stream else None
            if line is not None:
                job.send(Progress(line))

        return listen

    def _work(self, job: Job) -> None:
        served = self.served
        with self._lock:
            if job.cancelled.is_set():  # its client left, or the shutdown answered it, while it waited
                self._jobs.discard(job)
                return
            job.started = True
            self.running += 1
        try:
            model = served.model
            prompt = model.engine.build_prompt(job.messages, model.style)
            job.send(Started(len(prompt)))
            model.engine.watch_interrupts(CancelWatch(job.cancelled))  # one search per local engine
            listen = self._listener(job)
            args = (model.engine, model.style, model.info, job.question, job.messages, job.config)
            record = served.finish(tasks.run_task(*args, listen, prompt=prompt, aides=served.aides))
            job.send(Done(record))
        except MarcoError as exc:
            job.send(Failed(exc))
        except KeyboardInterrupt:  # cancelled before its search began (building the prompt)
            job.send(Failed(MarcoError("the search was cancelled")))
        except Exception as exc:  # never kill the worker: the client gets a 500
            job.send(Failed(MarcoError(f"internal error: {type(exc).__name__}: {exc}")))
        finally:
            with self._lock:
                self.running -= 1
                self._jobs.discard(job)
