"""The llama-cpp backend on the real SmolLM2 GGUF: chat, constrained JSON, usage, cache replay."""
from __future__ import annotations

import json

import pytest

from ads.config import ModelConfig
from ads.ledger import CostLedger, LedgeredModel
from models.base import ModelNotFoundError
from models.caching import CachingModel, RequestCache
from models.registry import available_names, resolve
from models.structured import parse_json

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
SCHEMA = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40},
                                           "confidence": {"type": "integer", "minimum": 0, "maximum": 10}},
          "required": ["city", "confidence"], "additionalProperties": False}


def test_chat_answers_a_simple_fact_and_counts_usage(smollm):
    out = smollm.generate(QUESTION, max_tokens=16, temperature=0.0)
    assert "paris" in out.text.lower()
    assert out.prompt_tokens > 5 and 0 < out.completion_tokens <= 16 and out.latency_s > 0
    assert out.model_id == "smollm2-135m" and not out.cached


def test_greedy_is_deterministic_and_samples_differ_by_sample_id(smollm):
    msgs = [{"role": "user", "content": "Write a short sentence about the sea."}]
    a = smollm.generate(msgs, max_tokens=20, temperature=0.0)
    b = smollm.generate(msgs, max_tokens=20, temperature=0.0)
    assert a.text == b.text
    hot = {smollm.generate(msgs, max_tokens=20, temperature=1.0, seed=3, sample_id=i).text for i in range(4)}
    assert len(hot) >= 2
    again = smollm.generate(msgs, max_tokens=20, temperature=1.0, seed=3, sample_id=0).text
    assert again in hot


def test_schema_constrained_json_parses_every_time(smollm):
    """The grammar guarantees shape and types; bounds are checked after parsing."""
    for i in range(5):
        out = smollm.generate([{"role": "user", "content": "Which city is the capital of France? Reply in JSON."}],
                              max_tokens=60, temperature=0.7, sample_id=i, json_schema=SCHEMA)
        obj = json.loads(out.text)
        assert set(obj) == {"city", "confidence"} and isinstance(obj["confidence"], int)
        parsed, err = parse_json(out.text, SCHEMA)
        in_range = 0 <= obj["confidence"] <= 10
        assert (err is None) == in_range  # what the grammar cannot enforce, parse_json catches


def test_cache_replays_real_completions_and_ledger_counts_them(smollm, tmp_path):
    led = CostLedger(tmp_path / "ledger.jsonl")
    m = LedgeredModel(CachingModel(smollm, RequestCache(tmp_path / "c.sqlite")), led, "policy")
    first = m.generate(QUESTION, max_tokens=16, temperature=0.8, seed=5, sample_id=1)
    second = m.generate(QUESTION, max_tokens=16, temperature=0.8, seed=5, sample_id=1)
    assert second.text == first.text and second.cached and not first.cached
    t = led.totals()
    assert t["model_calls"] == 2 and t["cached_calls"] == 1
    assert t["total_tokens"] == first.prompt_tokens + first.completion_tokens


def test_registry_resolves_short_and_metadata_names():
    names = available_names("cache/models")
    assert "smollm2-135m" in names and "qwen2.5-coder-0.5b-instruct" in names
    assert "qwen2.5-coder-0.5b-instruct-awq" in names  # from the GGUF's general.name
    assert resolve(ModelConfig(name="Qwen2.5 Coder 0.5B Instruct AWQ")).location.endswith("qwen2.5-coder-0.5b-instruct.gguf")
    with pytest.raises(ModelNotFoundError, match="setup.sh"):
        resolve(ModelConfig(name="llama-70b"))


def test_count_tokens_uses_the_model_tokenizer(smollm):
    assert smollm.count_tokens("hello world") == 2


def test_prefix_reuse_never_changes_an_answer_whatever_came_before(smollm_path):
    """The same requests, in two orders, on a model that reuses shared prefixes and on one that
    resets before every call: every answer is identical. This is what lets `reuse_prefix`
    default to on (after the load-time check) without breaking replay and resume."""
    from models.llamacpp import LlamaCppModel, split_invariant

    fast = LlamaCppModel(smollm_path, n_ctx=2048)
    assert split_invariant(fast.llm) is True and fast.reuse_prefix is True  # on this CPU build
    slow = LlamaCppModel(smollm_path, n_ctx=2048, reuse_prefix=False)
    reqs = [([{"role": "user", "content": f"Name one fact about {t}."}], dict(temperature=temp, seed=5, sample_id=i))
            for i, (t, temp) in enumerate([("the sea", 0.0), ("the sky", 0.0), ("the sea", 0.9), ("salt", 0.9),
                                           ("the sea", 0.0)])]
    want = [slow.generate(m, max_tokens=24, **kw).text for m, kw in reqs]
    assert [fast.generate(m, max_tokens=24, **kw).text for m, kw in reqs] == want
    assert [fast.generate(m, max_tokens=24, **kw).text for m, kw in reversed(reqs)] == want[::-1]
