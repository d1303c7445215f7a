"""Answer extraction from a model's response: the <Output> block, or a fallback; numbers."""

from __future__ import annotations

import re
import unicodedata

_OUTPUT = re.compile(r"<Output>(.*?)(?:</Output>|$)", re.DOTALL | re.IGNORECASE)
_THOUGHT = re.compile(r"<Thought>(.*?)(?:</Thought>|<Output>|$)", re.DOTALL | re.IGNORECASE)
_ANSWER_IS = re.compile(
    r"(?:answer\s+is\s*:?|answer\s*:|答案是\s*[:：]?|答案\s*[:：]|^[^\S\n]*####)[ \t]*([^\n]*)", re.I | re.M
)
# an untagged answer under a label line: "Output: ...", "**Translation:** ...", "Final answer: ...";
# no two adjacent parts here can match the same character (each pattern reads a text in linear time)
_LABEL = re.compile(
    r"^[ \t]*(?:[*_#]+[ \t]*)?(?:output|final\s+answer|translation)[ \t]*(?:[*_]+[ \t]*)?[:：][*_]*[ \t]*",
    re.I | re.M,
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_END_TOKENS = re.compile(r"<\|im_end\|>|<\|endoftext\|>|</s>")


def _clean(text: str) -> str:
    return _END_TOKENS.sub("", text).strip()


def _tidy(answer: str) -> str:
    """A bare number keeps no sentence full stop: "1.5." is 1.5."""
    answer = _clean(answer)
    return answer[:-1] if re.fullmatch(r"[-$€£¥]?\d[\d,]*(?:\.\d+)?\.", answer) else answer


def extract_output(text: str, numeric: bool = False) -> str:
    """The final answer of a complete response.

    The last <Output> block; else the final statement that carries the result: what follows the
    last "answer is" / "Answer:" / "####" (for a numeric question, the last such one holding a
    number); else what follows the last "Output:" / "Translation:" / "Final answer:" label (its
    label dropped); else, for a numeric question, the last line holding a number; else the last line.
    Callers pass only finished responses: a cut-off text has no answer.
    """
    blocks = _OUTPUT.findall(text)
    if blocks and blocks[-1].strip():
        return _tidy(blocks[-1])
    body = _clean(re.sub(r"</?(Thought|Output)>", "", text, flags=re.IGNORECASE))
    stated = [_tidy(m.group(1)) for m in _ANSWER_IS.finditer(body)]
    stated = [s for s in stated if s and (not numeric or extract_number(s) is not None)]
    if stated:
        return stated[-1]
    labels = list(_LABEL.finditer(body))
    if labels and body[labels[-1].end() :].strip():
        labelled = _tidy(body[labels[-1].end() :])
        if not numeric or extract_number(labelled) is not None:
            return labelled
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    if numeric:
        lines = [line for line in lines if extract_number(line) is not None] or lines
    return _tidy(lines[-1]) if lines else ""


def extract_thought(text: str) -> str:
    """The reasoning: the <Thought> block, else everything before the <Output> block."""
    match = _THOUGHT.search(text)
    if match:
        return _clean(match.group(1))
    if re.search(r"<Output>", text, re.IGNORECASE):
        return _clean(re.split(r"<Output>", text, maxsplit=1, flags=re.IGNORECASE)[0])
    answer = extract_output(text)
    body = _clean(text)
    if answer and body.endswith(answer):  # an untagged response: the reasoning before the answer
        before = body[: -len(answer)]
        label = list(_LABEL.finditer(before))
        if label and not before[label[-1].end() :].strip():  # and not the answer's label
            before = before[: label[-1].start()]
        return before.strip()
    return body


def normalize_number_text(text: str) -> str:
    """Full-width digits to ASCII, thousands separators and currency out."""
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    return text.replace("$", " ").replace("€", " ").replace("£", " ").replace("¥", " ")


def extract_number(text: str) -> float | None:
    """The last number in `text` (commas, currency signs and units ignored), or None."""
    found = _NUMBER.findall(normalize_number_text(text))
    if not found:
        return None
    return float(found[-1])


def answer_key(answer: str) -> str:
    """What two answers must share to count as the same vote: the number when there is one,
    else the text without case, spaces and final punctuation."""
    number = extract_number(answer)
    if number is not None:
        return f"{number:g}"
    return re.sub(r"\s+", " ", answer.strip().lower()).rstrip(".。!！")
