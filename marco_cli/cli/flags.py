"""The options and checks every command shares, cheap to import: Click's error classes as marco
reads them, value checks for reals, ranges and URLs, and the simple flags (`--model`, `--json`,
`--yes`, ...). `marco log` and `marco models` import this, not the search's option table."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Protocol, cast
from urllib.parse import urlparse

import typer


class CommandPath(Protocol):
    command_path: str


class ClickError(Exception):
    """What marco reads of Click's errors: the boundary where Click's values come out. Recent
    Typer vendors Click and older Typer uses it directly, so the classes are found at run time
    from the public `typer.BadParameter` and their shape is declared here."""

    exit_code: int
    ctx: CommandPath | None  # set on usage errors

    def format_message(self) -> str:
        raise NotImplementedError


def _click_class(name: str) -> type[ClickError]:
    found = next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)
    return cast("type[ClickError]", found)


ClickException, UsageError = _click_class("ClickException"), _click_class("UsageError")


def finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, not {value}")
    return value


def real(
    low: float, high: float | None = None, above: bool = False
) -> Callable[[float | None], float | None]:
    """A float option's check: finite, then within [low, high] (`above`: low itself excluded).
    Click's own range check runs first and calls NaN out of range ("should be >= 0"), so the
    bounds are checked here."""

    def check(value: float | None) -> float | None:
        if value is None:
            return None
        finite(value)
        if high is not None and not low <= value <= high:
            raise typer.BadParameter(f"must be between {low:g} and {high:g}, not {value:g}")
        if value < low:
            raise typer.BadParameter(f"must be at least {low:g}, not {value:g}")
        if above and value == low:
            raise typer.BadParameter(f"must be above {low:g}, not {value:g}")
        return value

    return check


def whole(low: int | float | None, high: int | float | None) -> Callable[[int | None], int | None]:
    """A count option's check: within [low, high] (either may be open), said as Click says it."""

    def check(value: int | None) -> int | None:
        if value is None:
            return None
        if (low is not None and value < low) or (high is not None and value > high):
            shown = f"{low:.0f}<=x" if low is not None else "x"
            shown += f"<={high:.0f}" if high is not None else ""
            raise typer.BadParameter(f"{value} is not in the range {shown}.")
        return value

    return check


def span(low: float, high: float | None = None) -> str:
    """The metavar of a float option checked by `real` (as Click shows a declared range)."""
    return f"FLOAT [x>={low:g}]" if high is None else f"FLOAT [{low:g}<=x<={high:g}]"


def url_option(value: str | None) -> str | None:
    """A server's URL, checked once here (a usage error naming what is wrong): the scheme, the
    host, and the port, which urllib would otherwise reject or misreport at the first request."""
    if value is None:
        return value
    try:
        parsed = urlparse(value)
        port = parsed.port  # reads and range-checks the port
        host = parsed.hostname
    except ValueError as exc:
        raise typer.BadParameter(f"'{_without_credentials(value)}' is not a valid URL: {exc}") from None
    shown = _without_credentials(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise typer.BadParameter(f"'{shown}' is not an http:// or https:// URL")
    if not host:
        raise typer.BadParameter(f"'{shown}' names no host")
    if port == 0:
        raise typer.BadParameter(f"'{shown}': port 0 is not a server's port")
    return value


def _without_credentials(url: str) -> str:
    head, at, tail = url.partition("@")
    if not at or "://" not in head:
        return url
    return f"{head.split('://', 1)[0]}://{tail}"


ModelOpt = Annotated[
    str,
    typer.Option(
        "--model", "-m", envvar="MARCO_MODEL", help="NAME[:QUANT], a .gguf path, or hf:OWNER/REPO/FILE.gguf"
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show llama.cpp's own log and decode sizes.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Download a missing model without asking.")]
HideThought = Annotated[bool, typer.Option(help="Do not show the <Thought> block.")]
