"""DeepConf offline on hand-made confidence traces (numbers by hand), through the scripted
model, and the engine's top-5 mean log-probability against numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from marco_cli.contract import Generation, Sampling, StopRule
from marco_cli.engine.stops import confidence_dropped
from marco_cli.search.config import SearchConfig
from marco_cli.search.core import score
from marco_cli.search.deepconf import (
    filtered_vote,
    lowest_group_confidence,
    online_threshold,
    online_vote,
    token_confidences,
)
from marco_cli.search.scoring import scoring
from marco_cli.search.strategies import run_search
from marco_cli.search.tree import Rollout, Tree
from tests.scripted import ScriptedModel


def test_token_confidence_is_minus_the_top_k_mean_log_prob() -> None:
    assert token_confidences([-1.5, -0.2]) == [1.5, 0.2]


@pytest.mark.parametrize(
    ("confidences", "window", "want"),
    [
        ([1, 2, 3, 4, 5], 2, 1.5),  # windows 1.5 2.5 3.5 4.5
        ([5, 5, 1, 1, 5, 5], 2, 1.0),  # the confused stretch 1 1
        ([5, 5, 1, 1, 5, 5], 3, 7 / 3),  # windows 11/3 7/3 7/3 11/3
        ([2, 4], 32, 3.0),  # shorter than a window: the mean
        ([], 32, None),
    ],
)
def test_lowest_group_confidence(confidences: list[float], window: int, want: float | None) -> None:
    got = lowest_group_confidence(confidences, window)
    assert got == pytest.approx(want) if want is not None else got is None


def _trace(rid: int, answer: str, trace: float | None, status: str = "finished") -> Rollout:
    return Rollout(
        rid, rid + 1, (), answer, 0.5, answer if status == "finished" else "", status, 1, 0.5, trace
    )


def test_the_filter_keeps_the_confident_share_and_the_vote_weighs_by_confidence() -> None:
    traces = [_trace(0, "1", 10.0), _trace(1, "2", 6.0), _trace(2, "2", 6.0), _trace(3, "2", 6.0)]
    assert filtered_vote(traces, keep=1.0).answer == "2"  # 18 against 10
    assert filtered_vote(traces, keep=0.25).answer == "1"  # ceil(0.25 * 4) = 1 kept: the 10
    assert filtered_vote(traces, keep=0.5).answer == "1"  # 10 + 6: "1" 10 against "2" 6


def test_unfinished_and_unscored_traces_never_vote() -> None:
    traces = [_trace(0, "1", 99.0, status="loop"), _trace(1, "2", None), _trace(2, "3", 1.0)]
    assert filtered_vote(traces, keep=0.1).answer == "3"
    assert filtered_vote([_trace(0, "1", None)]) is None


def test_deepconf_strategy_end_to_end() -> None:
    """Three samples: the greedy one says 4 with confidence 0.9, the two sampled ones say 5 with
    0.6. Plain majority says 5; DeepConf keeping the top third says 4."""
    model = ScriptedModel(actions={}, rollouts={})
    answers = iter([("<Output>4</Output>", 0.9), ("<Output>5</Output>", 0.6), ("<Output>5</Output>", 0.6)])
    model.fallback = lambda state: next(answers)
    config = SearchConfig(strategy="deepconf", samples=3, deepconf_keep=0.34)
    result = run_search(model, model.prompt, config)
    assert result.answer == "4" and [r.trace_confidence for r in result.rollouts] == pytest.approx(
        [4.5, 3.0, 3.0]
    )
    answers = iter([("<Output>4</Output>", 0.9), ("<Output>5</Output>", 0.6), ("<Output>5</Output>", 0.6)])
    model.fallback = lambda state: next(answers)
    assert run_search(model, model.prompt, SearchConfig(strategy="vote", samples=3)).answer == "5"


def test_a_search_rollouts_trace_spans_its_whole_path() -> None:
    """A first step (token confidences 5 5 5 5), a forced reflection (none: the model did not
    choose it), a second step (1 1) and the rollout's tail (4 4): windows of 3 over
    5 5 5 5 1 1 4 4 give 5, 5, 11/3, 7/3, 2, 3, so the trace confidence is 2."""
    tree = Tree((1,))
    first = tree.add(tree.root, (2, 3, 4, 5), "a", (0.9,) * 4, False, top_means=(-5.0,) * 4)
    forced = tree.add(first, (6,), "Wait!", (), False, reflection=True)
    second = tree.add(forced, (7, 8), "b", (0.5,) * 2, False, top_means=(-1.0,) * 2)
    tail = Generation((9, 10), "<Output>3</Output>", (-0.1,) * 2, (0.8,) * 2, "eos", (-4.0,) * 2)
    rollout = score(tree, second, tail, SearchConfig(deepconf_window=3), scoring("finished", "deepconf"))
    assert rollout.answer == "3" and rollout.trace_confidence == pytest.approx(2.0)
    unscored = tree.add(tree.root, (11,), "<Output>5</Output>", (0.7,), True, stop_reason="eos")
    assert (
        score(tree, unscored, None, SearchConfig(), scoring("finished", "deepconf")).trace_confidence is None
    )  # no top-5 log-probs


@pytest.mark.slow
def test_the_engines_top_mean_equals_numpy(engine) -> None:  # type: ignore[no-untyped-def]
    prompt = engine.build_prompt([{"role": "user", "content": "Count to five."}], "plain")
    rows: list[np.ndarray] = []
    engine.reset()
    gen = engine.generate(
        prompt,
        Sampling(),
        StopRule(max_tokens=12, stop_texts=()),
        observe=lambda row, _: rows.append(row.copy()),
    )
    assert len(gen.top_means) == len(gen.tokens) == len(rows) == 12
    for row, got in zip(rows, gen.top_means, strict=True):
        row = row.astype(np.float64)
        lse = row.max() + math.log(np.exp(row - row.max()).sum())
        assert got == pytest.approx(float(np.sort(row)[-5:].mean() - lse), abs=1e-4)


def test_the_online_threshold_is_the_keep_percentile_of_the_warmup() -> None:
    warmup = [_trace(i, "1", c) for i, c in enumerate([5.0, 4.0, 3.0, 2.0])]
    assert online_threshold(warmup, keep=0.5) == 4.0  # the 2 most confident of 4 pass
    assert online_threshold(warmup, keep=0.1) == 5.0  # DeepConf-low: the 90th percentile
    assert online_threshold(warmup, keep=0.9) == 2.0  # DeepConf-high: the 10th
    assert online_threshold([_trace(0, "1", 9.0, status="loop")]) is None


def test_the_online_stop_rule() -> None:
    means = [-3.0] * 31 + [-1.0]  # the last window's group confidence: (3 * 31 + 1) / 32
    assert confidence_dropped(means, StopRule(min_confidence=3.0))
    assert not confidence_dropped(means, StopRule(min_confidence=2.9))
    assert not confidence_dropped(means[:-1], StopRule(min_confidence=100.0))  # not a window yet
    assert not confidence_dropped(means, StopRule())


def test_online_votes_only_traces_at_or_above_the_threshold() -> None:
    traces = [_trace(0, "4", 4.5), _trace(1, "4", 4.0), *(_trace(i, "5", 4.2) for i in (2, 3, 4))]
    assert online_vote(traces, warmup=2, keep=1.0).answer == "5"  # threshold 4.0: 12.6 against 8.5
    assert online_vote(traces, warmup=2, keep=0.5).answer == "4"  # threshold 4.5: only the first


def test_deepconf_online_stops_unconfident_samples_early() -> None:
    """Warm-up: two confident samples (0.9, 0.8: trace confidences 4.5, 4.0) say 4; the threshold
    at keep 1.0 is 4.0. The four later samples (0.6: 3.0) say 5 but are stopped after one window
    of 8 tokens, so they cost 8 tokens each and never vote."""
    model = ScriptedModel(actions={}, rollouts={})
    texts = iter(
        [("<Output>4</Output>", 0.9), ("<Output>4</Output>", 0.8)]
        + [("<Output>5</Output> and more", 0.6)] * 4
    )
    model.fallback = lambda state: next(texts)
    config = SearchConfig(
        strategy="deepconf-online", samples=6, deepconf_warmup=2, deepconf_keep=1.0, deepconf_window=8
    )
    result = run_search(model, model.prompt, config)
    assert result.answer == "4"
    assert [r.status for r in result.rollouts] == ["finished"] * 2 + ["low_confidence"] * 4
    assert result.generated_tokens == 2 * len("<Output>4</Output>") + 4 * 8


@pytest.mark.slow
def test_the_engine_stops_when_a_window_is_unconfident(engine) -> None:  # type: ignore[no-untyped-def]
    prompt = engine.build_prompt([{"role": "user", "content": "Count to five."}], "plain")
    stop = StopRule(max_tokens=32, stop_texts=(), min_confidence=100.0, confidence_window=8)
    gen = engine.generate(prompt, Sampling(), stop)
    assert gen.stop_reason == "low_confidence" and len(gen.tokens) == 8
    calm = engine.generate(prompt, Sampling(), StopRule(max_tokens=32, stop_texts=(), min_confidence=-1.0))
    assert calm.stop_reason == "max_tokens" and len(calm.tokens) == 32
