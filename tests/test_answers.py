from __future__ import annotations

import pytest

from marco_cli.search.answers import answer_key, extract_number, extract_output, extract_thought


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("<Thought>\n2+2=4\n</Thought>\n<Output>\nThe answer is 4.\n</Output>", "The answer is 4."),
        ("<Thought>x</Thought><Output>first</Output> more <Output>second</Output>", "second"),
        ("<Thought>x</Thought>\n<Output>\nunclosed answer", "unclosed answer"),
        ("Let me think. 3 + 4 = 7. The answer is 7.", "7"),
        ("The answer is 1.5.", "1.5"),
        ("20 - 8 = 12 left.\nThis is the answer to the question.", "This is the answer to the question."),
        ("7 * 6 = 42\n#### 42", "42"),
        ("Step one\nAnswer: 12 apples<|im_end|>", "12 apples"),
        ("no tags here\nlast line wins\n", "last line wins"),
        ("", ""),
        ("思考一下。答案是：18", "18"),
    ],
)
def test_extract_output(text: str, want: str) -> None:
    assert extract_output(text) == want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("So 20 - 8 = 12 left.\nThis is the answer to the question.", "So 20 - 8 = 12 left."),
        ("The answer is clear.\nShe pays $14.", "She pays $14."),
        ("Answer: 12 apples. That is the answer: good.", "12 apples. That is the answer: good."),
        ("no number here\nat all", "at all"),
    ],
)
def test_numeric_questions_prefer_the_statement_that_holds_a_number(text: str, want: str) -> None:
    assert extract_output(text, numeric=True) == want


def test_extract_thought() -> None:
    assert extract_thought("<Thought>\nstep 1\n</Thought>\n<Output>4</Output>") == "step 1"
    assert extract_thought("plain reasoning\nso the answer is 5") == "plain reasoning\nso the answer is"
    assert extract_thought("reasoning first <Output>4</Output>") == "reasoning first"


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("$1,234.00", 1234.0),
        ("18 dollars", 18.0),
        ("The answer is 7.", 7.0),
        ("答案是１８", 18.0),
        ("-3 degrees", -3.0),
        ("no number at all", None),
        ("from 3 to 12,500 people", 12500.0),
    ],
)
def test_extract_number(text: str, want: float | None) -> None:
    assert extract_number(text) == want


def test_answer_key_groups_equal_answers() -> None:
    assert answer_key("7") == answer_key("7.0") == answer_key("The answer is 7.")
    assert answer_key("Paris.") == answer_key(" paris ")


@pytest.mark.parametrize(
    ("text", "answer", "thought"),
    [
        (
            "I think about it.\nOutput: This is a very good idea...",
            "This is a very good idea...",
            "I think about it.",
        ),
        ("Reasoning here.\n**Translation:**\nHola, amigo.", "Hola, amigo.", "Reasoning here."),
        ("Step 1: 3+4=7\nFinal answer: 7", "7", "Step 1: 3+4=7"),
        ("The cat (output: none) sat.", "The cat (output: none) sat.", ""),  # not a label line
    ],
)
def test_an_untagged_answer_loses_its_label(text: str, answer: str, thought: str) -> None:
    assert extract_output(text) == answer
    assert extract_thought(text) == thought
