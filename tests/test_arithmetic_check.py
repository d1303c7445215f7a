"""`--reward check`: the equations a step writes are recomputed exactly (search/arithmetic.py).
The evaluator under Hypothesis (random expressions against Python's own Fraction arithmetic,
random text around them), a table of step texts in SmolLM2-135M's form, and a scripted
search whose confident wrong step loses to a right one only under `check`."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from dataclasses import replace
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from rich.console import Console

from marco_cli.record.record import ModelInfo, Record
from marco_cli.runs import bench
from marco_cli.search.arithmetic import MAX_NUMBER, MAX_TERMS, equations, evaluate, scan, wrong
from marco_cli.search.config import SearchConfig, SearchResult
from marco_cli.search.rewards import Scored, parse_reward, reward_function
from marco_cli.search.strategies import run_search
from marco_cli.ui.tree_view import TreeSnapshot, render_tree
from tests.scripted import ScriptedModel

OPERATORS = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
}
SPELLINGS = {"+": ["+"], "-": ["-"], "*": ["*", "×", "x", "times"], "/": ["/", "÷"]}


@st.composite
def expressions(draw: st.DrawFn, depth: int = 3) -> tuple[str, Fraction]:
    """(text, exact value) of a random expression over whole numbers, with any operator spelling."""
    if depth == 0 or draw(st.booleans()):
        n = draw(st.integers(0, 100_000))
        text = f"{n:,}" if n >= 1000 and draw(st.booleans()) else str(n)  # thousands separators
        return text, Fraction(n)
    left, right = draw(expressions(depth - 1)), draw(expressions(depth - 1))
    op = draw(st.sampled_from(sorted(OPERATORS)))
    if op == "/" and right[1] == 0:
        op = "+"
    spelled = draw(st.sampled_from(SPELLINGS[op]))
    return f"({left[0]} {spelled} {right[0]})", OPERATORS[op](left[1], right[1])


@given(expressions())
def test_an_expression_is_worth_what_python_computes_on_fractions(expression: tuple[str, Fraction]) -> None:
    text, value = expression
    assert evaluate(text) == value


def _at(value: Fraction, decimals: int) -> str:
    """`value` rounded a half away from zero and written with `decimals` decimals."""
    scaled = abs(value) * 10**decimals
    whole = int(scaled + Fraction(1, 2))
    digits = f"{whole:0{decimals + 1}d}"
    text = digits if not decimals else f"{digits[:-decimals]}.{digits[-decimals:]}"
    return ("-" if value < 0 and whole else "") + text


@given(
    expressions(),
    st.text(alphabet="abcdefgh ,.:!?\n", max_size=20),
    st.text(alphabet="abcdefgh ,:!?\n", max_size=20),
    st.integers(0, 3),
    st.integers(1, 50).flatmap(lambda k: st.sampled_from([k, -k])),
)
def test_an_equation_in_any_text_is_found_and_judged(
    expression: tuple[str, Fraction], before: str, after: str, decimals: int, units_off: int
) -> None:
    """Any value, claimed at 0-3 decimals: its rounding is right; a claim any whole number of
    units away (either side) is wrong."""
    text, value = expression
    if "(" not in text:
        return  # a bare number is no equation
    unit = Fraction(1, 10**decimals)
    rounded = Fraction(_at(value, decimals))
    right, off = f"{text} = {_at(value, decimals)}", f"{text} = {_at(rounded + units_off * unit, decimals)}"
    for claim, is_right in ((right, True), (off, False)):
        found = equations(f"{before} {claim} {after}")
        assert [e.right for e in found] == [is_right], (claim, found)


# step texts in the form SmolLM2-135M writes them (the first is the README quick start's real step;
# the rest are written here, not taken from saved trees), and the verdict on each equation
REAL_STEPS = [
    ("Tom has 3 apples and 4 more apples, so he has 3 + 4 = 7 apples.", [True]),
    ("Kenji has 56 cards and gets 31 more, so 56 + 31 = 77 cards.", [False]),
    ("She sells the remainder for $2 each: 9 * $2 = $18.", [True]),
    ("Janet sells 16 - 3 - 4 = 9 duck eggs a day.", [True]),
    ("Zara buys 4 boxes with 4 shells: 4 x 4 = 16 shells.", [True]),
    ("Each friend gets 48 / 6 = 7 stickers.", [False]),
    ("The total cost is 3 × $12 = $36, so the change is $40 - $36 = $4.", [True, True]),
    ("20% of the 50 is 20% * 50 = 10.", [True]),
    ("That is 10 / 3 = 3.33 cups each.", [True]),
    ("Step 2: we have 5 apples.", []),
]


@pytest.mark.parametrize(("text", "verdicts"), REAL_STEPS)
def test_real_step_texts_are_judged_right(text: str, verdicts: list[bool]) -> None:
    assert [e.right for e in equations(text)] == verdicts
    assert bool(wrong(text)) == (False in verdicts)


def checked_config() -> SearchConfig:
    return SearchConfig(
        iterations=4, children=2, first_tokens=0, select="reward", stop_agree=None, numeric_answer=True
    )


def _search(reward: str) -> SearchResult:
    model = ScriptedModel(
        actions={"": [(WRONG_STEP, 0.95), (RIGHT_STEP, 0.55)]},
        rollouts={WRONG_STEP: ("<Output>161</Output>", 0.95), RIGHT_STEP: ("<Output>171</Output>", 0.6)},
    )
    config = SearchConfig(
        iterations=4, children=2, first_tokens=0, select="reward", stop_agree=None, numeric_answer=True
    )
    return run_search(model, model.prompt, replace(config, reward=reward))  # type: ignore[arg-type]


WRONG_STEP, RIGHT_STEP = "97 + 74 = 161.\n", "97 + 74 = 171.\n"


def test_check_turns_the_search_from_a_confident_wrong_step() -> None:
    """Two first steps: a confident one with a wrong sum, an unsure one with the right sum. The
    model's confidence prefers the wrong one; `check` zeroes every rollout below it (a fresh
    scripted model for each search)."""
    trusted, checked = _search("finished"), _search("check")
    assert trusted.answer == "161" and checked.answer == "171"
    wrong_node = next(n for n in checked.tree.nodes if n.text == WRONG_STEP)
    right_node = next(n for n in checked.tree.nodes if n.text == RIGHT_STEP)
    assert wrong_node.value_sum == 0 and right_node.value_sum > 0  # UCT's q: 0 under the wrong step


def test_a_refuted_step_is_never_rolled_out_and_says_why() -> None:
    """The step check judges a step when it is generated: the wrong step gets value 0 as its
    first visit and no rollout (tokens not spent), and keeps the equation and its true value."""
    checked = _search("check")
    wrong_node = next(n for n in checked.tree.nodes if n.text == WRONG_STEP)
    assert wrong_node.refuted == ("97 + 74 = 161 (is 171)",)
    assert not [r for r in checked.tree.rollouts if r.node == wrong_node.id]
    trusted = _search("finished")
    assert next(n for n in trusted.tree.nodes if n.text == WRONG_STEP).refuted == ()
    record = Record.from_json(
        json.loads(json.dumps(Record.of(checked, "Q?", ModelInfo("scripted"), checked_config()).to_json()))
    )
    saved = next(n for n in record.nodes if n.text == WRONG_STEP)
    assert saved.refuted == ("97 + 74 = 161 (is 171)",)
    console = Console(width=120, record=True, color_system=None)
    console.print(render_tree(TreeSnapshot.from_record(record), width=120, max_lines=40))
    assert "✗ 97 + 74 = 161 (is 171)" in console.export_text()


@pytest.mark.parametrize(
    ("spec", "value", "gates"),
    [
        ("finished", "finished", ()),
        ("check", "finished", ("check",)),
        ("answer+check", "answer", ("check",)),
        (" paper + check ", "paper", ("check",)),
    ],
)
def test_a_reward_is_a_value_times_gates(spec: str, value: str, gates: tuple[str, ...]) -> None:
    parsed = parse_reward(spec)
    assert (parsed.value, parsed.gates) == (value, gates)


@pytest.mark.parametrize("spec", ["", "nope", "check+finished", "finished+check+check", "finished+paper"])
def test_a_reward_that_is_not_a_value_and_gates_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="reward"):
        parse_reward(spec)
    with pytest.raises(ValueError, match="reward"):
        SearchConfig(reward=spec)


def test_the_product_closes_on_a_wrong_equation_and_keeps_the_value_otherwise() -> None:
    right = Scored(0.7, True, "171", 0.9, "97 + 74 = 171.\n<Output>171</Output>")
    wrong_sum = replace(right, text="97 + 74 = 161.\n<Output>161</Output>", answer="161")
    assert reward_function("finished+check")(right) == 0.7
    assert reward_function("answer+check")(right) == 0.9
    assert reward_function("check")(wrong_sum) == 0.0 == reward_function("answer+check")(wrong_sum)
    assert reward_function("finished")(wrong_sum) == 0.7


def test_saved_trees_are_rescored_under_check_without_generating() -> None:
    """The run scored by confidence answers the wrong sum by `reward`; the same saved tree
    re-scored under `check` answers the right one (rules that read rewards follow)."""
    saved = Record.of(_search("finished"), "Q?", ModelInfo("scripted"), checked_config())
    assert bench.answer_by(saved, "reward") == "161"
    rescored = saved.rescored("check")
    assert bench.answer_by(rescored, "reward") == "171"
    assert all(r.reward == 0 for r in rescored.rollouts if r.answer == "161")
    assert rescored.search.reward == "check" and rescored.nodes == saved.nodes


# the scanner's work: linear in the text, whatever the text holds (issue 47) ----------------
# The equation pattern this scanner replaced, kept as the reference for what counts as an
# equation: it backtracked exponentially on a chain with no `=`, so it only reads short texts here.
_OLD_NUMBER = r"\$?\d{1,3}(?:,\d{3})+(?:\.\d+)?%?|\$?\d+(?:\.\d+)?%?"
_OLD_EXPRESSION = rf"\(*(?:{_OLD_NUMBER})\s*\)*(?:\s*(?:[-+*/×÷xX]|times)\s*\(*\s*(?:{_OLD_NUMBER})\s*\)*)+"
_OLD_EQUATION = re.compile(
    rf"(?<![\w.,])(?P<lhs>{_OLD_EXPRESSION})\s*=\s*(?P<rhs>-?(?:{_OLD_NUMBER}))(?![\w.]*\d)"
)
NUMBERS = ["1", "12", "0", "7", "1,234", "12,345,678", "2.5", "$3", "$1,200", "20%", "3.33", "1234"]
OTHERS = ["+", "-", "*", "/", "x", "X", "×", "÷", "times", "(", ")", "=", "= -", "apples", "is", "."]
PIECES = st.sampled_from([*NUMBERS, *OTHERS, ",", "a1", "$", "\n"])


@st.composite
def mixes(draw: st.DrawFn, most: int = 14) -> str:
    """Numbers, operators, parentheses, words and `=` with or without spaces between them (two
    numbers always apart, so that they read as two)."""
    text = ""
    for piece in draw(st.lists(PIECES, max_size=most)):
        glued = text[-1:].isdigit() and piece[:1].isdigit()
        text += (" " if glued else "") + piece + draw(st.sampled_from(["", " ", "  ", "\t"]))
    return text


def _reference(text: str) -> list[tuple[str, Fraction]] | None:
    """The old pattern's equations as (text, claim); None where its claim was a shorter reading
    of a number glued to more (`= 5%3` claimed 5, `= 1,234x8` claimed 1): the scanner claims
    nothing there, on purpose."""
    found = []
    for match in _OLD_EQUATION.finditer(text):
        if text[match.end() : match.end() + 1] in (",", "%"):
            return None
        found.append((match.group().strip(), _claim(match["rhs"])))
    return found


def _claim(written: str) -> Fraction:
    claim = Fraction(written.lstrip("-").replace("$", "").replace(",", "").rstrip("%"))
    claim = claim / 100 if written.endswith("%") else claim
    return -claim if written.startswith("-") else claim


@settings(max_examples=400)
@given(mixes())
def test_the_scanner_finds_what_the_old_pattern_found(text: str) -> None:
    reference = _reference(text)
    assume(reference is not None)
    assert [(text[f.start : f.end].strip(), _claim(f.claim)) for f in scan(text)[0]] == reference


@given(mixes(most=60), st.sampled_from(["", " = 5", " = 6.", "=", " is 99"]))
def test_the_scanner_looks_at_each_character_a_bounded_number_of_times(text: str, end: str) -> None:
    steps = scan(text + end)[1]
    assert steps <= 8 * (len(text + end) + 1), (text + end, steps)


@pytest.mark.parametrize("unit", ["1 + ", "(1 + ", "1 +  ", "12 x ", "$3 times ", "(2 - 1) * "])
@pytest.mark.parametrize("end", ["x", "is 99", "= 5", ""])
def test_a_chain_of_n_terms_costs_steps_linear_in_n(unit: str, end: str) -> None:
    """The old pattern took 26 s for `1 + ` twelve times then `x`, doubling every two terms."""
    steps = [scan(unit * n + "1 " + end)[1] for n in (10, 20, 40, 80, 160)]
    growth = [later - earlier for earlier, later in itertools.pairwise(steps)]
    per_term = [g / n for g, n in zip(growth, (10, 20, 40, 80), strict=True)]
    assert max(per_term) <= 8 * len(unit) and max(per_term) - min(per_term) <= 1, steps


def test_long_sums_are_read_whole_or_left_unchecked() -> None:
    terms = list(range(1, 26))
    joined = " + ".join(map(str, terms))
    assert [e.right for e in equations(f"{joined} = {sum(terms)}")] == [True]
    assert [e.right for e in equations(f"{joined} = {sum(terms) + 1}")] == [False]
    assert equations("3 + 4 + 5 + 6 + 7 + 8 + 9 + 10 + 11 + 12 + 13 + 14 is 99") == []
    longest = " + ".join(["1"] * MAX_TERMS)
    assert [e.right for e in equations(f"{longest} = {MAX_TERMS + 1}")] == [False]
    assert equations(f"{longest} + 1 = 0") == []  # one term over the bound: not checked
    huge = "9" * (MAX_NUMBER + 1)
    assert equations(f"{huge} * 2 = 1") == [] and equations(f"2 * 3 = {huge}") == []


def test_the_other_patterns_over_outside_text_finish_on_pathological_input() -> None:
    """Answer extraction, the error-body cleaner and bench's spec splitter on 200,000 characters
    built to make a backtracking pattern quadratic (blank lines before no `####`, spaces before
    no label, `<` with no `>`, commas with no `]`): the old patterns needed minutes, these
    finish at once. Run in a child so that a regression fails at the limit instead of hanging."""
    script = (
        "from marco_cli.search.answers import extract_output\n"
        "from marco_cli.engine.wire import one_line\n"
        "from marco_cli.cli.bench import _split\n"
        "n = 200_000\n"
        "extract_output('\\n' * n + 'x')\n"
        "extract_output(' ' * n + 'x')\n"
        "extract_output('output' + ' ' * n + 'x')\n"
        "one_line('<' * n)\n"
        "assert len(_split([',' * n])) == 0\n"
        "assert _split(['a,b[--x 1,2],c']) == ['a', 'b[--x 1,2]', 'c']\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
