"""`marco export`: trees to SFT conversations, tree-aligned DPO pairs and raw trees."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from marco_cli.cli.app import app
from marco_cli.record.record import Message, ModelInfo, Record
from marco_cli.runs import export
from marco_cli.search.config import SearchConfig
from marco_cli.search.strategies import run_search
from tests.helpers import runner
from tests.scripted import ScriptedModel

SFT_KEYS = {"messages", "source", "reward", "tokens", "correct"}
DPO_KEYS = {
    "prompt",
    "chosen",
    "rejected",
    "shared_prefix_chars",
    "shared_prefix_tokens",
    "chosen_reward",
    "rejected_reward",
    "chosen_correct",
    "rejected_correct",
    "source",
}


def _path_tokens(tree: dict, text: str) -> int:
    """Tokens from the root to the end of the rollout whose text this is."""
    nodes = {n["id"]: n for n in tree["nodes"]}
    rollout = next(r for r in tree["rollouts"] if r["text"] == text)
    total, at = rollout["tokens"], rollout["node"]
    while at is not None:
        total, at = total + nodes[at]["tokens"], nodes[at]["parent"]
    return total


TREE_KEYS = {
    "source",
    "question",
    "messages",
    "gold",
    "answer",
    "chosen_rollout",
    "path",
    "nodes",
    "rollouts",
    "settings",
}
PROBLEMS = "Tom has 3 apples and buys 4 more. How many apples does he have?\t7\nWhat is 10 - 4?\t6\n"


def scripted_run(gold: str | None = "7") -> export.Run:
    """A tree with right (7) and wrong (5) answers of different lengths below shared steps."""
    model = ScriptedModel(
        actions={"": [("Start.\n", 0.9), ("Begin here.\n", 0.8)]},
        rollouts={},
        fallback=lambda s: ("<Output>7</Output>", 0.9) if len(s) % 2 else ("so <Output>5</Output>", 0.7),
        more_actions=lambda s: [(s[:1] + "a\n", 0.8), (s[:1] + "bb\n", 0.6), (s[:1] + "ccc\n", 0.5)],
    )
    config = SearchConfig(iterations=10, children=3, stop_agree=None, rollouts="all")
    result = run_search(model, model.prompt, config)
    messages = [Message("system", "sys"), Message("user", "Q?")]
    return export.Run(Record.of(result, "Q?", ModelInfo("scripted"), config, messages), gold, "scripted")


def test_dpo_pairs_are_aligned_on_the_tree() -> None:
    run = scripted_run()
    report = export.Report()
    pairs = list(export.dpo_pairs(run, export.Filters(), report))
    assert pairs and report.written == len(pairs)
    shared = [p["shared_prefix_chars"] for p in pairs]
    assert max(shared) > 0 and min(shared) == 0  # pairs diverging inside the tree and at its root
    texts = {r.text for r in run.record.rollouts}
    for pair in pairs:
        assert set(pair) == DPO_KEYS and pair["prompt"] == [m.to_json() for m in run.record.messages]
        chosen, rejected = pair["chosen"][0]["content"], pair["rejected"][0]["content"]
        assert chosen in texts and rejected in texts and chosen != rejected
        assert pair["chosen_correct"] is True and pair["rejected_correct"] is False
        n = pair["shared_prefix_chars"]
        assert chosen[:n] == rejected[:n]
        if n < min(len(chosen), len(rejected)):
            assert pair["shared_prefix_tokens"] > 0 or n == 0


def test_prefer_short_adds_the_shorter_correct_side_and_max_pairs_caps() -> None:
    run = scripted_run()
    plain = list(export.dpo_pairs(run, export.Filters(), export.Report()))
    short = list(export.dpo_pairs(run, export.Filters(prefer_short=True), export.Report()))
    both_right = [p for p in short if p["chosen_correct"] and p["rejected_correct"]]
    assert both_right and len(short) == len(plain) + len(both_right)
    for pair in both_right:
        assert len(pair["chosen"][0]["content"]) < len(pair["rejected"][0]["content"])
    capped = list(export.dpo_pairs(run, export.Filters(prefer_short=True, max_pairs=2), export.Report()))
    assert len(capped) == 2


def _with_arithmetic(run: export.Run) -> export.Run:
    """The same tree, every other rollout's text opening with a wrong sum, the rest a right one."""
    rollouts = tuple(
        replace(r, text=("3 + 4 = 8.\n" if r.id % 2 else "3 + 4 = 7.\n") + r.text)
        for r in run.record.rollouts
    )
    return replace(run, record=replace(run.record, rollouts=rollouts))


