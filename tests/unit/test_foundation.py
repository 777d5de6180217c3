"""Specifications of the core: config validation, append-only store, request cache, ledger."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from ads.config import ConfigError, ModelConfig, RunConfig, apply_overrides, load_config
from ads.ledger import CostLedger, LedgeredModel, ledger_scope
from ads.store import JsonlStore, atomic_write_json, read_json
from models.base import Completion, request_key
from models.caching import CachingModel, RequestCache
from models.fake import FakeModel

MSG = [{"role": "user", "content": "hello there"}]


# --- config ---------------------------------------------------------------------------------
def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_unknown_key_is_named_with_the_file(tmp_path):
    p = write(tmp_path, "name: x\ncache:\n  enabeld: true\n")
    with pytest.raises(ConfigError) as e:
        load_config(RunConfig, p)
    assert "cache.enabeld" in str(e.value) and str(p) in str(e.value) and "unknown key" in str(e.value)


def test_wrong_type_is_named(tmp_path):
    p = write(tmp_path, "seed: three\n")
    with pytest.raises(ConfigError, match="'seed'"):
        load_config(RunConfig, p)


def test_set_override_keeps_types(tmp_path):
    p = write(tmp_path, "name: x\n")
    cfg = load_config(RunConfig, p, ["seed=7", "cache.enabled=false", "tracking.project=abc"])
    assert cfg.seed == 7 and cfg.cache.enabled is False and cfg.tracking.project == "abc"
    with pytest.raises(ConfigError, match="seed"):
        load_config(RunConfig, p, ["seed=notanumber"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["seed"])


def test_yaml_is_safe_loaded(tmp_path):
    p = write(tmp_path, "name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(RunConfig, p)


def test_api_key_cannot_be_put_in_a_config():
    with pytest.raises(Exception, match="NAME of an environment variable"):
        ModelConfig(api_key_env="sk-live-abc.def")
    with pytest.raises(Exception):
        ModelConfig.model_validate({"api_key": "sk-123"})


# --- store ----------------------------------------------------------------------------------
def test_store_appends_and_resumes_by_id(tmp_path):
    s = JsonlStore(tmp_path / "o.jsonl")
    s.append({"id": "a", "v": 1})
    s.append({"id": "b", "v": 2})
    again = JsonlStore(tmp_path / "o.jsonl")
    assert again.ids() == {"a", "b"} and [r["v"] for r in again] == [1, 2]


def test_torn_last_line_is_dropped_with_a_message(tmp_path, capsys):
    p = tmp_path / "o.jsonl"
    p.write_bytes(b'{"id": "a"}\n{"id": "b"}\n{"id": "c", "v": [1, 2')
    s = JsonlStore(p)
    assert s.repaired and s.ids() == {"a", "b"}
    assert "torn last line" in capsys.readouterr().out
    s.append({"id": "d"})
    assert [r["id"] for r in JsonlStore(p)] == ["a", "b", "d"]


def test_damage_in_the_middle_is_reported_not_hidden(tmp_path):
    p = tmp_path / "o.jsonl"
    p.write_text('{"id": "a"}\nnot json\n{"id": "c"}\n')
    with pytest.raises(ValueError, match="line 2"):
        JsonlStore(p)


def test_atomic_json_round_trip(tmp_path):
    atomic_write_json(tmp_path / "x.json", {"a": [1, 2]})
    assert read_json(tmp_path / "x.json") == {"a": [1, 2]}
    assert not list(tmp_path.glob(".*tmp"))


# --- cache ----------------------------------------------------------------------------------
def test_cache_hit_replays_identically_with_no_tokens(tmp_path):
    fake = FakeModel(["first answer", "second answer"])
    m = CachingModel(fake, RequestCache(tmp_path / "c.sqlite"))
    a = m.generate(MSG, max_tokens=10, seed=1, sample_id=0)
    b = m.generate(MSG, max_tokens=10, seed=1, sample_id=0)
    assert (a.text, a.cached, b.text, b.cached) == ("first answer", False, "first answer", True)
    assert b.prompt_tokens == b.completion_tokens == 0 and len(fake.calls) == 1
    c = m.generate(MSG, max_tokens=10, seed=1, sample_id=1)  # a distinct sample is a distinct request
    assert c.text == "second answer" and not c.cached


def test_cache_key_covers_every_sampling_input():
    base = dict(max_tokens=10, temperature=0.0, seed=0, sample_id=0, json_schema=None)
    k = request_key("m", MSG, **base)
    for change in [dict(max_tokens=11), dict(temperature=0.5), dict(seed=1), dict(sample_id=2),
                   dict(json_schema={"type": "object"})]:
        assert request_key("m", MSG, **{**base, **change}) != k
    assert request_key("other", MSG, **base) != k


def test_cache_key_tells_schemas_apart_by_property_order():
    """A grammar writes properties in the schema's order, so the order changes the completion."""
    first = {"type": "object", "properties": {"name": {"type": "string"}, "arguments": {"type": "object"}}}
    second = {"type": "object", "properties": {"arguments": {"type": "object"}, "name": {"type": "string"}}}
    kw = dict(max_tokens=10, temperature=0.0, seed=0, sample_id=0)
    assert request_key("m", MSG, json_schema=first, **kw) != request_key("m", MSG, json_schema=second, **kw)
    assert request_key("m", MSG, json_schema=first, **kw) == request_key("m", MSG, json_schema=dict(first), **kw)


