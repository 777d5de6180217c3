"""The llama-cpp backend on the real SmolLM2 GGUF: chat, constrained JSON, usage, cache replay."""
from __future__ import annotations

import json
from pathlib import Path

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


def test_both_json_engines_write_properties_in_the_schemas_order(smollm_path):
    """Not alphabetically: a plan names its API before it writes the API's arguments (before the
    fix the grammar was built from a key-sorted copy and the optimizer wrote arguments first)."""
    from models.llamacpp import LlamaCppModel

    schema = {"type": "object", "properties": {"name": {"enum": ["search", "summarize"]},
                                               "arguments": {"type": "object", "properties": {
                                                   "topic": {"type": "string", "maxLength": 30}},
                                                   "required": ["topic"], "additionalProperties": False}},
              "required": ["name", "arguments"], "additionalProperties": False}
    msgs = [{"role": "user", "content": "Call a tool to learn about volcanoes. Reply in JSON."}]
    for decoding in ("gbnf", "llguidance"):
        m = LlamaCppModel(smollm_path, n_ctx=2048, reuse_prefix=False, json_decoding=decoding)
        out = m.generate(msgs, max_tokens=24, temperature=0.0, json_schema=schema)
        assert out.text.replace(" ", "").startswith('{"name":"s'), (decoding, out.text)
        assert '"arguments"' in out.text, (decoding, out.text)


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


# --- issue 21: prompt state reuse across calls ---------------------------------------------------
_SYS_A = ("You are the guide of a small history museum. " +
          " ".join(f"Room {i} holds objects from the year {1500 + 37 * i} and a map of the harbour."
                   for i in range(14)))
_SYS_B = ("You answer questions about a railway timetable. " +
          " ".join(f"Line {i} leaves platform {i % 5} every {10 + i} minutes." for i in range(14)))


def _alternating(n: int) -> list[tuple[list[dict[str, str]], dict]]:
    """Two long system prompts in turn, so the previous call never shares the next one's prefix;
    greedy and sampled calls, and a JSON-schema one."""
    out = []
    for i in range(n):
        msgs = [{"role": "system", "content": (_SYS_A, _SYS_B)[i % 2]},
                {"role": "user", "content": f"Question {i}: what is in room {i} or on line {i}?"}]
        kw = dict(temperature=0.8, seed=3, sample_id=i) if i % 3 == 2 else dict(temperature=0.0)
        if i == 4:
            kw["json_schema"] = SCHEMA
        out.append((msgs, kw))
    return out


def _same_answers_fewer_tokens(path, n_ctx: int, n: int) -> None:
    from models.llamacpp import LlamaCppModel

    reqs = _alternating(n)
    off = LlamaCppModel(path, n_ctx=n_ctx, reuse_prefix=False)
    want = [off.generate(m, max_tokens=16, **kw) for m, kw in reqs]
    assert [c.meta["prompt_eval_tokens"] for c in want] == [c.prompt_tokens for c in want]
    del off
    on = LlamaCppModel(path, n_ctx=n_ctx, prefix_cache_mb=64)
    assert on.reuse_prefix and on.state_cache is not None
    got = [on.generate(m, max_tokens=16, **kw) for m, kw in reqs]
    assert [c.text for c in got] == [c.text for c in want]
    assert [c.completion_tokens for c in got] == [c.completion_tokens for c in want]
    later = got[2:]  # each system prompt has been seen once
    assert all(c.meta["state_cache"] == "hit" for c in later)
    assert sum(c.meta["prompt_eval_tokens"] for c in later) < 0.3 * sum(c.prompt_tokens for c in later)
    assert all(c.meta["prompt_eval_tokens"] + c.meta["prefix_reused"] == c.prompt_tokens for c in got)


def test_state_cache_keeps_every_answer_and_evaluates_a_shared_prefix_once(smollm_path):
    """SmolLM2 (reuse at any cut): the answers with the prompt state cache on are those of a model
    that decodes every prompt from scratch, and a repeated system prompt is not evaluated again."""
    _same_answers_fewer_tokens(smollm_path, 2048, 7)


