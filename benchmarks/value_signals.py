"""How well each value signal separates right answers from wrong ones on saved bench trees.

    python benchmarks/value_signals.py BENCH_DIR [BENCH_DIR ...] [--by-config]

For every finished rollout with an answer (graded against the gold answer): each signal's AUROC
(the probability that a right answer scores above a wrong one; 0.5 is a coin), over the rollouts
the signal was recorded for. No generation: it reads records.jsonl (marco_cli/runs/signals.py).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from marco_cli.runs import bench
from marco_cli.runs.signals import graded_rollouts, signal_figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--by-config", action="store_true", help="one table row group per configuration")
    args = parser.parse_args()
    print("| folder | config | signal | right | wrong | AUROC | 95% interval |")
    print("|---|---|---|---|---|---|---|")
    for folder in args.folders:
        kept = bench.read_records(folder)
        if not kept:
            raise SystemExit(f"value_signals.py: {folder} holds no search records (records.jsonl)")
        groups: dict[str, list[bench.Kept]] = defaultdict(list)
        for run in kept:
            groups[run.config if args.by_config else "all"].append(run)
        for config, runs in groups.items():
            for row in signal_figures(graded_rollouts(runs)):
                shown = "-" if row.auroc is None else f"{row.auroc:.3f}"
                span = "-" if row.interval is None else f"{row.interval[0]:.2f}-{row.interval[1]:.2f}"
                print(
                    f"| {folder} | {config} | {row.signal} | {row.right} | {row.wrong} | {shown} | {span} |"
                )


if __name__ == "__main__":
    main()
