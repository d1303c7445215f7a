"""How fast commands that run no model start: `marco --version` and `marco log` against three
yardsticks, `python -c pass`, `python -c "import typer, rich.console"` (what any Typer/Rich CLI
pays to import) and a one-command Typer program that runs its command (what any Typer CLI pays to
run one: Typer 0.29 and later build every option through pydantic), median of N runs each,
measured in one run. Target: within 2x of the second.

Usage: python benchmarks/startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MARCO = str(Path(sys.executable).with_name("marco"))
ONE_COMMAND = """
import typer
app = typer.Typer()
@app.command()
def log(limit: int = 20, as_json: bool = False) -> None:
    print(limit, as_json)
app()
"""


def median_seconds(args: list[str], runs: int, env: dict[str, str]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
    env = {**os.environ, "MARCO_HOME": tempfile.mkdtemp(prefix="marco-startup-")}
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "import typer, rich.console": [sys.executable, "-c", "import typer, rich.console"],
        "a one-command Typer program": [sys.executable, "-c", ONE_COMMAND],
        "marco --version": [MARCO, "--version"],
        "marco log": [MARCO, "log"],
        "marco --help": [MARCO, "--help"],
    }
    seconds = {name: median_seconds(args, runs, env) for name, args in cases.items()}
    floor, yardstick = seconds["python -c pass"], seconds["import typer, rich.console"]
    one_command = seconds["a one-command Typer program"]
    for name, value in seconds.items():
        ratios = f"{value / floor:5.1f}x python  {value / yardstick:5.2f}x typer+rich"
        print(f"{name:<28} {value:6.3f} s  {ratios}  {value / one_command:5.2f}x one-command typer")


if __name__ == "__main__":
    main()
