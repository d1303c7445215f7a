"""Behaviours of modules that had no planted bug until issue 51's third part, where no test
watched them: the first greedy sample, a piped `marco log`, a mini-step under a smaller token
budget, a context past the model's training length, a pair of configurations asked for in
either order. `benchmarks/planted_wide.py` plants a bug in each and names the test here."""

from __future__ import annotations

import pytest

from marco_cli.cli.app import app
from marco_cli.contract import Request, Sampling, StopRule
from marco_cli.record.results import Figures, Pair, Summary
from marco_cli.search.config import SearchConfig
from marco_cli.search.strategies import run_search
from tests.helpers import one_line_error, runner
from tests.scripted import ScriptedModel


class Recording(ScriptedModel):
    """Keeps every request it was handed."""

    seen: list[Request]

    def generate_many(self, requests, on_token=None):  # type: ignore[no-untyped-def]
        self.seen.extend(requests)
        return super().generate_many(requests, on_token)


@pytest.mark.parametrize("greedy_first", [True, False])
def test_greedy_first_makes_only_the_first_sample_greedy(greedy_first: bool) -> None:
    model = Recording(actions={}, rollouts={}, default_rollout=("<Output>7</Output>", 0.9), parallel=2)
    model.seen = []
    config = SearchConfig(strategy="vote", samples=5, temperature=0.8, greedy_first=greedy_first)
    run_search(model, model.prompt, config)
    greedy = [r.sampling.temperature == 0 for r in model.seen]
    assert greedy == [greedy_first, False, False, False, False]
    assert len({r.sampling.seed for r in model.seen}) == 5  # each sample its own seed


def test_a_piped_log_is_one_line_per_run_newest_first(scripted_session) -> None:
    for question in ("first\nquestion", "second\tquestion\r\nwith lines"):
        assert runner.invoke(app, ["solve", question]).exit_code == 0
    lines = runner.invoke(app, ["log"]).stdout.splitlines()
    assert len(lines) == 2, lines  # a line break in a question would split its row
    assert [line.split("\t")[0] for line in lines] == ["2", "1"]
    assert lines[0].split("\t")[5] == "second question with lines"


def test_a_mini_step_is_cut_at_a_smaller_token_budget(engine) -> None:  # type: ignore[no-untyped-def]
    prompt = engine.build_prompt(
        [{"role": "user", "content": "Write a long story about a dragon and a knight."}], "plain"
    )
    for granularity, budget in (("mini-32", 5), ("mini-64", 20), ("mini-32", 48)):
        stop = StopRule(max_tokens=budget, granularity=granularity, stop_texts=(), loop_guard=False)
        gen = engine.generate_many([Request(prompt, Sampling(), stop)])[0]
        assert len(gen.tokens) == min(budget, int(granularity[5:])), (granularity, budget)


def test_a_context_above_the_training_length_is_a_usage_error() -> None:
    # SmolLM2-135M was trained for 8192 tokens
    line = one_line_error(runner.invoke(app, ["solve", "Hi", "-m", "smollm2-135m", "--ctx", "9000"]), 2)
    assert "a 9000-token context is more than" in line and "(8192 tokens)" in line


def _figures(correct: int) -> Figures:
    return Figures(
        n=10,
        correct=correct,
        accuracy=correct / 10,
        ci95=(0.0, 1.0),
        no_answer=0.0,
        mean_tokens=100.0,
        mean_seconds=1.0,
        tokens_per_second=100.0,
    )


def test_a_pair_is_found_in_either_order() -> None:
    flips = Pair("vote", "mcts", 10, 1, 4, 0.375)
    summary = Summary({"vote": _figures(5), "mcts": _figures(8)}, [flips])
    assert summary.pair("vote", "mcts") is flips and summary.pair("mcts", "vote") is flips
    assert summary.pair("vote", "cot") is None


def test_a_line_break_in_a_quoted_name_keeps_the_error_on_one_line(scripted_session) -> None:
    line = one_line_error(runner.invoke(app, ["solve", "Hi", "--select", "no\nsuch"]), 2)
    assert "unknown answer rule" in line
    long = one_line_error(runner.invoke(app, ["solve", "Hi", "--select", "x" * 10_000]), 2)
    assert len(long) < 400
    missing = one_line_error(runner.invoke(app, ["bench", "/nonexistent/no\nsuch.tsv"]), 2)
    assert "no\\nsuch.tsv" in missing  # written as Python writes it, not broken


