"""Re-scoring saved trees: every answer rule on the trees a `marco bench --out DIR` run kept
(records.jsonl), graded against the gold answers, without generating again — the fair way to
compare answer rules, on the same trees.

    python benchmarks/rescore.py DIR [DIR ...] [--reward SPEC]

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
scored its rollouts that way; the trees themselves are the ones the run grew.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from marco_cli.runs import bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--reward", help="re-score every rollout under this reward first")
    args = parser.parse_args()
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
            for rule in bench.RULES:
                right[config][rule] += bench.grade(bench.answer_by(record, rule), gold)[1]
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


if __name__ == "__main__":
    main()
