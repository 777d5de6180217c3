"""Specifications of the tool-use generator, on the real ToolBench sample files and a FakeModel.

The fake answers any json_schema request with a schema-valid object (so control flow is what is
tested), unless a test scripts it to misbehave.
"""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
from jsonschema import Draft202012Validator

from ads.generators.tools.graph import HeteroGraph, ProjectedGraph, data_links
from ads.generators.tools.ingest import ToolFileError, load_file, load_paths
from ads.generators.tools.memory import CorpusMemory
from ads.generators.tools.pipeline import Built, ToolUsePipeline, build_all
from ads.generators.tools.quality import StructuralValidator
from ads.generators.tools.sampler import ALL_MODES, ChainSampler
from ads.generators.tools.tool_calls import OfflineExecutor, SessionMemory
from ads.generators.tools.tool_registry import ToolRegistry
from models.fake import FakeModel

ROOT = Path(__file__).resolve().parents[2]
TOOLBENCH = ROOT / "data" / "toolbench"  # in the repository: data/README.md
Q1 = TOOLBENCH / "data_example" / "instruction" / "G1_query.json"


def fill(schema: dict, rng: random.Random, key: str = "") -> object:
    """A schema-valid instance (the fake's stand-in for grammar-constrained decoding)."""
    if "enum" in schema:
        return rng.choice(schema["enum"])
    t = schema.get("type", "string")
    if t == "object":
        props = schema.get("properties", {})
        keys = list(schema.get("required", [])) + [k for k in props if k not in schema.get("required", [])
                                                   and rng.random() < 0.3]
        return {k: fill(props[k], rng, k) for k in keys}
    if t == "array":
        return [fill(schema.get("items", {}), rng, key)]
    if t == "integer":
        if key in ("tool_correctness", "task_completion", "naturalness"):  # a judge: mostly passing, not always
            return rng.randint(3, 10)
        return rng.randint(0 if "minimum" in schema else 1, 10 if "maximum" in schema else 50)
    if t == "number":
        return 2.5
    if t == "boolean":
        return True
    words = {"message": "Please find cocktails and then give me the recipe details for me", "say": "Checking now.",
             "answer": "I found the results you asked for, with the values from the tools.",
             "question": "Which value should I use?", "reply": "Use this one.", "rationale": "Fine."}
    return words.get(key, f"value {rng.randint(1, 9)}")[: schema.get("maxLength", 400)]


def opening_from(messages) -> str:
    """A well-behaved user proxy: a request in the user's words that states every value it was given."""
    m = re.search(r"Details you know: (.*)\.\n", messages[-1]["content"])
    vals = [kv.split(" = ", 1)[1] for kv in (m.group(1).split(", ") if m else []) if " = " in kv]
    text = "Please find cocktails and then give me the recipe details for me."
    return text[:-1] + (", using " + " and ".join(vals) + "." if vals else ".")


def prose(messages) -> str:
    """The fake's free-text turn, picked by what the system prompt asks for."""
    system = messages[0]["content"]
    if "chatting with an AI" in system:
        return opening_from(messages)
    if "play the user" in system:
        m = re.search(r"The value: (.*)\n", messages[-1]["content"])
        return f"Use {m.group(1)} please." if m else "Use this one."
    for cue, text in (("chatting with an AI", "Please find cocktails and then give me the recipe details for me."),
                      ("Ask for it", "Which value should I use?"), ("play the user", "Use this one."),
                      ("will do next", "Checking that for you now.")):
        if cue in system:
            return text
    return "I found the results you asked for, with the values from the tools."


def schema_model(seed: int = 0) -> FakeModel:
    """Like a llama.cpp backend, the answer depends only on the request (seed, sample id, prompt)."""

    def respond(messages, kw):
        s = kw["json_schema"]
        rng = random.Random(f"{seed}:{kw['seed']}:{kw['sample_id']}:{json.dumps(messages)}")
        return json.dumps(fill(s, rng)) if s else prose(messages)
    return FakeModel(respond)


