"""What a hostile user does to the model store, as a table the next round starts from: names
too long for a file system or the Hub, and a cached file that is not what the registry pins
(real huggingface-hub against the fake Hub)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from marco_cli.cli.app import app
from tests.fakehub import FakeHub
from tests.helpers import one_line_error, runner
from tests.test_download import DATA, NAME, REPO, _cached, _register

LONG = "a" * 300


@pytest.mark.parametrize(
    ("spec", "code", "says"),
    [
        (f"{LONG}.gguf", 2, "File name too long"),
        (f"/tmp/{LONG}", 2, "File name too long"),
        (LONG, 1, "unknown model"),
        (f"hf:o/r/{LONG}.gguf", 2, "longer than 255 characters"),
        (f"hf:{'o' * 100}/r/x.gguf", 2, "names no Hugging Face repo"),
        ("hf:o/r--x/y.gguf", 2, "names no Hugging Face repo"),
    ],
)
def test_a_model_name_too_long_or_not_the_hubs_is_one_short_line(spec: str, code: int, says: str) -> None:
    for command in (["pull", spec], ["solve", "hi", "-m", spec, "-q"]):
        line = one_line_error(runner.invoke(app, command), code)
        assert says in line and len(line) < 250, line


@pytest.fixture
def pulled(hub: FakeHub, isolated_home: Path, tmp_path: Path) -> Path:
    hub.state.repos[REPO] = {NAME: DATA}
    _register(isolated_home, sha=hashlib.sha256(DATA).hexdigest())
    assert runner.invoke(app, ["pull", "tiny"]).exit_code == 0
    (blob,) = _cached(tmp_path)
    return blob


def test_a_cached_file_that_does_not_match_its_sha256_is_refused_by_pull_and_solve(pulled: Path) -> None:
    real = pulled.resolve()
    damaged = bytearray(real.read_bytes())
    damaged[1000] ^= 0xFF  # same size, one byte flipped: a bad disk, a replaced file
    real.write_bytes(bytes(damaged))
    for command in (["pull", "tiny"], ["solve", "hi", "-m", "tiny", "-q"]):
        line = one_line_error(runner.invoke(app, command), 1)
        assert "does not match the registry's sha256" in line, line
        assert "marco rm tiny:Q4_0 --yes" in line and "marco pull tiny:Q4_0" in line


def test_a_matching_file_is_hashed_once_then_remembered_by_size_and_mtime(
    pulled: Path, isolated_home: Path
) -> None:
    real = pulled.resolve()
    memo = json.loads((isolated_home / "verified.json").read_text())  # the download's own check
    stat = real.stat()
    assert memo == {str(real): [len(DATA), stat.st_mtime_ns, hashlib.sha256(DATA).hexdigest()]}
    damaged = bytearray(real.read_bytes())
    damaged[1000] ^= 0xFF
    real.write_bytes(bytes(damaged))
    os.utime(real, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime: not hashed again
    assert runner.invoke(app, ["pull", "tiny"]).exit_code == 0
    os.utime(real)  # a new mtime: hashed again, and caught
    assert "sha256" in one_line_error(runner.invoke(app, ["pull", "tiny"]), 1)
