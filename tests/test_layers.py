"""The package is layered top-down, and every import points down (or within its layer): the
README's "How it is built" drawn as a test."""

from __future__ import annotations

import ast
from pathlib import Path

import marco_cli

# lower layers first; a module may import its own layer and the ones before it
LAYERS = [
    ("errors", "files"),
    ("contract",),  # the search contract: what both engines implement and the search calls
    ("store",),
    ("engine",),
    ("search",),
    ("record",),  # the run record: the persistence format, read by everything above it
    ("tasks", "ui"),
    ("runs",),
    ("server",),
    ("cli",),
    ("api",),  # the Python API: `solve` as the command line runs it
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
ROOT = Path(marco_cli.__file__).parent


def _part(module: str) -> str | None:
    """The top-level part of marco_cli a dotted name belongs to."""
    parts = module.split(".")
    return parts[1] if parts[0] == "marco_cli" and len(parts) > 1 else None


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = (
                [f"{node.module}.{a.name}" for a in node.names]
                if node.module == "marco_cli"
                else [node.module]
            )
            found.update(names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_every_import_points_down() -> None:
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        here = relative.parts[0].removesuffix(".py")
        if here == "__init__":
            continue
        for imported in _imports(path):
            there = _part(imported)
            if there is not None and RANK[there] > RANK[here]:
                wrong.append(f"{relative} imports {imported}")
    assert not wrong, wrong


def test_every_part_has_a_layer() -> None:
    parts = {
        p.name.removesuffix(".py")
        for p in ROOT.iterdir()
        if p.suffix == ".py" or (p / "__init__.py").exists()
    }
    assert parts - {"__init__"} == set(RANK)


def test_the_search_strategies_have_no_circle() -> None:
    """mcts.py and baselines.py share core.py below them; only strategies.py sees both."""
    search = ROOT / "search"
    assert not {
        "marco_cli.search.mcts",
        "marco_cli.search.baselines",
        "marco_cli.search.strategies",
    } & _imports(search / "core.py")
    assert "marco_cli.search.mcts" not in _imports(search / "baselines.py")
    assert "marco_cli.search.baselines" not in _imports(search / "mcts.py")
