"""The engine on the real llama.cpp and the real SmolLM2 GGUF."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import llama_cpp
import numpy as np
import pytest

from marco_cli.cli.app import app
from marco_cli.contract import Request, Sampling, StopRule
from marco_cli.engine.llama import Engine
from marco_cli.errors import MarcoError
from tests.conftest import reference_llama
from tests.helpers import no_traceback, runner

QUESTION = [{"role": "user", "content": "What is 12 + 30? Think step by step."}]
STORY = [{"role": "user", "content": "Write a long story about a dragon."}]


@pytest.fixture(scope="module")
def reference(smollm_path: Path) -> llama_cpp.Llama:
    """llama-cpp-python's own high-level model, as an independent reference."""
    return reference_llama(smollm_path, n_ctx=1024, n_threads=2, verbose=False, seed=0)


def _numpy_scores(row: np.ndarray, token: int) -> tuple[float, float, int]:
    logp = row - np.logaddexp.reduce(row)
    top5 = np.sort(logp)[-5:]
    conf = np.exp(logp[token]) / np.exp(top5).sum()
    rank = int((row > row[token]).sum())
    return float(logp[token]), float(conf), rank


@pytest.mark.parametrize("sampling", [Sampling(), Sampling(temperature=3.0, seed=11)])
def test_confidence_matches_independent_numpy(engine: Engine, sampling: Sampling) -> None:
    prompt = engine.build_prompt(QUESTION, "plain")
    rows: list[np.ndarray] = []
    gen = engine.generate(
        prompt,
        sampling,
        StopRule(max_tokens=48, stop_texts=()),
        observe=lambda row, _: rows.append(row.astype(np.float64)),
    )
    assert len(gen.tokens) > 10 and len(rows) == len(gen.tokens)
    ranks = []
    for row, token, lp, conf in zip(rows, gen.tokens, gen.logprobs, gen.confidences, strict=True):
        want_lp, want_conf, rank = _numpy_scores(row, token)
        assert conf == pytest.approx(want_conf, abs=1e-5)
        assert lp == pytest.approx(want_lp, abs=1e-4)
        ranks.append(rank)
    if sampling.temperature == 0:
        assert max(ranks) == 0  # greedy picks the arg-max every time
    else:
        assert max(ranks) >= 5  # some token was sampled from outside the top 5
        assert min(gen.confidences) < 0.05


def test_same_seed_same_tokens(engine: Engine) -> None:
    prompt = engine.build_prompt(STORY, "plain")
    sampling = Sampling(temperature=0.8, top_p=0.95, top_k=40, min_p=0.02, seed=1234)
    first = engine.generate(prompt, sampling, StopRule(max_tokens=40))
    engine.generate(prompt, Sampling(temperature=0.8, seed=99), StopRule(max_tokens=10))
    second = engine.generate(prompt, sampling, StopRule(max_tokens=40))
    assert first.tokens == second.tokens
    other = engine.generate(prompt, Sampling(temperature=0.8, seed=7), StopRule(max_tokens=40))
    assert other.tokens != first.tokens


def test_greedy_equals_llama_cpp_create_completion(engine: Engine, reference: llama_cpp.Llama) -> None:
    prompt = engine.build_prompt(QUESTION, "plain")
    ours = engine.generate(prompt, Sampling(), StopRule(max_tokens=64, stop_texts=()))
    theirs = reference.create_completion(prompt, max_tokens=64, temperature=0.0)
    assert ours.text == theirs["choices"][0]["text"]


def test_mini_step_returns_exactly_32_tokens(engine: Engine) -> None:
    prompt = engine.build_prompt(STORY, "plain")
    gen = engine.generate(prompt, Sampling(), StopRule(granularity="mini-32"))
    assert len(gen.tokens) == 32 and gen.stop_reason == "mini" and not gen.finished
    gen64 = engine.generate(prompt, Sampling(), StopRule(granularity="mini-64"))
    assert len(gen64.tokens) == 64 and gen64.tokens[:32] == gen.tokens


