"""The search tree as plain data: nodes (partial reasoning paths) and rollouts (complete answers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from marco_cli.contract import Generation, StopReason


@dataclass
class Node:
    """A partial reasoning path: the parent's path plus one action (a step or a mini-step)."""

    id: int
    parent: int | None
    depth: int
    tokens: tuple[int, ...]  # this node's action (the prompt, for the root)
    text: str
    confidences: tuple[float, ...]
    terminal: bool = False  # the answer is complete (or out of budget, or looping): never expanded
    reflection: bool = False
    stop_reason: StopReason | None = None  # why this node's action ended (the engine's); None: saved
    offsets: tuple[int, ...] = ()  # where each token's text ends in `text` (UTF-8 bytes)
    top_means: tuple[float, ...] = ()  # mean top-5 log-probability at each token (DeepConf)
    children: list[int] = field(default_factory=list)
    visits: int = 0
    value_sum: float = 0.0
    exhausted: bool = False  # terminal, or every child exhausted: nothing left to search
    refuted: tuple[str, ...] = ()  # why the reward's step check gave this step 0 (rewards.py)
    judged: float | None = None  # the verifier's P(Yes) for this step (`judge-steps`)
    pruned: bool = False  # a step search valued it below the paths it kept (beam.py)

    @property
    def mean_value(self) -> float:
        return self.value_sum / self.visits if self.visits else 0.0

    @property
    def mean_confidence(self) -> float | None:
        if not self.confidences:
            return None
        return sum(self.confidences) / len(self.confidences)


# finished (</Output> or EOS) | loop (repetition guard) | budget (tokens) | context (full) |
# low_confidence (DeepConf online stopped it)
RolloutStatus = Literal["finished", "loop", "budget", "context", "low_confidence"]
ROLLOUT_STATUSES: tuple[RolloutStatus, ...] = get_args(RolloutStatus)


@dataclass(frozen=True)
class Rollout:
    """One answer path played out to its end, with its reward."""

    id: int
    node: int  # the node the rollout started from
    tokens: tuple[int, ...]  # generated after the node's path
    text: str  # the whole response, from the start of the assistant's turn
    reward: float
    answer: str  # "" unless finished: a cut-off or looping text has no answer
    status: RolloutStatus
    n_scored: int  # how many tokens the confidence averages
    confidence: float  # the paper's value: mean top-5 confidence of the scored tokens
    trace_confidence: float | None = None  # DeepConf's lowest group confidence of the whole text
    answer_confidence: float | None = None  # mean confidence of the tokens that wrote the answer
    judged: float | None = None  # the verifier's P(Yes) for the answer (`judge`); None: not asked

    @property
    def finished(self) -> bool:
        return self.status == "finished"


class Tree:
    def __init__(self, prompt: tuple[int, ...]) -> None:
        self.nodes: list[Node] = [Node(0, None, 0, prompt, "", ())]
        self.rollouts: list[Rollout] = []

    @property
    def root(self) -> Node:
        return self.nodes[0]

    def add(
        self,
        parent: Node,
        tokens: tuple[int, ...],
        text: str,
        confidences: tuple[float, ...],
        terminal: bool,
        reflection: bool = False,
        stop_reason: StopReason | None = None,
        offsets: tuple[int, ...] = (),
        top_means: tuple[float, ...] = (),
    ) -> Node:
        node = Node(
            len(self.nodes),
            parent.id,
            parent.depth + 1,
            tokens,
            text,
            confidences,
            terminal=terminal,
            reflection=reflection,
            stop_reason=stop_reason,
            offsets=offsets,
            top_means=top_means,
            exhausted=terminal,
        )
        self.nodes.append(node)
        parent.children.append(node.id)
        return node

    def grow(
        self, parent: Node, gen: Generation, terminal: bool, stop_reason: StopReason | None = None
    ) -> Node:
        """The child of `parent` that generation `gen` wrote (its tokens, text, confidences,
        offsets and top-5 means), ended by `stop_reason` (default: the generation's own)."""
        return self.add(
            parent,
            gen.tokens,
            gen.text,
            gen.confidences,
            terminal,
            stop_reason=stop_reason or gen.stop_reason,
            offsets=gen.offsets,
            top_means=gen.top_means,
        )

    def add_rollout(self, rollout: Rollout) -> Rollout:
        """Keep a scored rollout; its id must be the next one (`next_rollout_id`)."""
        if rollout.id != len(self.rollouts):
            raise ValueError(f"rollout {rollout.id} kept as number {len(self.rollouts)}")
        self.rollouts.append(rollout)
        return rollout

    @property
    def next_rollout_id(self) -> int:
        return len(self.rollouts)

    def backup(self, node: Node, reward: float) -> tuple[int, ...]:
        """Add one visit and the reward to every node from the root to `node`; their ids."""
        path = self.path(node)
        for n in path:
            n.visits += 1
            n.value_sum += reward
        return tuple(n.id for n in path)

    def path(self, node: Node) -> list[Node]:
        """Root to `node`, inclusive."""
        out = [node]
        while out[-1].parent is not None:
            out.append(self.nodes[out[-1].parent])
        return out[::-1]

    def path_tokens(self, node: Node) -> list[int]:
        return [t for n in self.path(node) for t in n.tokens]

    def response_text(self, node: Node) -> str:
        """The assistant's text so far along the path (the root's prompt excluded)."""
        return "".join(n.text for n in self.path(node)[1:])

    def generated_tokens(self, node: Node) -> int:
        return sum(len(n.tokens) for n in self.path(node)[1:])

    def path_confidences(self, node: Node) -> list[float]:
        return [c for n in self.path(node)[1:] for c in n.confidences]

    def path_top_means(self, node: Node) -> list[float]:
        """The path's mean top-5 log-probabilities (forced reflection text has none)."""
        return [m for n in self.path(node)[1:] for m in n.top_means]

    def in_subtree(self, node_id: int, top: int) -> bool:
        current: int | None = node_id
        while current is not None:
            if current == top:
                return True
            current = self.nodes[current].parent
        return False

    def reflections_on_path(self, node: Node) -> int:
        return sum(1 for n in self.path(node) if n.reflection)
