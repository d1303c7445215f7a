"""Rendering a search tree (live or from a saved record) and the final answer, with Rich."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text
from rich.tree import Tree as RichTree

from marco_cli.record.record import Record
from marco_cli.search import events as ev
from marco_cli.ui.console import visible

MAX_CHILDREN = 4  # per node, most visited first; the rest are summarised
MAX_DEPTH = 8


@dataclass
class NodeView:
    id: int
    parent: int | None
    text: str
    confidence: float | None
    reflection: bool
    terminal: bool
    visits: int = 0
    value_sum: float = 0.0
    children: list[int] = field(default_factory=list)
    refuted: tuple[str, ...] = ()  # why the step check refuted the step
    judged: float | None = None  # the verifier's P(Yes) for the step (`judge-steps`)
    pruned: bool = False  # a step search valued it below the paths it kept


@dataclass
class TreeSnapshot:
    """What the view needs, built from search events or from a saved JSON record."""

    question: str
    nodes: dict[int, NodeView] = field(default_factory=dict)
    best_path: tuple[int, ...] = ()
    best_reward: float | None = None
    best_answer: str = ""
    rollouts: int = 0
    iteration: int = 0
    total: int = 0
    tokens: int = 0  # generated and settled: in nodes and rollouts, or dropped as duplicates
    streamed: int = 0  # sampled in generations that have not ended yet

    def __post_init__(self) -> None:
        self.nodes.setdefault(0, NodeView(0, None, self.question, None, False, False))

    def apply(self, event: ev.Event) -> None:
        if isinstance(event, (ev.IterationStarted, ev.Finished)):
            # what is still streamed when an iteration ends went into no node (a child that
            # duplicated its sibling is dropped): paid for all the same
            self.tokens, self.streamed = self.tokens + self.streamed, 0
        if isinstance(event, ev.IterationStarted):
            self.iteration, self.total = event.iteration, event.total
        elif isinstance(event, ev.TokensGenerated):
            self.streamed += event.n
        elif isinstance(event, ev.NodeAdded):
            self.nodes[event.node] = NodeView(
                event.node, event.parent, event.text, event.confidence, event.reflection, event.terminal
            )
            if event.parent is not None:
                self.nodes[event.parent].children.append(event.node)
            self._count(event.n_tokens)
        elif isinstance(event, ev.RolloutScored):
            self.rollouts += 1
            self._count(event.n_tokens)
        elif isinstance(event, ev.BackedUp):
            for node in event.nodes:
                self.nodes[node].visits += 1
                self.nodes[node].value_sum += event.reward
        elif isinstance(event, ev.StepValued):
            valued = self.nodes[event.node]
            valued.visits, valued.value_sum, valued.pruned = 1, event.value, event.pruned
        elif isinstance(event, ev.StepJudged):
            self.nodes[event.node].refuted, self.nodes[event.node].judged = event.reasons, event.judged
        elif isinstance(event, ev.BestChanged):
            self.best_path, self.best_reward, self.best_answer = event.path, event.reward, event.answer

    def _count(self, n_tokens: int) -> None:
        """Tokens now held by the tree stop counting as streamed."""
        self.tokens += n_tokens
        self.streamed = max(0, self.streamed - n_tokens)

    @property
    def tokens_so_far(self) -> int:
        return self.tokens + self.streamed

    @classmethod
    def from_record(cls, record: Record) -> TreeSnapshot:
        snap = cls(record.question)
        for raw in record.nodes:
            if raw.id == 0:
                snap.nodes[0].visits = raw.visits
                continue
            snap.nodes[raw.id] = NodeView(
                raw.id,
                raw.parent,
                raw.text,
                raw.confidence,
                raw.reflection,
                raw.terminal,
                raw.visits,
                (raw.value or 0.0) * raw.visits,
                refuted=raw.refuted,
                judged=raw.judged,
                pruned=raw.pruned,
            )
        for node in list(snap.nodes.values()):
            if node.parent is not None and node.parent in snap.nodes:
                snap.nodes[node.parent].children.append(node.id)
        snap.best_path = record.path
        snap.best_reward = record.reward
        snap.best_answer = record.answer
        snap.rollouts = len(record.rollouts)
        snap.iteration = snap.total = record.iterations
        snap.tokens = record.tokens.generated
        return snap


def _short(text: str, width: int) -> str:
    flat = visible(" ".join(text.split()))
    return flat if len(flat) <= width else flat[: max(1, width - 1)] + "…"


def _colour(confidence: float | None) -> str:
    if confidence is None:
        return "magenta"
    if confidence >= 0.8:
        return "green"
    return "yellow" if confidence >= 0.6 else "red"


def _label(node: NodeView, on_best: bool, width: int) -> Text:
    label = Text()
    if node.reflection:
        label.append("↺ ", style="bold magenta")
    label.append(_short(node.text, width), style=_colour(node.confidence) + (" bold" if on_best else ""))
    mean = f"{node.value_sum / node.visits:.2f}" if node.visits else "  - "
    conf = "  -  " if node.confidence is None else f"{node.confidence:.2f}"
    label.append(f"  n={node.visits} q={mean} c={conf}", style="dim")
    if node.terminal:
        label.append(" ■", style="cyan")
    if node.refuted:
        label.append(f"  ✗ {visible('; '.join(node.refuted))}", style="bold red")
    elif node.judged is not None:  # a step the verifier kept
        label.append(f"  ✓ P(Yes) {node.judged:.2f}", style="green")
    if node.pruned:
        label.append("  ✂ pruned", style="dim red")
    if on_best:
        label.append(" ◀", style="bold cyan")
    return label


def render_tree(snap: TreeSnapshot, width: int = 100, max_lines: int = 30, hint: str = "") -> RichTree:
    """The tree, most visited children first; deep, crowded or low-visit parts collapsed, and a
    last line saying how many nodes are not drawn (with `hint`, where to see them all)."""
    best = set(snap.best_path)
    root = RichTree(Text(_short(snap.question, width), style="bold"), guide_style="dim")
    budget = [max(3, max_lines) - 1]  # one line is kept for the count of what is left out
    drawn = [0]

    def add(parent: RichTree, node: NodeView, depth: int) -> None:
        kids = sorted(
            (snap.nodes[c] for c in node.children), key=lambda n: (n.id not in best, -n.visits, n.id)
        )
        shown = kids[:MAX_CHILDREN]
        for child in shown:
            if budget[0] <= 0:
                break
            budget[0] -= 1
            drawn[0] += 1
            branch = parent.add(_label(child, child.id in best, max(20, width - 4 * depth - 30)))
            if depth < MAX_DEPTH and (child.visits > 0 or child.id in best):
                add(branch, child, depth + 1)
            elif child.children:
                branch.add(Text(f"… {len(child.children)} more below", style="dim"))
        hidden = len(kids) - len(shown)
        if hidden > 0 and budget[0] > 0:
            budget[0] -= 1
            parent.add(Text(f"… {hidden} more sibling(s)", style="dim"))

    add(root, snap.nodes[0], 1)
    left = len(snap.nodes) - 1 - drawn[0]
    if left > 0:
        root.add(Text(f"… {left} of {len(snap.nodes) - 1} nodes not shown{hint}", style="dim italic"))
    return root


def status_line(snap: TreeSnapshot, elapsed: float, strategy: str) -> Text:
    rate = snap.tokens_so_far / elapsed if elapsed > 0 else 0.0
    best = "-" if snap.best_reward is None else f"{snap.best_reward:.3f}"
    return Text.assemble(
        (f"{strategy} ", "bold"),
        f"iteration {snap.iteration}/{snap.total} · {snap.tokens_so_far} tokens · {rate:.0f} tok/s · "
        f"{elapsed:.1f}s · {snap.rollouts} rollouts · best reward ",
        (best, "bold green" if snap.best_reward is not None else "dim"),
    )


def thought_panel(thought: str) -> RenderableType:
    return Panel(
        Text(visible(thought.strip()) or "(no <Thought> block)", style="dim"),
        title="Thought",
        title_align="left",
        border_style="dim",
    )


def output_panel(answer: str) -> RenderableType:
    return Panel(
        Text(visible(answer.strip()) or "(no answer)", style="bold"),
        title="Output",
        title_align="left",
        border_style="green",
    )


STOP_REASONS = {
    "agreement": "stopped early: enough finished rollouts agreed (--stop-agree)",
    "confidence": "stopped early: a rollout reached the confidence to stop",
    "time": "stopped at --max-time",
    "exhausted": "stopped early: every branch of the tree was complete",
    "interrupted": "interrupted",
    "error": "stopped by an error",
}


def verifier_tokens(record: Record) -> str:
    """` (+N the verifier's)` under `--reward judge`: what judging cost, beside the search's."""
    spent = record.tokens.verifier
    return f" (+{spent} the verifier's)" if spent else ""


def summary_line(record: Record) -> Text:
    conf = record.reward
    why = STOP_REASONS.get(record.stopped, "")
    return Text(
        f"{visible(record.model.name)} · {record.search.strategy} · {record.iterations} iterations · "
        f"{record.tokens.generated} tokens{verifier_tokens(record)} · {record.seconds:.1f}s · confidence "
        f"{'-' if conf is None else f'{conf:.3f}'}" + (f" · {why}" if why else ""),
        style="dim",
    )


def final_view(record: Record, hide_thought: bool, answer_shown: str | None = None) -> Group:
    """The thought, the answer (or `answer_shown` in its place: "(on stdout)") and the summary."""
    parts: list[RenderableType] = []
    if not hide_thought:
        parts.append(thought_panel(record.thought))
    parts.append(output_panel(record.answer if answer_shown is None else answer_shown))
    parts.append(summary_line(record))
    return Group(*parts)
