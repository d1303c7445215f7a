"""Datasets by name: MGSM's eleven languages and GSM8K's test split shipped in the package (with
their licences), the seeded arithmetic generator, Hub dataset files through huggingface-hub,
and local files as before; `marco bench NAME` from a folder with no ../shared beside it."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from marco_cli.cli.app import app
from marco_cli.runs import bench, datasets
from tests.fakehub import FakeHub
from tests.helpers import one_line_error, runner

ROOT = Path(__file__).resolve().parents[1]
MARCO = str(Path(sys.executable).with_name("marco"))


@pytest.mark.parametrize("dataset", [d for d in datasets.CATALOGUE if d.resource], ids=lambda d: d.name)
def test_every_shipped_dataset_loads_whole_with_its_licence(dataset: datasets.Dataset) -> None:
    loaded = datasets.load(dataset.name)
    assert loaded.label == dataset.name and len(loaded.problems) == dataset.size
    assert all(p.question for p in loaded.problems)
    assert all(bench.grade(p.answer, p.answer)[1] for p in loaded.problems)  # each gold grades as a number
    licence = ROOT / "marco_cli" / "data" / dataset.resource.split("/")[0] / "LICENSE"
    assert licence.is_file() and (
        dataset.licence.split()[0] in licence.read_text() or "MIT" in licence.read_text()
    )


def test_the_languages_are_the_same_250_problems() -> None:
    english, chinese = datasets.load("mgsm-en").problems, datasets.load("mgsm-zh").problems
    assert [p.answer for p in english] == [p.answer for p in chinese]
    assert english[0].question.startswith("Janet’s ducks") and english[0].answer == "18"


def test_arith_by_name_is_the_benchmark_scripts_set() -> None:
    """The script's TSV holds the same set (its format and default seed; that each gold answer is
    what its question computes is tests/test_pinned.py's)."""
    script = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "arith_problems.py"), "--n", "300", "--seed", "11"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [line.split("\t") for line in script.stdout.splitlines()]
    loaded = datasets.load("arith:300:11")
    assert [(p.question, p.answer) for p in loaded.problems] == [(q, a) for q, a in rows]
    assert datasets.load("arith:300").label == "arith:300:11"  # seed 11 by default


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("arith:0", "N is a whole number from 1 to 999999"),
        ("arith:abc", "N is a whole number from 1 to 999999"),
        ("mgsm-xx", "no dataset or file 'mgsm-xx' (datasets: mgsm-bn"),
        ("hf:datasets/only-owner", "is not like hf:datasets/OWNER/REPO/FILE.jsonl"),
    ],
)
def test_a_name_that_is_no_dataset_is_one_usage_line(scripted_session, spec: str, says: str) -> None:
    line = one_line_error(runner.invoke(app, ["bench", spec]), 2)
    assert says in line, line


def test_a_file_keeps_working_and_wins_over_a_name(scripted_session, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("gsm8k").write_text("What is 1 + 1?\t2\n", encoding="utf-8")  # a file named like a dataset
    result = runner.invoke(app, ["bench", "gsm8k", "--strategy", "cot", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["problems"] == 1


def test_a_hub_dataset_file_goes_through_huggingface_hub(
    scripted_session, hub: FakeHub, tmp_path: Path
) -> None:
    rows = [{"question": "What is 2 + 2?", "answer": "4"}, {"question": "What is 3 + 1?", "answer": "4"}]
    hub.state.repos["datasets/someone/tiny-math"] = {
        "test.jsonl": "".join(json.dumps(r) + "\n" for r in rows).encode()
    }
    spec = "hf:datasets/someone/tiny-math/test.jsonl"
    result = runner.invoke(app, ["bench", spec, "--strategy", "cot", "--out", str(tmp_path / "o"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["dataset"] == spec and summary["configs"]["cot"]["correct"] == 2
    assert any("datasets/someone/tiny-math" in path for _, path, _ in hub.state.requests)
    missing = one_line_error(runner.invoke(app, ["bench", "hf:datasets/someone/tiny-math/nope.jsonl"]), 1)
    assert "nope.jsonl" in missing


def test_datasets_lists_name_size_languages_licence() -> None:
    listed = json.loads(runner.invoke(app, ["datasets", "--json"]).stdout)
    names = [d["name"] for d in listed]
    assert names[:11] == [f"mgsm-{c}" for c in datasets.MGSM_LANGUAGES] and "gsm8k" in names
    gsm8k = next(d for d in listed if d["name"] == "gsm8k")
    assert gsm8k["size"] == 1319 and gsm8k["licence"] == "MIT" and gsm8k["languages"] == "English"


@pytest.mark.slow
@pytest.mark.parametrize("name", [*(d.name for d in datasets.CATALOGUE if d.resource), "arith:20:3"])
def test_bench_by_name_from_a_folder_with_nothing_beside_it(tmp_path: Path, name: str) -> None:
    """The installed command, run where there is no ../shared and no checkout: the package's copy."""
    args = [
        MARCO,
        "bench",
        name,
        "-m",
        "smollm2-135m",
        "--strategy",
        "cot",
        "--limit",
        "1",
        "--max-tokens",
        "16",
    ]
    done = subprocess.run([*args, "--json"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["dataset"] == datasets.load(name).label and summary["configs"]["cot"]["n"] == 1


@pytest.mark.slow
def test_the_wheel_holds_the_datasets_their_licences_and_the_registry(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("marco_cli-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"marco_cli/data/{d.resource}" for d in datasets.CATALOGUE if d.resource}
    assert shipped <= names
    assert {
        "marco_cli/data/mgsm/LICENSE",
        "marco_cli/data/gsm8k/LICENSE",
        "marco_cli/data/README.md",
    } <= names
    assert {"marco_cli/models.yaml", "marco_cli/ui/page.css", "marco_cli/ui/page.js"} <= names
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata
