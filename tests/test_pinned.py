"""Tests that pin the newer code (issue 51): each is written for a behaviour a planted bug once
changed without any test noticing (benchmarks/mutations.py plants them again and checks these
catch them). Properties where they fit; realistic layouts for the stores; each boundary from
both sides."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marco_cli.cli.app import app
from marco_cli.engine.ollama import check_version
from marco_cli.engine.transport import BackendError
from marco_cli.record.record import ModelInfo, Record
from marco_cli.runs import bench, datasets
from marco_cli.runs.arith import generate
from marco_cli.runs.bench import Kept
from marco_cli.runs.signals import graded_rollouts, signal_figures
from marco_cli.runs.stats import auroc_interval
from marco_cli.search.arithmetic import equations
from marco_cli.search.config import SearchConfig
from marco_cli.search.rewards import Scored, reward_function
from marco_cli.search.rules import Ballot, choose
from marco_cli.search.strategies import run_search
from marco_cli.search.tree import Rollout, Tree
from marco_cli.search.values import Step, step_value
from tests import test_stores
from tests.fake_ollama import FakeOllama
from tests.helpers import one_line_error, runner
from tests.scripted import ScriptedModel
from tests.test_stores import Q, Stores
from tests.test_verifier import Judge

laid_out, stores = test_stores.laid_out, test_stores.stores  # the stores' fixtures, reused
TINY = ["-n", "1", "--max-tokens", "8", "--json"]


# the arithmetic checker: rounding at the claim's decimals ------------------------------------
def _round_half_away(value: Fraction, decimals: int) -> Fraction:
    """Schoolbook rounding (a half goes away from zero), written here independently."""
    scaled = abs(value) * 10**decimals
    whole = int(scaled + Fraction(1, 2))
    return Fraction(whole if value >= 0 else -whole, 10**decimals)


def _written(value: Fraction, decimals: int) -> str:
    scaled = value * 10**decimals
    assert scaled.denominator == 1
    digits = f"{abs(scaled.numerator):0{decimals + 1}d}"
    text = digits if not decimals else f"{digits[:-decimals]}.{digits[-decimals:]}"
    return ("-" if value < 0 else "") + text


@given(st.integers(0, 100_000), st.integers(1, 400), st.integers(0, 3))
def test_the_rounded_value_is_right_and_one_unit_off_either_way_is_wrong(
    top: int, bottom: int, decimals: int
) -> None:
    true = Fraction(top, bottom)
    rounded, unit = _round_half_away(true, decimals), Fraction(1, 10**decimals)
    for claim, right in ((rounded, True), (rounded + unit, False), (rounded - unit, False)):
        (found,) = equations(f"So {top} / {bottom} = {_written(claim, decimals)} each.")
        assert found.right is right, (found, claim)


@pytest.mark.parametrize(
    ("text", "right"),
    [
        ("10 / 3 = 3.33", True),
        ("10 / 3 = 3.34", False),  # one hundredth off: the claim's own decimals decide
        ("2.5 times 4 = 10", True),
        ("2.5 times 4 = 10.4", False),  # its decimals are not ignored
        ("2.5 times 4 = 10.0", True),
        ("7 / 2 = 4", True),  # a half rounds away from zero
        ("7 / 2 = 3", False),  # not truncated: 3.5 is not 3
        ("7 / 2 = 3.5", True),
        ("1 / 8 = 0.13", True),  # 0.125 rounds up at 2 decimals
        ("1 / 8 = 0.12", False),
    ],
)
def test_the_boundaries_of_a_claim(text: str, right: bool) -> None:
    (found,) = equations(text)
    assert found.right is right


# the rules, the gates and the verifier --------------------------------------------------------
def _ballot(texts: list[tuple[str, str]]) -> Ballot:
    """One finished rollout per (text, answer), each under its own root child."""
    tree = Tree((1,))
    for text, answer in texts:
        node = tree.add(tree.root, (1,), text, (0.5,), True)
        tree.add_rollout(Rollout(len(tree.rollouts), node.id, (1,), text, 0.5, answer, "finished", 1, 0.5))
    return Ballot.of(tree)


def test_checked_falls_back_to_every_rollout_when_no_arithmetic_holds() -> None:
    ballot = _ballot([("2 + 2 = 5.", "5"), ("2 + 2 = 3.", "3"), ("3 + 3 = 5.", "5")])
    assert choose(ballot, "checked") is not None
    assert choose(ballot, "checked").answer == choose(ballot, "majority").answer == "5"  # type: ignore[union-attr]
    mixed = _ballot([("2 + 2 = 5.", "5"), ("2 + 2 = 5.", "5"), ("2 + 2 = 4.", "4")])
    assert choose(mixed, "checked").answer == "4"  # type: ignore[union-attr]


gate_values = st.floats(0.0, 1.0, allow_nan=False)


@given(gate_values, gate_values, st.booleans(), st.permutations(["check", "judge"]))
def test_gates_multiply_in_any_order(confidence: float, judged: float, wrong: bool, order: list[str]) -> None:
    text = "2 + 2 = 5.\n<Output>5</Output>" if wrong else "2 + 2 = 4.\n<Output>4</Output>"
    scored = Scored(confidence, True, "4", 0.9, text, judged=judged)
    expected = confidence * (0.0 if wrong else 1.0) * judged
    assert reward_function("finished+" + "+".join(order))(scored) == pytest.approx(expected)


@pytest.mark.parametrize(("p_yes", "refuted"), [(0.5, False), (0.4999, True), (0.5001, False), (0.0, True)])
def test_judge_steps_refutes_below_half_and_keeps_no_opinion(p_yes: float, refuted: bool) -> None:
    check = step_value("finished+judge-steps", Judge({}, other=p_yes))
    assert check is not None
    verdict = check("What is 2 + 2?", "", Step("2 + 2 = 4.\n"))
    assert bool(verdict.refuted) is refuted and verdict.judged == p_yes == verdict.value


def test_one_step_is_judged_under_each_context_it_appears_in() -> None:
    """The verifier's cache is keyed by the path before the step too: the same words after
    another path are another question."""
    from marco_cli.search.verifier import Verifier
    from tests.test_verifier import ScriptedVerifier, render

    model = ScriptedVerifier(lambda prompt: 0.9 if "We add 2 and 2." in prompt else 0.2)
    verifier = Verifier(model, render, "What is 2 + 2?")
    step = "So the answer is 4.\n"
    assert verifier("step", "We add 2 and 2.\n", step) == pytest.approx(0.9)
    assert verifier("step", "We multiply 2 by 3.\n", step) == pytest.approx(0.2)
    assert len(model.prompts) == 2


# the value signals ----------------------------------------------------------------------------
def test_the_check_signal_ranks_clean_arithmetic_above_wrong_arithmetic() -> None:
    """Right answers mostly with equations that hold, the wrong one with a wrong equation; one
    right answer came after the wrong sum (a right answer, wrong arithmetic): of the 3 x 1 pairs
    two are won and one tied, AUROC 5/6 (an inverted check would give 1/6)."""
    model = ScriptedModel(
        actions={"": [("3 + 4 = 8.\n", 0.9), ("3 + 4 = 7.\n", 0.6)]},
        rollouts={"3 + 4 = 8.\n": ("<Output>8</Output>", 0.9), "3 + 4 = 7.\n": ("<Output>7</Output>", 0.6)},
        default_rollout=("<Output>7</Output>", 0.6),  # right, no equation: the check passes it
    )
    config = SearchConfig(iterations=4, children=2, first_tokens=0, stop_agree=None, numeric_answer=True)
    result = run_search(model, model.prompt, config)
    record = Record.of(result, "Q?", ModelInfo("s"), config)
    figures = {f.signal: f for f in signal_figures(graded_rollouts([Kept("c", 1, "7", record)]))}
    assert (figures["check"].right, figures["check"].wrong) == (3, 1)
    assert figures["check"].auroc == pytest.approx(5 / 6)
    assert figures["confidence"].auroc == 0.0  # the model is surer of the wrong sum


def test_the_auroc_interval_is_hanley_and_mcneils() -> None:
    """Worked by hand for A = 0.7, 50 right, 500 wrong: Q1 = A/(2-A), Q2 = 2A²/(1+A), SE =
    sqrt((A(1-A) + 49(Q1-A²) + 499(Q2-A²)) / 25000) = 0.042771; a swapped formula gives 0.0339."""
    low, high = auroc_interval(0.7, 50, 500)
    assert low == pytest.approx(0.7 - 1.96 * 0.042771, abs=2e-5)
    assert high == pytest.approx(0.7 + 1.96 * 0.042771, abs=2e-5)
    assert auroc_interval(0.99, 50, 50)[1] == 1.0  # clipped


# the arithmetic set -----------------------------------------------------------------------------
NUMBER = re.compile(r"\d+")


def _recomputed(question: str) -> int:
    """The answer from the numbers in the question, by its template's wording."""
    n = [int(x) for x in NUMBER.findall(question)]
    if "gets" in question and "more" in question:
        return n[0] + n[1]
    if "gave away" in question:
        return n[0] - n[1]
    if "boxes with" in question:
        return n[0] * n[1]
    if "shares" in question:
        return n[0] // n[1]
    if "loses" in question:
        return n[0] + n[1] - n[2]
    if "bags with" in question:
        return n[0] * n[1] + n[2]
    if "change" in question:
        return n[2] - n[0] * n[1]
    raise AssertionError(f"no template reads {question!r}")


@given(st.integers(1, 60), st.integers(0, 10_000))
def test_every_arith_gold_is_what_its_question_computes(count: int, seed: int) -> None:
    for question, answer in generate(count, seed):
        assert _recomputed(question) == answer, question


def test_the_seed_decides_the_set_and_a_small_set_is_frozen() -> None:
    assert generate(14, 11) != generate(14, 12)
    assert generate(3, 11) == generate(3, 11)
    loaded = datasets.load("arith:3:11")
    assert [p.answer for p in loaded.problems] == [str(a) for _, a in generate(3, 11)]
    frozen = [(q[:24], a) for q, a in generate(4, 11)]
    assert frozen == FROZEN_ARITH, frozen


FROZEN_ARITH = [
    ("Kenji has 56 cards and g", 87),
    ("Kenji had 44 cards and g", 31),
    ("Zara buys 4 boxes with 4", 16),
    ("Kenji shares 9 books equ", 3),
]


@pytest.mark.parametrize("name", sorted(datasets.BY_NAME))
def test_every_shipped_gold_answer_is_graded_right_and_a_neighbour_wrong(name: str) -> None:
    for problem in datasets.load(name).problems:
        value, right = bench.grade(problem.answer, problem.answer)
        assert right and value is not None, problem
        assert not bench.grade(str(value + 1), problem.answer)[1]