def test_a_conversation_keeps_its_own_system_prompt_and_marco_its_template() -> None:
    from marco_cli.engine.prompt import MARCO_SYSTEM_PROMPT, PLAIN_SYSTEM_PROMPT, with_system_prompt

    asked = [{"role": "user", "content": "Hi"}]
    own = [{"role": "system", "content": "Be brief."}, *asked]
    assert with_system_prompt(own, "plain", None) == own and with_system_prompt(own, "marco", None) == own
    assert with_system_prompt(asked, "plain", None)[0]["content"] == PLAIN_SYSTEM_PROMPT
    assert with_system_prompt(asked, "marco", None)[0]["content"] == MARCO_SYSTEM_PROMPT
    assert with_system_prompt(asked, "marco", "{# Marco-o1's own template #}") == asked


def test_the_first_processors_fields_are_read(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from marco_cli.engine import cpuinfo

    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nmodel name\t: First CPU\nflags\t\t: fpu amx_tile\nvmx flags\t: ept\n\n"
        "processor\t: 1\nmodel name\t: Second CPU\nflags\t\t: fpu\n",
        encoding="ascii",
    )
    monkeypatch.setenv(cpuinfo.CPUINFO_ENV, str(info))
    assert cpuinfo.first("model name") == "First CPU" and cpuinfo.first("flags") == "fpu amx_tile"
    assert cpuinfo.values("flags") == ["fpu amx_tile", "fpu"] and cpuinfo.first("bogus") == ""


def test_a_branch_returned_to_is_restored_from_its_saved_copy_exactly(engine) -> None:  # type: ignore[no-untyped-def]
    def ask(text: str) -> list[int]:
        return list(engine.build_prompt([{"role": "user", "content": text}], "plain"))

    stop = StopRule(max_tokens=24, stop_texts=(), loop_guard=False)
    engine.reset()
    cats = ask("Tell me three facts about cats.")
    first = engine.generate(cats, Sampling(), stop)
    back = [*cats, *first.tokens]
    direct = engine.generate(back, Sampling(), stop)  # from the live cache
    engine.generate(ask("Name four rivers in Europe and one in Africa."), Sampling(), stop)  # evicts it
    before = engine.restored
    again = engine.generate(back, Sampling(), stop)
    assert engine.restored - before >= len(cats)  # came back from the copy, not evaluated
    # the same keys and values as the live cache held: the same tokens, the same confidences
    assert again.tokens == direct.tokens and again.confidences == pytest.approx(direct.confidences, abs=1e-6)


def test_a_recorded_model_counts_what_a_cache_less_engine_would_evaluate() -> None:
    from marco_cli.search.recording import Recording as RecordingModel

    model = RecordingModel(
        ScriptedModel(actions={}, rollouts={}, default_rollout=("<Output>7</Output>", 0.9))
    )
    prompt = ScriptedModel(actions={}, rollouts={}).prompt
    gens = model.generate_many(
        [Request(prompt, Sampling(), StopRule()), Request([*prompt, 65], Sampling(), StopRule())]
    )
    written = len("<Output>7</Output>")
    assert [len(g.tokens) for g in gens] == [written, written]
    assert model.naive_evaluated == (len(prompt) + written - 1) + (len(prompt) + 1 + written - 1)


def test_a_stop_text_the_server_withheld_is_put_back_and_ends_the_answer() -> None:
    from marco_cli.engine.logprobs import Scored
    from marco_cli.engine.streamed import generation_of

    pieces = [Scored("<Output>", 1, -0.1, (-0.1, -2.5)), Scored("7", 2, -0.2, (-0.2, -1.9))]
    stop = StopRule(max_tokens=64)  # stops at </Output>

    def read(text: str) -> list[int]:
        return []

    answered = generation_of(pieces, "<Output>7", None, "stop", stop, 64, "Q?", read)
    assert answered.text == "<Output>7</Output>" and answered.stop_reason == "stop_text"
    assert answered.tokens == (1, 2) and answered.offsets == (8, 9)
    unbegun = generation_of(pieces[1:], "7", None, "stop", stop, 64, "Q?", read)  # no <Output> yet
    assert unbegun.text == "7" and unbegun.stop_reason == "eos"