class HashEmbedder:
    """Bag-of-words hashed into 64 dims: a cheap, deterministic stand-in for MiniLM."""

    def encode(self, texts):
        out = np.zeros((len(texts), 64), np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                out[i, sum(map(ord, w)) % 64] += 1
        n = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(n == 0, 1, n)


@pytest.fixture(scope="module")
def built() -> Built:
    return build_all([str(TOOLBENCH)], nestful=True)


# --- ingestion and registry -----------------------------------------------------------------
def test_ingests_every_real_toolbench_format():
    raw = load_paths([TOOLBENCH])
    assert set(raw.files.values()) == {"toolbench_query", "toolbench_tool", "response_examples"}
    names = {e.id for e in raw.endpoints}
    assert "the_cocktail_db::detailed_cocktail_recipe_by_id" in names
    assert "olato_quotes::love_quote" in names
    assert len(raw.examples) == 10  # 5 + 3 + 2 real queries


def test_registry_deduplicates_and_normalizes(built):
    raw = load_paths([TOOLBENCH])
    reg = ToolRegistry.build(raw)
    assert reg.stats["duplicates_merged"] > 0
    assert len(reg.endpoints) == len({e.id for e in raw.endpoints})
    ep = reg.endpoints["the_cocktail_db::detailed_cocktail_recipe_by_id"]
    assert [(p.name, p.type, p.required) for p in ep.params] == [("id", "string", True)]
    assert ep.output_source == "template" and "ingredients" in ep.output_schema["properties"]
    assert all(p.type in ("string", "number", "integer", "boolean", "array", "object")
               for e in reg.endpoints.values() for p in e.params)
    back = ToolRegistry.from_dict(json.loads(json.dumps(reg.to_dict())))
    assert {k: v.to_dict() for k, v in back.endpoints.items()} == {k: v.to_dict() for k, v in reg.endpoints.items()}


def test_openai_function_schemas(tmp_path):
    f = tmp_path / "weather.json"
    f.write_text(json.dumps([{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                       "required": ["city"]}}}]))
    raw = load_file(f)
    (ep,) = raw.endpoints
    assert ep.id == "weather::get_weather"
    assert ep.arguments_schema()["required"] == ["city"]
    assert {p.name: p.type for p in ep.params} == {"city": "string", "days": "integer"}


@pytest.mark.parametrize("content,needle", [
    ("", "empty file"),
    ("{not json", "not valid JSON"),
    (json.dumps({"tool_name": "x", "api_list": [{"description": "no name"}]}), "field 'api_list[0].name': missing"),
    (json.dumps([{"api_list": [{"tool_name": "t", "api_name": "a", "required_parameters": "oops"}]}]),
     "field '[0].api_list[0].required_parameters': expected a list"),
    (json.dumps({"hello": 1}), "unrecognised tool format"),
])
def test_bad_tool_file_is_one_clear_error(tmp_path, content, needle):
    f = tmp_path / "bad.json"
    f.write_text(content)
    with pytest.raises(ToolFileError) as e:
        load_file(f)
    assert str(f) in str(e.value) and needle in str(e.value)


# --- graphs and sampler ---------------------------------------------------------------------
def test_heterogeneous_graph_has_five_node_types(built):
    counts = built.hetero.count_by_type()
    assert set(counts) == {"tool", "endpoint", "parameter", "category", "field_type"}
    assert counts["endpoint"] == len(built.reg.endpoints)
    assert json.dumps(HeteroGraph.build(built.reg).to_dict()) == json.dumps(built.hetero.to_dict())


def test_projected_graph_links_outputs_to_parameters(built):
    reg = built.reg
    e = built.projected.edge("the_cocktail_db::list_of_cocktails", "the_cocktail_db::detailed_cocktail_recipe_by_id")
    assert e is not None and e.kind == "data_flow" and ("id", "id") in e.links
    air, flights = reg.endpoints["sky_scrapper::skyscrappersearchairport"], \
        reg.endpoints["sky_scrapper::skyscrapperflightsearch"]
    assert ("skyId", "originSkyId") in data_links(air, flights)
    assert built.projected.stats()["edges"]["data_flow"] > 10


@pytest.mark.parametrize("mode", ALL_MODES)
def test_sampler_modes_are_deterministic_and_honour_their_contract(built, mode):
    s = ChainSampler(built.reg, built.projected, 2, 3)
    a = [s.sample(mode, s.rng(7, i)) for i in range(12)]
    fresh = ChainSampler(built.reg, ProjectedGraph.build(built.reg), 2, 3)  # rebuilt graph, same answers
    b = [fresh.sample(mode, s.rng(7, i)) for i in range(12)]
    assert [p.to_dict() for p in a] == [p.to_dict() for p in b]
    assert [p.to_dict() for p in a] != [s.sample(mode, s.rng(8, i)).to_dict() for i in range(12)]
    for p in a:
        assert 2 <= len(p.endpoint_ids) <= 3 and len(set(p.endpoint_ids)) == len(p.endpoint_ids)
        inner = p.mode.split(":")[-1]
        if inner == "multi_tool":
            assert len({built.reg.endpoints[e].tool_id for e in p.endpoint_ids}) >= 2
        if inner == "clarification_first":
            assert p.clarification_param in {q.name for q in built.reg.endpoints[p.endpoint_ids[0]].required}
        if inner == "parallel":
            assert p.parallel and p.pattern_type == "parallel"
            for x in p.endpoint_ids:
                for y in p.endpoint_ids:
                    e = built.projected.edge(x, y)
                    assert e is None or e.kind != "data_flow"
        elif inner in ("sequential", "clarification_first"):
            for x, y in zip(p.endpoint_ids, p.endpoint_ids[1:]):
                assert built.projected.edge(x, y).kind in ("data_flow", "same_tool")
    if mode == "mixed":
        assert len({p.mode for p in a}) >= 3