def test_cache_persists_across_processes_and_rebuilds_when_corrupt(tmp_path, capsys):
    path = tmp_path / "c.sqlite"
    cache = RequestCache(path)
    cache.put("k", Completion("t", 1, 2, "m", 0.1))
    cache.close()
    assert RequestCache(path).get("k").text == "t"
    path.write_bytes(b"SQLite format 3\x00" + b"\x13" * 5000)  # a truncated/garbled database
    rebuilt = RequestCache(path)
    assert len(rebuilt) == 0 and "integrity" in capsys.readouterr().out
    assert list(tmp_path.glob("c.sqlite.corrupt-*"))


# --- ledger ---------------------------------------------------------------------------------
def test_ledger_totals_per_run_iteration_task_and_survive_reload(tmp_path):
    led = CostLedger(tmp_path / "ledger.jsonl")
    model = LedgeredModel(FakeModel(["one two three"]), led, "policy")
    with ledger_scope(iteration=1, task_id="t1"):
        model.generate(MSG)
        led.record_api("information_retrieval", 1.0, 0.01)
    with ledger_scope(iteration=2, task_id="t2"):
        model.generate(MSG)
    assert led.totals()["completion_tokens"] == 6
    assert led.totals(iteration=1) == {**led.totals(iteration=1), "model_calls": 1, "api_calls": 1, "cost_units": 1.0}
    assert led.totals_by("task_id")["t2"]["prompt_tokens"] == 2
    reloaded = CostLedger(tmp_path / "ledger.jsonl")
    assert reloaded.totals() == led.totals()
    lines = (tmp_path / "ledger.jsonl").read_text().splitlines()
    assert sum(json.loads(l)["completion_tokens"] for l in lines) == led.totals()["completion_tokens"]


def test_cached_calls_are_recorded_but_cost_no_tokens(tmp_path):
    led = CostLedger()
    m = LedgeredModel(CachingModel(FakeModel(["x y"]), RequestCache(tmp_path / "c.sqlite")), led, "judge")
    m.generate(MSG)
    m.generate(MSG)
    t = led.totals()
    assert t["model_calls"] == 2 and t["cached_calls"] == 1 and t["completion_tokens"] == 2


def test_fake_model_validates_messages():
    with pytest.raises(ValueError, match="role"):
        FakeModel(["x"]).generate([{"content": "no role"}])


def test_parse_json_checks_what_grammars_cannot():
    from models.structured import parse_json

    schema = {"type": "object", "properties": {"n": {"type": "integer", "maximum": 10}}, "required": ["n"]}
    assert parse_json('noise {"n": 3} trailing', schema) == ({"n": 3}, None)
    obj, err = parse_json('{"n": 123456}', schema)
    assert obj is None and "schema violation at n" in err
    assert parse_json("no json here", schema)[1] == "no JSON object in the output"
    assert parse_json('{"n": ', schema)[1].startswith("invalid JSON")


def test_a_config_with_aliased_keys_is_saved_as_written_and_reloads(tmp_path):
    """validators' `schema:` is an alias (schema_ in Python); the saved config.yaml must validate again."""
    from pydantic import Field

    from ads.config import RunConfig, load_config
    from ads.run import RunContext

    class Aliased(RunConfig):
        schema_: dict = Field(default_factory=dict, alias="schema")

    cfg = Aliased.model_validate({"schema": {"type": "object"}, "results_dir": str(tmp_path),
                                  "tracking": {"wandb": False}, "cache": {"enabled": False}})
    ctx = RunContext.create(cfg)
    assert load_config(Aliased, ctx.run_dir / "config.yaml").schema_ == {"type": "object"}
    ctx.abort()
