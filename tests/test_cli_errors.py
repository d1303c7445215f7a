"""The command line's error boundary (cli/app.py, cli/options.py): absurd values, unwritable targets,
bad bytes and bad URLs each end in one line on stderr with exit 2 (usage) or 1 (runtime), no
traceback, and nothing paid for is lost. The engine is the scripted model."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from marco_cli.cli.app import app
from marco_cli.runs import bench, history
from tests.helpers import no_traceback, one_line_error, runner

Q = "What is 2 + 2?"
MARCO = str(Path(sys.executable).with_name("marco"))


BAD_UTF8 = b"What is caf\xe9?\t4\n"


def _dataset(tmp_path: Path) -> Path:
    data = tmp_path / "tiny.tsv"
    data.write_text("What is 2 + 2?\t4\nWhat is 3 + 1?\t4\nWhat is 1 + 1?\t2\n", encoding="utf-8")
    return data


USAGE_CASES: list[tuple[str, list[str], str]] = [
    ("children", ["solve", Q, "--children", "100000"], "--children"),
    ("samples", ["solve", Q, "--strategy", "vote", "--samples", "10000000"], "--samples"),
    ("timeout", ["solve", Q, "--timeout", "1e308"], "--timeout"),
    ("parallel above llama.cpp's 256", ["solve", Q, "--parallel", "300"], "256"),
    ("threads", ["solve", Q, "--threads", "100000000000000000000000"], "--threads"),
    ("run range", ["export", "--run", "1-100000000000"], "more than 100,000 runs"),
    ("run zero", ["export", "--run", "0-3"], "run ids start at 1"),
    ("min reward nan", ["export", "--run", "1", "--min-reward", "nan"], "finite"),
    ("hf name with ..", ["pull", "hf:owner/../x.gguf"], "cannot hold '..'"),
    ("hf file with ..", ["pull", "hf:owner/repo/../../x.gguf"], "cannot hold '..'"),
    ("show 0", ["show", "0"], "no run 0"),
    ("show 99", ["show", "99"], "no run 99"),
    ("translate too long", ["translate", "TOO LONG text"], "longer than the"),
    ("backend with credentials", ["solve", Q, "--backend", "ftp://me:hunter2@example.com"], "ftp://"),
    ("serve port", ["serve", "--port", "70000"], "--port"),
    ("serve queue", ["serve", "--queue", "-1"], "--queue"),
    ("temperature nan", ["solve", Q, "--temperature", "nan"], "must be a finite number, not nan"),
    ("top-p out of range", ["solve", Q, "--top-p", "2"], "must be between 0 and 1, not 2"),
    ("translate to nothing", ["translate", "hola", "--to", ""], "is not a language's name"),
    ("translate to an escape", ["translate", "hola", "--to", "Fr\x1b[2Jench"], "is not a language's name"),
    ("html in a missing folder", ["solve", Q, "--html", "/nonexistent/x.html"], "does not exist"),
    ("html is a folder", ["solve", Q, "--html", "/tmp"], "it is a folder"),
]


@pytest.mark.parametrize(("case", "args", "said"), USAGE_CASES, ids=[c[0] for c in USAGE_CASES])
def test_usage_errors(scripted_session, case: str, args: list[str], said: str) -> None:
    if case == "show 99":
        assert runner.invoke(app, ["solve", Q]).exit_code == 0  # a history that has run 1
    line = one_line_error(runner.invoke(app, args), 2)
    assert said in line and "hunter2" not in line


def test_file_usage_errors(scripted_session, tmp_path: Path) -> None:
    data = _dataset(tmp_path)
    afile = tmp_path / "a-file"
    afile.write_text("x", encoding="utf-8")
    latin1 = tmp_path / "latin1.tsv"
    latin1.write_bytes(BAD_UTF8)
    cases = [
        (["bench", str(data), "--out", str(afile)], "is a file, not a folder"),
        (["bench", str(latin1), "--out", str(tmp_path / "o")], "byte 11 is not UTF-8"),
        (["bench", str(data), "--out", str(tmp_path / "o2"), "--html", str(afile)], "is a file"),
        (["export", str(afile)], "is not a folder"),
    ]
    for args, said in cases:
        assert said in one_line_error(runner.invoke(app, args), 2), args
    assert not (tmp_path / "o2" / bench.RESULTS).exists()  # refused before any search ran


def test_runtime_errors(scripted_session, tmp_path: Path, isolated_home: Path) -> None:
    assert runner.invoke(app, ["solve", Q]).exit_code == 0
    folder = tmp_path / "folder"
    folder.mkdir()
    cases = [
        (["show", "1", "--html", str(folder)], "it is a folder"),
        (["show", "1", "--html", "/dev/full"], "No space left on device"),
        (["show", "1", "--html", str(tmp_path / "missing" / "p.html")], "No such file"),
        (["export", "--run", "1", "--out", "/dev/full"], "No space left on device"),
        (["export", "--run", "1", "--out", str(folder)], "it is a folder"),
        (["solve", Q, "--html", "/dev/full"], "No space left on device"),
    ]
    for args, said in cases:
        assert said in one_line_error(runner.invoke(app, args), 1), args
    # the solve whose page failed still printed its answer and saved its run
    assert len(history.recent(10)) == 2


def test_non_utf8_stdin_and_arguments_are_usage_errors(scripted_session) -> None:
    result = runner.invoke(app, ["solve", "-"], input=b"\xff\xfe bad")
    no_traceback(result)
    assert result.exit_code == 2 and "stdin: byte 0 is not UTF-8" in result.stderr
    latin1 = subprocess.run([MARCO, "solve", b"caf\xe9 au lait?"], capture_output=True, text=True)
    assert latin1.returncode == 2 and "the argument: byte 3 is not UTF-8" in latin1.stderr
    assert "Traceback" not in latin1.stderr and not scripted_session


@pytest.mark.parametrize("url", ["not-a-url", "ftp://example.com/v1", "http://"])
def test_backend_must_be_an_http_url(scripted_session, url: str) -> None:
    result = runner.invoke(app, ["solve", Q, "--backend", url])
    no_traceback(result)
    said = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())  # Typer's error box, unwrapped
    assert result.exit_code == 2 and "is not an http:// or https:// URL" in said
    assert not scripted_session


HEAVY = ("llama_cpp", "numpy", "huggingface_hub", "httpx", "starlette", "uvicorn")
PROBE = """
import sys
from marco_cli.cli.app import main
sys.argv = ["marco", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print("LOADED", [m for m in {heavy!r} if m in sys.modules], file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args", [["--version"], ["--help"], ["log"], ["show", "1"], ["export", "--all"], ["datasets"]]
)
def test_commands_that_run_no_model_load_no_engine_numpy_or_http_stack(
    args: list[str], tmp_path: Path
) -> None:
    """What `benchmarks/startup.py` times: these start without llama.cpp, numpy or the HTTP stack."""
    env = {**os.environ, "MARCO_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "LOADED []" in done.stderr, done.stderr[-500:]