# --- executor -------------------------------------------------------------------------------
def test_executor_outputs_match_output_schema_and_are_deterministic(built):
    ex = OfflineExecutor(seed=3)
    for ep in built.reg.endpoints.values():
        args = {p.name: (p.default if p.default is not None and p.type == "string" else
                         "x" if p.type == "string" else 1 if p.type in ("integer", "number") else
                         True if p.type == "boolean" else [] if p.type == "array" else {})
                for p in ep.required}
        if p_enum := [p for p in ep.required if p.enum]:
            args.update({p.name: p.enum[0] for p in p_enum})
        r = ex.execute(ep, args)
        assert r.ok, (ep.id, r.error)
        if ep.output_schema.get("type") == "object":
            assert Draft202012Validator(ep.output_schema).is_valid(r.output), ep.id
        assert ex.execute(ep, args).output == r.output
    bad = ex.execute(built.reg.endpoints["the_cocktail_db::detailed_cocktail_recipe_by_id"], {"idx": 1})
    assert not bad.ok and "invalid arguments" in bad.output["error"]


def test_session_memory_grounds_ids_across_steps(built):
    ex = OfflineExecutor(seed=1)
    search = built.reg.endpoints["sky_scrapper::skyscrappersearchairport"]
    out = ex.execute(search, {"query": "Lisbon"}).output
    mem = SessionMemory()
    mem.add(0, out)
    c = mem.candidates("originSkyId")
    assert c and c[0].step == 0 and c[0].field == "skyId"
    assert mem.candidates("completely_unrelated") == []


# --- conversation, validation, judge, repair ------------------------------------------------
def _pipe(built, model, **kw) -> ToolUsePipeline:
    kw.setdefault("embedder", HashEmbedder())
    return ToolUsePipeline(built, model, seed=5, **kw)


def test_pipeline_produces_records_in_the_documented_format(built):
    pipe = _pipe(built, schema_model(), mode="mixed", max_repairs=0)
    for i in range(6):
        plan, steer = pipe.plan(i)
        rec = pipe.produce(f"conv_5_{i:04d}", plan)
        pipe.remember(plan)
        assert set(rec) >= {"conversation_id", "messages", "tool_calls", "tool_outputs", "judge_scores", "passed",
                            "metadata"}
        assert StructuralValidator(built.reg).issues(rec) == []
        md = rec["metadata"]
        assert md["endpoint_ids"] == plan.endpoint_ids and md["num_tool_calls"] == len(rec["tool_calls"])
        assert set(rec["judge_scores"]) >= {"tool_correctness", "task_completion", "naturalness", "mean_score",
                                            "reasoning", "judge_model", "passed", "failed_gates"}
        for c in rec["tool_calls"]:
            ep = built.reg.endpoints[c["name"]]
            assert Draft202012Validator(ep.arguments_schema()).is_valid(c["parameters"])
        if i > 0:
            assert steer["candidates"] >= 1


def test_later_arguments_are_grounded_in_earlier_outputs(built):
    from ads.generators.tools.sampler import ChainPlan

    pipe = _pipe(built, schema_model(), max_repairs=0, evaluate=False)
    plan = ChainPlan(["sky_scrapper::skyscrappersearchairport", "sky_scrapper::skyscrapperflightsearch"],
                     "sequential", "search_then_action", "sky-scrapper", edge_kinds=["data_flow"])
    rec = pipe.produce("conv_g", plan)
    first_out = rec["tool_outputs"][0]["output"]
    args = rec["tool_calls"][1]["parameters"]
    assert args["originSkyId"] in json.dumps(first_out)
    lin = rec["metadata"]["lineage"][1]["arguments"]
    assert any(a["param"] == "originSkyId" and a["source"] == "tool_output" and a["from_step"] == 0 for a in lin)
    assert rec["metadata"]["memory_grounding_rate"] == 1.0


