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


def _ticks(top: float, count: int = 4) -> list[float]:
    return [top * i / count for i in range(count + 1)]


def _svg_axes(w: float, h: float, left: float, pad: float, top_x: float, top_y: float) -> list[str]:
    """Axes with ticks, tick labels and light grid lines (tokens across, accuracy up)."""
    parts = [
        f'<line x1="{left}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#888"/>',
        f'<line x1="{left}" y1="{pad}" x2="{left}" y2="{h - pad}" stroke="#888"/>',
    ]
    for value in _ticks(top_x):
        x = left + value / top_x * (w - pad - left)
        parts.append(f'<line x1="{x:.1f}" y1="{h - pad}" x2="{x:.1f}" y2="{h - pad + 4}" stroke="#888"/>')
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{h - pad + 15}" font-size="10" '
            f'text-anchor="middle">{value:.0f}</text>'
        )
    for value in _ticks(top_y):
        y = h - pad - value / top_y * (h - 2 * pad)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{w - pad}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(
            f'<text class="tick" x="{left - 5}" y="{y + 3:.1f}" font-size="10" '
            f'text-anchor="end">{value:.0%}</text>'
        )
    middle = (left + w - pad) / 2
    parts.append(
        f'<text x="{middle:.0f}" y="{h - 6}" font-size="12" text-anchor="middle">tokens per problem</text>'
        f'<text x="12" y="{h / 2:.0f}" font-size="12" transform="rotate(-90 12 {h / 2:.0f})" '
        f'text-anchor="middle">accuracy (bars: 95% Wilson interval)</text>'
    )
    return parts


def frontier_svg(configs: dict[str, Figures]) -> str:
    """The same plot as an inline SVG (no script, every label escaped): ticks on both axes, each
    configuration a dot with its Wilson interval as a bar and its letter beside it, and a legend
    of letters to names under the plot. Configurations that land on the same spot (vote@4 and
    deepconf@4 on the same samples) share one label, "B C", instead of printing over each other."""
    points = _points(configs)
    if not points:
        return ""
    top_x, top_y = _scale(points)
    top_y = min(1.0, max([top_y, *(configs[p[1]].ci95[1] for p in points)]))
    w, plot_h, left, pad = 600, 300, 56, 36
    spots: dict[tuple[int, int], tuple[float, float, list[str]]] = {}  # one label per spot
    marks = []
    for letter, name, tokens, accuracy, dominated in points:
        x = left + tokens / top_x * (w - pad - left)
        y = plot_h - pad - accuracy / top_y * (plot_h - 2 * pad)
        low, high = (plot_h - pad - v / top_y * (plot_h - 2 * pad) for v in configs[name].ci95)
        fill = "none" if dominated else "#2a6"
        said = f"{name}: {accuracy:.1%}, {tokens:.0f} tokens{' (dominated)' if dominated else ''}"
        marks.append(
            f'<line class="ci" x1="{x:.1f}" y1="{low:.1f}" x2="{x:.1f}" y2="{high:.1f}" stroke="#9bc"/>'
        )
        marks.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{fill}" stroke="#2a6">'
            f"<title>{html.escape(said)}</title></circle>"
        )
        spots.setdefault((round(x / 14), round(y / 14)), (x, y, []))[2].append(letter)
    for x, y, letters in spots.values():
        marks.append(
            f'<text class="label" x="{x + 8:.1f}" y="{y - 7:.1f}" font-size="11">{" ".join(letters)}</text>'
        )
    legend = [
        f'<text class="legend" x="{left}" y="{plot_h + 16 + 15 * i}" font-size="11">{letter}  '
        + html.escape(f"{name}: {accuracy:.1%} at {tokens:.0f} tokens{' (dominated)' if dominated else ''}")
        + "</text>"
        for i, (letter, name, tokens, accuracy, dominated) in enumerate(points)
    ]
    h = plot_h + 16 + 15 * len(points)
    body = "".join([*_svg_axes(w, plot_h, left, pad, top_x, top_y), *marks, *legend])
    return f'<svg class="frontier" width="{w}" height="{h}" role="img">{body}</svg>'
