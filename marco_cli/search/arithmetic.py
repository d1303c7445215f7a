"""Arithmetic a reasoning step writes down, checked exactly: every `EXPRESSION = NUMBER` in a text
(`97 + 74 = 171`, `3 x 5 = 15` or with a multiplication sign, `$1,200 / 4 = $300`,
`20% * 50 = 10`, `2.5 times 4 = 10`) is recomputed in exact rational arithmetic and compared
with what the text claims.

Program-aided checking in the manner of PAL (Gao et al. 2023), limited to the equations the model
wrote: the model still writes every step. The text is read by a hand-written scanner, not a regular
expression: a backtracking pattern for "a chain of operations, then `=`" was exponential in the
chain's length on text with no `=` (a 14-term sum took a minute and froze `marco serve`). The
scanner reads each character a bounded number of times (`scan` counts its steps; the tests assert
they grow linearly with the text), and an equation with more than `MAX_TERMS` numbers or a number
longer than `MAX_NUMBER` characters is left unchecked, so the exact arithmetic is bounded too.
The expression is evaluated with + - * / and parentheses only (never `eval`); a claim with D
decimals is right when the true value rounds to it at D decimals.

What counts as an equation (the grammar the old pattern had, now read deterministically):
- it starts at a number or `(` not preceded by a letter, digit, `_`, `.` or `,`;
- terms are `(`* NUMBER `)`*, joined by `+ - * /`, the multiplication and division signs,
  `x`, `X` or `times`, spaces allowed around an operator and after an opening parenthesis
  (the first term's parentheses touch its number);
- then `=` and the claim, `-`? NUMBER, not followed by letters, digits or dots that hold a digit;
- a NUMBER is `$`? digits (or 1-3 digits and `,ddd` groups) with an optional `.digits` and `%`.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from fractions import Fraction

MAX_TERMS = 100  # numbers in one equation's left side; a longer chain is not checked
MAX_NUMBER = 40  # characters in one number as written; a longer one is not checked
_SPELLED = {"+": "+", "-": "-", "*": "*", "/": "/", "×": "*", "÷": "/", "x": "*", "X": "*"}
_TIMES = "times"


@dataclass(frozen=True)
class Equation:
    """One equation a text holds: as written, what it claims, and what is true."""

    text: str
    claimed: Fraction
    true: Fraction

    @property
    def right(self) -> bool:
        """The true value rounds to the claim at the claim's decimals, a half away from zero as
        in school (`10 / 3 = 3.33` and `7 / 2 = 4` are right; `7 / 2 = 3` and `10 / 3 = 3.34`
        are not)."""
        claim = self.text.rsplit("=", 1)[1].strip().rstrip("%")
        decimals = len(claim.split(".")[1]) if "." in claim else 0
        half, gap = Fraction(1, 10**decimals) / 2, abs(self.true - self.claimed)
        return gap < half or (gap == half and abs(self.claimed) > abs(self.true))


@dataclass(frozen=True)
class Found:
    """Where one equation lies in the scanned text: its left side's tokens and its claim."""

    start: int
    end: int
    tokens: tuple[str, ...]  # numbers as written, "(", ")" and the operators as + - * /
    claim: str  # the claimed number as written, with its sign


class _Scanner:
    """One left-to-right pass over a text; `steps` counts every character it looks at."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.steps = 0

    def at(self, index: int) -> str:
        """The character at `index` ("" past the end), counted as one step."""
        self.steps += 1
        return self.text[index] if index < len(self.text) else ""

    def spaces(self, index: int) -> int:
        while self.at(index).isspace():
            index += 1
        return index

    def parens(self, index: int, paren: str) -> int:
        while self.at(index) == paren:
            index += 1
        return index

    def digits(self, index: int) -> int:
        while self.at(index).isdecimal():
            index += 1
        return index

    def number(self, index: int) -> int | None:
        """The end of the number starting at `index` (its longest reading), or None."""
        start = index + 1 if self.at(index) == "$" else index
        end = self.digits(start)
        if end == start:
            return None
        if end - start <= 3:
            while self.at(end) == "," and self.digits(end + 1) == end + 4:
                end += 4
        if self.at(end) == "." and self.at(end + 1).isdecimal():
            end = self.digits(end + 1)
        return end + 1 if self.at(end) == "%" else end

    def operator(self, index: int) -> tuple[int, str] | None:
        """(the end of the operator at `index`, the operator as + - * /), or None."""
        char = self.at(index)
        if char and char in _SPELLED:
            return index + 1, _SPELLED[char]
        if char == "t" and self.text.startswith(_TIMES, index):
            self.steps += len(_TIMES)
            return index + len(_TIMES), "*"
        return None

    def starts(self, index: int) -> bool:
        """An equation may start here: `(`, `$` or a digit, not glued to a word or number before."""
        char = self.at(index)
        if not char or not (char in "($" or char.isdecimal()):
            return False
        before = self.text[index - 1] if index else " "
        return not (before.isalnum() or before in "_.,")

    def closing(self, index: int, tokens: list[str]) -> int:
        """Past a term's `)`*: spaces, then closing parentheses touching each other."""
        after = self.spaces(index)
        end = self.parens(after, ")")
        tokens.extend(")" * (end - after))
        return end if end > after else index

    def left_side(self, start: int) -> tuple[int, list[str] | None]:
        """The longest chain of terms from `start` as (its end, its tokens); with no operator in
        it, (where the scan may go on, None)."""
        opened = self.parens(start, "(")
        end = self.number(opened)
        if end is None:
            return opened + 1, None
        tokens = ["("] * (opened - start) + [self.text[opened:end]]
        end = self.closing(end, tokens)
        terms = 1
        while (operator := self.operator(self.spaces(end))) is not None:
            opened = self.spaces(operator[0])
            first = self.parens(opened, "(")
            number_start = self.spaces(first)
            number_end = self.number(number_start)
            if number_end is None:
                break
            tokens += [operator[1], *["("] * (first - opened), self.text[number_start:number_end]]
            end = self.closing(number_end, tokens)
            terms += 1
        return (end, tokens) if terms > 1 else (end, None)

    def claim(self, index: int) -> tuple[int, int] | None:
        """(start, end) of the claim in `= -?NUMBER` at `index`, the number not glued to more
        digits (`= 3.5.6` and `= 12b4` claim nothing)."""
        equals = self.spaces(index)
        if self.at(equals) != "=":
            return None
        first = self.spaces(equals + 1)
        end = self.number(first + 1 if self.at(first) == "-" else first)
        if end is None:
            return None
        glued = end
        while (char := self.at(glued)) and (char.isalnum() or char in "_."):
            if char.isdecimal():
                return None
            glued += 1
        return first, end