def test_step_stops_at_the_first_line_break(engine: Engine) -> None:
    prompt = engine.build_prompt(STORY, "plain")
    gen = engine.generate(prompt, Sampling(), StopRule(granularity="step"))
    assert gen.stop_reason == "step"
    assert gen.text.endswith("\n") and "\n" not in gen.text.rstrip("\n")
    whole = engine.generate(prompt, Sampling(), StopRule(max_tokens=len(gen.tokens) + 20))
    assert whole.tokens[: len(gen.tokens)] == gen.tokens


def test_output_end_and_eos_stop(engine: Engine) -> None:
    prompt = engine.build_prompt([{"role": "user", "content": "What is 2 + 2?"}], "plain")
    closing = engine.tokenize("<Thought>\n2 plus 2 is 4.\n</Thought>\n<Output>\n4\n</Output")
    gen = engine.generate(prompt + closing, Sampling(), StopRule(max_tokens=20))
    assert gen.stop_reason == "stop_text" and gen.finished and gen.text == ">"
    full = engine.generate(prompt + closing[:-3], Sampling(), StopRule(max_tokens=20))
    assert full.stop_reason == "stop_text" and full.text.endswith("</Output>")
    eos = engine.generate(prompt, Sampling(), StopRule(max_tokens=200))
    assert eos.stop_reason == "eos" and eos.tokens[-1] in engine.eos_ids and eos.finished


@pytest.mark.parametrize("snapshots", [False, True])
def test_branch_switching_evaluates_only_new_suffixes(smollm_path: Path, snapshots: bool) -> None:
    """A, then B from the prompt, then A continued: only new suffixes are evaluated (with saved
    KV copies, not even A's tokens again)."""
    with Engine(smollm_path, ctx=2048, snapshot_mb=512 if snapshots else 0) as eng:
        prompt = eng.build_prompt(QUESTION, "plain")
        a = eng.generate(prompt, Sampling(), StopRule(granularity="mini-32"))
        assert eng.evaluated == len(prompt) + len(a.tokens) - 1
        mark = eng.evaluated
        b = eng.generate(prompt, Sampling(temperature=1.0, seed=5), StopRule(granularity="mini-32"))
        assert eng.evaluated - mark == len(b.tokens) - 1  # the prompt's row was kept, nothing re-run
        mark = eng.evaluated
        path_a = prompt + list(a.tokens)
        cached = prompt + list(b.tokens[:-1])
        common = next(
            (i for i, (x, y) in enumerate(zip(path_a, cached, strict=False)) if x != y),
            min(len(path_a), len(cached)),
        )
        c = eng.generate(path_a, Sampling(), StopRule(granularity="mini-32"))
        if snapshots:  # A's keys and values came back from its saved copy: only its last token ran
            assert eng.evaluated - mark == 1 + len(c.tokens) - 1
            assert eng.restored == len(path_a) - 1
        else:
            assert eng.evaluated - mark == (len(path_a) - common) + len(c.tokens) - 1
        mark = eng.evaluated
        d = eng.generate(path_a + list(c.tokens), Sampling(), StopRule(granularity="mini-32"))
        assert eng.evaluated - mark == len(d.tokens)  # c's last token, then d's but its last


def test_ctrl_c_mid_generation_leaves_the_engine_usable(engine: Engine) -> None:
    prompt = engine.build_prompt(STORY, "plain")
    want = engine.generate(prompt, Sampling(), StopRule(max_tokens=40))
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        engine.generate(prompt + list(want.tokens), Sampling(), StopRule(max_tokens=4000, stop_texts=()))
    timer.cancel()
    again = engine.generate(prompt, Sampling(), StopRule(max_tokens=40))
    assert again.tokens == want.tokens and again.confidences == pytest.approx(want.confidences)


def test_prompt_longer_than_context_is_refused(smollm_path: Path) -> None:
    with Engine(smollm_path, ctx=256) as small:
        message = f"longer than the {small.n_ctx}-token context"
        with pytest.raises(MarcoError, match=message):
            small.build_prompt([{"role": "user", "content": "word " * 2000}], "plain")


