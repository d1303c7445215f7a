"""Planted bugs, and whether the test written for each behaviour catches it.

    python benchmarks/mutations.py [--only NAME ...] [--list]

Each mutant is one small edit to the package (a plausible slip: a swapped tie-break, an
off-by-one, the wrong count), applied to a fresh copy of the repository; the tests named for
that behaviour then run in the copy (PYTHONPATH points there, so subprocesses such as the
`marco` command and `marco serve` run the mutated code too). A mutant is *caught* when those
tests fail. The unmutated copy runs the same tests first: they must pass, or the row says so.
Prints a table and exits 1 when any mutant survives. Takes about two minutes on 2 cores (the
API-key mutant starts `marco serve`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(
    ".venv",
    ".git",
    "__pycache__",
    "*.egg-info",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "test-artifacts",
)


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # relative to the repository root
    old: str  # must occur exactly once
    new: str
    tests: tuple[str, ...]  # pytest node ids written for this behaviour


RULES_PY = "marco_cli/search/rules.py"
RULE_TESTS = "tests/test_rules.py::test_only_this_rule_gives_this_answer"


# reward_vote's body (branch's ends the same way, so the mutant names it by its first line)
_REWARD_VOTE = (
    "counts, weight = answer_votes(ballot.rollouts)\n    if not counts:\n"
    "        return best_finished(ballot.rollouts)\n    return _represent(ballot.rollouts, "
)


def _rule(name: str, old: str, new: str) -> Mutant:
    return Mutant(f"rule {name}", RULES_PY, old, new, (f"{RULE_TESTS}[{name}]",))


MUTANTS = (
    Mutant(
        "confidence over the whole row, not the top 5",
        "marco_cli/engine/confidence.py",
        "confidence = math.exp(chosen) / top_sum",
        "confidence = math.exp(chosen) / float(np.exp(logits - peak).sum())",
        ("tests/test_engine.py::test_confidence_matches_independent_numpy",),
    ),
    Mutant(
        "UCT: the child's visits where the parent's belong",
        "marco_cli/search/mcts.py",
        "uct(c, node.visits, exploration)",
        "uct(c, c.visits, exploration)",
        ("tests/test_mcts.py::test_selection_descends_by_uct_over_the_parents_visits",),
    ),
    Mutant(
        "UCT: no square root on the exploration term",
        "marco_cli/search/mcts.py",
        "math.sqrt(math.log(max(parent_visits, 1)) / child.visits)",
        "(math.log(max(parent_visits, 1)) / child.visits)",
        ("tests/test_mcts.py::test_uct_formula",),
    ),
    _rule(
        "majority",
        "max(counts, key=lambda k: (counts[k], weight[k]))",
        "max(counts, key=lambda k: (weight[k], counts[k]))",
    ),
    _rule(
        "reward-vote",
        _REWARD_VOTE + "max(weight, key=lambda k: (weight[k], counts[k])))",
        _REWARD_VOTE + "max(counts, key=lambda k: (counts[k], weight[k])))",
    ),
    _rule(
        "branch",
        "counts, weight = branch_votes(ballot.tree, ballot.rollouts)",
        "counts, weight = answer_votes(ballot.rollouts)",
    ),
    _rule(
        "reward",
        'best-of-n)."""\n    return best_finished(ballot.rollouts)',
        'best-of-n)."""\n    return reward_vote(ballot)',
    ),
    _rule(
        "visits",
        "key=lambda n: (n.visits, n.mean_value, -n.id)",
        "key=lambda n: (n.mean_value, n.visits, -n.id)",
    ),
    _rule("trace", "filtered_vote(ballot.rollouts, keep=0.0)", "filtered_vote(ballot.rollouts, keep=1.0)"),
    _rule(
        "deepconf",
        "filtered_vote(ballot.rollouts, ballot.keep) or branch",
        "filtered_vote(ballot.rollouts) or branch",
    ),
    _rule("deepconf-high", "filtered_vote(ballot.rollouts, 0.9)", "filtered_vote(ballot.rollouts, 1.0)"),
    _rule("deepconf-low", "filtered_vote(ballot.rollouts, 0.1)", "filtered_vote(ballot.rollouts, 0.0)"),
    _rule(
        "deepconf-online",
        "online_vote(ballot.rollouts, ballot.warmup, ballot.keep)",
        "filtered_vote(ballot.rollouts, ballot.keep)",
    ),
    _rule("mbr", "return mbr_choice(ballot.rollouts)", "return majority(ballot)"),
    _rule("answer-conf", "reward=r.answer_confidence or 0.0", "reward=r.reward"),
    Mutant(
        "loop guard: the minimum span ignored",
        "marco_cli/engine/repetition.py",
        "span = max(period * rule.min_repeats, rule.min_span)",
        "span = period * rule.min_repeats",
        (
            "tests/test_loops.py::test_honest_text_is_not_a_loop",
            "tests/test_loops.py::test_a_repeated_tail_is_a_loop",
        ),
    ),
    Mutant(
        "Wilson interval: z^2/n where z^2/2n belongs",
        "marco_cli/runs/stats.py",
        "centre = (p + z * z / (2 * n)) / denom",
        "centre = (p + z * z / n) / denom",
        ("tests/test_bench.py::test_wilson_interval",),
    ),
    Mutant(
        "McNemar: the tail one short",
        "marco_cli/runs/stats.py",
        "for k in range(low + 1)",
        "for k in range(low)",
        ("tests/test_bench.py::test_exact_mcnemar_matches_hand_computed_binomial_tails",),
    ),
    Mutant(
        "record JSON: the error dropped",
        "marco_cli/record/record.py",
        '"error": self.error,',
        '"error": None,',
        ("tests/test_record.py::test_a_record_with_every_field_set_round_trips",),
    ),
    Mutant(
        "verifier: P(Yes) not normalised by yes + no",
        "marco_cli/search/verifier.py",
        "return yes / (yes + no) if yes + no > 0 else NO_OPINION",
        "return yes if yes + no > 0 else NO_OPINION",
        ("tests/test_verifier.py::test_p_yes_is_yes_over_yes_and_no_among_the_first_tokens",),
    ),
    Mutant(
        "judge: an unjudged rollout passes the gate",
        "marco_cli/search/rewards.py",
        "return r.judged if r.judged is not None else 0.0",
        "return r.judged if r.judged is not None else 1.0",
        ("tests/test_verifier.py::test_judge_multiplies_a_value_and_leaves_answerless_rollouts_at_0",),
    ),
    Mutant(
        "judge-steps: a doubted step kept",
        "marco_cli/search/rewards.py",
        "if p_yes < STEP_DOUBT else ()",
        "if p_yes < 0.0 else ()",
        ("tests/test_verifier.py::test_judge_steps_refutes_a_step_the_verifier_doubts_before_rolling_it_out",),
    ),
    Mutant(
        "AUROC: ties count as wins",
        "marco_cli/runs/stats.py",
        "(sum(below) + sum(tied) / 2)",
        "(sum(below) + sum(tied))",
        ("tests/test_signals.py::test_auroc_is_the_share_of_pairs_a_right_answer_wins",),
    ),
    Mutant(
        "API key: any Bearer token accepted",
        "marco_cli/server/app.py",
        'scheme.lower() == "bearer" and hmac',
        'scheme.lower() == "bearer" or hmac',
        ("tests/test_serve.py::test_errors_are_openai_error_objects_with_their_status",),
    ),
)