def test_ungroundable_required_argument_warns(built, caplog):
    from ads.generators.tools.sampler import ChainPlan

    pipe = _pipe(built, schema_model(), max_repairs=0, evaluate=False)
    plan = ChainPlan(["the_cocktail_db::list_of_cocktails", "the_cocktail_db::detailed_cocktail_recipe_by_id"],
                     "sequential", "search_then_action", "Food")
    # sabotage: the first step's output loses its `id` field, so step 1 cannot be grounded
    pipe.b.reg.endpoints["the_cocktail_db::list_of_cocktails"].output_schema = {
        "type": "object", "properties": {"title": {"type": "string"}}}
    try:
        with caplog.at_level("WARNING", logger="ads.tool_use"):
            rec = pipe.produce("conv_w", plan)
    finally:
        pipe.b.reg.endpoints.clear()
        pipe.b.reg.endpoints.update(build_all([str(TOOLBENCH)], nestful=True).reg.endpoints)
    assert rec["metadata"]["grounding_warnings"] == [
        {"step": 1, "endpoint": "the_cocktail_db::detailed_cocktail_recipe_by_id", "params": ["id"]}]
    assert "unresolvable required params: ['id']" in caplog.text
    assert StructuralValidator(pipe.reg).issues(rec) == []  # the fallback still makes a valid call


def test_malformed_model_output_is_counted_and_repaired_never_raised(built):
    good = schema_model()
    n = {"i": 0}

    def flaky(messages, kw):
        n["i"] += 1
        if n["i"] % 2:  # every other reply is garbage
            return "I think {\"arguments\": broken"
        return good.generate(messages, json_schema=kw["json_schema"]).text
    pipe = _pipe(built, FakeModel(flaky), max_repairs=0)
    plan, _ = pipe.plan(0)
    rec = pipe.produce("conv_m", plan)
    counts = rec["metadata"]["counts"]
    assert sum(v for k, v in counts.items() if k.startswith("parse_failures")) >= 1
    assert StructuralValidator(built.reg).issues(rec) == []


def test_arguments_not_from_the_user_are_rejected_then_fall_back(built):
    from ads.generators.tools.sampler import ChainPlan

    def liar(messages, kw):
        if not kw["json_schema"]:
            return prose(messages)
        obj = fill(kw["json_schema"], random.Random(0))
        if "arguments" in obj and "symbol" in obj["arguments"]:
            obj["arguments"]["symbol"] = "ZZZZ-invented"
        return json.dumps(obj)
    pipe = _pipe(built, FakeModel(liar), max_repairs=0, evaluate=False)
    plan = ChainPlan(["investors_exchange_iex_trading::ohlc", "investors_exchange_iex_trading::iex_short_interest_list"],
                     "sequential", "sequential_multi_step", "Finance")
    rec = pipe.produce("conv_l", plan)
    c = rec["metadata"]["counts"]
    assert c["ungrounded_arg_rejections"] >= 1 and c["arg_fallbacks"] >= 1
    assert rec["tool_calls"][0]["parameters"]["symbol"] == "qcom"  # the documented default the user was given


def test_judge_threshold_and_repair_loop(built):
    """A judge that scores 2/10 until the second attempt: one repair, then a pass."""
    base = schema_model()

    def judge(messages, kw):
        if "tool_correctness" in json.dumps(kw["json_schema"] or {}):
            passed = str(kw["sample_id"]).split(":")[2] == "1"  # judge:<id>:<attempt>
            s = 9 if passed else 2
            return json.dumps({"rationale": "ok" if passed else "weak",
                               "scores": {"tool_correctness": s, "task_completion": s, "naturalness": s}})
        return base.generate(messages, json_schema=kw["json_schema"]).text
    m = FakeModel(judge)
    pipe = _pipe(built, m, max_repairs=1, threshold=3.5)
    plan, _ = pipe.plan(0)
    rec = pipe.produce("conv_r", plan)
    assert rec["passed"] and rec["metadata"]["repairs"] == 1 and rec["metadata"]["attempt"] == 1
    assert rec["judge_scores"]["mean_score"] == pytest.approx(4.6)
    pipe0 = _pipe(built, m, max_repairs=0, threshold=3.5)
    rec0 = pipe0.produce("conv_r0", plan)
    assert not rec0["passed"] and rec0["judge_scores"]["failed_gates"] == ["mean_score<3.5"]


