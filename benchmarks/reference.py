"""What only the tests and benchmarks use, kept out of the package: llama.cpp's reference
programs under this machine's repacking verdict (llama-cpp-python's high-level `Llama`, the C++
llama-server), a llama-server's own token counter, and a live tree in its saved JSON form (the
golden files compare these). Tests import it as `benchmarks.reference`, scripts here as
`reference`."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

from marco_cli.engine.remote import RemoteEngine
from marco_cli.engine.repack import decide
from marco_cli.engine.transport import BackendError
from marco_cli.record.saved import JsonObject, node_json, node_record, rollout_json, rollout_record
from marco_cli.search.tree import Tree


@contextlib.contextmanager
def high_level_defaults(repack: bool) -> Iterator[None]:
    """While inside, llama-cpp-python's high-level `Llama` (which has no switch for it) loads
    with this verdict: its model parameters start from `llama_model_default_params`. For the
    tests' and benchmarks' reference models and llama-cpp-python's server."""
    import llama_cpp.llama_cpp as low

    original = low.llama_model_default_params

    def defaults() -> low.llama_model_params:
        params = original()
        params.use_extra_bufts = repack
        return params

    low.llama_model_default_params = defaults
    try:
        yield
    finally:
        low.llama_model_default_params = original


def llama_server_flags(model: Path) -> list[str]:
    """llama.cpp's C++ llama-server repacks by default and crashes where the engine would: its
    switch for this machine's verdict (the tests' and benchmarks' servers)."""
    return [] if decide(model).repack else ["--no-repack"]


def server_predicted(engine: RemoteEngine) -> int | None:
    """Tokens the server has generated in all (llama-server started with --metrics)."""
    try:
        metrics = engine.http.text("/metrics")
    except BackendError:
        return None
    found = re.search(r"^llamacpp:tokens_predicted_total\s+([0-9.e+]+)", metrics, re.M)
    return int(float(found.group(1))) if found else None


def tree_json(tree: Tree) -> JsonObject:
    """A live tree's nodes and rollouts as the record saves them (golden files compare these)."""
    return {
        "nodes": [node_json(node_record(n)) for n in tree.nodes],
        "rollouts": [rollout_json(rollout_record(r)) for r in tree.rollouts],
    }
