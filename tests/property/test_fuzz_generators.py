"""The generators' own parsers of model output survive junk: >= 1,000 malformed inputs each,
zero crashes, and every malformed reply becomes a counted rejection in the generator's own
books (its counters, its event log, its attempt record), never a success and never an exception.

Covered here (test_fuzz_parsers.py covers the shared trajectory, judge, schema and
demonstration parsers): tool-use tool-call arguments (single and parallel calls, with
grounding enums), the tool-use judge, the self-evolving task parser and its judge, the
bandit templater's slot JSON and the naive arms' JSON and prose, and the perspectives
response parser (plain and structured).

"Malformed" is decided independently of the code under test where it can be: the first JSON
object in the text (what a grammar-free backend's reply is read as) must decode and satisfy
the schema the model was asked for. Junk that happens to be well-formed must be accepted.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from test_fuzz_parsers import json_values, model_output

from models.fake import FakeModel

ROOT = Path(__file__).resolve().parents[2]
TOOLBENCH = ROOT / "data" / "toolbench"  # in the repository: data/README.md
FUZZ = settings(max_examples=1000, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.filter_too_much])


class Script:
    """A FakeModel whose next reply is whatever the current example says."""

    def __init__(self) -> None:
        self.text = ""
        self.model = FakeModel(lambda messages, kw: self.text, "fuzz")


def well_formed(text: str, schema: dict[str, Any]) -> tuple[bool, Any]:
    """The reference reading: the first '{' starts a JSON value that satisfies the schema."""
    i = text.find("{")
    if i < 0:
        return False, None
    try:
        obj, _ = json.JSONDecoder().raw_decode(text[i:])
    except ValueError:
        return False, None
    return Draft202012Validator(schema).is_valid(obj), obj


@st.composite
def near_object(draw, schema: dict[str, Any]) -> str:
    """Objects with the schema's keys (some missing, some extra) holding values of any type,
    sometimes wrapped in chatter or cut short: the failures a schema check must catch."""
    props = schema.get("properties", {})
    keys = draw(st.lists(st.sampled_from(sorted(props)), unique=True)) if props else []
    obj = {k: draw(json_values) for k in keys}
    if draw(st.booleans()):
        obj.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)))
    text = json.dumps(obj)
    cut = draw(st.integers(0, 3))
    if cut == 0:
        text = text[: draw(st.integers(0, max(0, len(text) - 1)))]
    elif cut == 1:
        text = draw(st.text(max_size=20)) + text + draw(st.text(max_size=20))
    return text


def replies(schema: dict[str, Any]):
    return st.one_of(model_output(), near_object(schema))


# --- tool use: the arguments of tool calls ---------------------------------------------------------
@pytest.fixture(scope="module")
def tool_setup():
    from ads.generators.tools.conversation import ConversationBuilder, DialogueSettings
    from ads.generators.tools.pipeline import build_all
    from ads.generators.tools.sampler import ChainPlan
    from ads.generators.tools.tool_calls import OfflineExecutor, SessionMemory

    built = build_all([str(TOOLBENCH)], nestful=True)
    script = Script()
    b = ConversationBuilder(built.reg, built.projected, script.model, seed=3,
                            settings=DialogueSettings(max_arg_attempts=1))
    # a data-flow chain: step 1's ids come from step 0's output (an enum in the call schema)
    plan = ChainPlan(["sky_scrapper::skyscrappersearchairport", "sky_scrapper::skyscrapperflightsearch"],
                     "sequential", "search_then_action", "Travel", edge_kinds=["data_flow"])
    eps = [built.reg.endpoints[e] for e in plan.endpoint_ids]
    values = b.planner.user_values(plan, "fuzz")
    mem = SessionMemory()
    out0 = OfflineExecutor(3).execute(eps[0], values.get(eps[0].id, {})).output
    mem.add(0, out0)
    cands = {0: {}, 1: b._candidates(mem, eps[1], 1, plan)}
    assert cands[1], "the chain lost its grounding; pick another data-flow pair"
    par = [built.reg.endpoints[e] for e in ("investors_exchange_iex_trading::ohlc",
                                            "investors_exchange_iex_trading::iex_short_interest_list")]
    par_values = b.planner.user_values(ChainPlan([e.id for e in par], "parallel", "parallel", "Finance"), "fuzz")
    return b, script, eps, cands, values, par, par_values


def _user_text(values: dict[str, dict[str, Any]]) -> str:
    return "Please help. " + ", ".join(f"{k} = {v}" for vs in values.values() for k, v in vs.items())


def _call_schema(b, eps, group, cands) -> dict[str, Any]:
    if len(group) == 1:
        props = {"arguments": b._args_schema(eps[group[0]], cands[group[0]])}
    else:
        keys = {i: f"call_{k + 1}" for k, i in enumerate(group)}
        props = {"calls": {"type": "object", "additionalProperties": False, "required": list(keys.values()),
                           "properties": {keys[i]: b._args_schema(eps[i], cands[i]) for i in group}}}
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def _check_call(b, script, text, eps, group, cands, values) -> bool:
    schema = _call_schema(b, eps, group, cands)
    ok, obj = well_formed(text, schema)
    script.text = text
    b.counts.clear()
    args = b._call_args("fuzz:a0", group, eps, cands, values, _user_text(values), [])
    c = b.counts
    event("malformed" if not ok else "well-formed")
    assert set(args) == set(group)
    for i in group:  # whatever the model wrote, the call that is executed satisfies the endpoint's schema
        assert Draft202012Validator(eps[i].arguments_schema()).is_valid(args[i]), (text, args[i])
    if not ok:  # one counted rejection, then the grounded fallback
        assert c["arg_schema_rejections"] == 1 and c["parse_failures.arguments"] == 1, (text, dict(c))
        assert c["arg_fallbacks"] == 1
    else:
        assert c["arg_schema_rejections"] == 0 and c["parse_failures.arguments"] == 0
        got = {i: obj["arguments"] if len(group) == 1 else obj["calls"][f"call_{k + 1}"]
               for k, i in enumerate(group)}
        if c["ungrounded_arg_rejections"]:  # valid JSON that contradicts the user: rejected, counted
            assert c["arg_fallbacks"] == 1
        else:  # valid and grounded: used as written
            assert args == got and c["arg_fallbacks"] == 0
    return ok


@FUZZ
@given(data=st.data())
def test_tool_call_arguments_parser_counts_every_malformed_reply(tool_setup, data):
    """One call (step 0 free, step 1 restricted to ids from step 0's output) or two parallel calls."""
    b, script, eps, cands, values, par, par_values = tool_setup
    case = data.draw(st.sampled_from(["first", "grounded", "parallel"]), label="case")
    if case == "parallel":
        eps, group, cands, values = par, [0, 1], {0: {}, 1: {}}, par_values
        schema = _call_schema(b, eps, group, cands)
        inner, wrap = schema["properties"]["calls"], '{{"calls": {}}}'
    else:
        group = [0] if case == "first" else [1]
        cands = {group[0]: cands[group[0]]}
        schema = _call_schema(b, eps, group, cands)
        inner, wrap = schema["properties"]["arguments"], '{{"arguments": {}}}'
    text = data.draw(st.one_of(model_output(), near_object(schema), near_object(inner).map(wrap.format)),
                     label="reply")
    _check_call(b, script, text, eps, group, cands, values)


@FUZZ
@given(model_output())
def test_tool_use_judge_scores_are_in_range_or_a_counted_failure(text):
    from ads.generators.tools.quality import CRITERIA_NAMES, ToolJudge

    judge = ToolJudge(FakeModel([text], "fuzz-judge"), max_attempts=1)
    rec = {"messages": [{"role": "user", "content": "find a flight"}, {"role": "assistant", "content": "done"}]}
    s = judge.score(rec)
    if s["ok"]:
        assert all(1.0 <= s[c] <= 5.0 for c in CRITERIA_NAMES) and 1.0 <= s["mean_score"] <= 5.0
        assert judge.stats()["failures"] == 0
    else:
        assert s["mean_score"] is None and s["error"] and judge.stats()["failures"] == 1


# --- self-evolving: the task parser and the task judge ----------------------------------------------
@pytest.fixture(scope="module")
def evolve(tmp_path_factory):
    from ads.generators.self_evolving import SelfEvolvingConfig, SelfEvolvingGenerator
    from ads.harness.runner import open_stores
    from ads.run import RunContext

    tmp = tmp_path_factory.mktemp("evolve")
    cfg = SelfEvolvingConfig.model_validate({
        "name": "fuzz", "results_dir": str(tmp / "results"), "cache": {"enabled": False},
        "tracking": {"wandb": False}, "accept_target": 1, "max_attempts": 1, "min_score": 0.0, "seed": 1})
    seeds = [{"id": f"seed-{c}", "instruction": f"Answer the {c} question below in one word.",
              "user_input": f"an example {c} input number {i}", "category": c, "difficulty": "easy",
              "skills_tested": ["basics"], "expected_answer_type": "short_text"}
             for i, c in enumerate(["arithmetic", "capitals", "spelling"])]
    script = Script()
    answerer = FakeModel(["an answer"], "fuzz-ans")
    judge = FakeModel([json.dumps({"analysis": "fine", "difficulty": "easy", "novel": True, "score_0_10": 7,
                                   "tags": ["x"]})], "fuzz-judge")
    ctx = RunContext.create(cfg, run_dir=tmp / "run")
    gen = SelfEvolvingGenerator(cfg, ctx, open_stores(SelfEvolvingGenerator, ctx), generator_model=script.model,
                                answer_model=answerer, judge_model=judge, seeds=seeds)
    gen.restore()
    return gen, script, answerer


@st.composite
def near_task(draw) -> str:
    """Tasks that are nearly right: a wrong category or type, a missing or extra key, a bound broken."""
    task = {"instruction": "Reverse the order of the words in the sentence below.",
            "user_input": draw(st.text(min_size=1, max_size=40)), "category": "spelling", "difficulty": "easy",
            "skills_tested": ["ordering"], "expected_answer_type": "short_text"}
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(sorted(task) + ["extra"]))
        how = draw(st.integers(0, 2))
        if how == 0:
            task.pop(key, None)
        else:
            task[key] = draw(json_values) if how == 1 else draw(st.text(max_size=300))
    text = json.dumps(task)
    return text[: draw(st.integers(0, len(text)))] if draw(st.booleans()) else text


@FUZZ
@given(st.one_of(model_output(), near_task()))
def test_self_evolving_task_parser_rejects_and_logs_every_malformed_task(evolve, text):
    gen, script, answerer = evolve
    script.text = text
    n_answers = len(answerer.calls)
    ok, _ = well_formed(text, gen.schema)
    ev = gen.attempt(0)
    event("malformed" if not ok else "well-formed")
    assert ev["outcome"] in ("accepted", "rejected")
    if not ok:  # the event the run log records and the summary counts under rejection_reasons
        assert (ev["outcome"], ev["stage"], ev["reason"]) == ("rejected", "parse", "malformed_task"), ev
        assert ev["detail"] and ev["raw"] == text[:600]
        assert len(answerer.calls) == n_answers  # no answer is paid for junk
    else:
        assert ev["stage"] != "parse"
        if ev["outcome"] == "accepted":
            assert ev["task"]["instruction"] and ev["task"]["user_input"]


@FUZZ
@given(st.one_of(model_output(), near_object({"properties": {k: {} for k in
                                                             ("analysis", "difficulty", "novel", "score_0_10",
                                                              "tags")}})))
def test_self_evolving_judge_is_a_verdict_in_range_or_a_counted_failure(text):
    from ads.generators.evolve.seeds import DIFFICULTIES
    from ads.generators.evolve.task_judge import TaskJudge

    judge = TaskJudge(FakeModel([text], "fuzz-judge"), max_attempts=1)
    task = {"instruction": "Name the capital.", "user_input": "France", "category": "capitals"}
    v = judge.evaluate(task, "Paris", [], seed=0, sample_id="judge:0")
    if v.ok:
        assert 0 <= v.score <= 10 and isinstance(v.novel, bool) and v.error is None
        assert v.difficulty in (None, *DIFFICULTIES) and len(v.tags) <= 3
    else:  # the attempt is rejected as judge_malformed (see SelfEvolvingGenerator.attempt)
        assert v.error and not v.model_error


