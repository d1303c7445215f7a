"""The weight-repacking fallback: a probe in a child process decides, on CPUs with AMX, whether
llama.cpp may repack; a probe that dies by a signal (as the real crash does) turns it off, the
run still answers, the verdict is remembered and the probe is not repeated.

The real crash needs a virtualized AMX CPU; the seams (MARCO_CPUINFO for the CPU's flags,
MARCO_REPACK_PROBE_CRASH for the child's death) exercise the same path on any machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from marco_cli.cli.app import app
from marco_cli.engine import repack
from tests.conftest import MACHINE_REPACK
from tests.helpers import runner

QUESTION = "What is 2 + 2?"


@pytest.fixture
def amx_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's CPU has AMX; no verdict is forced by the environment."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "model name\t: Fake Xeon with AMX\nflags\t\t: fpu sse2 avx2 avx512f amx_bf16 amx_tile amx_int8\n",
        encoding="ascii",
    )
    monkeypatch.setenv(repack.CPUINFO_ENV, str(cpuinfo))
    monkeypatch.delenv(repack.ENV, raising=False)
    return cpuinfo


def marco(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real command in its own process (a native crash there would be exit 139)."""
    command = [str(Path(sys.executable).with_name("marco")), *args]
    full = {**os.environ, **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, env=full, timeout=300, check=False)


@pytest.mark.slow
def test_a_probe_that_dies_turns_repacking_off_once(amx_cpu: Path, isolated_home: Path) -> None:
    crash = {repack.CRASH_ENV: "SIGSEGV"}
    first = marco("solve", "-m", "smollm2-135m", "--strategy", "cot", "--json", QUESTION, env=crash)
    assert first.returncode == 0, first.stderr
    record = json.loads(first.stdout)
    assert record["answer"] and record["settings"]["repack"] is False
    assert "crashed a test process (SIGSEGV)" in first.stderr and "Traceback" not in first.stderr
    cache = json.loads((isolated_home / "repack.json").read_text(encoding="utf-8"))
    (entry,) = cache.values()
    assert entry["repack"] is False and "SIGSEGV" in entry["reason"]
    # the verdict is remembered: no second probe (it would still crash) and no second warning
    second = marco("solve", "-m", "smollm2-135m", "--strategy", "cot", "--json", QUESTION, env=crash)
    assert second.returncode == 0 and json.loads(second.stdout)["settings"]["repack"] is False
    assert "crashed" not in second.stderr
    assert json.loads((isolated_home / "repack.json").read_text(encoding="utf-8")) == cache
    doctor = marco("doctor")
    assert "weight repacking  off" in doctor.stdout and "SIGSEGV" in doctor.stdout


@pytest.mark.slow
@pytest.mark.skipif(not MACHINE_REPACK.get("repack", True), reason="repacking really crashes on this CPU")
def test_a_probe_that_succeeds_keeps_repacking_on(amx_cpu: Path, smollm_path: Path) -> None:
    verdict = repack.decide(smollm_path)
    assert verdict.repack is True and verdict.source == "probe"
    assert repack.decide(smollm_path).source == "remembered"


def test_the_verdict_is_keyed_by_cpu_and_build(amx_cpu: Path, smollm_path: Path) -> None:
    repack._remember(repack.Verdict(False, "probe", "test"), smollm_path)
    assert repack.remembered() == repack.Verdict(False, "remembered", "test")
    amx_cpu.write_text("model name\t: Another CPU\nflags\t\t: amx_tile\n", encoding="ascii")
    assert repack.remembered() is None  # another machine is probed again


def test_forcing_and_cpus_without_amx_need_no_probe(
    amx_cpu: Path, smollm_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(repack, "probe", lambda model: pytest.fail("probed"))
    assert repack.decide(smollm_path, forced=False) == repack.Verdict(False, "forced", "--no-repack")
    monkeypatch.setenv(repack.ENV, "on")
    assert repack.decide(smollm_path).repack is True
    monkeypatch.setenv(repack.ENV, "off")
    assert repack.decide(smollm_path, forced=True).repack is True  # the flag beats the variable
    monkeypatch.delenv(repack.ENV)
    amx_cpu.write_text("model name\t: EPYC\nflags\t\t: avx2 avx512f\n", encoding="ascii")
    assert repack.decide(smollm_path).source == "cpu"


def test_a_probe_that_fails_without_a_crash_is_not_remembered(
    amx_cpu: Path, tmp_path: Path, isolated_home: Path
) -> None:
    damaged = tmp_path / "damaged.gguf"
    damaged.write_bytes(b"GGUF" + b"\0" * 64)
    verdict = repack.decide(damaged)
    assert verdict.repack is False and "failed (exit 1" in verdict.reason
    assert not (isolated_home / "repack.json").exists()


def test_a_bad_environment_value_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(repack.ENV, "maybe")
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 2 and "MARCO_REPACK must be on, off or auto" in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.slow
def test_no_repack_reaches_the_engine(smollm_path: Path) -> None:
    from marco_cli.engine.llama import Engine

    with Engine(smollm_path, ctx=256, repack=False) as engine:
        assert engine.repack is False and engine.repack_verdict.source == "forced"
    result = runner.invoke(
        app,
        ["solve", "-m", "smollm2-135m", "--strategy", "cot", "--no-repack", "--json", "--no-log", QUESTION],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["settings"]["repack"] is False
