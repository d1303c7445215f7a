"""A fixed set of simple arithmetic word problems (one or two steps), generated from a seed.

The same seed always gives the same problems, so a benchmark table can be reproduced without
shipping the data. Usage: python benchmarks/arith_problems.py [--n 300] [--seed 11] > arith.tsv
(the same problems as `marco bench arith:300:11`; the generator is marco_cli/runs/arith.py).
"""

from __future__ import annotations

import argparse

from marco_cli.runs.arith import generate

__all__ = ["generate"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    for question, answer in generate(args.n, args.seed):
        print(f"{question}\t{answer}")


if __name__ == "__main__":
    main()
