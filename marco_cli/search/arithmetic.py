"""Arithmetic a reasoning step writes down, checked exactly: every `EXPRESSION = NUMBER` in a text
(`97 + 74 = 171`, `3 x 5 = 15` or with a multiplication sign, `$1,200 / 4 = $300`,
`20% * 50 = 10`, `2.5 times 4 = 10`) is recomputed in exact rational arithmetic and compared
with what the text claims.

Program-aided checking in the manner of PAL (Gao et al. 2023), limited to the equations the model
wrote: the model still writes every step. The expression is read by Python's `ast` and evaluated
by a walker that accepts numbers, + - * / and parentheses only (never `eval`); a claim with D
decimals is right when the true value rounds to it at D decimals.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from fractions import Fraction

_NUMBER = r"\$?\d{1,3}(?:,\d{3})+(?:\.\d+)?%?|\$?\d+(?:\.\d+)?%?"
_OPERATOR = r"[-+*/×÷xX]|times"
_EXPRESSION = rf"\(*(?:{_NUMBER})\s*\)*(?:\s*(?:{_OPERATOR})\s*\(*\s*(?:{_NUMBER})\s*\)*)+"
_EQUATION = re.compile(rf"(?<![\w.,])(?P<lhs>{_EXPRESSION})\s*=\s*(?P<rhs>-?(?:{_NUMBER}))(?![\w.]*\d)")


@dataclass(frozen=True)
class Equation:
    """One equation a text holds: as written, what it claims, and what is true."""

    text: str
    claimed: Fraction
    true: Fraction

    @property
    def right(self) -> bool:
        """The true value rounds to the claim at the claim's decimals (`10 / 3 = 3.33` is right)."""
        claim = self.text.rsplit("=", 1)[1].strip().rstrip("%")
        decimals = len(claim.split(".")[1]) if "." in claim else 0
        return abs(self.true - self.claimed) <= Fraction(1, 10**decimals) / 2


def _number(token: str) -> Fraction:
    """A number as written: `$`, thousands separators and a trailing `%` (a hundredth) allowed."""
    plain = token.replace("$", "").replace(",", "")
    if plain.endswith("%"):
        return Fraction(plain[:-1]) / 100
    return Fraction(plain)


def _python(expression: str) -> str:
    """The expression in Python's syntax, its numbers as `Fraction` literals' text."""
    spoken = re.sub(r"\s*(?:×|x|X|times)\s*", " * ", expression)
    spoken = spoken.replace("÷", "/")
    return re.sub(
        _NUMBER, lambda m: f"({_number(m.group()).numerator}/{_number(m.group()).denominator})", spoken
    )


def evaluate(expression: str) -> Fraction:
    """The exact value of an arithmetic expression (ValueError for anything else, or / 0)."""
    tree = ast.parse(_python(expression), mode="eval")
    return _walk(tree.body)


def _walk(node: ast.expr) -> Fraction:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return Fraction(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _walk(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        left, right = _walk(node.left), _walk(node.right)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if isinstance(node.op, ast.Div):
            if right == 0:
                raise ValueError("division by zero")
            return left / right
    raise ValueError(f"not arithmetic: {ast.dump(node)[:40]}")


def equations(text: str) -> list[Equation]:
    """Every checkable equation in `text`, in order (one that cannot be read is left out)."""
    found = []
    for match in _EQUATION.finditer(text):
        try:
            true, claimed = evaluate(match["lhs"]), _number(match["rhs"].lstrip("-"))
        except (ValueError, SyntaxError, ZeroDivisionError, RecursionError):
            continue
        claimed = -claimed if match["rhs"].startswith("-") else claimed
        found.append(Equation(match.group().strip(), claimed, true))
    return found


def wrong(text: str) -> list[Equation]:
    """The equations in `text` whose claimed value is not their true one."""
    return [e for e in equations(text) if not e.right]