# --- bandit recipes: templater slot JSON, naive JSON and prose -----------------------------------
@pytest.fixture(scope="module")
def bandit_arms():
    from ads.config import load_config
    from ads.generators.bandit.arms import build_arms
    from ads.generators.bandit.recipe import extract_context
    from ads.generators.bandit_recipes import BanditConfig

    out = {}
    for recipe in ("freediving_gear_reviews.yaml", "wiki_topic_texts.yaml"):
        cfg = load_config(BanditConfig, ROOT / "configs" / "recipes" / recipe)
        ctx = extract_context(cfg.recipe, cfg.validators)
        for arm in build_arms(ctx, {"balanced": 0.7}):
            out[f"{recipe}:{arm.family}:{arm.output}"] = (arm, ctx)
    assert {k.split(":", 1)[1] for k in out} >= {"templater:json", "naive:json", "naive:text"}
    return out


def _bandit_case(bandit_arms, key: str, text: str):
    arm, ctx = bandit_arms[key]
    att = arm.generate(FakeModel([text], "fuzz"), ctx, "it0000-00", seed=0, max_tokens=100)
    # BanditRun._attempt records `malformed = record is None` and counts it per arm and in the summary
    assert (att.record is None) == bool(att.error), att
    return att, ctx


@FUZZ
@given(data=st.data())
def test_templater_slot_json_is_a_filled_template_or_a_counted_rejection(bandit_arms, data):
    from ads.generators.bandit.arms import item_rng

    key = "freediving_gear_reviews.yaml:templater:json"
    arm, ctx = bandit_arms[key]
    rng = item_rng(0, "it0000-00")
    facets = ctx.draw_facets(rng)
    exp = ctx.grammar.sample(rng)  # the same draw the arm makes for this item id
    schema = ctx.grammar_schema or ctx.grammar.derive_schema(exp.template, exclude=list(facets))
    text = data.draw(replies(schema), label="reply")
    ok, obj = well_formed(text, schema)
    att, _ = _bandit_case(bandit_arms, key, text)
    slots = [s for s in exp.slots if s not in facets]
    event("malformed" if not ok else "well-formed")
    if not ok:
        assert att.record is None, (text, att.record)
    else:  # the derived schema requires every slot: the template is filled around the model's values
        assert att.error is None and att.record["slots"] == {s: obj[s] for s in slots}
        for frag in re.split(r"\{\w+\}", exp.template):
            assert " ".join(frag.split()) in att.record["text"]


