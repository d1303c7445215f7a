"""Does the search pay for its tokens? Issue 20's targets, checked on a bench folder.

    marco bench arith.tsv -m smollm2-135m --strategy 'cot,mcts,vote@4,vote@8' --out DIR
    python benchmarks/compute_matched.py DIR [DIR ...] [--search mcts/step] [--budget 395]
        [--rule mcts/step=trace]

Several folders are one comparison made in pieces (other problem ranges with --offset, other
configurations on the same problems): a configuration must have the same settings in each, and
a problem graded twice for one configuration counts once (the first folder's). `--rule
CONFIG=RULE` adds the configuration `CONFIG:RULE`: CONFIG's saved trees answered by another
rule (any of rescore.py's), without generating again, at CONFIG's tokens — what a run with that
`--select` would have answered when the rule leaves the search itself unchanged (`branch`,
`trace` and `deepconf` stop alike; a test checks that re-scoring reproduces a run's answer
under every rule).

On the problems every configuration finished (a run stopped part-way still compares paired
problems only), prints each configuration's accuracy, tokens per problem and its ratio to the
search's, paired flips and the exact McNemar p against greedy (`cot`, when the run has it) and
against the search, whether it lies on the accuracy-vs-tokens frontier, and then the targets as
measured:

- the search is at least as accurate as every self-consistency configuration (vote@k) that
  spends as many tokens or more, give or take 10%;
- it beats greedy with paired significance (exact McNemar p < 0.05);
- some mcts configuration lies on the frontier;
- its tokens per problem are at most 1.5 x `--budget` (the issue's 395), unless it is on the
  frontier (the extra tokens buy accuracy).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from marco_cli.record.results import Figures, Pair, ResultRow
from marco_cli.runs import bench
from marco_cli.runs.summary import summarize
from marco_cli.search import rules


def paired(rows: list[ResultRow]) -> tuple[list[ResultRow], list[str], int]:
    """The rows of problems every configuration finished, the configurations, the problems."""
    configs = list(dict.fromkeys(r.config for r in rows))
    done = {c: {r.index for r in rows if r.config == c} for c in configs}
    common = set.intersection(*done.values()) if done else set()
    return [r for r in rows if r.index in common], configs, len(common)


def read_folders(folders: list[Path], skip: list[str]) -> tuple[list[ResultRow], dict[str, dict]]:
    """The result rows and each configuration's settings of one comparison made in pieces."""
    rows: list[ResultRow] = []
    seen: set[tuple[str, int]] = set()
    settings: dict[str, dict] = {}
    for folder in folders:
        for name, config in json.loads((folder / bench.META).read_text(encoding="utf-8"))["settings"].items():
            earlier = settings.setdefault(name, config)
            # the rule a resumed bench uses, both ways: a setting one folder lacks (added since)
            # counts as its default there
            if not (bench.same_settings(earlier, config) and bench.same_settings(config, earlier)):
                raise SystemExit(f"{folder}: {name} ran with other settings than in an earlier folder")
        for row in bench.read_results(folder):
            key = (row.config, row.index)
            if row.config not in skip and key not in seen:
                seen.add(key)
                rows.append(row)
    return rows, settings