@pytest.mark.parametrize("gold", ["7", None])
def test_prefer_checked_puts_right_arithmetic_over_wrong(gold: str | None) -> None:
    """With gold: also a correct side with right arithmetic over a correct one with a wrong
    equation; without: a checked side over an unchecked one whatever the rewards."""
    run = _with_arithmetic(scripted_run(gold))
    plain = list(export.dpo_pairs(run, export.Filters(), export.Report()))
    checked = list(export.dpo_pairs(run, export.Filters(prefer_checked=True), export.Report()))
    assert all(set(p) == DPO_KEYS | {"chosen_checked", "rejected_checked"} for p in checked)
    flipped = [p for p in checked if p["chosen_checked"] and not p["rejected_checked"]]
    equals = [p for p in checked if p["chosen_correct"] == p["rejected_correct"]]  # all, without gold
    assert flipped and not [p for p in equals if not p["chosen_checked"] and p["rejected_checked"]]
    if gold is not None:  # correctness first: every plain pair stays; pairs of equals are added
        assert len(checked) > len(plain)
        assert all(p["chosen_correct"] or not p["rejected_correct"] for p in checked)
    for pair in flipped:
        assert pair["chosen"][0]["content"].startswith("3 + 4 = 7.")


def test_without_gold_the_reward_and_margin_decide() -> None:
    run = scripted_run(gold=None)
    pairs = list(export.dpo_pairs(run, export.Filters(), export.Report()))
    assert pairs and all(p["chosen_reward"] > p["rejected_reward"] for p in pairs)
    wide = list(export.dpo_pairs(run, export.Filters(margin=0.05), export.Report()))
    assert all(p["chosen_reward"] - p["rejected_reward"] >= 0.05 for p in wide) and len(wide) < len(pairs)
    report = export.Report()
    assert not list(export.dpo_pairs(run, export.Filters(margin=2.0), report))
    assert report.skipped == {"no two rewards differ by the margin": 1}


