"""Compute actually spent, per call and per role: prompt tokens requested and evaluated (after
prefix reuse), completion tokens, prefill and decode seconds (ads/ledger.py), from what the
llama.cpp backend reports in Completion.meta; a replayed call computes nothing; backends that
do not report have them null (unknown); old ledger files load; the run summary prints the ratio."""
from __future__ import annotations

import json
from pathlib import Path

from ads.config import ModelConfig, RunConfig, config_hash, _hash_compatible
from ads.ledger import LOST, CostLedger, LedgeredModel, lost_attempt
from ads.run import print_compute
from models.base import Completion
from models.caching import CachingModel, RequestCache, _file_identity, model_identity
from models.fake import FakeModel
from test_state_cache import chat, fake_model, words

SYSTEM = words(60, "s")


def test_the_backend_reports_what_it_evaluated_and_how_long_each_phase_took():
    m = fake_model(align=1)
    a = m.generate(chat(SYSTEM, "first question"), max_tokens=4)
    b = m.generate(chat(SYSTEM, "second question"), max_tokens=4)
    for c in (a, b):
        assert set(c.meta) >= {"prompt_eval_tokens", "prefix_reused", "prefill_s", "decode_s"}
        assert c.meta["prefill_s"] >= 0 and c.meta["decode_s"] >= 0
        assert c.meta["prefill_s"] + c.meta["decode_s"] <= c.latency_s + 1e-6
        assert c.meta["prompt_eval_tokens"] + c.meta["prefix_reused"] == c.prompt_tokens
    assert a.meta["prompt_eval_tokens"] == a.prompt_tokens and b.meta["prompt_eval_tokens"] < b.prompt_tokens // 2


def test_ledger_rows_and_totals_per_role_with_a_replayed_call(tmp_path):
    led = CostLedger(tmp_path / "ledger.jsonl")
    inner = fake_model(align=1)
    cache = RequestCache(tmp_path / "c.sqlite")
    policy = LedgeredModel(CachingModel(inner, cache), led, "policy")
    judge = LedgeredModel(CachingModel(inner, cache), led, "judge")
    c1 = policy.generate(chat(SYSTEM, "first question"), max_tokens=4)
    c2 = policy.generate(chat(SYSTEM, "second question"), max_tokens=4)
    replay = judge.generate(chat(SYSTEM, "first question"), max_tokens=4)  # same request: from the cache
    assert replay.cached
    rows = [json.loads(line) for line in (tmp_path / "ledger.jsonl").read_text().splitlines()]
    assert [r["prompt_eval_tokens"] for r in rows] == [c1.meta["prompt_eval_tokens"], c2.meta["prompt_eval_tokens"], 0]
    assert rows[2]["prefill_s"] == rows[2]["decode_s"] == 0.0 and rows[2]["cached"]
    assert rows[0]["prefill_s"] == round(c1.meta["prefill_s"], 6)
    assert rows[1]["decode_s"] == round(c2.meta["decode_s"], 6)
    run = led.totals()
    requested = c1.prompt_tokens + c2.prompt_tokens  # the replay requested nothing of the model
    computed = c1.meta["prompt_eval_tokens"] + c2.meta["prompt_eval_tokens"]
    assert run["prompt_tokens_requested"] == run["prompt_tokens"] == requested
    assert run["prompt_tokens_computed"] == computed < requested
    assert run["computed_prompt_ratio"] == round(computed / requested, 4)
    assert run["completion_tokens"] == c1.completion_tokens + c2.completion_tokens
    by_role = led.summary()["by_role"]
    assert by_role["policy"]["prompt_tokens_computed"] == computed
    assert by_role["judge"]["prompt_tokens_computed"] == 0 and by_role["judge"]["computed_prompt_ratio"] is None
    assert CostLedger(tmp_path / "ledger.jsonl").totals() == run  # reloads with the new fields


