"""/proc/cpuinfo, read in one place: the AMX repack check wants the flags and the model name,
the thread default wants the physical cores. `MARCO_CPUINFO` names another file to read instead
(the tests' other CPUs)."""

from __future__ import annotations

import os

CPUINFO_ENV = "MARCO_CPUINFO"


def values(field: str) -> list[str]:
    """Every value of `field` ("flags", "model name", "core id"), one per processor line; empty
    where the file or the field is absent (not Linux, a container hiding it)."""
    path = os.environ.get(CPUINFO_ENV) or "/proc/cpuinfo"
    try:
        with open(path, encoding="ascii", errors="ignore") as handle:
            return [
                line.split(":", 1)[1].strip()
                for line in handle
                if ":" in line and line.split(":", 1)[0].strip() == field
            ]
    except OSError:
        return []


def first(field: str) -> str:
    """The first processor's `field`, "" when absent."""
    found = values(field)
    return found[0] if found else ""