def test_bad_files_give_one_line_errors(tmp_path: Path, smollm_path: Path, capfd) -> None:
    with pytest.raises(MarcoError, match="model file not found"):
        Engine(tmp_path / "missing.gguf")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf at all" * 10)
    with pytest.raises(MarcoError, match="not a GGUF file"):
        Engine(junk)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(smollm_path.read_bytes()[:10_000_000])
    with pytest.raises(MarcoError, match="truncated or corrupt") as info:
        Engine(truncated)
    assert "\n" not in str(info.value)
    out, err = capfd.readouterr()
    assert err == "" and out == ""  # llama.cpp's own log never leaks


def test_metadata_and_counters(engine: Engine) -> None:
    assert engine.n_vocab == 49152 and engine.n_ctx == 2048 and engine.gpu_layers == 0
    assert engine.metadata("general.architecture") == "llama"
    assert "im_start" in (engine.chat_template or "")
    before = engine.generated
    gen = engine.generate(engine.build_prompt(STORY, "plain"), Sampling(), StopRule(granularity="mini-32"))
    assert engine.generated - before == len(gen.tokens) == 32


def _teacher_forced(engine: Engine, prefix: list[int], tokens: tuple[int, ...]) -> list[float]:
    """Each token's confidence recomputed from a clean cache, one position at a time."""
    engine.reset()
    rows: list[np.ndarray] = []
    for i in range(len(tokens)):
        engine.generate(
            prefix + list(tokens[:i]),
            Sampling(),
            StopRule(max_tokens=1, stop_texts=()),
            observe=lambda row, _: rows.append(row.astype(np.float64)),
        )
    return [_numpy_scores(row, tok)[1] for row, tok in zip(rows, tokens, strict=True)]


def test_branch_switching_workload_scores_match_a_clean_recomputation(smollm_path: Path) -> None:
    """Random jumps across a growing tree (truncating and re-using the cache) change no score."""
    import random

    rng = random.Random(0)
    # one token per decode on both sides: llama.cpp's batched kernels round differently (up to
    # 0.06 in a confidence here), which would hide what this test is after
    with Engine(smollm_path, ctx=2048, n_batch=1) as eng, Engine(smollm_path, ctx=2048, n_batch=1) as clean:
        prompt = eng.build_prompt(QUESTION, "plain")
        paths = [prompt]
        for _ in range(5):
            base = rng.choice(paths)
            for k in range(2):
                sampling = Sampling(temperature=0.0 if k == 0 else 0.8, seed=rng.randrange(999))
                gen = eng.generate(base, sampling, StopRule(granularity="mini-32"))
                want = _teacher_forced(clean, list(base), gen.tokens)
                assert gen.confidences == pytest.approx(want, abs=1e-5)
                paths.append(list(base) + list(gen.tokens))


def test_batched_branches_equal_the_sequential_path(smollm_path: Path) -> None:
    """k branches in one decode per step give each branch exactly its sequential tokens and
    confidences (greedy and sampled, each with its seed), and stop independently."""
    with Engine(smollm_path, ctx=1024, n_seq=4) as batched, Engine(smollm_path, ctx=1024) as single:
        prompt = single.build_prompt(STORY, "plain")
        requests = [
            Request(prompt, Sampling(), StopRule(max_tokens=32, stop_texts=())),
            Request(prompt, Sampling(temperature=0.8, seed=1), StopRule(max_tokens=5, stop_texts=())),
            Request(prompt, Sampling(temperature=0.8, seed=2), StopRule(granularity="mini-32")),
            Request(prompt, Sampling(), StopRule(granularity="step")),
        ]
        together = batched.generate_many(requests)
        assert [len(g.tokens) for g in together[:3]] == [32, 5, 32]
        for request, got in zip(requests, together, strict=True):
            single.reset()
            want = single.generate(request.prefix, request.sampling, request.stop)
            assert got.tokens == want.tokens and got.stop_reason == want.stop_reason
            assert got.confidences == pytest.approx(want.confidences, abs=1e-6)
        # the prompt, then one decode per step for all live branches
        assert batched.decode_calls <= 1 + max(len(g.tokens) for g in together)
        one = batched.generate_many(requests[:1])[0]
        assert one.tokens == together[0].tokens


