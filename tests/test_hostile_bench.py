"""What a hostile user (or a full disk, or one odd problem) does to `marco bench`, as a table the
next round starts from: one line naming what is wrong, nothing lost, and one bad problem never
stops the others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from marco_cli.cli.app import app
from marco_cli.runs import bench
from tests.helpers import no_traceback, one_line_error, remount, runner, tmpfs


def _dataset(tmp_path: Path, count: int = 3) -> Path:
    data = tmp_path / "tiny.tsv"
    data.write_text("".join(f"What is {i} + 1?\t{i + 1}\n" for i in range(count)), encoding="utf-8")
    return data


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--strategy", "cot@4"], "'cot@4': cot takes no budget after @ (only mcts, best-of-n, vote"),
        (["--offset", "99999999999999999999"], "--offset 99999999999999999999 selects no problem"),
        (["--offset", "3"], "has 3"),
    ],
)
def test_a_configuration_or_range_that_means_nothing_is_a_usage_error(
    scripted_session, tmp_path: Path, args: list[str], says: str
) -> None:
    result = runner.invoke(app, ["bench", str(_dataset(tmp_path)), *args, "--out", str(tmp_path / "o")])
    line = one_line_error(result, 2)
    assert says in line, line


def test_a_problem_longer_than_the_context_is_skipped_and_the_bench_goes_on(tmp_path: Path) -> None:
    data = tmp_path / "mixed.tsv"
    long = "apples and pears " * 200
    data.write_text(f"What is 2 + 3?\t5\n{long}What is 1 + 1?\t2\nWhat is 4 + 4?\t8\n", encoding="utf-8")
    out = tmp_path / "out"
    args = ["bench", str(data), "-m", "smollm2-135m", "--strategy", "cot", "--ctx", "256"]
    result = runner.invoke(app, [*args, "--max-tokens", "24", "--out", str(out), "--json"])
    no_traceback(result)
    assert result.exit_code == 0, result.output
    assert "problem 1 skipped (cot): the prompt" in " ".join(result.stderr.split())
    figures = json.loads(result.stdout)["configs"]["cot"]
    assert figures["n"] == 2 and figures["skipped"] == 1  # problems 0 and 2 ran; 1 is outside the figures
    rows = bench.read_results(out)
    assert sorted(r.index for r in rows) == [0, 1, 2] and [r.index for r in rows if r.skipped] == [1]
    again = runner.invoke(app, [*args, "--max-tokens", "24", "--out", str(out)])
    assert again.exit_code == 0 and "skipped" in again.stdout  # the table's column; nothing re-ran
    assert len(bench.read_results(out)) == 3


def test_a_full_disk_is_one_line_and_the_bench_resumes_once_there_is_space(
    scripted_session, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "disk", "48k") as disk:
        data, out = _dataset(tmp_path, 60), disk / "out"
        args = ["bench", str(data), "--strategy", "cot", "--out", str(out), "--json"]
        full = runner.invoke(app, args)
        line = one_line_error(full, 1)
        assert f"cannot write to {out}: No space left on device" in line and "rerun" in line, line
        written = bench.read_results(out)  # what was written before the disk filled stays valid
        assert 0 < len(written) < 60
        remount(disk, "size=8m")
        resumed = runner.invoke(app, args)
        assert resumed.exit_code == 0, resumed.output
        assert json.loads(resumed.stdout)["configs"]["cot"]["n"] == 60
        assert sorted(r.index for r in bench.read_results(out)) == list(range(60))  # each once