def test_structural_validator_catches_broken_records(built):
    pipe = _pipe(built, schema_model(), max_repairs=0, evaluate=False)
    plan, _ = pipe.plan(1)
    rec = pipe.produce("conv_s", plan)
    v = StructuralValidator(built.reg)
    broken = json.loads(json.dumps(rec))
    broken["tool_calls"][0]["name"] = "nope::nope"
    assert any("unknown endpoint" in x for x in v.issues(broken))
    broken = json.loads(json.dumps(rec))
    broken["messages"] = [m for m in broken["messages"] if m["role"] != "tool"]
    assert any("got no tool message" in x or "answers no pending" in x or "num_turns" in x for x in v.issues(broken))


def test_corpus_memory_steers_toward_unfamiliar_chains():
    mem = CorpusMemory(HashEmbedder())
    mem.add("domain Food; tools cocktail; recipes and drinks")
    idx, sims = mem.choose(["domain Food; tools cocktail; recipes and drinks",
                            "domain Finance; tools stock exchange; short interest"])
    assert idx == 1 and sims[0] > sims[1]
    off = CorpusMemory(HashEmbedder(), enabled=False)
    off.add("anything")
    assert off.choose(["a", "b"]) == (0, []) and len(off) == 0


def test_steering_raises_diversity_over_plans(built):
    """Plans only (no model): the memory must not lower endpoint coverage, and here it raises it."""
    from ads.generators.tools.metrics import diversity

    res = {}
    for on in (False, True):
        pipe = _pipe(built, schema_model(), corpus_memory=on, candidates=6, mode="sequential")
        recs = []
        for i in range(30):
            plan, _ = pipe.plan(i)
            pipe.remember(plan)
            recs.append({"metadata": {"tool_ids_used": list(dict.fromkeys(built.reg.endpoints[e].tool_id
                                                                          for e in plan.endpoint_ids)),
                                      "endpoint_ids": plan.endpoint_ids, "domain": plan.domain,
                                      "pattern_type": plan.pattern_type}, "messages": []})
        res[on] = diversity(recs, len(built.reg.tools()), len(built.reg.endpoints))
    assert res[True]["distinct_endpoints"] > res[False]["distinct_endpoints"]
    assert res[True]["tool_entropy_bits"] > res[False]["tool_entropy_bits"]


# --- free-text turns ------------------------------------------------------------------------
@pytest.mark.parametrize("raw,want", [
    ("Sure, I can help with that! Here's the message:\n\n\"Can you list cocktails for me?\"",
     "Can you list cocktails for me?"),
    ("User: Find me a hotel in Paris.\nAssistant: Sure, which dates?", "Find me a hotel in Paris."),
    ("**User:** Find me a hotel in Paris please", "Find me a hotel in Paris please"),
    ('{"message": "Please list cocktails for me today"}', "Please list cocktails for me today"),
    ("Here are the values you found:\n\n- Album: Nova Center\n- Tracks: 124", "- Album: Nova Center\n- Tracks: 124"),
    ('```json\n{\n"sport": "nfl"\n}\n```', ""),  # code instead of prose
    ('I think {"arguments": broken', ""),
    ("python\ndef find(restaurant_id):\n    return search(restaurant_id)", ""),
    ("Can you find a restaurant for me? I'd like to return to Paris for it.", "Can you find a restaurant for me? "
                                                                              "I'd like to return to Paris for it."),
    ("ok", ""),
])
def test_clean_text_keeps_only_the_turn_itself(raw, want):
    from ads.generators.tools.turn_text import clean_text

    assert clean_text(raw) == want


def test_clean_text_cuts_long_replies_at_a_sentence():
    from ads.generators.tools.turn_text import clean_text

    text = "First sentence is here. " * 30
    out = clean_text(text, max_chars=100)
    assert len(out) <= 100 and out.endswith(".")


# --- the run: JSONL output, determinism, resume, CLI ------------------------------------------
def _cfg(tmp_path, **kw):
    from ads.generators.tool_use import ToolUseConfig

    data = {"name": "t", "seed": 11, "n": 5, "mode": "mixed", "results_dir": str(tmp_path / "results"),
            "cache": {"enabled": False}, "tracking": {"wandb": False},
            "tools": {"paths": [str(TOOLBENCH)], "nestful": True}, "max_repairs": 0}
    data.update(kw)
    return ToolUseConfig.model_validate(data)


def _run(cfg, run_dir, model=None, resume=False):
    from ads.generators.tool_use import run
    from ads.run import RunContext

    ctx = RunContext.create(cfg, resume=resume, run_dir=run_dir)
    m = model or schema_model(1)
    return run(cfg, ctx, model=m, judge_model=m, embedder=HashEmbedder(), progress=False)