def test_multi_sequence_cache_matches_a_clean_recomputation(smollm_path: Path) -> None:
    """Branches that revisit tokens another sequence holds keep their scores (separate streams;
    measured within 2e-3 on an AVX-512 CPU and 7.2e-3 on an AVX2-only one, where a shared
    unified cache was off by up to 0.9: the bound leaves room for the CPU's kernels, not for
    that bug)."""
    with (
        Engine(smollm_path, ctx=2048, n_seq=4, n_batch=1) as multi,
        Engine(smollm_path, ctx=2048, n_batch=1) as clean,
    ):
        prompt = multi.build_prompt(QUESTION, "plain")
        first = multi.generate(prompt, Sampling(), StopRule(granularity="mini-32"))
        multi.generate(prompt, Sampling(temperature=0.8, seed=3), StopRule(granularity="mini-32"))
        multi.generate(prompt, Sampling(), StopRule(granularity="mini-32"))  # the same tokens again
        path = prompt + list(first.tokens)
        gen = multi.generate(path, Sampling(), StopRule(granularity="mini-32"))
        assert gen.confidences == pytest.approx(_teacher_forced(clean, path, gen.tokens), abs=2e-2)


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,  # wrong tokens, not a crash: an engine error fails the test
    reason="llama.cpp 0.3.36: with a unified KV cache, sequences holding the same tokens at the "
    "same positions get wrong logits; marco uses one KV stream per sequence",
)
def test_unified_cache_tripwire(smollm_path: Path) -> None:
    """When this passes, llama.cpp's unified cache (1.3x faster batching here) can be used."""
    with (
        Engine(smollm_path, ctx=1024, n_seq=4, kv_unified=True) as unified,
        Engine(smollm_path, ctx=1024) as single,
    ):
        prompt = single.build_prompt(STORY, "plain")
        requests = [
            Request(prompt, Sampling(temperature=0.8, seed=k), StopRule(max_tokens=32, stop_texts=()))
            for k in range(4)
        ]
        for request, got in zip(requests, unified.generate_many(requests), strict=True):
            single.reset()
            assert got.tokens == single.generate(request.prefix, request.sampling, request.stop).tokens


@pytest.mark.slow
def test_a_prompt_over_the_models_whole_context_does_not_say_raise_ctx(smollm_path: Path) -> None:
    from marco_cli.engine.llama import Engine
    from marco_cli.errors import MarcoError

    with Engine(smollm_path) as engine:  # the default cap is the model's own 8192 tokens
        assert engine.n_ctx == engine.n_ctx_train
        with pytest.raises(MarcoError) as info:
            engine.build_prompt([{"role": "user", "content": "word " * 9000}], "plain")
    assert info.value.code == 2 and "raise --ctx" not in str(info.value)
    assert "it is all the model takes" in str(info.value)


TWO_PLUS_TWO = "What is 2 + 2?"


@pytest.mark.slow
def test_engine_limits_are_usage_errors(smollm_path: Path) -> None:
    long_prompt = runner.invoke(
        app, ["solve", "word " * 400, "-m", str(smollm_path), "--ctx", "128", "--no-log"]
    )
    no_traceback(long_prompt)
    assert long_prompt.exit_code == 2 and "tokens, longer than the" in long_prompt.stderr
    too_big = runner.invoke(
        app, ["solve", TWO_PLUS_TWO, "-m", str(smollm_path), "--ctx", "100000", "--no-log"]
    )
    assert too_big.exit_code == 2 and "more than" in too_big.stderr and "8192" in too_big.stderr


@pytest.mark.slow
def test_gpu_layers_on_a_cpu_build_change_nothing(smollm_path: Path) -> None:
    from marco_cli.engine.llama import Engine, gpu_offload_supported

    if gpu_offload_supported():
        pytest.skip("this build offloads to a GPU")
    with Engine(smollm_path, ctx=512, gpu_layers=20) as engine:
        assert engine.gpu_layers == 0 and engine.flash_attn is False
