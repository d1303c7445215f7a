"""`--reward answer`: a rollout scored by how confident the model was of the tokens that wrote
its answer (CoT-decoding), on hand-made generations with the numbers worked out by hand."""

from __future__ import annotations

import pytest

from marco_cli.contract import Generation
from marco_cli.record.record import ModelInfo, Record
from marco_cli.runs.bench import answer_by
from marco_cli.search.config import SearchConfig
from marco_cli.search.core import span_confidence
from marco_cli.search.strategies import run_search
from tests.scripted import ScriptedModel


def generation(pieces: list[tuple[str, float]]) -> Generation:
    """One token per piece, with its confidence; offsets in UTF-8 bytes."""
    text = "".join(p for p, _ in pieces)
    ends, total = [], 0
    for piece, _ in pieces:
        total += len(piece.encode("utf-8"))
        ends.append(total)
    tokens = tuple(range(1, len(pieces) + 1))
    confs = tuple(c for _, c in pieces)
    return Generation(tokens, text, (0.0,) * len(tokens), confs, "stop_text", (), tuple(ends))


def test_span_confidence_averages_the_tokens_that_wrote_the_answer() -> None:
    gen = generation(
        [("So 7", 0.9), (" apples.\n", 0.8), ("<Output>", 0.99), ("1", 0.3), ("7", 0.5), ("</Output>", 0.9)]
    )
    # "17" is written by the tokens "1" and "7": (0.3 + 0.5) / 2
    assert span_confidence(gen.text, gen.offsets, gen.confidences, "17") == pytest.approx(0.4)
    # the last "7" is the answer's, not the one in "So 7"
    assert span_confidence(gen.text, gen.offsets, gen.confidences, "7") == pytest.approx(0.5)
    assert span_confidence(gen.text, gen.offsets, gen.confidences, "8") is None
    cafe = generation([("caf", 0.2), ("é", 0.6), (" au lait", 0.9)])  # "é" is 2 bytes
    assert span_confidence(cafe.text, cafe.offsets, cafe.confidences, "é au") == pytest.approx(0.75)


SURE_TEXT_UNSURE_ANSWER = [("It is five.\n<Output>", 0.95), ("5", 0.2), ("</Output>", 0.95)]
UNSURE_TEXT_SURE_ANSWER = [("Maybe seven?\n<Output>", 0.5), ("7", 0.9), ("</Output>", 0.5)]


def _sampled(reward: str) -> tuple[ScriptedModel, SearchConfig]:
    model = ScriptedModel(actions={}, rollouts={})
    samples = iter([generation(SURE_TEXT_UNSURE_ANSWER), generation(UNSURE_TEXT_SURE_ANSWER)])
    model.generate_many = lambda requests, on_token=None: [next(samples) for _ in requests]  # type: ignore[method-assign]
    return model, SearchConfig(strategy="best-of-n", samples=2, reward=reward)


def test_the_answer_reward_prefers_the_confidently_stated_answer() -> None:
    model, config = _sampled("answer")
    result = run_search(model, model.prompt, config)
    assert result.answer == "7" and result.reward == pytest.approx(0.9)
    model, config = _sampled("finished")  # the whole text's mean: (0.95 + 0.2 + 0.95) / 3 = 0.7
    result = run_search(model, model.prompt, config)
    assert result.answer == "5" and result.reward == pytest.approx(0.7)


def test_answer_confidence_is_saved_and_rescored() -> None:
    model, config = _sampled("finished")
    result = run_search(model, model.prompt, config)
    record = Record.of(result, "Q?", ModelInfo("scripted"), config)
    assert [r.answer_confidence for r in record.rollouts] == pytest.approx([0.2, 0.9])
    assert answer_by(record, "reward") == "5" == record.answer  # the rule it ran with
    assert answer_by(record, "answer-conf") == "7"  # the answer reward, on the saved tree


def test_the_real_engine_says_where_each_token_ends(engine: object) -> None:
    from marco_cli.contract import Request, Sampling, StopRule

    prompt = engine.build_prompt([{"role": "user", "content": "Say café three times."}], "plain")
    engine.reset()
    gen = engine.generate_many([Request(prompt, Sampling(), StopRule(max_tokens=24, stop_texts=()))])[0]
    assert len(gen.offsets) == len(gen.confidences) == len(gen.tokens)
    assert list(gen.offsets) == sorted(gen.offsets) and gen.offsets[-1] == len(gen.text.encode("utf-8"))