def test_state_cache_on_qwen_reuses_at_aligned_cuts_with_the_same_answers():
    """Qwen2.5's 4-bit GGUF is split-invariant only at aligned cuts (models/llamacpp.py): the
    probe finds the alignment and reuse keeps every answer."""
    _same_answers_fewer_tokens(Path(__file__).resolve().parents[2] / "cache" / "models" /
                               "qwen2.5-coder-0.5b-instruct.gguf", 2048, 5)


# --- issue 21: JSON through llguidance token masks ------------------------------------------------
def _harness_schemas() -> list[tuple[str, dict, str]]:
    """The JSON schemas the harness decodes with, each with a prompt that asks for it."""
    from ads.active_search.api_trajectories import trajectory_schema
    from ads.active_search.loop import ADSConfig
    from ads.generators.evolve.prompts import judge_schema
    from ads.quality.judge import DEFAULT_CRITERIA, judgment_schema
    from apis.demonstrations import pairs_schema
    from apis.factory import build_api_registry
    from apis.qa import answer_schema
    from models.fake import FakeModel

    registry = build_api_registry(ADSConfig().apis, model=FakeModel(["x"]), cache_dir="cache")
    return [("plan", trajectory_schema(registry, 2, 160),
             "Plan API calls to learn about the river Nile. Reply in JSON."),
            ("qa", answer_schema(), "What is the capital of Peru? Reply in JSON."),
            ("pairs", pairs_schema(2), "Write two question-answer pairs about volcanoes. Reply in JSON."),
            ("task judge", judge_schema(200), "Judge this answer: 'Paris is in France.' Reply in JSON."),
            ("judgment", judgment_schema(DEFAULT_CRITERIA, 400), "Rate the response 'The sun is a star.' to "
                                                                 "'What is the sun?'. Reply in JSON."),
            ("bounded", SCHEMA, "Which city is the capital of France? Reply in JSON.")]


def test_llguidance_masks_give_the_gbnf_engines_outputs_on_every_harness_schema(smollm_path):
    """Token masks enforce the grammar GBNF would, and allow the tokens GBNF would (any split of
    forced bytes, control tokens read as text), so greedy and sampled outputs are the same."""
    from models.llamacpp import LlamaCppModel

    gbnf = LlamaCppModel(smollm_path, n_ctx=2048, reuse_prefix=False)
    masks = LlamaCppModel(smollm_path, n_ctx=2048, reuse_prefix=False, json_decoding="llguidance")
    for name, schema, prompt in _harness_schemas():
        for i, temperature in enumerate((0.0, 0.9)):
            # 40 tokens: past every schema's forced keys into free values (bench/bench_grammar_cost.py
            # compares whole answers)
            kw = dict(max_tokens=40, temperature=temperature, seed=2, sample_id=i, json_schema=schema)
            msgs = [{"role": "user", "content": prompt}]
            want, got = gbnf.generate(msgs, **kw), masks.generate(msgs, **kw)
            assert got.meta.get("json_decoding") == "llguidance", masks._masks.errors
            assert (got.text, got.completion_tokens) == (want.text, want.completion_tokens), (name, temperature)


def test_llguidance_json_parses_every_time(smollm_path):
    """As test_schema_constrained_json_parses_every_time, through the token masks."""
    from models.llamacpp import LlamaCppModel

    m = LlamaCppModel(smollm_path, n_ctx=2048, json_decoding="llguidance")
    for i in range(5):
        out = m.generate([{"role": "user", "content": "Which city is the capital of France? Reply in JSON."}],
                         max_tokens=60, temperature=0.7, sample_id=i, json_schema=SCHEMA)
        obj = json.loads(out.text)
        assert set(obj) == {"city", "confidence"} and isinstance(obj["confidence"], int)
        parsed, err = parse_json(out.text, SCHEMA)
        assert (err is None) == (0 <= obj["confidence"] <= 10)
    free = [{"role": "user", "content": "Name one river."}]
    assert m.generate(free, max_tokens=12).meta.get("json_decoding") is None