# issue 51: bugs planted in the newer code (the stores, the checker, the rules, the datasets, the
# value signals), then one in each module with logic that had none; each row names the test
# written for the behaviour, which fails once the bug is in
PIN = "tests/test_pinned.py"
ROUND4 = "tests/test_hostile_round4.py"
SELECT = "tests/test_select.py"
NEWER = (
    Mutant(
        "checker: the rounding bound loosened to a whole unit",
        "marco_cli/search/arithmetic.py",
        "return gap < half or (gap == half and abs(self.claimed) > abs(self.true))",
        "return gap < 2 * half",
        (f"{PIN}::test_the_boundaries_of_a_claim",),
    ),
    Mutant(
        "checker: the claim's decimals ignored",
        "marco_cli/search/arithmetic.py",
        'decimals = len(claim.split(".")[1]) if "." in claim else 0',
        "decimals = 0",
        (f"{PIN}::test_the_boundaries_of_a_claim",),
    ),
    Mutant(
        "checker: the scan restarts inside a chain it read (quadratic, same answers)",
        "marco_cli/search/arithmetic.py",
        "index = max(end, index + 1)",
        "index = index + 1",
        ("tests/test_arithmetic_check.py::test_a_chain_of_n_terms_costs_steps_linear_in_n",),
    ),
    Mutant(
        "rule checked: no fallback when no rollout's arithmetic holds",
        RULES_PY,
        "return majority(replace(ballot, rollouts=right) if right else ballot)",
        "return majority(replace(ballot, rollouts=right))",
        (f"{PIN}::test_checked_falls_back_to_every_rollout_when_no_arithmetic_holds",),
    ),
    Mutant(
        "judge-steps: no opinion (0.5) refutes a step",
        "marco_cli/search/rewards.py",
        "if p_yes < STEP_DOUBT else ()",
        "if p_yes <= STEP_DOUBT else ()",
        (f"{PIN}::test_judge_steps_refutes_below_half_and_keeps_no_opinion",),
    ),
    Mutant(
        "rewards: only the first gate multiplies",
        "marco_cli/search/rewards.py",
        "*(GATES[g] for g in parsed.gates)]",
        "*(GATES[g] for g in parsed.gates[:1])]",
        (f"{PIN}::test_gates_multiply_in_any_order",),
    ),
    Mutant(
        "verifier: a step's verdict cached without its context",
        "marco_cli/search/verifier.py",
        "key = (kind, before, text)",
        'key = (kind, "", text)',
        (f"{PIN}::test_one_step_is_judged_under_each_context_it_appears_in",),
    ),
    Mutant(
        "signals: the check inverted",
        "marco_cli/runs/signals.py",
        '"check": lambda r: GATES["check"](r.scored()),',
        '"check": lambda r: 1.0 - GATES["check"](r.scored()),',
        (f"{PIN}::test_the_check_signal_ranks_clean_arithmetic_above_wrong_arithmetic",),
    ),
    Mutant(
        "AUROC interval: Hanley-McNeil's Q1 and Q2 swapped",
        "marco_cli/runs/stats.py",
        "(right - 1) * (q1 - area**2) + (wrong - 1) * (q2 - area**2)",
        "(right - 1) * (q2 - area**2) + (wrong - 1) * (q1 - area**2)",
        (f"{PIN}::test_the_auroc_interval_is_hanley_and_mcneils",),
    ),
    Mutant(
        "Ollama store: the first layer taken as the model",
        "marco_cli/store/stores.py",
        'model = next((layer for layer in layers if layer.get("mediaType") == MODEL_LAYER), None)',
        "model = next(iter(layers), None)",
        (f"{PIN}::test_the_model_layer_is_found_by_its_media_type_wherever_it_lies",),
    ),
    Mutant(
        "LM Studio: a folder of two quants gives the first",
        "marco_cli/store/stores.py",
        "if len(files) > 1:",
        "if len(files) > 2:",
        (f"{PIN}::test_a_folder_holding_several_quants_asks_which",),
    ),
    Mutant(
        "Ollama store: a blob's name trusted as its hash",
        "marco_cli/store/stores.py",
        "p.sha256 == digest and hashes.matches(blob, digest)",
        "p.sha256 == digest",
        (f"{ROUND4}::test_a_blob_named_by_a_pinned_hash_is_hashed_before_it_is_trusted",),
    ),
    Mutant(
        "LM Studio: a file matched by its name and size, never hashed",
        "marco_cli/store/stores.py",
        "return candidate and hashes.matches(path, pin.sha256)",
        "return candidate",
        (f"{ROUND4}::test_an_lmstudio_file_is_matched_by_its_hash_never_by_its_name",),
    ),
    Mutant(
        "hash memo: a file rewritten in place (new mtime) not hashed again",
        "marco_cli/store/hashes.py",
        "entry[:2] == identity",
        "entry[:1] == identity[:1]",
        ("tests/test_hostile_store.py::test_a_matching_file_is_hashed_once_then_remembered_by_size_and_mtime",),
    ),
    Mutant(
        "models: a store's names printed raw",
        "marco_cli/cli/models.py",
        "shown = (Text(visible(name)),",
        "shown = (Text(name),",
        (f"{ROUND4}::test_names_read_from_a_store_reach_the_terminal_escaped",),
    ),
    Mutant(
        "Ollama backend: a bare name not read as NAME:latest",
        "marco_cli/engine/ollama.py",
        'wanted = model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"',
        "wanted = model",
        (f"{PIN}::test_a_bare_model_name_means_its_latest_tag",),
    ),
    Mutant(
        "Ollama backend: exactly 0.12.11 refused",
        "marco_cli/engine/ollama.py",
        "numbers < LOGPROBS_SINCE",
        "numbers <= LOGPROBS_SINCE",
        (f"{PIN}::test_the_logprob_version_boundary_both_sides",),
    ),
    Mutant(
        "transport: a server answering 500 said to be unreachable",
        "marco_cli/engine/transport.py",
        'last, answered = f"HTTP {exc.code} {detail}".strip(), True',
        'last, answered = f"HTTP {exc.code} {detail}".strip(), False',
        (f"{ROUND4}::test_a_server_answering_500_is_said_to_have_failed_not_to_be_unreachable",),
    ),
    Mutant(
        "arith: the seed ignored",
        "marco_cli/runs/arith.py",
        "rng = random.Random(seed)",
        "rng = random.Random(11)",
        (f"{PIN}::test_the_seed_decides_the_set_and_a_small_set_is_frozen",),
    ),
    Mutant(
        "arith: a division's gold answer made the divisor",
        "marco_cli/runs/arith.py",
        'How many {item} does each friend get?", b',
        'How many {item} does each friend get?", a',
        (f"{PIN}::test_every_arith_gold_is_what_its_question_computes",),
    ),
    Mutant(
        "datasets: a Hub spec's .. parts let through",
        "marco_cli/runs/datasets.py",
        'bad = next((s for s in segments if s in (".", "..") or not _HUB_PART.fullmatch(s)), None)',
        "bad = None",
        (f"{ROUND4}::test_a_dataset_spec_that_cannot_work_is_a_usage_error_saying_why",),
    ),
    Mutant(
        "bench: resuming into another dataset's folder",
        "marco_cli/runs/bench.py",
        "        _same_problems(out, old, meta)\n",
        "",
        (f"{ROUND4}::test_resuming_into_a_folder_of_another_dataset_is_a_usage_error_naming_both",),
    ),
    Mutant(
        "bench: a comma inside [flags] splits the spec",
        "marco_cli/cli/bench.py",
        'depth = depth + 1 if char == "[" else max(0, depth - 1) if char == "]" else depth',
        "depth = 0",
        ("tests/test_arithmetic_check.py::test_the_other_patterns_over_outside_text_finish_on_pathological_input",),
    ),
    Mutant(
        "select: sampling strategies answer by their own rule whatever --select says",
        "marco_cli/search/config.py",
        "return self.select or own_rule(self.strategy, self.reward)",
        'return (self.strategy == "mcts" and self.select) or own_rule(self.strategy, self.reward)',
        (f"{SELECT}::test_vote_answers_by_the_rule_asked_for_and_the_record_names_it",),
    ),
    Mutant(
        "record: the saved select is not the rule that answered",
        "marco_cli/search/config.py",
        'return {**asdict(self), "select": self.rule}',
        "return asdict(self)",
        (f"{SELECT}::test_every_strategy_keeps_its_own_rule_without_select",),
    ),
    Mutant(
        "answers: a bare number keeps its sentence's full stop",
        "marco_cli/search/answers.py",
        'return answer[:-1] if re.fullmatch(r"[-$€£¥]?\\d[\\d,]*(?:\\.\\d+)?\\.", answer) else answer',
        "return answer",
        ("tests/test_answers.py::test_extract_output",),
    ),
    Mutant(
        "chrF: recall and precision weighted alike",
        "marco_cli/search/similarity.py",
        "CHRF_BETA = 2.0",
        "CHRF_BETA = 1.0",
        ("tests/test_similarity.py::test_chrf_by_hand",),
    ),
    Mutant(
        "stops: a line break after nothing closes a step",
        "marco_cli/engine/stops.py",
        "return bool(text[:cut].strip())",
        "return True",
        ("tests/test_stops.py::test_ends_step",),
    ),
    Mutant(
        "DeepConf online: the threshold one trace off the keep share",
        "marco_cli/search/deepconf.py",
        "return scored[max(1, math.ceil(keep * len(scored))) - 1]",
        "return scored[min(len(scored) - 1, math.ceil(keep * len(scored)))]",
        ("tests/test_deepconf.py::test_the_online_threshold_is_the_keep_percentile_of_the_warmup",),
    ),
    Mutant(
        "tree: backup skips the root",
        "marco_cli/search/tree.py",
        "        for n in path:\n            n.visits += 1",
        "        for n in path[1:]:\n            n.visits += 1",
        ("tests/test_mcts.py::test_backup_sums_and_counts_are_exact",),
    ),
    Mutant(
        "registry: a sha256 of any length accepted",
        "marco_cli/store/registry.py",
        'not re.fullmatch(r"[0-9a-f]{64}", sha)',
        'not re.fullmatch(r"[0-9a-z]{1,64}", sha)',
        ("tests/test_registry.py::test_malformed_files_name_file_entry_and_field",),
    ),
    Mutant(
        "registry: a nested-too-deep models.yaml is a traceback",
        "marco_cli/store/registry.py",
        "    except RecursionError:  # PyYAML composes recursively",
        "    except ZeroDivisionError:  # PyYAML composes recursively",
        (f"{ROUND4}::test_a_models_yaml_nested_too_deep_is_one_line",),
    ),
    Mutant(
        "wire: an error body not clipped",
        "marco_cli/engine/wire.py",
        'return text if len(text) <= 160 else text[:159] + "…"',
        "return text",
        ("tests/test_remote.py::test_a_servers_html_error_page_becomes_one_line",),
    ),
    Mutant(
        "folders: a link loop called unreadable, not a loop",
        "marco_cli/store/folders.py",
        "if exc.errno == errno.ELOOP",
        "if exc.errno == errno.EACCES",
        (f"{ROUND4}::test_a_link_loop_and_a_gguf_that_is_not_one_are_named_as_what_they_are",),
    ),
    Mutant(
        "session: a verifier nothing asks is opened anyway",
        "marco_cli/cli/session.py",
        "    if wanted is not None and not judged:",
        "    if wanted is not None and judged is None:",
        (f"{ROUND4}::test_a_bad_verifier_is_named_and_one_nothing_asks_is_not_opened",),
    ),
    Mutant(
        "rewards: a gate before the value told the generic message",
        "marco_cli/search/rewards.py",
        "if value is None and head.strip() in ALONE:",
        "if value is None and head.strip() in ():",
        (f"{ROUND4}::test_a_bad_reward_is_told_what_to_write_and_never_echoed_whole",),
    ),
    Mutant(
        "transport: the connection's deadline ignored after the probe",
        "marco_cli/engine/transport.py",
        "        return min(self.timeout, left)",
        "        return self.timeout",
        (f"{ROUND4}::test_the_timeout_is_the_whole_connection_attempt",),
    ),
    Mutant(
        "export: --prefer-checked ignored",
        "marco_cli/runs/export.py",
        "arithmetic = options.prefer_checked and a.checked != b.checked",
        "arithmetic = False",
        ("tests/test_export.py::test_prefer_checked_puts_right_arithmetic_over_wrong",),
    ),
)


