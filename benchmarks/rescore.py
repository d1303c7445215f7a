"""Re-scoring saved trees: every answer rule on the trees a `marco bench --out DIR` run kept
(records.jsonl), graded against the gold answers, without generating again — the fair way to
compare answer rules, on the same trees.

    python benchmarks/rescore.py DIR [DIR ...] [--reward SPEC] [--compare RULE,RULE ...]

Prints, per configuration: problems, accuracy under each rule (`saved` is the answer the run
gave, which the rule it ran with must reproduce), and `oracle`, the problems where some finished
rollout in the tree had the right answer (what no rule can beat). The DeepConf columns (and
`trace`) need trace confidences, which every rollout carries in records made since they were
kept for searches too (before, only sampled answers had them): `-` in older ones. The
`answer-conf` (the finished rollout whose answer tokens were most confident), `answer-vote`
(the vote weighted by that confidence) and `answer-branch` (one vote per branch, ties by it)
columns need records that saved it: `-` in older ones. `--reward SPEC` (`check`,
`answer+check`, ...) first recomputes every rollout's reward under SPEC from what the record
kept (no reward needs a new generation), so the rules that read rewards answer as if the run had
scored its rollouts that way; the trees themselves are the ones the run grew. `--compare A,B`
(repeatable) adds, per configuration, the paired flips between two rules on the same trees and
the exact McNemar p-value: which answers one rule gains and loses against the other.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from marco_cli.runs import bench
from marco_cli.runs.stats import mcnemar_p


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--reward", help="re-score every rollout under this reward first")
    parser.add_argument("--compare", action="append", default=[], help="RULE,RULE: paired flips, McNemar")
    args = parser.parse_args()
    pairs = [tuple(p.split(",", 1)) for p in args.compare]
    flips: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    columns = ("saved", *bench.RULES, "oracle")
    print("| folder | config | n | " + " | ".join(columns) + " |")
    print("|---|---|---|" + "---|" * len(columns))
    for folder in args.folders:
        right: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(columns, 0))
        count: dict[str, int] = defaultdict(int)
        scored: dict[str, bool] = defaultdict(bool)  # samples with trace confidences (DeepConf)
        answered: dict[str, bool] = defaultdict(bool)  # rollouts with answer-token confidences
        for kept in bench.read_records(folder):
            record, gold, config = kept.record, kept.gold, kept.config
            if args.reward:
                try:
                    record = record.rescored(args.reward)
                except ValueError as exc:  # a bad spec, or `judge` on a run that never asked a verifier
                    raise SystemExit(f"rescore.py: {folder}: {exc}") from None
            count[config] += 1
            right[config]["saved"] += bench.grade(record.answer, gold)[1]
            graded = {rule: bench.grade(bench.answer_by(record, rule), gold)[1] for rule in bench.RULES}
            for rule in bench.RULES:
                right[config][rule] += graded[rule]
            for first, second in pairs:
                flips[(config, first, second)][0] += graded[first] and not graded[second]
                flips[(config, first, second)][1] += graded[second] and not graded[first]
            finished = [r.answer for r in record.rollouts if r.finished]
            right[config]["oracle"] += any(bench.grade(a, gold)[1] for a in finished)
            scored[config] |= any(r.trace_confidence is not None for r in record.rollouts)
            answered[config] |= any(r.answer_confidence is not None for r in record.rollouts)
        for config, n in count.items():
            cells = " | ".join(
                "-"
                if ((c.startswith("deepconf") or c == "trace") and not scored[config])
                or (c.startswith("answer-") and not answered[config])
                else f"{right[config][c]}/{n}"
                for c in columns
            )
            print(f"| {folder.name} | {config} | {n} | {cells} |")
        for (config, first, second), (only_first, only_second) in flips.items():
            p_value = mcnemar_p(only_first, only_second)
            print(
                f"{folder.name} {config}: {first} {right[config][first]} vs {second} "
                f"{right[config][second]}: {first} alone right {only_first}, {second} alone right "
                f"{only_second}, exact McNemar p = {p_value:.3g}"
            )
        flips.clear()


if __name__ == "__main__":
    main()