# the stores: realistic layouts ------------------------------------------------------------------
def test_the_model_layer_is_found_by_its_media_type_wherever_it_lies(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ollama writes params, template and projector layers, often before the model's."""
    root = tmp_path / "ollama"
    shutil.copytree(stores.ollama, root)
    other, gguf = {"digest": "sha256:" + "0" * 64, "size": 1}, {"digest": f"sha256:{stores.gguf_sha}"}
    layers = [
        {"mediaType": "application/vnd.ollama.image.template", **other},
        {"mediaType": "application/vnd.ollama.image.projector", **gguf},
        {"mediaType": "application/vnd.ollama.image.params", **other},
        {"mediaType": "application/vnd.ollama.image.model", **gguf},
    ]
    manifest = root / "manifests" / "registry.ollama.ai" / "library" / "smollm2" / "135m"
    manifest.write_text(json.dumps({"schemaVersion": 2, "layers": layers}))
    monkeypatch.setenv("OLLAMA_MODELS", str(root))
    result = runner.invoke(app, ["solve", Q, "-m", "ollama:smollm2:135m", *TINY])
    assert result.exit_code == 0, result.output
    no_model = root / "manifests" / "registry.ollama.ai" / "library" / "nomodel" / "latest"
    no_model.parent.mkdir(parents=True)
    no_model.write_text(json.dumps({"layers": layers[:3]}))  # a projector is not the model
    assert "has no model layer" in one_line_error(runner.invoke(app, ["solve", Q, "-m", "ollama:nomodel"]), 1)


def test_a_folder_holding_several_quants_asks_which(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "lmstudio" / "bartowski" / "SmolLM2-135M-Instruct-GGUF"
    repo.mkdir(parents=True)
    for quant in ("Q4_1", "Q8_0"):
        (repo / f"SmolLM2-135M-Instruct-{quant}.gguf").symlink_to(stores.blob)
    monkeypatch.setenv("LMSTUDIO_MODELS", str(tmp_path / "lmstudio"))
    folder = "lmstudio:bartowski/SmolLM2-135M-Instruct-GGUF"
    line = one_line_error(runner.invoke(app, ["solve", Q, "-m", folder]), 2)
    assert "holds 2 models" in line and "Q4_1" in line and "Q8_0" in line and "name one" in line
    named = "lmstudio:bartowski/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct-Q8_0.gguf"
    result = runner.invoke(app, ["solve", Q, "-m", named, *TINY])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"]["file"].endswith("Q8_0.gguf")  # the one named


@pytest.mark.parametrize(
    ("spec", "used"),
    [("ollama:smollm2:135m", "smollm2:135m"), ("ollama:someone/tiny", "someone/tiny:latest")],
)
def test_names_with_and_without_tags_reach_their_manifest(stores: Stores, spec: str, used: str) -> None:
    listed = json.loads(runner.invoke(app, ["models", "--all", "--json"]).stdout)
    assert any(r["name"] == f"ollama:{used}" for r in listed)
    result = runner.invoke(app, ["solve", Q, "-m", spec, *TINY])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rollouts"]


# the Ollama backend -----------------------------------------------------------------------------
def test_the_logprob_version_boundary_both_sides() -> None:
    check_version("0.12.11", "http://x")  # the first version with log-probabilities
    check_version("0.12.12", "http://x")
    check_version("0.0.0", "http://x")  # a source build
    for old in ("0.12.10", "0.11.99", "0.12.10-rc1"):
        with pytest.raises(BackendError, match=r"needs Ollama 0\.12\.11 or newer"):
            check_version(old, "http://x")


def test_a_bare_model_name_means_its_latest_tag() -> None:
    fake = FakeOllama(models=("smollm2:latest",)).start()
    try:
        args = ["solve", Q, "--backend", fake.url, "--max-tokens", "16", "-n", "1", "--first-tokens", "0"]
        result = runner.invoke(app, [*args, "-m", "smollm2", "--json"])
        assert result.exit_code == 0, result.output
        assert {r["model"] for r in fake.requests if "prompt" in r} == {"smollm2:latest"}
        missing = one_line_error(runner.invoke(app, [*args, "-m", "smollm3"]), 1)
        assert "has no model 'smollm3'" in missing
    finally:
        fake.stop()


def test_config_cannot_carry_an_unknown_rule() -> None:
    with pytest.raises(ValueError, match="select must be one of"):
        replace(SearchConfig(), select="nonsense")  # type: ignore[arg-type]
