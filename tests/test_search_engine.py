"""The search wired to the real engine on SmolLM2."""

from __future__ import annotations

import pytest

from marco_cli.engine.llama import Engine
from marco_cli.search.config import SearchConfig
from marco_cli.search.mcts import Search
from marco_cli.search.recording import Recording
from marco_cli.search.strategies import context, run_search

QUESTION = [{"role": "user", "content": "Tom has 3 apples and buys 4 more. How many apples does he have?"}]


@pytest.mark.slow
def test_mcts_rewards_are_the_engines_confidences(engine: Engine) -> None:
    model = Recording(engine)
    prompt = engine.build_prompt(QUESTION, "plain")
    config = SearchConfig(
        iterations=8, children=3, granularity="mini-32", max_tokens=160, seed=1, stop_agree=None
    )
    search = Search(context(model, prompt, config), config)
    result = search.run()
    tree = search.tree
    assert result.iterations == 8 or result.stopped == "exhausted"
    assert tree.rollouts and result.rollout is not None
    generations = [g for _, g in model.seen]
    for rollout in tree.rollouts:
        node = tree.nodes[rollout.node]
        action = next(g for g in generations if g.confidences is node.confidences)  # the same object
        scored = list(action.confidences)
        if rollout.tokens:
            tail = next(g for g in generations if g.tokens is rollout.tokens)
            assert tail.tokens == rollout.tokens
            scored += tail.confidences
        assert rollout.confidence == pytest.approx(sum(scored) / len(scored), abs=1e-12)
        kept = rollout.finished and rollout.answer  # the default reward: 0 for loops and cut-offs
        assert rollout.reward == (rollout.confidence if kept else 0.0)
    chosen = tree.rollouts[result.rollout]
    assert result.answer == chosen.answer and result.text == chosen.text
    assert result.generated_tokens == sum(len(g.tokens) for _, g in model.seen)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["cot", "best-of-n", "vote", "mcts"])
def test_strategies_share_one_result_shape_on_the_real_model(engine: Engine, strategy: str) -> None:
    prompt = engine.build_prompt(QUESTION, "plain")
    config = SearchConfig(strategy=strategy, iterations=3, samples=3, max_tokens=96, granularity="mini-32")
    result = run_search(engine, prompt, config)
    assert result.strategy == strategy and result.rollout is not None
    assert result.reward is not None and 0 < result.reward <= 1
    assert result.generated_tokens > 0 and result.evaluated_tokens >= 0 and result.seconds > 0
    assert result.path[0] == 0 and result.text


@pytest.mark.slow
def test_cot_is_the_greedy_answer(engine: Engine) -> None:
    from marco_cli.contract import Sampling, StopRule

    prompt = engine.build_prompt(QUESTION, "plain")
    engine.reset()  # the same evaluation schedule both times: llama.cpp's numerics depend on it
    result = run_search(engine, prompt, SearchConfig(strategy="cot", max_tokens=200))
    engine.reset()
    greedy = engine.generate(prompt, Sampling(), StopRule(max_tokens=200))
    assert result.text == greedy.text
    assert result.reward == pytest.approx(sum(greedy.confidences) / len(greedy.confidences))


LOOPING = [
    {"role": "user", "content": "Omar has 51 apples and gets 31 more. How many apples does Omar have now?"}
]


@pytest.mark.slow
def test_a_real_loop_is_stopped_and_never_chosen(engine: Engine) -> None:
    """SmolLM2 answers this greedily with "Omar has 2 apples." over and over: the guard stops
    it early with reason `loop`, and the search does not answer with it."""
    from marco_cli.contract import Sampling, StopRule

    prompt = engine.build_prompt(LOOPING, "plain")
    unguarded = engine.generate(prompt, Sampling(), StopRule(max_tokens=256, loop_guard=False))
    guarded = engine.generate(prompt, Sampling(), StopRule(max_tokens=256))
    assert unguarded.stop_reason == "max_tokens" and guarded.stop_reason == "loop"
    assert len(guarded.tokens) < len(unguarded.tokens) / 3
    assert unguarded.tokens[: len(guarded.tokens)] == guarded.tokens
    looping, stopped = unguarded.mean_confidence or 0.0, guarded.mean_confidence or 0.0
    assert looping > stopped and looping > 0.9  # the paper's reward grows the longer it loops
    result = run_search(engine, prompt, SearchConfig(iterations=6, max_tokens=256, numeric_answer=True))
    statuses = [r.status for r in result.rollouts]
    assert "loop" in statuses
    if result.rollout is None:
        assert result.answer == "" and "finished" not in statuses
    else:
        chosen = result.rollouts[result.rollout]
        assert chosen.status == "finished" and "Omar has 2 apples.\nOmar has 2 apples." not in chosen.text