def test_sft_length_thirds_and_filters() -> None:
    run = scripted_run()
    every = list(export.sft_examples(run, export.Filters(), export.Report()))
    lengths = sorted(e["tokens"] for e in every)
    third = -(-len(every) // 3)
    short = list(export.sft_examples(run, export.Filters(length="shortest"), export.Report()))
    long = list(export.sft_examples(run, export.Filters(length="longest"), export.Report()))
    assert sorted(e["tokens"] for e in short) == lengths[:third]
    assert sorted(e["tokens"] for e in long) == lengths[-third:]
    right = list(export.sft_examples(run, export.Filters(correct_only=True), export.Report()))
    assert right and all(e["correct"] for e in right) and len(right) < len(every)
    rich = list(export.sft_examples(run, export.Filters(min_reward=0.85), export.Report()))
    assert all(e["reward"] >= 0.85 for e in rich) and len(rich) < len(every)
    chosen = list(export.sft_examples(run, export.Filters(chosen_only=True), export.Report()))
    assert len(chosen) == 1
    report = export.Report()
    assert not list(export.sft_examples(scripted_run(gold=None), export.Filters(correct_only=True), report))
    assert report.skipped == {"no gold answer": 1}
    for example in every:
        assert set(example) == SFT_KEYS
        roles = [m["role"] for m in example["messages"]]
        assert roles == ["system", "user", "assistant"]
        assert "<Output>" in example["messages"][-1]["content"]


def test_untagged_answers_get_thought_and_output_tags() -> None:
    run = scripted_run()
    untagged = [
        replace(r, text=r.text.replace("<Output>", "The answer is ").replace("</Output>", ""))
        for r in run.record.rollouts
    ]
    record = replace(run.record, rollouts=tuple(untagged))
    examples = list(export.sft_examples(export.Run(record, "7", "x"), export.Filters(), export.Report()))
    for example in examples:
        content = example["messages"][-1]["content"]
        assert (
            content.startswith("<Thought>\n")
            and content.endswith("\n</Output>")
            and "</Thought>\n<Output>" in content
        )


@pytest.mark.slow
def test_bench_then_export_on_the_real_model(tmp_path: Path) -> None:
    data = tmp_path / "easy.tsv"
    data.write_text(PROBLEMS, encoding="utf-8")
    out = tmp_path / "bench"
    ran = runner.invoke(
        app,
        [
            "bench",
            str(data),
            "-m",
            "smollm2-135m",
            "--strategy",
            "mcts",
            "-n",
            "6",
            "--children",
            "3",
            "--stop-agree",
            "0",
            "--temperature",
            "1.0",
            "--max-tokens",
            "160",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert ran.exit_code == 0, ran.output
    kept = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert len(kept) == 2 and all(k["record"]["messages"][-1]["role"] == "user" for k in kept)
    files = {}
    for fmt in ("sft", "dpo", "tree"):
        target = tmp_path / f"{fmt}.jsonl"
        result = runner.invoke(
            app, ["export", str(out), "--format", fmt, "--out", str(target), "--prefer-short"]
        )
        assert result.exit_code == 0, result.output
        assert "2 runs read" in result.stderr
        files[fmt] = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(files["tree"]) == 2 and all(set(t) == TREE_KEYS for t in files["tree"])
    by_source = {t["source"]: t for t in files["tree"]}
    assert files["dpo"], "the trees hold right and wrong rollouts"
    for pair in files["dpo"]:
        assert set(pair) == DPO_KEYS
        tree = by_source[pair["source"]]
        texts = {r["text"] for r in tree["rollouts"]}
        chosen, rejected = pair["chosen"][0]["content"], pair["rejected"][0]["content"]
        assert chosen in texts and rejected in texts and chosen != rejected
        assert pair["prompt"] == tree["messages"]
        n = pair["shared_prefix_chars"]
        assert chosen[:n] == rejected[:n]
        if pair["chosen_correct"] and pair["rejected_correct"]:
            assert _path_tokens(tree, chosen) < _path_tokens(tree, rejected)  # --prefer-short
        else:
            assert pair["chosen_correct"] and not pair["rejected_correct"]
    for example in files["sft"]:
        assert set(example) == SFT_KEYS and example["messages"][-1]["role"] == "assistant"
        assert "<Output>" in example["messages"][-1]["content"]


def test_bad_input_is_a_usage_error_and_writes_nothing(tmp_path: Path, scripted_session) -> None:
    target = tmp_path / "out.jsonl"
    empty = runner.invoke(app, ["export", "--all", "--out", str(target)])
    assert empty.exit_code == 2 and "no run in the history" in empty.stderr and not target.exists()
    none = runner.invoke(app, ["export", "--out", str(target)])
    assert none.exit_code == 2 and "say which runs" in none.stderr
    assert runner.invoke(app, ["solve", "What is 2 + 2?"]).exit_code == 0
    unknown = runner.invoke(app, ["export", "--run", "1-3", "--out", str(target)])
    assert unknown.exit_code == 2 and "no run 2, 3 in the history" in unknown.stderr and not target.exists()
    for flag, value in (("--format", "csv"), ("--length", "middle")):
        wrong = runner.invoke(app, ["export", "--all", flag, value, "--out", str(target)])
        assert wrong.exit_code == 2 and f"'{value}' is not one of" in wrong.stderr and not target.exists()
    folder = tmp_path / "not-bench"
    folder.mkdir()
    no_results = runner.invoke(app, ["export", str(folder), "--out", str(target)])
    assert (
        no_results.exit_code == 2 and "holds no search records" in no_results.stderr and not target.exists()
    )
    fine = runner.invoke(app, ["export", "--run", "1", "--format", "tree"])
    assert fine.exit_code == 0 and json.loads(fine.stdout)["source"] == "run 1"
    assert "1 runs read, 1 trees written" in fine.stderr


EXPORT_FLAGS = [
    (["--correct-only"], "correct_only", True),
    (["--min-reward", "0.5"], "min_reward", 0.5),
    (["--length", "shortest"], "length", "shortest"),
    (["--length", "longest"], "length", "longest"),
    (["--chosen-only"], "chosen_only", True),
    (["--margin", "0.2"], "margin", 0.2),
    (["--prefer-short"], "prefer_short", True),
    (["--prefer-checked"], "prefer_checked", True),
    (["--max-pairs-per-question", "3"], "max_pairs", 3),
]


@pytest.mark.parametrize(("flags", "field", "want"), EXPORT_FLAGS)
def test_export_flags_reach_the_export_options(
    scripted_session, monkeypatch: pytest.MonkeyPatch, flags: list[str], field: str, want: object
) -> None:
    from marco_cli.cli import export as export_command

    seen: list[export.Filters] = []

    def capture(runs, fmt, options):
        seen.append(options)
        return [], export.Report(runs=len(runs))

    monkeypatch.setattr(export_command.export, "export", capture)
    assert runner.invoke(app, ["solve", "What is 2 + 2?"]).exit_code == 0
    result = runner.invoke(app, ["export", "--run", "1", *flags])
    assert result.exit_code == 0, result.output
    assert getattr(seen[0], field) == want


def test_since_selects_runs_by_date(scripted_session) -> None:
    assert runner.invoke(app, ["solve", "What is 2 + 2?"]).exit_code == 0
    recent = runner.invoke(app, ["export", "--since", "2000-01-01", "--format", "tree"])
    assert recent.exit_code == 0 and json.loads(recent.stdout)["source"] == "run 1"
    future = runner.invoke(app, ["export", "--since", "2999-01-01"])
    assert future.exit_code == 2 and "no run in the history matches" in future.stderr
    bad = runner.invoke(app, ["export", "--since", "yesterday"])
    assert bad.exit_code == 2 and "--since wants a date" in bad.stderr


def _beam_run(gold: str | None) -> export.Run:
    """A beam tree: under the root, a kept step and a pruned one; under the kept step, a kept
    and a pruned answer."""
    world = ScriptedModel(actions={}, rollouts={})
    world.actions[""] = [("Add 3 and 4.\n", 0.9), ("Subtract.\n", 0.4)]
    world.actions["Add 3 and 4.\n"] = [("<Output>7</Output>", 0.8), ("<Output>1</Output>", 0.2)]
    world.actions["Subtract.\n"] = [("<Output>5</Output>", 0.9)]
    config = SearchConfig(strategy="beam", beams=1, beam_width=2, temperature=1.0)
    result = run_search(world, world.prompt, config)
    record = Record.of(result, "3 + 4?", ModelInfo("scripted"), config, [Message("user", "3 + 4?")])
    return export.Run(record, gold, "beam #1")


def test_step_dpo_pairs_a_kept_step_with_its_pruned_sibling() -> None:
    lines, report = export.export([_beam_run(None)], "step-dpo", export.Filters())
    pairs = {(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in lines}
    assert pairs == {("Add 3 and 4.\n", "Subtract.\n")}  # the answers ended paths: never pruned
    (pair,) = lines
    assert pair["shared_prefix_chars"] == 0 and pair["depth"] == 1
    assert pair["chosen_value"] == pytest.approx(0.9) and pair["rejected_value"] == pytest.approx(0.4)
    assert pair["prompt"] == [{"role": "user", "content": "3 + 4?"}] and report.written == 1
    wide, _ = export.export([_beam_run(None)], "step-dpo", export.Filters(margin=0.6))
    assert wide == []  # 0.9 - 0.4 is under the margin
    wrong_gold, report = export.export([_beam_run("5")], "step-dpo", export.Filters())
    assert wrong_gold == [] and report.skipped  # the kept step leads to no right answer
    right_gold, _ = export.export([_beam_run("7")], "step-dpo", export.Filters())
    assert len(right_gold) == 1


def test_step_dpo_pairs_share_the_path_before_them() -> None:
    world = ScriptedModel(actions={}, rollouts={})
    world.actions[""] = [("Start.\n", 0.9)]
    world.actions["Start.\n"] = [("Add 3 and 4.\n", 0.9), ("Guess.\n", 0.3)]
    world.actions["Start.\nAdd 3 and 4.\n"] = [("<Output>7</Output>", 0.8)]
    config = SearchConfig(strategy="beam", beams=1, beam_width=2, temperature=1.0)
    result = run_search(world, world.prompt, config)
    record = Record.of(result, "3 + 4?", ModelInfo("scripted"), config, [Message("user", "3 + 4?")])
    lines, _ = export.export([export.Run(record, None, "x")], "step-dpo", export.Filters())
    assert [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in lines] == [
        ("Start.\nAdd 3 and 4.\n", "Start.\nGuess.\n")
    ]
    assert lines[0]["shared_prefix_chars"] == len("Start.\n") and lines[0]["depth"] == 2


def test_step_dpo_says_why_a_tree_without_pruning_gives_none() -> None:
    lines, report = export.export([scripted_run()], "step-dpo", export.Filters())
    assert lines == [] and report.skipped["no pruned step (not a step search)"] == 1