def rescored(kept: list[bench.Kept], rows: list[ResultRow], config: str, rule: str) -> list[ResultRow]:
    """CONFIG's result rows re-answered by `rule` from its saved trees (`kept`, the folders'
    records in order: a problem's first one counts), as `CONFIG:RULE`."""
    by_index = {r.index: r for r in rows if r.config == config}
    out: dict[int, ResultRow] = {}
    for saved in kept:
        if saved.config != config or saved.index not in by_index or saved.index in out:
            continue
        answer = bench.answer_by(saved.record, rule)
        value, right = bench.grade(answer, saved.gold)
        out[saved.index] = replace(
            by_index[saved.index], config=f"{config}:{rule}", answer=answer, extracted=value, correct=right
        )
    if not out:
        raise SystemExit(f"--rule {config}={rule}: no saved trees of {config}")
    return list(out.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--search", default="mcts/step", help="the configuration under test")
    parser.add_argument("--budget", type=float, default=395.0, help="tokens per problem of the old default")
    parser.add_argument("--skip", nargs="*", default=[], help="configurations to leave out")
    parser.add_argument(
        "--rule",
        action="append",
        default=[],
        metavar="CONFIG=RULE",
        help="also CONFIG's trees answered by RULE",
    )
    args = parser.parse_args()
    rows, settings = read_folders(args.folders, args.skip)
    kept = [k for folder in args.folders for k in bench.read_records(folder)] if args.rule else []
    for option in args.rule:
        config, _, named = option.partition("=")
        rule = rules.ALIASES.get(named, named)
        if config not in settings or rule not in bench.RULES:
            raise SystemExit(
                f"--rule {option}: needs a configuration of the run and one of {', '.join(bench.RULES)}"
            )
        rows += rescored(kept, rows, config, rule)
        # a search answered by another rule is still a search; samples answered by another rule
        # are no longer plain self-consistency (vote@4:deepconf-high is DeepConf on its samples)
        strategy = settings[config]["strategy"]
        relabeled = strategy if strategy == "mcts" else f"{strategy}:{rule}"
        settings[f"{config}:{rule}"] = {**settings[config], "select": rule, "strategy": relabeled}
    rows, configs, n = paired(rows)
    summary = summarize(rows, configs)
    table, pairs = summary.configs, {(p.first, p.second): p for p in summary.pairs}
    if args.search not in table:
        raise SystemExit(f"--search {args.search}: not a configuration of the run ({', '.join(table)})")
    print(f"{n} problems every configuration finished ({', '.join(map(str, args.folders))})")
    print_table(table, pairs, args.search)
    strategy = {name: settings[name]["strategy"] for name in table}
    print_targets(table, pairs, strategy, args.search, args.budget)


Pairs = dict[tuple[str, str], Pair]


def versus(pairs: Pairs, a: str, b: str) -> tuple[int, int, float]:
    """(b right where a was not, a right where b was not, exact McNemar p) for b against a."""
    if (a, b) in pairs:  # summarize counts flips from its first configuration to its second
        pair = pairs[(a, b)]
        return pair.wrong_to_right, pair.right_to_wrong, pair.p_exact
    pair = pairs[(b, a)]
    return pair.right_to_wrong, pair.wrong_to_right, pair.p_exact


def print_table(table: dict[str, Figures], pairs: Pairs, search: str) -> None:
    """One row per configuration: paired flips against greedy (when the run has `cot`) and
    against the search under test."""
    bases = [b for b in ("cot", search) if b in table]
    columns = " | ".join(f"vs {b} +/- (p)" for b in bases)
    print(f"| config | right | tokens/problem | x search | {columns} | frontier |")
    print("|---|---|---|---|" + "---|" * len(bases) + "---|")
    for name, row in table.items():
        against = ["-" if name == b else "+{} -{} ({:.3g})".format(*versus(pairs, b, name)) for b in bases]
        print(
            f"| {name} | {row.correct} ({row.accuracy:.1%}) | {row.mean_tokens:.0f} | "
            f"{row.mean_tokens / table[search].mean_tokens:.2f} | {' | '.join(against)} | "
            f"{'dominated' if row.dominated else 'on it'} |"
        )


def print_targets(
    table: dict[str, Figures], pairs: Pairs, strategy: dict[str, str], name: str, budget: float
) -> None:
    """Issue 20's targets, each as measured (a target needing `cot` says so when it is absent)."""
    search = table[name]
    votes = [c for c in table if strategy[c] == "vote"]
    matched = [c for c in votes if table[c].mean_tokens >= 0.9 * search.mean_tokens]
    as_good = all(search.correct >= table[c].correct for c in matched)
    print(f"\n{name} >= every vote@k at >= 0.9x its tokens ({', '.join(matched) or 'none'}): {as_good}")
    if "cot" in table:
        gained, lost, p = versus(pairs, "cot", name)
        print(f"{name} beats cot, exact McNemar p < 0.05: {p < 0.05} (+{gained} -{lost}, p {p:.3g})")
    else:
        print(f"{name} beats cot: not measured (no cot configuration in these folders)")
    searches_on_it = [c for c in table if strategy[c] == "mcts" and not table[c].dominated]
    print(f"mcts configurations on the frontier: {', '.join(searches_on_it) or 'none'}")
    limit = 1.5 * budget
    cheap = search.mean_tokens <= limit
    print(f"{name} tokens {search.mean_tokens:.0f} <= 1.5 x {budget:.0f} = {limit:.0f}: {cheap}")
    if not cheap:
        print(f"  ... but on the frontier (the extra tokens buy accuracy): {not search.dominated}")


if __name__ == "__main__":
    main()
