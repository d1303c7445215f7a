"""Real huggingface-hub downloads against the fake Hub on loopback (HF_ENDPOINT)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from marco_cli.cli.app import app
from tests.fakehub import FakeHub
from tests.helpers import runner

REPO = "tester/tiny-GGUF"
NAME = "tiny.Q4_0.gguf"
DATA = b"GGUF" + os.urandom(24_000_000)  # above two of the client's 10 MB read chunks


def _register(home: Path, sha: str | None = None, name: str = NAME, repo: str = REPO) -> None:
    extra = f", sha256: {sha}" if sha else ""
    (home / "models.yaml").write_text(
        "models:\n  tiny:\n    context_length: 512\n"
        f"    sources: [{{hf: {{repo: {repo}, files: {{Q4_0: {{file: {name}{extra}}}}}}}}}]\n"
    )


def _cached(tmp_root: Path) -> list[Path]:
    return [p for p in (tmp_root / "hf-cache").rglob(NAME) if p.is_file()]


@pytest.fixture
def tiny(hub: FakeHub, isolated_home: Path) -> FakeHub:
    hub.state.repos[REPO] = {NAME: DATA, "notgguf.gguf": b"PK\x03\x04" + b"x" * 100}
    _register(isolated_home, sha=hashlib.sha256(DATA).hexdigest())
    return hub


def test_pull_downloads_into_the_hf_cache_and_verifies(tiny: FakeHub, tmp_path: Path) -> None:
    result = runner.invoke(app, ["pull", "tiny"])
    assert result.exit_code == 0, result.output
    files = _cached(tmp_path)
    assert len(files) == 1 and files[0].read_bytes() == DATA
    assert "snapshots" in str(files[0])
    assert any(m == "GET" for m, _, _ in tiny.state.requests)
    listed = runner.invoke(app, ["models", "--json"])
    row = next(r for r in __import__("json").loads(listed.stdout) if r["name"] == "tiny")
    assert row["downloaded"] and row["size"] == len(DATA)


def test_pull_resumes_after_the_connection_is_cut(tiny: FakeHub, tmp_path: Path) -> None:
    half = 16_000_000
    tiny.state.cut_next_get_at = half
    tiny.state.fail_range_gets = True  # the server stays down after the cut
    first = runner.invoke(app, ["pull", "tiny"])
    assert first.exit_code == 1
    assert "run the same command again" in first.stderr
    assert len(first.stderr.strip().splitlines()) == 1
    partial = list((tmp_path / "hf-cache").rglob("*.incomplete"))
    assert partial and 0 < partial[0].stat().st_size < len(DATA)
    tiny.state.fail_range_gets = False
    second = runner.invoke(app, ["pull", "tiny"])
    assert second.exit_code == 0, second.output
    assert _cached(tmp_path)[0].read_bytes() == DATA
    ranges = [r for m, _, r in tiny.state.requests if m == "GET" and r]
    assert ranges and int(ranges[-1].split("=")[1].rstrip("-")) > 0


@pytest.mark.parametrize(
    ("repo", "name", "needle"),
    [
        ("nobody/missing-GGUF", NAME, "repository not found"),
        (REPO, "absent.gguf", "file not found in tester/tiny-GGUF: absent.gguf"),
    ],
)
def test_missing_repo_or_file(tiny: FakeHub, isolated_home: Path, repo: str, name: str, needle: str) -> None:
    _register(isolated_home, name=name, repo=repo)
    result = runner.invoke(app, ["pull", "tiny"])
    assert result.exit_code == 1
    assert needle in result.stderr
    assert "Traceback" not in result.output


def test_gated_repo(tiny: FakeHub) -> None:
    tiny.state.gated.add(REPO)
    result = runner.invoke(app, ["pull", "tiny"])
    assert result.exit_code == 1 and "gated" in result.stderr


def test_network_unreachable(isolated_home: Path) -> None:
    _register(isolated_home)  # HF_ENDPOINT points at a closed port
    result = runner.invoke(app, ["pull", "tiny"])
    assert result.exit_code == 1
    assert "cannot reach the Hub" in result.stderr


def test_sha256_mismatch_is_refused(tiny: FakeHub, isolated_home: Path) -> None:
    _register(isolated_home, sha="ab" * 32)  # (64 zeros would be read by YAML as a number)
    result = runner.invoke(app, ["pull", "tiny"])
    assert result.exit_code == 1 and "failed its sha256 check" in result.stderr  # said as it arrives
    solved = runner.invoke(app, ["solve", "What is 2 + 2?", "-m", "tiny", "--yes"])  # never loaded
    assert solved.exit_code == 1 and "sha256" in solved.stderr


def test_non_gguf_download_is_refused(tiny: FakeHub, isolated_home: Path) -> None:
    _register(isolated_home, name="notgguf.gguf")
    result = runner.invoke(app, ["pull", "tiny"])
    assert result.exit_code == 1 and "not a GGUF" in result.stderr


def test_offline_uses_the_cache_and_explains_when_absent(
    tiny: FakeHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    absent = runner.invoke(app, ["pull", "tiny"])
    assert absent.exit_code == 1 and "HF_HUB_OFFLINE" in absent.stderr
    assert not tiny.state.requests
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert runner.invoke(app, ["pull", "tiny"]).exit_code == 0
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    count = len(tiny.state.requests)
    cached = runner.invoke(app, ["pull", "tiny"])
    assert cached.exit_code == 0, cached.output
    assert len(tiny.state.requests) == count


def test_refuses_early_when_disk_is_too_small(
    tiny: FakeHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import shutil

    from marco_cli.store import download

    real = shutil.disk_usage
    monkeypatch.setattr(
        download.shutil, "disk_usage", lambda p: real(p)._replace(free=len(DATA) // 2)
    )  # a full disk, faked
    result = runner.invoke(app, ["pull", "tiny"])
    assert result.exit_code == 1 and "not enough disk space" in result.stderr
    assert not any(m == "GET" for m, _, _ in tiny.state.requests)


def test_split_files_are_all_fetched_and_the_first_is_loaded(hub: FakeHub, isolated_home: Path) -> None:
    parts = {f"big-q4-0000{i}-of-00002.gguf": b"GGUF" + bytes([i]) * 1000 for i in (1, 2)}
    hub.state.repos["tester/split-GGUF"] = parts
    names = list(parts)
    (isolated_home / "models.yaml").write_text(
        "models:\n  split:\n    context_length: 512\n    sources:\n      - hf:\n"
        "          repo: tester/split-GGUF\n          files:\n            Q4:\n"
        f"              - {names[0]}\n              - {names[1]}\n"
    )
    result = runner.invoke(app, ["pull", "split"])
    assert result.exit_code == 0, result.output
    from marco_cli.store.download import locate
    from marco_cli.store.registry import load_registry, parse_spec

    local = locate(parse_spec("split", load_registry()))
    assert local is not None and local.path.name == names[0] and len(local.parts) == 2
    assert local.parts[1].read_bytes() == parts[names[1]]


def test_rm_removes_downloaded_files(tiny: FakeHub, tmp_path: Path) -> None:
    assert runner.invoke(app, ["pull", "tiny"]).exit_code == 0
    refused = runner.invoke(app, ["rm", "tiny"])
    assert refused.exit_code == 2 and _cached(tmp_path)
    result = runner.invoke(app, ["rm", "tiny", "--yes"])
    assert result.exit_code == 0, result.output
    assert not _cached(tmp_path)
    again = runner.invoke(app, ["rm", "tiny", "--yes"])
    assert again.exit_code == 1 and "no downloaded files" in again.stderr


def test_hf_spec_downloads_directly(tiny: FakeHub, tmp_path: Path) -> None:
    result = runner.invoke(app, ["pull", f"hf:{REPO}/{NAME}"])
    assert result.exit_code == 0, result.output
    assert _cached(tmp_path)[0].read_bytes() == DATA


def test_rm_deletes_only_inside_the_cache(isolated_home: Path, tmp_path: Path) -> None:
    (isolated_home / "models.yaml").write_text(
        "models:\n  mine:\n    context_length: 2048\n"
        "    sources: [{hf: {repo: someone/mine, files: {Q4: m.gguf}}}]\n"
    )
    outside = tmp_path / "precious.gguf"
    outside.write_bytes(b"GGUF keep me")
    repo = Path(str(tmp_path / "hf-cache")) / "models--someone--mine"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "m.gguf").symlink_to(outside)
    result = runner.invoke(app, ["rm", "mine", "--yes"])
    assert result.exit_code == 0, result.output
    assert outside.read_bytes() == b"GGUF keep me" and not (snapshot / "m.gguf").is_symlink()
    assert f"removed {snapshot / 'm.gguf'}" in result.stderr.replace("\n", "")
    assert str(outside) not in result.stderr.replace("\n", "")
