"""Value signals on saved trees: the AUROC (against its definition over every pair, under
Hypothesis) and the signal table over a scripted search whose verifier knows the right answer
and whose model is sure of the wrong one."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marco_cli.record.record import ModelInfo, Record
from marco_cli.runs.bench import Kept
from marco_cli.runs.signals import graded_rollouts, signal_figures
from marco_cli.runs.stats import auroc, auroc_interval
from tests.test_verifier import CONFIG, Judge, search

scores = st.lists(st.integers(0, 6).map(lambda n: n / 4), max_size=12)


@given(scores, scores)
def test_auroc_is_the_share_of_pairs_a_right_answer_wins(right: list[float], wrong: list[float]) -> None:
    pairs = [(r, w) for r in right for w in wrong]
    expected = sum(1.0 if r > w else 0.5 if r == w else 0.0 for r, w in pairs) / len(pairs) if pairs else None
    assert auroc(right, wrong) == pytest.approx(expected)


def test_auroc_ends_and_its_interval() -> None:
    assert auroc([0.9, 0.8], [0.1, 0.2]) == 1.0 and auroc([0.1], [0.9]) == 0.0
    assert auroc([0.5, 0.5], [0.5]) == 0.5 and auroc([], [0.3]) is None
    low, high = auroc_interval(0.7, 50, 500)
    assert 0.6 < low < 0.7 < high < 0.8
    assert auroc_interval(0.7, 500, 5000)[1] - auroc_interval(0.7, 500, 5000)[0] < high - low  # more data


def test_the_signal_table_ranks_a_knowing_verifier_above_a_sure_wrong_model() -> None:
    judge = Judge({"<Output>5</Output>": 0.9, "<Output>6</Output>": 0.2})
    config = replace(CONFIG, reward="judge")
    record = Record.of(search("judge", judge), "Q?", ModelInfo("s"), config)
    graded = graded_rollouts([Kept("mj", 1, "5", record)])
    assert {ok for _, ok in graded} == {True, False}
    figures = {f.signal: f for f in signal_figures(graded)}
    assert figures["judge"].auroc == 1.0  # every right answer above every wrong one
    assert (figures["confidence"].auroc or 1.0) < 0.5  # the model is surer of the wrong answers
    assert figures["check"].auroc == 0.5  # no equation written: the check cannot tell them apart
    assert figures["judge"].right + figures["judge"].wrong == len(graded)
