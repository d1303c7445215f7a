"""Whether llama.cpp may put the weights in the CPU's extra buffer types (weight repacking, AMX).

llama.cpp repacks weights at load time into layouts for the CPU's wider instructions (its "extra
buffer types"). On virtualized Sapphire/Granite Rapids hosts the AMX path crashes the process
with a general protection fault inside libggml-cpu on the first decode of more than one token
(ggml-org/llama.cpp#20824); with `use_extra_bufts = False` the same model loads and answers.
Where it works, repacking is a speed-up, so it is not turned off for everyone.

On a CPU with AMX a child process loads the model with repacking and decodes a short batch: if
the child dies, the user's process never loads that way. The verdict is remembered per machine
and llama.cpp build in `$MARCO_HOME/repack.json`, so the probe runs once. `--repack/--no-repack`
or `MARCO_REPACK=on|off|auto` force either way.

Test seams (the real crash cannot happen on a CPU without AMX): `MARCO_CPUINFO` names a file read
instead of /proc/cpuinfo, and `MARCO_REPACK_PROBE_CRASH=SIGSEGV` makes the probe child kill itself
by that signal where the real crash happens, so the parent's path is the same.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from marco_cli.engine import cpuinfo
from marco_cli.errors import MarcoError
from marco_cli.files import marco_home, replace_text

ENV = "MARCO_REPACK"
CPUINFO_ENV = cpuinfo.CPUINFO_ENV
CRASH_ENV = "MARCO_REPACK_PROBE_CRASH"
PROBE_TIMEOUT = 300.0
Source = Literal["forced", "environment", "cpu", "remembered", "probe"]


@dataclass(frozen=True)
class Verdict:
    """Whether repacking is used (`repack`), who decided (`source`) and why, in words."""

    repack: bool
    source: Source
    reason: str


def cpu_flags() -> frozenset[str]:
    return frozenset(cpuinfo.first("flags").split())


def risky_features(flags: frozenset[str]) -> list[str]:
    """The CPU features whose repacking path is known to crash under virtualization."""
    return sorted(f for f in flags if f.startswith("amx"))


def machine_key() -> str:
    """This machine (CPU model and flags, machine id) and this llama.cpp build (version and the
    library files' sizes and times): a new build or another CPU is probed again."""
    import llama_cpp

    parts = [cpuinfo.first("model name"), " ".join(sorted(cpu_flags())), str(llama_cpp.__version__)]
    with contextlib.suppress(OSError):
        parts.append(Path("/etc/machine-id").read_text(encoding="ascii").strip())
    lib = Path(llama_cpp.__file__).parent / "lib"
    for so in sorted(lib.glob("*")) if lib.is_dir() else []:
        stat = so.stat()
        parts.append(f"{so.name}:{stat.st_size}:{int(stat.st_mtime)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def cache_path() -> Path:
    return marco_home() / "repack.json"


def _read_cache() -> dict[str, dict[str, object]]:
    try:
        data = json.loads(cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def remembered() -> Verdict | None:
    entry = _read_cache().get(machine_key())
    if not isinstance(entry, dict) or not isinstance(entry.get("repack"), bool):
        return None
    return Verdict(bool(entry["repack"]), "remembered", str(entry.get("reason", "")))


def _remember(verdict: Verdict, model: Path) -> None:
    """Keep the verdict; a home that cannot be written only costs a probe next time."""
    cache = _read_cache()
    entry = {"repack": verdict.repack, "reason": verdict.reason, "model": model.name, "at": time.time()}
    cache[machine_key()] = entry
    with contextlib.suppress(OSError):
        cache_path().parent.mkdir(parents=True, exist_ok=True)
        replace_text(cache_path(), json.dumps(cache, indent=2))


def _environment() -> bool | None:
    value = os.environ.get(ENV, "auto").strip().lower()
    if value in ("", "auto"):
        return None
    if value in ("on", "1", "yes", "true"):
        return True
    if value in ("off", "0", "no", "false"):
        return False
    raise MarcoError(f"{ENV} must be on, off or auto, not '{value}'", code=2)


def without_probe(forced: bool | None = None) -> Verdict | None:
    """The verdict if it needs no probe: forced, from the environment, a CPU where repacking
    cannot crash, or remembered. None: a probe must decide."""
    if forced is not None:
        return Verdict(forced, "forced", "--repack" if forced else "--no-repack")
    env = _environment()
    if env is not None:
        return Verdict(env, "environment", f"{ENV}={os.environ[ENV]}")
    risky = risky_features(cpu_flags())
    if not risky:
        return Verdict(True, "cpu", "this CPU has no AMX: llama.cpp's default")
    return remembered()


def decide(model: Path, forced: bool | None = None) -> Verdict:
    """Whether the engine loads `model` with repacking; probes (once per machine) on AMX CPUs."""
    verdict = without_probe(forced)
    if verdict is not None:
        return verdict
    verdict, lasting = probe(model)
    if lasting:
        _remember(verdict, model)
    return verdict


def probe(model: Path) -> tuple[Verdict, bool]:
    """Load `model` with repacking in a child process and decode a short batch there; also say
    whether the verdict is worth remembering (a probe that timed out is not)."""
    features = ", ".join(risky_features(cpu_flags()))
    command = [sys.executable, "-m", "marco_cli.engine.repack_probe", str(model)]
    try:
        done = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, timeout=PROBE_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:  # not remembered: a slow disk says nothing about the CPU
        why = f"the repacking probe ({features}) did not finish in {PROBE_TIMEOUT:.0f} s"
        return Verdict(False, "probe", why), False
    if done.returncode == 0:
        return Verdict(True, "probe", f"a test process loaded and decoded with repacking ({features})"), True
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        why = f"llama.cpp's weight repacking ({features}) crashed a test process ({name})"
        return Verdict(False, "probe", why), True
    # an error, not a crash (a damaged file, no memory): off for this run, probed again next time
    last = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
    why = f"a test process with repacking ({features}) failed (exit {done.returncode}: {last[0][:200]})"
    return Verdict(False, "probe", why), False
