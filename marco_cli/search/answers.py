"""Answer extraction from a model's response: the <Output> block, or a fallback; numbers."""

from __future__ import annotations

import re
import unicodedata

_OUTPUT = re.compile(r"<Output>(.*?)(?:</Output>|$)", re.DOTALL | re.IGNORECASE)
_THOUGHT = re.compile(r"<Thought>(.*?)(?:</Thought>|<Output>|$)", re.DOTALL | re.IGNORECASE)
_ANSWER_IS = re.compile(r"(?:answer\s+is\s*:?|answer\s*:|答案是\s*[:：]?|答案\s*[:：])\s*(.*)", re.I | re.S)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_END_TOKENS = re.compile(r"<\|im_end\|>|<\|endoftext\|>|</s>")


def _clean(text: str) -> str:
    return _END_TOKENS.sub("", text).strip()


def extract_output(text: str) -> str:
    """The final answer: the last <Output> block; else what follows the last "answer is" or
    "Answer:"; else the last non-empty line."""
    blocks = _OUTPUT.findall(text)
    if blocks and blocks[-1].strip():
        return _clean(blocks[-1])
    body = re.sub(r"</?(Thought|Output)>", "", text, flags=re.IGNORECASE)
    matches = list(_ANSWER_IS.finditer(body))
    if matches:
        found = _clean(matches[-1].group(1))
        if found:
            return found
    lines = [line.strip() for line in _clean(body).splitlines() if line.strip()]
    return lines[-1] if lines else ""


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
        return body[: -len(answer)].strip()
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
