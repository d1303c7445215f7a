"""Accuracy against tokens per problem, the frontier of a bench run: as text for a terminal and
as an inline SVG for the bench index page. Configurations on the frontier are capital letters
(filled dots); dominated ones (another is as accurate for fewer tokens) lower case (hollow)."""

from __future__ import annotations

import html
import string

from marco_cli.record.results import Figures

WIDTH, HEIGHT = 56, 12


def _points(configs: dict[str, Figures]) -> list[tuple[str, str, float, float, bool]]:
    """(letter, name, tokens, accuracy, dominated) for every configuration that ran."""
    ran = [(name, row) for name, row in configs.items() if row.n]
    letters = string.ascii_uppercase
    return [
        (
            letters[i % 26] if not row.dominated else letters[i % 26].lower(),
            name,
            row.mean_tokens,
            row.accuracy,
            bool(row.dominated),
        )
        for i, (name, row) in enumerate(ran)
    ]


def _scale(points: list[tuple[str, str, float, float, bool]]) -> tuple[float, float]:
    top_x = max((p[2] for p in points), default=1.0) * 1.05 or 1.0
    top_y = min(1.0, max((p[3] for p in points), default=0.1) * 1.15) or 0.1
    return top_x, top_y


def frontier_chart(configs: dict[str, Figures]) -> str:
    """A text scatter plot: accuracy up, tokens per problem across, and a legend."""
    points = _points(configs)
    if not points:
        return ""
    top_x, top_y = _scale(points)
    grid = [[" "] * WIDTH for _ in range(HEIGHT)]
    for letter, _, tokens, accuracy, _ in points:
        col = min(WIDTH - 1, int(tokens / top_x * (WIDTH - 1)))
        row = HEIGHT - 1 - min(HEIGHT - 1, int(accuracy / top_y * (HEIGHT - 1)))
        grid[row][col] = letter if grid[row][col] == " " else "+"
    lines = ["accuracy vs tokens per problem (capitals: on the frontier; lower case: dominated)"]
    for i, cells in enumerate(grid):
        label = f"{top_y * (HEIGHT - 1 - i) / (HEIGHT - 1):>5.0%} |" if i % 3 == 0 else "      |"
        lines.append(label + "".join(cells))
    lines.append("      +" + "-" * WIDTH)
    lines.append(f"       0{'tokens per problem':^{WIDTH - 12}}{top_x:>6.0f}")
    for letter, name, tokens, accuracy, dominated in points:
        lines.append(
            f"  {letter}  {name:<22} {accuracy:6.1%} {tokens:7.0f} tok{'  dominated' if dominated else ''}"
        )
    return "\n".join(lines)


def frontier_svg(configs: dict[str, Figures]) -> str:
    """The same plot as an inline SVG (no script, every label escaped)."""
    points = _points(configs)
    if not points:
        return ""
    top_x, top_y = _scale(points)
    w, h, pad = 560, 300, 44
    marks = []
    for _letter, name, tokens, accuracy, dominated in points:
        x = pad + tokens / top_x * (w - 2 * pad)
        y = h - pad - accuracy / top_y * (h - 2 * pad)
        fill = "none" if dominated else "#2a6"
        title = html.escape(
            f"{name}: {accuracy:.1%}, {tokens:.0f} tokens{' (dominated)' if dominated else ''}"
        )
        marks.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{fill}" stroke="#2a6">'
            f"<title>{title}</title></circle>"
            f'<text x="{x + 7:.1f}" y="{y - 6:.1f}" font-size="11">{html.escape(name)}</text>'
        )
    axes = (
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#888"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="#888"/>'
        f'<text x="{w / 2:.0f}" y="{h - 10}" font-size="12" text-anchor="middle">'
        f"tokens per problem (0 to {top_x:.0f})</text>"
        f'<text x="12" y="{h / 2:.0f}" font-size="12" transform="rotate(-90 12 {h / 2:.0f})" '
        f'text-anchor="middle">accuracy (0 to {top_y:.0%})</text>'
    )
    return f'<svg class="frontier" width="{w}" height="{h}" role="img">{axes}{"".join(marks)}</svg>'