def test_backends_that_do_not_report_compute_leave_rows_and_totals_as_they_were(tmp_path):
    led = CostLedger(tmp_path / "ledger.jsonl")
    m = LedgeredModel(CachingModel(FakeModel(["one two"]), RequestCache(tmp_path / "c.sqlite")), led, "policy")
    m.generate([{"role": "user", "content": "hi there"}])
    m.generate([{"role": "user", "content": "hi there"}])  # cached
    rows = [json.loads(line) for line in (tmp_path / "ledger.jsonl").read_text().splitlines()]
    assert all(r["prompt_eval_tokens"] is r["prefill_s"] is r["decode_s"] is None for r in rows)  # unknown
    assert "prompt_tokens_computed" not in led.totals() and "computed_prompt_ratio" not in led.totals()


def test_mixed_backends_count_the_ratio_over_the_calls_that_report(tmp_path):
    led = CostLedger()
    led.record_completion("policy", Completion("x", 100, 5, "llama", 1.0,
                                               meta={"prompt_eval_tokens": 20, "prefill_s": 0.5, "decode_s": 0.25}))
    led.record_completion("judge", Completion("y", 300, 5, "server", 1.0))
    t = led.totals()
    assert t["prompt_tokens"] == 400 and t["prompt_tokens_requested"] == 100 and t["prompt_tokens_computed"] == 20
    assert t["computed_prompt_ratio"] == 0.2 and t["prefill_s"] == 0.5 and t["decode_s"] == 0.25


def test_an_old_ledger_file_loads_and_totals_as_before(tmp_path):
    path = tmp_path / "ledger.jsonl"
    old = [{"kind": "model", "role": "policy", "model": "m", "prompt_tokens": 10, "completion_tokens": 2,
            "wall_s": 0.5, "cached": False, "replayed_tokens": 0, "cost_units": 0.0, "ok": True,
            "iteration": 1, "task_id": "t", "ts": 1.0},
           {**lost_attempt("policy", 3, "worker died").to_dict(), "ts": 2.0}]
    path.write_text("".join(json.dumps(r) + "\n" for r in old))
    led = CostLedger(path)
    t = led.totals()
    assert t["prompt_tokens"] == 10 and t["lost_attempts"] == 1 and "prompt_tokens_computed" not in t
    assert led.entries[1].kind == LOST and led.entries[0].prompt_eval_tokens is None
    assert led.entries[0].to_dict() == {**old[0], "prompt_eval_tokens": None, "prefill_s": None, "decode_s": None}


def test_the_run_summary_prints_the_ratio(capsys):
    print_compute({"prompt_tokens_requested": 1000, "prompt_tokens_computed": 420, "computed_prompt_ratio": 0.42,
                   "prefill_s": 3.25, "decode_s": 9.5})
    out = capsys.readouterr().out
    assert "420 of 1,000 requested (42%)" in out and "prefill 3.2 s" in out
    print_compute({"prompt_tokens": 5})
    assert capsys.readouterr().out == ""


class _WithModel(RunConfig):
    policy: ModelConfig = ModelConfig()


def test_new_model_fields_keep_run_ids():
    base = _WithModel()
    dumped = base.model_dump(mode="json")
    legacy = {k: v for k, v in dumped["policy"].items() if k not in ("prefix_cache_mb", "json_decoding")}
    assert _hash_compatible(dumped)["policy"] == _hash_compatible({**dumped, "policy": legacy})["policy"]
    big = _WithModel(policy=ModelConfig(prefix_cache_mb=1024))
    assert config_hash(big) == config_hash(base)  # the state cache never changes an output
    for engine in ("gbnf", "llguidance"):  # masks over GBNF's grammar, GBNF's tokens: the same outputs
        assert config_hash(_WithModel(policy=ModelConfig(json_decoding=engine))) == config_hash(base)


def test_the_request_cache_keeps_json_engines_apart():
    """GBNF keeps the key a llama.cpp model always had (old caches replay); llguidance gets its own."""
    gbnf, masks = fake_model(align=1), fake_model(align=1)
    masks.json_decoding = "llguidance"
    assert model_identity(gbnf) == f"FakeBacked|{_file_identity(Path('fake.gguf'))}|fake-llama"
    assert model_identity(masks) == model_identity(gbnf) + "|json:llguidance"
