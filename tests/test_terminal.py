"""The real command in a real shell: pipes, Ctrl-C, llama.cpp's log, and a tmux terminal."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from marco_cli.record.record import Record
from marco_cli.runs.bench import answer_by
from marco_cli.search.strategies import answer_rule

MARCO = str(Path(sys.executable).with_name("marco"))
FAST = "-m smollm2-135m -n 2 --granularity mini-32 --max-tokens 48"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def sh(command: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "120"},
    )


@pytest.mark.slow
def test_pipe_carries_only_the_answer_and_stderr_stays_empty() -> None:
    piped = sh(f"echo 'What is 2 + 3?' | {MARCO} solve - {FAST} | cat")
    assert piped.returncode == 0 and piped.stderr == ""
    record = sh(f"echo 'What is 2 + 3?' | {MARCO} solve - {FAST} --json --no-log")
    import json

    answer = json.loads(record.stdout)["answer"]
    assert piped.stdout == answer + "\n"
    lines = sh(f"echo 'What is 2 + 3?' | {MARCO} solve {FAST} | wc -l")
    assert int(lines.stdout.strip()) == answer.count("\n") + 1


@pytest.mark.slow
def test_verbose_shows_llama_cpp_log_and_quiet_hides_it() -> None:
    quiet = sh(f"{MARCO} solve 'What is 2 + 3?' {FAST} --no-log")
    assert quiet.stderr == ""
    loud = sh(f"{MARCO} solve 'What is 2 + 3?' {FAST} --no-log -v")
    assert "llama" in loud.stderr and loud.returncode == 0


@pytest.mark.slow
def test_ctrl_c_prints_the_best_answer_so_far_and_exits_130() -> None:
    proc = subprocess.Popen(
        [
            MARCO,
            "solve",
            "Tom has 3 apples and buys 4 more. How many apples does he have?",
            "-m",
            "smollm2-135m",
            "-n",
            "500",
            "--stop-agree",
            "0",
            # eight children per expansion below the four first steps: wide enough that the tree
            # is not exhausted before the signal (with two, every branch of this easy question
            # finished in about three seconds on an AVX2 CPU; sixteen first steps of 32 tokens
            # left no answer finished by then)
            "--children",
            "8",
            "--temperature",
            "1.0",
            "--granularity",
            "mini-32",
            "--max-tokens",
            "256",
            "--no-log",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # A pipe shows no progress to poll (stderr stays quiet off a terminal; the tmux test below
    # polls the screen instead): 8 s is about three times what the first answer takes here.
    time.sleep(8)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted: the best answer so far is shown" in err
    saved = Record.from_json(json.loads(out))
    assert saved.stopped == "interrupted" and saved.answer
    # the best answer so far is exactly what the run's rule picks from the rollouts it had
    assert saved.answer == answer_by(saved, answer_rule(saved.search))
    assert saved.chosen is not None and saved.chosen.finished and saved.chosen.answer == saved.answer


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_live_tree_in_a_real_terminal(tmp_path: Path) -> None:
    session = f"marco-test-{os.getpid()}"
    done = tmp_path / "done"
    command = (
        f"{MARCO} solve 'Tom has 3 apples and buys 4 more. How many apples?' -m smollm2-135m "
        f"-n 10 --stop-agree 0 --granularity mini-32 --max-tokens 128; touch {done}; sleep 60"
    )
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "40", command],
        check=True,
        env={k: v for k, v in os.environ.items() if k != "NO_COLOR"},
    )
    try:
        during = ""
        for _ in range(100):
            time.sleep(0.2)
            during = _capture(session)
            if "iteration" in during and "├" in during:
                break
        assert "iteration" in during and "tok/s" in during, during
        for _ in range(300):
            if done.exists():
                break
            time.sleep(0.2)
        final = _capture(session)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    assert ("├──" in final or "└──" in final) and "iteration 10/10" in final, final
    assert "Output" in final and "smollm2-135m · mcts · 10 iterations" in final, final
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "tmux_during.txt").write_text(during)
    (ARTIFACTS / "tmux_final.txt").write_text(final)
    print(f"\n--- captured terminal (final) ---\n{final}")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_ctrl_c_sigterm_and_sighup_in_a_terminal(
    tmp_path: Path, isolated_home: Path, sig: signal.Signals, code: int
) -> None:
    """The best answer is printed, the run saved, the cursor shown again, exit 128 + signal.
    Ctrl-C is the key pressed in the terminal (tmux sends it), the others a signal to the pid."""
    session = f"marco-sig-{os.getpid()}-{code}"
    pid, done = tmp_path / "pid", tmp_path / "done"
    solve = (
        f"{MARCO} solve 'Tom has 3 apples and buys 4 more. How many apples?' -m smollm2-135m -n 500 "
        f"--stop-agree 0 --temperature 1.0 --granularity mini-32 --max-tokens 128"
    )
    # Ctrl-C reaches the terminal's foreground job (a background job of a script ignores it)
    run = f"echo $$ > {pid}; {solve}" if sig == signal.SIGINT else f"{solve} & echo $! > {pid}; wait $!"
    command = f"{run}; echo rc=$? > {done}; sleep 60"
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"} | {"MARCO_HOME": str(isolated_home)}
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "40", command], env=env)
    try:
        for _ in range(300):  # until a rollout has finished: the status line shows its reward
            time.sleep(0.2)
            if re.search(r"best reward \d", _capture(session)) and pid.exists():
                break
        hidden = _cursor_flag(session)
        if sig == signal.SIGINT:
            subprocess.run(["tmux", "send-keys", "-t", session, "C-c"], check=True)
        else:
            os.kill(int(pid.read_text()), sig)
        for _ in range(100):
            if done.exists():
                break
            time.sleep(0.2)
        final, shown = _capture(session), _cursor_flag(session)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    assert done.read_text().strip() == f"rc={code}", final
    assert hidden == "0" and shown == "1"  # the live view hid the cursor; it is back
    assert "Output" in final and "interrupted: the best answer so far is shown" in final, final
    assert "Traceback" not in final
    runs = subprocess.run([MARCO, "log", "--json"], capture_output=True, text=True, env=env)
    run_id = json.loads(runs.stdout)[0]["id"]
    shown_run = subprocess.run(
        [MARCO, "show", str(run_id), "--json"], capture_output=True, text=True, env=env
    )
    saved = Record.from_json(json.loads(shown_run.stdout))
    # saved with the answer its rule picks from the rollouts it had, and that answer is on screen
    rule = answer_rule(saved.search)
    assert saved.stopped == "interrupted" and saved.answer == answer_by(saved, rule) != ""
    assert saved.answer.split("\n")[0][:30] in " ".join(final.split()), final


def _cursor_flag(session: str) -> str:
    return subprocess.run(
        ["tmux", "display", "-p", "-t", session, "#{cursor_flag}"], capture_output=True, text=True
    ).stdout.strip()


def _capture(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True, check=False
    ).stdout


@pytest.mark.slow
def test_ctrl_c_stops_a_long_prompt_decode_at_once(tmp_path: Path) -> None:
    """A 3,000-token prompt takes about 15 s to decode on 2 cores; Ctrl-C must not wait for it.
    The signal goes once the decode is under way: the model has loaded (llama.cpp's log, shown
    by -v, says its compute buffers are reserved) and the process has since spent a second of
    CPU time (the decode is the only work left). 5 s is a third of the decode."""
    proc = subprocess.Popen(
        [MARCO, "solve", "word " * 3000, "-m", "smollm2-135m", "--ctx", "4096", "--no-log", "-v"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    log = []
    for line in proc.stderr:  # blocks on each line; llama.cpp writes hundreds while loading
        log.append(line)
        if "reserve took" in line:
            break
    loaded = _cpu_seconds(proc.pid)
    deadline = time.monotonic() + 60
    while _cpu_seconds(proc.pid) < loaded + 1.0 and time.monotonic() < deadline:
        time.sleep(0.05)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    err = "".join(log) + rest
    assert proc.returncode == 130 and time.monotonic() - sent < 5.0, err[-2000:]
    assert "no answer had finished yet" in err and "Traceback" not in err


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
