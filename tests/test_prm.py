"""Process reward models (search/prm.py): the two formats' inputs byte for byte against their
authors' examples, P("+") read exactly (the two raw logits locally, an equal logit bias on
llama-server), a PRM that knows which step is wrong steering the beam, its tokens counted, and
the real small model standing in for a PRM through solve and bench (its scores are meaningless
there; the plumbing is not)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pytest
from jinja2 import Environment

from marco_cli.cli.app import app
from marco_cli.contract import Request, Sampling, StopRule
from marco_cli.engine.prompt import render_chat
from marco_cli.errors import MarcoError
from marco_cli.search.config import SearchConfig
from marco_cli.search.prm import Prm, rlhflow_messages, shepherd_step, shepherd_text, steps_of
from marco_cli.search.strategies import run_search
from marco_cli.search.values import Step
from marco_cli.store.registry import load_registry, parse_registry
from tests.helpers import one_line_error, runner
from tests.scripted import ScriptedModel

# the math-shepherd model card's example (peiyi9979/math-shepherd-mistral-7b-prm): its input is
# f"{question} {output}", the steps tagged "ки" and joined by a line break
CARD_QUESTION = (
    "Janet\u2019s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes "
    "muffins for her friends every day with four. She sells the remainder at the farmers' market "
    "daily for $2 per fresh duck egg. How much in dollars does she make every day at the farmers' market?"
)
CARD_OUTPUT = (
    "Step 1: Janet's ducks lay 16 eggs per day. ки\n"
    "Step 2: She eats three for breakfast every morning, so she has 16 - 3 = 13 eggs left. ки\n"
    "Step 3: She bakes muffins for her friends every day with four eggs, so she has 13 - 4 = 9 eggs "
    "left. ки\n"
    "Step 4: She sells the remainder at the farmers' market daily for $2 per fresh duck egg, so she "
    "makes 9 * $2 = $18 every day at the farmers' market. The answer is: 18 ки"
)
CARD_STEPS = [line.split(": ", 1)[1].removesuffix(" ки") for line in CARD_OUTPUT.split("\n")]

# Meta's Llama-3 Instruct chat template (the RLHFlow PRMs are Llama-3.1 fine-tunes; marco renders
# with whatever template the PRM's GGUF carries, as `apply_chat_template` does)
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


def test_math_shepherd_input_is_the_model_cards_byte_for_byte() -> None:
    assert shepherd_text(CARD_QUESTION, CARD_STEPS) == f"{CARD_QUESTION} {CARD_OUTPUT}"
    numbered = [f"Step {i}: {s}" for i, s in enumerate(CARD_STEPS, 1)]  # not numbered twice
    assert shepherd_text(CARD_QUESTION, numbered) == f"{CARD_QUESTION} {CARD_OUTPUT}"
    assert shepherd_step("  First we add:\n3 + 4 = 7\n") == "First we add: 3 + 4 = 7"  # one line


def test_rlhflow_input_is_the_authors_conversation_up_to_the_scored_reply() -> None:
    """search-and-learn reads P(+) at position -3 of the conversation that ends with the step's
    "+" reply and its end-of-turn: the same tokens as ours, which stop before the reply."""
    steps = ["Step one.", "Step two."]
    messages = rlhflow_messages("Q?", steps)
    assert messages == [
        {"role": "user", "content": "Q? Step one."},
        {"role": "assistant", "content": "+"},
        {"role": "user", "content": "Step two."},
    ]
    ours = render_chat(messages, LLAMA3_TEMPLATE, "<|begin_of_text|>", "<|eot_id|>")
    assert ours == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nQ? Step one.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n+<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nStep two.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    whole = Environment().from_string(LLAMA3_TEMPLATE)
    theirs = whole.render(
        messages=[*messages, {"role": "assistant", "content": "+"}],
        bos_token="<|begin_of_text|>",
        add_generation_prompt=False,
    )
    assert theirs == ours + "+<|eot_id|>"  # "+" at -2, so its logits are read at -3


def test_a_steps_path_is_the_search_steps_else_the_lines_before() -> None:
    assert steps_of(Step("C", (), ("A", "B")), "ignored") == ["A", "B", "C"]
    assert steps_of(Step("C"), "A\n\nB\n") == ["A", "B", "C"]


class KnownPrm:
    """A PRM whose P(+) per step is known. Tokens are characters, except that a space and the
    character after it are one token (so "+ -" is two, as in Mistral's vocabulary); the chat
    template is `<role>content` turns and `<assistant>` to close."""

    def __init__(self, p_plus: dict[str, float]) -> None:
        self.p_plus, self.shown, self.evaluated = p_plus, [], 0

    def tokenize(self, text: str) -> list[int]:
        out: list[int] = []
        for c in text:
            merged = bool(out) and out[-1] == ord(" ")
            out[-1:] = [0x10000 + ord(c)] if merged else [*out[-1:], ord(c)]
        return out

    def document_tokens(self, text: str) -> list[int]:
        return self.tokenize(text)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return "".join(" " + chr(t - 0x10000) if t >= 0x10000 else chr(t) for t in tokens)

    def build_prompt(self, messages: Sequence[dict[str, str]], style: str) -> list[int]:
        assert style == "bare"
        return self.tokenize("".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>")

    def pair_odds(self, prefix: Sequence[int], pair: tuple[int, int]) -> float:
        assert pair in ((ord("+"), 0x10000 + ord("-")), (ord("+"), ord("-")))
        text = self.detokenize(prefix)
        self.shown.append(text)
        self.evaluated += len(prefix)
        last = text.rsplit("\n", 1)[-1].removesuffix(" ки").split(": ", 1)[-1]
        if text.endswith("<assistant>"):
            last = text.removesuffix("<assistant>").rsplit("<user>", 1)[-1].removeprefix("Q? ")
        return self.p_plus.get(last.strip(), 0.5)


def _arithmetic_world() -> ScriptedModel:
    world = ScriptedModel(actions={}, rollouts={})
    world.actions[""] = [("2 + 2 = 5.\n", 0.99), ("2 + 2 = 4.\n", 0.6)]  # confident and wrong
    world.actions["2 + 2 = 5.\n"] = [("<Output>5</Output>", 0.95)]
    world.actions["2 + 2 = 4.\n"] = [("<Output>4</Output>", 0.9)]
    return world


@pytest.mark.parametrize("form", ["math-shepherd", "rlhflow"])
def test_a_prm_that_knows_the_wrong_step_beats_the_confident_one(form: str) -> None:
    known = KnownPrm({"2 + 2 = 5.": 0.1, "2 + 2 = 4.": 0.9, "<Output>4</Output>": 0.8})
    config = SearchConfig(strategy="beam", beams=1, beam_width=2, value="prm", temperature=1.0)
    prm = Prm(known, form, "Q?")  # type: ignore[arg-type]
    result = run_search(_arithmetic_world(), _arithmetic_world().prompt, config, prm=prm, question="Q?")
    first = {result.tree.nodes[c].text: result.tree.nodes[c] for c in result.tree.root.children}
    assert first["2 + 2 = 5.\n"].pruned and not first["2 + 2 = 4.\n"].pruned
    assert first["2 + 2 = 4.\n"].mean_value == pytest.approx(0.9)
    assert first["2 + 2 = 5.\n"].mean_value == pytest.approx(0.1)
    assert result.answer == "4"
    if form == "math-shepherd":
        assert "Q? Step 1: 2 + 2 = 4. ки" in known.shown
        assert "Q? Step 1: 2 + 2 = 4. ки\nStep 2: <Output>4</Output> ки" in known.shown
    else:
        assert "<user>Q? 2 + 2 = 4.<assistant>+<user><Output>4</Output><assistant>" in known.shown
    assert prm.tokens == known.evaluated > 0 and prm.asked == len(known.shown)
    confident = run_search(
        _arithmetic_world(), _arithmetic_world().prompt, SearchConfig(strategy="beam", beams=1, beam_width=2)
    )
    assert confident.answer == "5"  # the policy's own confidence keeps the wrong step


def test_a_path_is_scored_once() -> None:
    known = KnownPrm({"A": 0.3})
    prm = Prm(known, "math-shepherd", "Q?")  # type: ignore[arg-type]
    assert prm("Q?", "", Step("A")).value == pytest.approx(0.3)
    assert prm("Q?", "", Step("A")).value == pytest.approx(0.3)
    assert prm.asked == 1 and len(known.shown) == 1


def test_a_vocabulary_that_cannot_spell_the_pair_is_refused() -> None:
    class Wide(KnownPrm):
        def tokenize(self, text: str) -> list[int]:
            return [ord(c) for c in text]  # "+ -": three tokens

    with pytest.raises(MarcoError, match="not a math-shepherd model"):
        Prm(Wide({}), "math-shepherd", "Q?")  # type: ignore[arg-type]


def test_value_prm_without_a_prm_is_a_usage_error(scripted_session) -> None:
    said = one_line_error(runner.invoke(app, ["solve", "Q?", "--strategy", "beam", "--value", "prm"]), 2)
    assert "--prm MODEL" in said
    said = one_line_error(
        runner.invoke(app, ["solve", "Q?", "--strategy", "beam", "--value", "prm", "--prm", "x.gguf"]), 2
    )
    assert "--prm-format" in said
    assert scripted_session == []  # said before any model loads


def test_the_prm_opens_as_a_second_engine_and_its_tokens_count(scripted_session) -> None:
    args = ["solve", "Q?", "--strategy", "beam", "--beams", "2", "--value", "prm", "--json", "--no-log"]
    result = runner.invoke(app, [*args, "--prm", "llama3.1-8b-prm-deepseek"])  # format: rlhflow
    assert result.exit_code == 0, result.output
    assert [c[0].model for c in scripted_session] == ["marco-o1", "llama3.1-8b-prm-deepseek"]  # type: ignore[attr-defined]
    record = json.loads(result.stdout)
    assert record["settings"]["value"] == "prm" and record["tokens"]["verifier"] > 0
    steps = [n for n in record["nodes"] if n["parent"] is not None]
    assert steps and all(n["value"] == pytest.approx(0.75) for n in steps)  # the scripted PRM's P(+)
    unused = runner.invoke(app, ["solve", "Q?", "--prm", "math-shepherd-7b-prm", "--no-log"])
    assert unused.exit_code == 0 and "--prm/--prm-backend not opened" in unused.stderr


def test_bench_and_serve_take_a_prm(scripted_session, tmp_path: Path) -> None:
    data = tmp_path / "one.tsv"
    data.write_text("What is 2 + 2?\t4\n")
    spec = "beam@2[--value prm],vote@2"
    args = ["bench", str(data), "--strategy", spec, "--out", str(tmp_path / "o"), "--json"]
    benched = runner.invoke(app, [*args, "--prm", "rlhflow-prm"])
    assert benched.exit_code == 0, benched.output
    rows = [json.loads(line) for line in (tmp_path / "o" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and len(scripted_session) == 2
    refused = runner.invoke(app, [*args[:-2], "--out", str(tmp_path / "p"), "--jobs", "2", "--prm", "x"])
    assert refused.exit_code == 2


def test_registry_prms_name_their_format_and_files() -> None:
    registry = load_registry()
    shepherd, rlhflow = registry.lookup("math-shepherd"), registry.lookup("rlhflow-prm")
    assert (shepherd.prm, rlhflow.prm) == ("math-shepherd", "rlhflow")
    assert all(registry.models[n].prm is None for n in ("marco-o1", "smollm2-135m"))
    with pytest.raises(MarcoError, match="field 'prm' must be one of math-shepherd, rlhflow"):
        parse_registry(
            "models:\n  x:\n    prm: nope\n    sources: [{hf: {repo: a/b, files: {Q4_0: x.gguf}}}]\n", "t"
        )


def test_pull_fetches_a_prm_from_the_hub_and_checks_its_sha256(hub, isolated_home: Path) -> None:
    """The fake hub cannot hold the real 4 GB file: it serves other bytes under the entry's repo
    and name, so the pull reaches the right file and the entry's sha256 refuses it."""
    repo, name = "QuantFactory/math-shepherd-mistral-7b-prm-GGUF", "math-shepherd-mistral-7b-prm.Q4_K_M.gguf"
    hub.state.repos[repo] = {name: b"GGUF" + b"\0" * 4096}
    result = runner.invoke(app, ["pull", "math-shepherd-7b-prm"])
    assert result.exit_code == 1 and "failed its sha256 check" in result.stderr
    assert any(repo in path and name in path for _, path, _ in hub.state.requests)


@pytest.mark.slow
def test_local_pair_odds_are_the_two_raw_probabilities(engine) -> None:  # type: ignore[no-untyped-def]
    """Against the engine's own ranked first tokens (log-probabilities of the raw distribution):
    P(a) / (P(a) + P(b)) for the two likeliest, and the pair reversed sums to one."""
    prefix = engine.build_prompt([{"role": "user", "content": "Is 7 a prime number?"}], "plain")
    one = StopRule(granularity="rollout", max_tokens=1, stop_texts=(), loop_guard=False)
    first, second = engine.generate_many([Request(prefix, Sampling(first_rank=k), one) for k in (0, 1)])
    a, b = first.tokens[0], second.tokens[0]
    expected = math.exp(first.logprobs[0]) / (math.exp(first.logprobs[0]) + math.exp(second.logprobs[0]))
    assert engine.pair_odds(prefix, (a, b)) == pytest.approx(expected, abs=1e-4)
    assert engine.pair_odds(prefix, (a, b)) + engine.pair_odds(prefix, (b, a)) == pytest.approx(1.0)
    plus, minus = engine.tokenize("+")[-1], engine.tokenize("-")[-1]
    assert 0.0 < engine.pair_odds(prefix, (plus, minus)) < 1.0  # neither need be in the top 5


@pytest.mark.slow
def test_llama_server_gives_the_same_pair_odds_as_the_local_engine(engine, smollm_path: Path) -> None:  # type: ignore[no-untyped-def]
    from marco_cli.engine.remote import RemoteEngine
    from tests.servers import llama_server

    process, url = llama_server(smollm_path, slots=1)
    try:
        remote = RemoteEngine(url)
        text = shepherd_text("What is 2 + 3?", ["2 + 3 = 5.", "The answer is 5."])
        prefix = remote.document_tokens(text)
        assert prefix == engine.document_tokens(text)
        plus, minus = engine.tokenize("+ -")
        assert remote.pair_odds(prefix, (plus, minus)) == pytest.approx(
            engine.pair_odds(prefix, (plus, minus)), abs=2e-3
        )
        messages = rlhflow_messages("What is 2 + 3?", ["2 + 3 = 5."])
        assert remote.build_prompt(messages, "bare") == engine.build_prompt(messages, "bare")
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow
def test_an_openai_style_server_gives_the_same_pair_odds(engine, smollm_path: Path) -> None:  # type: ignore[no-untyped-def]
    """llama-cpp-python's server reports the raw distribution, so neither token of a PRM's pair
    is among its listed alternatives: each is read as the token its own biased request sampled."""
    from marco_cli.engine.remote import RemoteEngine
    from tests.servers import llama_cpp_python_server

    process, url = llama_cpp_python_server(smollm_path)
    try:
        remote = RemoteEngine(url)
        text = shepherd_text("What is 2 + 3?", ["2 + 3 = 5.", "The answer is 5."])
        prefix = engine.document_tokens(text)
        plus, minus = engine.tokenize("+ -")
        before = remote.requests
        assert remote.pair_odds(prefix, (plus, minus)) == pytest.approx(
            engine.pair_odds(prefix, (plus, minus)), abs=2e-3
        )
        assert remote.requests - before == 2  # the first answer listed neither token
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("form", ["math-shepherd", "rlhflow"])
def test_the_small_model_stands_in_for_a_prm_end_to_end(form: str, tmp_path: Path) -> None:
    args = ["solve", "What is 12 + 7?", "-m", "smollm2-135m", "--strategy", "beam", "--beams", "2"]
    args += ["--granularity", "mini-32", "--max-tokens", "64", "--value", "prm", "--prm", "smollm2-135m"]
    result = runner.invoke(app, [*args, "--prm-format", form, "--json", "--no-log"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    steps = [n for n in record["nodes"] if n["parent"] is not None]
    assert steps and all(0 < n["value"] < 1 for n in steps) and record["tokens"]["verifier"] > 0
    data = tmp_path / "one.tsv"
    data.write_text("What is 2 + 2?\t4\n")
    bench = ["bench", str(data), "-m", "smollm2-135m", "--strategy", "beam@2[--value prm]", "--out"]
    benched = runner.invoke(
        app,
        [*bench, str(tmp_path / "o"), "--max-tokens", "48", "--prm", "smollm2-135m", "--prm-format", form],
    )
    assert benched.exit_code == 0, benched.output
    row = json.loads((tmp_path / "o" / "results.jsonl").read_text().splitlines()[0])
    assert row["tokens"] > 0


def test_a_prms_conversation_gets_no_system_prompt() -> None:
    from marco_cli.engine.prompt import with_system_prompt

    messages = rlhflow_messages("Q?", ["A."])
    assert with_system_prompt(messages, "bare", None) == messages
    assert with_system_prompt(messages, "plain", None)[0]["role"] == "system"


def test_prm_backend_asks_the_prm_on_that_server(scripted_session) -> None:
    args = [
        "solve",
        "Q?",
        "--strategy",
        "dvts",
        "--value",
        "prm",
        "--no-log",
        "--backend",
        "http://127.0.0.1:8",
    ]
    result = runner.invoke(app, [*args, "--prm-backend", "http://127.0.0.1:9", "--prm-format", "RLHFlow"])
    assert result.exit_code == 0, result.output
    search, prm = scripted_session[0][0], scripted_session[1][0]
    assert search.engine.backend == "http://127.0.0.1:8"  # type: ignore[attr-defined]
    assert prm.engine.backend == "http://127.0.0.1:9" and prm.model == "marco-o1"  # type: ignore[attr-defined]


def test_the_python_api_takes_a_prm(scripted_session) -> None:
    from marco_cli import solve

    record = solve("Q?", strategy="beam", value="prm", prm="llama3.1-8b-prm-deepseek", save=False)
    assert record.tokens.verifier > 0 and len(scripted_session) == 2


def test_a_prm_as_the_searching_model_is_said(scripted_session) -> None:
    result = runner.invoke(app, ["solve", "Q?", "-m", "math-shepherd-7b-prm", "--no-log"])
    assert result.exit_code == 0 and "is a process reward model" in result.stderr
    listed = runner.invoke(app, ["models", "--json"])
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["math-shepherd-7b-prm"]["prm"] == "math-shepherd" and rows["marco-o1"]["prm"] is None