def test_run_writes_documented_jsonl_and_same_seed_gives_identical_output(tmp_path, capsys):
    cfg = _cfg(tmp_path)
    s1 = _run(cfg, tmp_path / "a")
    s2 = _run(cfg, tmp_path / "b")
    a = (tmp_path / "a" / "conversations.jsonl").read_text()
    assert a == (tmp_path / "b" / "conversations.jsonl").read_text()
    recs = [json.loads(x) for x in a.splitlines()]
    assert [r["conversation_id"] for r in recs] == [f"conv_11_{i:04d}" for i in range(5)]
    for r in recs:
        assert set(r) >= {"conversation_id", "messages", "tool_calls", "tool_outputs", "judge_scores", "passed",
                          "metadata"}
        assert r["metadata"]["corpus_memory_enabled"] is True and r["metadata"]["seed"] == 11
    assert s1["diversity"] == s2["diversity"] and s1["conversations"] == 5
    out = capsys.readouterr().out
    assert "[coverage] Domain distribution" in out and "Endpoints used:" in out
    other = _run(_cfg(tmp_path, seed=12), tmp_path / "c")
    assert (tmp_path / "c" / "conversations.jsonl").read_text() != a and other["conversations"] == 5


def test_resume_after_kill_neither_loses_nor_repeats_records(tmp_path):
    cfg = _cfg(tmp_path, n=4)
    _run(cfg, tmp_path / "straight")
    good = schema_model(1)
    calls = {"n": 0}

    def dies(messages, kw):  # killed part-way through the third conversation
        calls["n"] += 1
        if calls["n"] > 2 * 5 + 3:
            raise KeyboardInterrupt
        return good.generate(messages, json_schema=kw["json_schema"]).text
    with pytest.raises(KeyboardInterrupt):
        _run(cfg, tmp_path / "killed", model=FakeModel(dies))
    path = tmp_path / "killed" / "conversations.jsonl"
    partial = path.read_text().splitlines()
    assert 1 <= len(partial) < 4
    with path.open("a") as f:
        f.write('{"conversation_id": "conv_11_00')  # a torn line from the kill
    _run(cfg, tmp_path / "killed", resume=True)
    resumed = [json.loads(x) for x in path.read_text().splitlines()]
    straight = [json.loads(x) for x in (tmp_path / "straight" / "conversations.jsonl").read_text().splitlines()]
    assert [r["conversation_id"] for r in resumed] == [r["conversation_id"] for r in straight]
    # steering memory and novelty pool were rebuilt from disk, so the plans and texts match
    assert [r["metadata"]["plan"] for r in resumed] == [r["metadata"]["plan"] for r in straight]
    assert [r["messages"] for r in resumed] == [r["messages"] for r in straight]


def _cli(argv, monkeypatch, model=None):
    import ads.generators.tool_use as tu
    import ads.generators.tools.tool_use_commands as cl

    m = model or schema_model(2)
    orig = cl.run
    monkeypatch.setattr(cl, "run", lambda cfg, ctx, **kw: orig(cfg, ctx, model=m, judge_model=m, embedder=HashEmbedder(),
                                                          progress=False, **kw))
    monkeypatch.setattr(cl, "evaluation_models", lambda cfg: (m, m))
    return tu.main(argv)


def _generate(tmp_path, monkeypatch, *extra):
    out = tmp_path / "conv.jsonl"
    rc = _cli(["generate", "--n", "4", "--seed", "3", "--output", str(out), "--set", f"results_dir={tmp_path}/r",
               "--set", "tracking.wandb=false", "--set", "cache.enabled=false", *extra], monkeypatch)
    assert rc == 0
    return out


def test_cli_generate_flags_validate_metrics_and_inspect(tmp_path, monkeypatch, capsys):
    out = _generate(tmp_path, monkeypatch, "--mode", "parallel", "--no-corpus-memory")
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(recs) == 4
    assert all(r["metadata"]["sampling_mode"] == "parallel" and not r["metadata"]["corpus_memory_enabled"]
               for r in recs)
    assert all(len(r["messages"][1]["tool_calls"]) >= 2 for r in recs)  # one turn, several calls
    capsys.readouterr()
    assert _cli(["validate", "--input", str(out)], monkeypatch) == 0
    assert "4/4 conversations structurally valid" in capsys.readouterr().out
    broken = tmp_path / "broken.jsonl"
    r0 = dict(recs[0], tool_calls=[{"name": "nope::nope", "parameters": {}}])
    broken.write_text(json.dumps(r0) + "\n")
    assert _cli(["validate", "--input", str(broken)], monkeypatch) == 1
    assert "unknown endpoint" in capsys.readouterr().out
    assert _cli(["metrics", "--input", str(out), "--json"], monkeypatch) == 0
    m = capsys.readouterr().out
    assert "tool_entropy_bits" in m and "endpoint_set_jaccard_dissimilarity" in m