@FUZZ
@given(data=st.data())
def test_naive_arm_replies_are_records_or_counted_rejections(bandit_arms, data):
    """JSON replies (a recipe with text and rating) and prose replies (a text-only recipe)."""
    from ads.generators.bandit.recipe import strip_descriptions

    if data.draw(st.booleans(), label="json"):
        key = "freediving_gear_reviews.yaml:naive:json"
        arm, ctx = bandit_arms[key]
        fields = ctx.model_fields()
        props = ctx.output_schema["properties"]
        schema = strip_descriptions({**ctx.output_schema, "properties": {k: props[k] for k in fields},
                                     "required": [k for k in ctx.output_schema.get("required", fields)
                                                  if k in fields]})
        text = data.draw(replies(schema), label="reply")
        ok, obj = well_formed(text, schema)
        att, _ = _bandit_case(bandit_arms, key, text)
        event("json: malformed" if not ok else "json: well-formed")
        if not ok:
            assert att.record is None
        else:
            assert att.record is not None and att.record["text"] == obj["text"]
    else:
        text = data.draw(model_output(), label="reply")
        att, ctx = _bandit_case(bandit_arms, "wiki_topic_texts.yaml:naive:text", text)
        if att.record is not None:
            f = ctx.output_schema["properties"]["text"]
            assert f.get("minLength", 0) <= len(att.record["text"]) <= f.get("maxLength", 10 ** 9)
            assert att.record["text"] in text


# --- perspectives: plain and structured responses ------------------------------------------------
def _engine(output=None, truncated="trim"):
    from ads.generators.persp.engine import Engine
    from ads.generators.persp.settings import QualityConfig, RetryConfig

    return Engine(FakeModel(["x"]), "task", [], 64, 0.7, 0, RetryConfig(),
                  QualityConfig(truncated=truncated), output=output)


PERSP_SCHEMA = {"type": "object", "properties": {"summary": {"type": "string", "minLength": 1},
                                                 "confidence": {"type": "integer", "minimum": 0, "maximum": 10}},
                "required": ["summary", "confidence"], "additionalProperties": False}


@FUZZ
@given(data=st.data(), finish=st.sampled_from([None, "stop", "length"]))
def test_perspectives_response_is_a_value_or_a_counted_rejection(data, finish):
    """Structured responses (a JSON schema, one field kept) and plain text under each truncation rule;
    run_unit keeps a response only when _parse gives no reason, else the reason is recorded and
    the unit counted as rejected."""
    from ads.generators.persp.settings import OutputFormat

    if data.draw(st.booleans(), label="structured"):
        text = data.draw(st.one_of(model_output(), near_object(PERSP_SCHEMA)), label="reply")
        value, err, _ = _engine(OutputFormat(json_schema=PERSP_SCHEMA, field="summary"))._parse(text, finish)
        ok, obj = well_formed(text, PERSP_SCHEMA)
        event("structured: malformed" if not ok else "structured: well-formed")
        assert (value is None) == (err is not None)
        if not ok:
            assert err and err.startswith("malformed structured output")
        elif obj["summary"].strip():
            assert value == obj["summary"].strip()
        return
    text = data.draw(model_output(), label="reply")
    truncated = data.draw(st.sampled_from(["trim", "reject", "keep"]), label="truncated")
    value, err, trimmed = _engine(truncated=truncated)._parse(text, finish)
    if err is None:
        assert isinstance(value, str) and value.strip() and value in text
        assert not trimmed or finish == "length"
    elif finish == "length" and truncated == "reject" and text.strip().strip('"').strip():
        assert err == "cut at max_tokens"
