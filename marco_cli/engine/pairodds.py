"""A process reward model's two probabilities over HTTP (`RemoteEngine.pair_odds`): what to ask
a server and how to read its answer, as pure functions.

An equal logit bias on both tokens leaves P(a) / (P(a) + P(b)) unchanged and makes them the
two likeliest. llama-server reports probabilities after its samplers (`post_sampling_probs`,
top-k 2, temperature 1), so one request gives both exactly. OpenAI-style servers differ in
what they report: probabilities after the bias (both tokens listed: their ratio is exact), or
the raw distribution's (llama-cpp-python's server, vLLM by default), where the biased token is
the one sampled and listed with its raw log-probability; the token missing from the first
answer is then asked for alone, biased, and read the same way.
"""

from __future__ import annotations

import math

from marco_cli.engine.confidence import two_way
from marco_cli.engine.transport import JSON

BIAS = 100  # the OpenAI API's largest logit bias; enough to make a token certain


def native_body(prefix: list[int], pair: tuple[int, int]) -> JSON:
    """llama-server's `/completion` fields for the pair's probabilities after the bias."""
    return {
        "prompt": prefix,
        "n_probs": 2,
        "logit_bias": [[pair[0], BIAS], [pair[1], BIAS]],
        "post_sampling_probs": True,
        "samplers": ["top_k", "temperature"],
    }


def openai_body(prompt: str, biased: tuple[int, ...]) -> JSON:
    """An OpenAI-style `/v1/completions` request biased towards `biased`."""
    return {"prompt": prompt, "logprobs": 2, "logit_bias": {str(t): BIAS for t in biased}}


def native_found(answer: JSON) -> dict[int, float]:
    """Token id -> log-probability, from llama-server's first token's list (KeyError, TypeError,
    ValueError or IndexError for an answer of another shape)."""
    first = (answer.get("completion_probabilities") or [{}])[0]
    tops = first.get("top_probs") or first.get("top_logprobs") or []
    return {
        int(t["id"]): math.log(t["prob"]) if "prob" in t else float(t["logprob"])
        for t in tops
        if "prob" not in t or t["prob"] > 0
    }


def openai_found(answer: JSON, texts: dict[str, int]) -> dict[int, float]:
    """Token id -> log-probability for the tokens whose texts are `texts`, from an OpenAI-style
    answer's listed alternatives (which hold the token it sampled)."""
    logprobs = (answer.get("choices") or [{}])[0].get("logprobs") or {}
    listed = (logprobs.get("top_logprobs") or [{}])[0] or {}
    return {texts[text]: float(lp) for text, lp in listed.items() if text in texts}


def odds(found: dict[int, float], pair: tuple[int, int]) -> float:
    """P(a) / (P(a) + P(b)) from the two log-probabilities."""
    return two_way(found[pair[0]], found[pair[1]])