def test_cli_inspect_verbose_shows_argument_lineage(tmp_path, monkeypatch, capsys):
    out = _generate(tmp_path, monkeypatch, "--mode", "sequential")
    capsys.readouterr()
    assert _cli(["inspect", "--input", str(out), "--verbose"], monkeypatch) == 0
    text = capsys.readouterr().out
    assert "step 0:" in text and "[FIRST STEP]" in text and "→ output fields:" in text
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    grounded = [a for r in recs for row in r["metadata"]["lineage"] for a in row["arguments"]
                if a["source"] == "tool_output"]
    assert grounded, "a sequential chain grounds at least one argument"
    a = grounded[0]
    assert f"GROUNDED via {a['param']}←step{a['from_step']}" in text
    assert f"(from step {a['from_step']} output field" in text


def _judge_model(score: int) -> FakeModel:
    base = schema_model(4)

    def respond(messages, kw):
        if "tool_correctness" in json.dumps(kw["json_schema"] or {}):
            return json.dumps({"rationale": "r", "scores": {"tool_correctness": score, "task_completion": score,
                                                           "naturalness": score}})
        return base.generate(messages, json_schema=kw["json_schema"]).text
    return FakeModel(respond)


@pytest.mark.parametrize("score,code", [(9, 0), (2, 2)])
def test_cli_evaluate_reports_and_exits_2_when_mean_quality_fails(tmp_path, monkeypatch, capsys, score, code):
    out = _generate(tmp_path, monkeypatch, "--no-evaluate")
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert all(r["judge_scores"].get("judged") is False for r in recs)
    ev = tmp_path / "ev" / "evaluated.jsonl"
    rc = _cli(["evaluate", "--input", str(out), "--output", str(ev), "--threshold", "3.5", "--repair",
               "--max-repairs", "1"], monkeypatch, model=_judge_model(score))
    assert rc == code
    report = json.loads((tmp_path / "ev" / "evaluation_report.json").read_text())
    assert report["n"] == 4 and report["judged"] == 4
    assert report["mean_score"] == pytest.approx(1 + 0.4 * score)
    assert report["mean_quality_ok"] is (code == 0)
    if code == 2:  # every conversation failed, so each was repaired once (and failed again)
        earlier = sum(r["metadata"]["repairs"] for r in recs)  # made during generation (novelty)
        assert report["repairs"] == 4 + earlier and report["passed"] == 0
    assert len(ev.read_text().splitlines()) == 4


@pytest.mark.parametrize("extra,judged", [
    ((), False), (("--evaluate",), True), (("--set", "evaluate=true"), True),
    (("--config", "configs/tool_use.yaml"), True), (("--config", "configs/tool_use.yaml", "--no-evaluate"), False)])
def test_cli_generate_judges_only_when_asked(tmp_path, monkeypatch, extra, judged):
    """As in the design document, `tools generate` judges only with --evaluate (issue 24); a config named
    with --config keeps its own `evaluate:` (configs/tool_use.yaml says true), and --set evaluate=true works."""
    monkeypatch.chdir(ROOT)
    out = tmp_path / "conv.jsonl"
    assert _cli(["generate", "--n", "2", "--seed", "3", "--output", str(out), "--set", f"results_dir={tmp_path}/r",
                 "--set", "tracking.wandb=false", "--set", "cache.enabled=false", *extra], monkeypatch) == 0
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(recs) == 2
    assert all(("judge_model" in r["judge_scores"]) is judged for r in recs)
    assert all(r["judge_scores"].get("judged", True) is judged for r in recs)


def test_main_py_tools_forwards_to_this_cli(tmp_path, monkeypatch, capsys):
    from ads.cli import main as ads_main

    out = _generate(tmp_path, monkeypatch)
    capsys.readouterr()
    assert ads_main(["tools", "validate", "--input", str(out)]) == 0
    assert "4/4 conversations structurally valid" in capsys.readouterr().out


