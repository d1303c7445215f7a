"""A bench run's figures: per configuration (accuracy with its Wilson interval, tokens and
seconds per problem, whether another configuration dominates it on the accuracy-vs-tokens
frontier), and exact McNemar tests between every two configurations on the problems both ran."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from marco_cli.record.results import Figures, Pair, ResultRow, Summary
from marco_cli.runs.stats import mcnemar_p, wilson


def dominated(name: str, table: dict[str, Figures]) -> bool | None:
    """Whether another configuration is at least as accurate for at most as many tokens per
    problem, and better on one of the two (the rest is the accuracy-vs-tokens frontier); None
    for a configuration that ran no problem."""
    row = table[name]
    if not row.n:
        return None
    return any(
        other.accuracy >= row.accuracy
        and other.mean_tokens <= row.mean_tokens
        and (other.accuracy > row.accuracy or other.mean_tokens < row.mean_tokens)
        for key, other in table.items()
        if key != name and other.n
    )


def _figures(items: list[ResultRow]) -> Figures:
    n = len(items)
    correct = sum(r.correct for r in items)
    tokens = sum(r.tokens for r in items)
    seconds = sum(r.seconds for r in items)
    return Figures(
        n=n,
        correct=correct,
        accuracy=correct / n if n else 0.0,
        ci95=wilson(correct, n),
        no_answer=sum(r.extracted is None for r in items) / n if n else 0.0,
        mean_tokens=tokens / n if n else 0.0,
        mean_seconds=seconds / n if n else 0.0,
        tokens_per_second=tokens / seconds if seconds else 0.0,
    )


def _pair(a: str, b: str, first: dict[int, ResultRow], second: dict[int, ResultRow]) -> Pair:
    shared = sorted(set(first) & set(second))
    right_to_wrong = sum(first[k].correct and not second[k].correct for k in shared)
    wrong_to_right = sum(not first[k].correct and second[k].correct for k in shared)
    return Pair(a, b, len(shared), right_to_wrong, wrong_to_right, mcnemar_p(right_to_wrong, wrong_to_right))


def _delta_vs_cot(mine: dict[int, ResultRow], cot: dict[int, ResultRow] | None) -> float | None:
    in_both = set(mine) & set(cot or {})
    if cot is None or not in_both:
        return None
    return sum(mine[k].correct - cot[k].correct for k in in_both) / len(in_both)


def summarize(rows: Iterable[ResultRow], configs: list[str]) -> Summary:
    """Per-configuration figures, and paired flips between every two configurations. A skipped
    problem (not searched) is counted as skipped and left out of every figure and pair."""
    by_config: dict[str, dict[int, ResultRow]] = {c: {} for c in configs}
    skipped: dict[str, set[int]] = {c: set() for c in configs}
    for row in rows:
        if row.config in by_config:
            if row.skipped:
                skipped[row.config].add(row.index)
            else:
                by_config[row.config][row.index] = row
    plain = {config: _figures(list(done.values())) for config, done in by_config.items()}
    cot = by_config.get("cot")
    table = {
        name: replace(
            figures,
            dominated=dominated(name, plain),
            delta_vs_cot=_delta_vs_cot(by_config[name], cot),
            skipped=len(skipped[name]),
        )
        for name, figures in plain.items()
    }
    pairs = [_pair(a, b, by_config[a], by_config[b]) for i, a in enumerate(configs) for b in configs[i + 1 :]]
    return Summary(table, pairs)
