"""The planted bugs of the older core (the engine's confidence, UCT, the tree, the answer rules,
the rewards, the server's key): the table `mutations.py` runs. Each is one plausible slip,
named with the test written for the behaviour it breaks."""

from __future__ import annotations

from dataclasses import dataclass


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
        "marco_cli/search/values.py",
        "if p_yes < STEP_DOUBT else ()",
        "if p_yes < 0.0 else ()",
        (
            "tests/test_verifier.py::test_judge_steps_refutes_a_step_the_verifier_doubts_before_rolling_it_out",
        ),
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
