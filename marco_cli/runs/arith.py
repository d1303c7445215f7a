"""Simple arithmetic word problems (one or two steps), generated from a seed: `arith:N[:SEED]`.

The same seed always gives the same problems, so a benchmark table can be reproduced without
shipping the data (`benchmarks/arith_problems.py` prints them as TSV).
"""

from __future__ import annotations

import random
from collections.abc import Callable

NAMES = ["Tom", "Mei", "Sofia", "Ravi", "Ana", "Liam", "Noor", "Kenji", "Zara", "Omar", "Ella", "Yusuf"]
ITEMS = ["apples", "pencils", "stickers", "marbles", "books", "cookies", "stamps", "shells", "cards"]

Template = Callable[[random.Random, str, str], tuple[str, int]]


def _add(r: random.Random, name: str, item: str) -> tuple[str, int]:
    a, b = r.randint(2, 60), r.randint(2, 40)
    return f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?", a + b


def _sub(r: random.Random, name: str, item: str) -> tuple[str, int]:
    a = r.randint(20, 90)
    b = r.randint(2, a - 5)
    return f"{name} had {a} {item} and gave away {b}. How many {item} are left?", a - b


def _mul(r: random.Random, name: str, item: str) -> tuple[str, int]:
    a, b = r.randint(2, 9), r.randint(3, 12)
    return f"{name} buys {a} boxes with {b} {item} in each box. How many {item} does {name} buy?", a * b


def _div(r: random.Random, name: str, item: str) -> tuple[str, int]:
    a, b = r.randint(2, 8), r.randint(2, 12)
    return f"{name} shares {a * b} {item} equally among {a} friends. How many {item} does each friend get?", b


def _add_sub(r: random.Random, name: str, item: str) -> tuple[str, int]:
    a, b = r.randint(10, 50), r.randint(5, 30)
    c = r.randint(2, a + b - 3)
    question = (
        f"{name} has {a} {item}. {name} buys {b} more and then loses {c}. "
        f"How many {item} does {name} have now?"
    )
    return question, a + b - c


def _mul_add(r: random.Random, name: str, item: str) -> tuple[str, int]:
    a, b, c = r.randint(2, 6), r.randint(3, 10), r.randint(1, 20)
    question = (
        f"{name} has {a} bags with {b} {item} in each bag, and {c} loose {item}. "
        f"How many {item} does {name} have in total?"
    )
    return question, a * b + c


def _price(r: random.Random, name: str, item: str) -> tuple[str, int]:
    a, p = r.randint(2, 9), r.randint(2, 15)
    paid = (a * p // 10 + 1) * 10 + r.choice([0, 10, 20])
    question = (
        f"{name} buys {a} {item} at ${p} each and pays with ${paid}. "
        f"How many dollars of change does {name} get?"
    )
    return question, paid - a * p


TEMPLATES: list[Template] = [_add, _sub, _mul, _div, _add_sub, _mul_add, _price]


def generate(n: int = 300, seed: int = 11) -> list[tuple[str, int]]:
    """n (question, answer) pairs; every template in turn, values from the seeded RNG."""
    rng = random.Random(seed)
    problems = []
    for i in range(n):
        template = TEMPLATES[i % len(TEMPLATES)]
        problems.append(template(rng, rng.choice(NAMES), rng.choice(ITEMS)))
    return problems