def scan(text: str) -> tuple[list[Found], int]:
    """Every equation in `text` (non-overlapping, left to right) and the characters looked at.

    After a chain with no claim the scan goes on from the chain's end: a start inside it reads
    the same terms to the same end, so it cannot find a claim either.
    """
    scanner, found, index = _Scanner(text), [], 0
    while index < len(text):
        if not scanner.starts(index):
            index += 1
            continue
        end, tokens = scanner.left_side(index)
        claim = scanner.claim(end) if tokens is not None else None
        if tokens is None or claim is None:
            index = max(end, index + 1)
            continue
        found.append(Found(index, claim[1], tuple(tokens), text[claim[0] : claim[1]]))
        index = claim[1]
    return found, scanner.steps


def _number(token: str) -> Fraction:
    """A number as written: `$`, thousands separators and a trailing `%` (a hundredth) allowed."""
    plain = token.replace("$", "").replace(",", "")
    percent = plain.endswith("%")
    whole, _, decimals = plain.rstrip("%").partition(".")
    value = Fraction(int(whole + decimals), 10 ** len(decimals))
    return value / 100 if percent else value


_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


_APPLY = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


def _apply(values: list[Fraction], sign: str) -> None:
    """The top two values replaced by `sign` applied to them."""
    right, left = values.pop(), values.pop()
    if sign == "/" and right == 0:
        raise ValueError("division by zero")
    values.append(_APPLY[sign](left, right))


def _value(tokens: tuple[str, ...]) -> Fraction:
    """The exact value of a chain's tokens (operator precedence, parentheses); ValueError when
    the parentheses do not pair up or the chain is too long to check."""
    numbers = [t for t in tokens if t not in _PRECEDENCE and t not in ("(", ")")]
    if len(numbers) > MAX_TERMS or any(len(n) > MAX_NUMBER for n in numbers):
        raise ValueError("too long to check")
    values: list[Fraction] = []
    pending: list[str] = []  # operators and "(" waiting for their right side
    for token in tokens:
        if token == "(":
            pending.append(token)
        elif token == ")":
            while pending and pending[-1] != "(":
                _apply(values, pending.pop())
            if not pending:
                raise ValueError("unpaired )")
            pending.pop()
        elif token in _PRECEDENCE:
            while pending and pending[-1] != "(" and _PRECEDENCE[pending[-1]] >= _PRECEDENCE[token]:
                _apply(values, pending.pop())
            pending.append(token)
        else:
            values.append(_number(token))
    while pending:
        if pending[-1] == "(":
            raise ValueError("unpaired (")
        _apply(values, pending.pop())
    return values[0]


def evaluate(expression: str) -> Fraction:
    """The exact value of a number or an arithmetic expression (ValueError for anything else,
    or / 0)."""
    text = expression.strip()
    scanner = _Scanner(text)
    if scanner.number(0) == len(text) and text:
        return _number(text)
    end, tokens = scanner.left_side(0)
    if tokens is None or end != len(text):
        raise ValueError(f"not arithmetic: {text[:40]!r}")
    return _value(tuple(tokens))


def equations(text: str) -> list[Equation]:
    """Every checkable equation in `text`, in order (one that cannot be evaluated is left out)."""
    checked = []
    for found in scan(text)[0]:
        try:
            true = _value(found.tokens)
        except ValueError:
            continue
        if len(found.claim.lstrip("-")) > MAX_NUMBER:
            continue
        claimed = _number(found.claim.lstrip("-"))
        claimed = -claimed if found.claim.startswith("-") else claimed
        checked.append(Equation(text[found.start : found.end].strip(), claimed, true))
    return checked


def wrong(text: str) -> list[Equation]:
    """The equations in `text` whose claimed value is not their true one."""
    return [e for e in equations(text) if not e.right]