def test_build_writes_artifacts(tmp_path, monkeypatch, capsys):
    assert _cli(["build", "--data", str(TOOLBENCH), "--artifacts", str(tmp_path / "art")], monkeypatch) == 0
    names = {p.name for p in (tmp_path / "art").iterdir()}
    assert names == {"registry.json", "heterogeneous_graph.json", "projected_graph.json", "build_manifest.json"}
    reg = ToolRegistry.from_dict(json.loads((tmp_path / "art" / "registry.json").read_text()))
    assert "the_cocktail_db::list_of_cocktails" in reg.endpoints


def test_openai_tools_object_with_declared_returns_feeds_the_graph(tmp_path):
    f = tmp_path / "shop.json"
    f.write_text(json.dumps({"tools": [
        {"type": "function", "function": {"name": "search_products", "description": "Find products",
                                          "parameters": {"type": "object", "properties": {"q": {"type": "string"}},
                                                         "required": ["q"]},
                                          "x-returns": {"type": "object", "properties": {
                                              "items": {"type": "array", "items": {"type": "object", "properties": {
                                                  "product_id": {"type": "string"}}}}}}}},
        {"name": "add_to_cart", "description": "Add a product to the cart",
         "parameters": {"type": "object", "properties": {"product_id": {"type": "string"}},
                        "required": ["product_id"]}}]}))
    reg = ToolRegistry.build(load_file(f))
    g = ProjectedGraph.build(reg)
    e = g.edge("shop::search_products", "shop::add_to_cart")
    assert e is not None and e.kind == "data_flow" and ("product_id", "product_id") in e.links
    assert reg.endpoints["shop::add_to_cart"].output_source == "synthesized"


def test_shipped_config_loads_and_is_registered_with_main_py():
    from ads.config import load_config
    from ads.generators.tool_use import DEFAULT_CONFIG, ToolUseConfig, resolve_paths

    cfg = load_config(ToolUseConfig, DEFAULT_CONFIG)
    assert cfg.kind == "tool_use" and cfg.mode == "mixed" and cfg.corpus_memory
    assert all(Path(p).exists() for p in resolve_paths(cfg.tools.paths))
    from ads.harness.kinds import resolve

    cfg_cls, run = resolve("tool_use")
    assert cfg_cls is ToolUseConfig and callable(run)


def test_planner_gives_one_value_per_parameter_name_across_steps(built):
    from ads.generators.tools.user_values import Planner
    from ads.generators.tools.sampler import ChainPlan

    a, b = "transportistas_de_argentina::cities_postcode_stateisocode_postcode", \
        "transportistas_de_argentina::cities_states_stateisocode"
    plan = ChainPlan([a, b], "sequential", "sequential_multi_step", "Logistics")
    vals = Planner(built.reg, built.projected, seed=5).user_values(plan, "conv_x")  # _pipe uses seed 5
    assert vals[a]["stateIsoCode"] == vals[b]["stateIsoCode"]
    pipe = _pipe(built, schema_model(), max_repairs=0, evaluate=False)
    rec = pipe.produce("conv_x", plan)
    assert rec["messages"][0]["content"].count(str(vals[a]["stateIsoCode"])) >= 1
    for row in rec["metadata"]["lineage"]:
        assert {a_["param"]: a_["source"] for a_ in row["arguments"]}["stateIsoCode"] == "user"


def test_evaluation_report_counts_repairs_and_only_attempted_judgments_as_judge_failures():
    """The end-to-end figures: pass rate, the share that needed a repair, and judge failures only
    where a judge ran (an unjudged record from `generate` without --evaluate is not one)."""
    from ads.generators.tools.metrics import evaluation_report
    from ads.generators.tools.quality import CRITERIA_NAMES

    def rec(passed, repairs, judge):
        kinds = ["surgical", "rewrite"][:repairs]
        return {"passed": passed, "judge_scores": judge,
                "metadata": {"repairs": repairs, "repair_kinds": kinds, "turn_sources": {"0": "model"}}}

    unjudged = {"ok": False, "judged": False, "passed": True, "failed_gates": []}
    failed_judge = {"ok": False, "failed_gates": ["judge"]}
    judged = {"ok": True, "mean_score": 4.0, "failed_gates": [],
              **{c: 4.0 for c in CRITERIA_NAMES}}
    r = evaluation_report([rec(True, 0, unjudged), rec(False, 2, unjudged), rec(True, 1, judged),
                           rec(False, 2, failed_judge)], threshold=3.5)
    assert (r["n"], r["passed"], r["pass_rate"], r["judged"], r["judge_failures"]) == (4, 2, 0.5, 1, 1)
    assert (r["needed_repair"], r["needed_repair_rate"], r["repaired_to_pass"]) == (3, 0.75, 1)
    assert r["repair_kinds"] == {"surgical": 3, "rewrite": 2}