def _copy(into: Path) -> Path:
    copy = into / "repo"
    shutil.copytree(ROOT, copy, ignore=SKIP)
    return copy


def _pytest(copy: Path, tests: tuple[str, ...]) -> tuple[int, float]:
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode, time.monotonic() - started


def _imports_the_copy(copy: Path) -> bool:
    env = {**os.environ, "PYTHONPATH": str(copy)}
    where = subprocess.run(
        [sys.executable, "-c", "import marco_cli; print(marco_cli.__file__)"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return where.startswith(str(copy))


def run(mutant: Mutant) -> tuple[str, float]:
    """The verdict for one mutant: caught, survived, or why it could not be judged."""
    with tempfile.TemporaryDirectory(prefix="marco-mutant-") as tmp:
        copy = _copy(Path(tmp))
        if not _imports_the_copy(copy):
            return "not judged: the copy's package is not the one imported", 0.0
        clean, _ = _pytest(copy, mutant.tests)
        if clean != 0:
            return f"not judged: the tests fail unmutated (exit {clean})", 0.0
        target = copy / mutant.path
        source = target.read_text(encoding="utf-8")
        if source.count(mutant.old) != 1:
            return f"not judged: the text to mutate occurs {source.count(mutant.old)} times", 0.0
        target.write_text(source.replace(mutant.old, mutant.new), encoding="utf-8")
        code, seconds = _pytest(copy, mutant.tests)
    if code == 1:
        return "caught", seconds
    return ("survived" if code == 0 else f"not judged: pytest exit {code}"), seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="mutant names (substrings) to run")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS + NEWER if args.only is None or any(o in m.name for o in args.only)]
    if args.list:
        for m in chosen:
            print(f"{m.name}: {m.path} -> {', '.join(m.tests)}")
        return 0
    print("| planted bug | file | guarding test | verdict | seconds |")
    print("|---|---|---|---|---|")
    survived = 0
    for mutant in chosen:
        verdict, seconds = run(mutant)
        survived += verdict != "caught"
        tests = ", ".join(t.split("::", 1)[1] for t in mutant.tests)
        print(f"| {mutant.name} | {mutant.path} | {tests} | {verdict} | {seconds:.1f} |", flush=True)
    print(f"\n{len(chosen) - survived} of {len(chosen)} planted bugs caught by the test written for them")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
