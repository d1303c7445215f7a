"""Settings given as values rather than typed on a command line (a `marco serve` request's
`{"marco": {...}}`, the Python API's keywords), checked by the same Click parameters as the
command line's options: `iterations=0` fails exactly as `--iterations 0` does, with the value
named in the message. `settings_argv` writes them as the flags they stand for."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from marco_cli.cli.option_table import option_type
from marco_cli.errors import UsageError, clip


class SettingError(UsageError):
    """A setting that does not exist or holds the wrong kind of value; `name` is the setting's."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


def value_error(name: str, value: object, annotation: object) -> str | None:
    """What is wrong with a value for the option declared as `annotation`, said with the value
    (None: fine); Click would only say that its string form does not parse."""
    kind, shown = option_type(annotation), clip(json.dumps(value, default=str), 60)
    if kind is bool:
        return None if isinstance(value, bool) else f"'{name}' must be true or false, not {shown}"
    if kind is str:
        return None if isinstance(value, str) else f"'{name}' must be a string, not {shown}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"'{name}' must be a number, not {shown}"
    if not math.isfinite(value):
        return f"'{name}' must be a finite number, not {shown}"
    if kind is int and not float(value).is_integer():
        return f"'{name}' must be a whole number, not {shown}"
    return None


# Any: the option table's values are Annotated type forms for Typer
def settings_argv(
    settings: Mapping[str, object], table: Mapping[str, tuple[Any, Any]], what: str
) -> list[str]:
    """The flags `settings` stand for (a None value: the option's default). `what` names the
    kind of setting in the message for an unknown one ("search option")."""
    argv: list[str] = []
    for name, value in settings.items():
        if name not in table:
            raise SettingError(
                f"unknown {what} '{clip(name)}' (known: {', '.join(sorted(table))})", clip(name)
            )
        if value is None:
            continue
        annotation = table[name][0]
        wrong = value_error(name, value, annotation)
        if wrong is not None:
            raise SettingError(wrong, name)
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        elif option_type(annotation) is int and isinstance(value, float):
            argv += [flag, str(int(value))]
        else:
            argv += [flag, str(value)]
    return argv
