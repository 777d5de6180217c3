"""Issue 24, tool use: code-written text never passes, user turns are the user's, chains hang together,
and the repair is the design document's (surgical with feedback, then a full rewrite, `max_repairs` 2).

Scripted models (models.fake.FakeModel) on the real ToolBench files; every prompt is recorded so the
tests can see that the judge's and validators' feedback reaches the repair prompt.
"""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from ads.generators.tools.graph import ProjectedGraph
from ads.generators.tools.ingest import load_file
from ads.generators.tools.pipeline import Built, ToolUsePipeline, build_all
from ads.generators.tools.sampler import ChainPlan, ChainSampler
from ads.generators.tools.tool_registry import ToolRegistry
from ads.generators.tools.turns import (ChainValidator, TurnValidator, feedback_text, repair_targets, turn_issues)
from models.fake import FakeModel
from test_tool_use import TOOLBENCH, HashEmbedder, fill, prose

ROOT = Path(__file__).resolve().parents[2]
# a clean, model-written two-step chain in one tool (data flow: list -> recipe by id)
PLAN = ChainPlan(["the_cocktail_db::list_of_cocktails", "the_cocktail_db::detailed_cocktail_recipe_by_id"],
                 "sequential", "search_then_action", "Food", edge_kinds=["data_flow"])
BAD_OPENING = ("Sure, I'll do that! Could you please provide me with the stock symbol of the company? "
               "(number_of_tickets=333, location=Paris, view_name=sales)")


@pytest.fixture(scope="module")
def built() -> Built:
    return build_all([str(TOOLBENCH)], nestful=True)


class Scripted:
    """A FakeModel wrapper: schema-valid JSON, prose by role, a judge with scripted scores, and a log
    of every prompt. `opening(n)` / `final(n)` / `judge(sid)` override per call."""

    def __init__(self, opening=None, final=None, judge=None, say=None, bad_sid=None):
        self.bad_sid = bad_sid  # the opening of this sample id is BAD_OPENING
        self.prompts: list[tuple[str, str, str]] = []  # (what, sample_id, full prompt text)
        self.n = {"opening": 0, "final": 0, "say": 0}
        self.opening, self.final, self.judge, self.say = opening, final, judge, say
        self.model = FakeModel(self.respond)

    def respond(self, messages, kw):
        text = "\n".join(m["content"] for m in messages)
        schema = kw["json_schema"]
        sid = str(kw["sample_id"])
        if schema and "tool_correctness" in json.dumps(schema):
            self.prompts.append(("judge", sid, text))
            s = self.judge(sid, text) if self.judge else 9
            scores = s if isinstance(s, dict) else {"tool_correctness": s, "task_completion": s, "naturalness": s}
            return json.dumps({"rationale": scores.pop("rationale", "fine"), "scores": scores})
        if schema:
            self.prompts.append(("arguments", sid, text))
            return json.dumps(fill(schema, random.Random(f"{sid}:{text}")))
        system = messages[0]["content"]
        for what, cue, fn in (("opening", "chatting with an AI", self.opening), ("final", "Using the tool results", self.final),
                              ("say", "will do next", self.say)):
            if cue in system:
                self.prompts.append((what, sid, text))
                self.n[what] += 1
                got = fn(self.n[what], messages) if fn else None
                if what == "opening" and self.bad_sid and sid.startswith(self.bad_sid):
                    got = BAD_OPENING
                return got if got is not None else prose(messages)
        self.prompts.append(("other", sid, text))
        return prose(messages)

    def of(self, what):
        return [p for p in self.prompts if p[0] == what]


def _pipe(built, m: Scripted, **kw) -> ToolUsePipeline:
    kw.setdefault("embedder", HashEmbedder())
    kw.setdefault("novelty_threshold", None)
    return ToolUsePipeline(built, m.model, seed=5, **kw)


def _rec(messages, sources=None, **md):
    return {"conversation_id": "c", "messages": messages, "metadata": {"turn_sources": sources or {}, **md}}


# --- (a) the rules ---------------------------------------------------------------------------
def test_the_reported_opening_fails_both_rules():
    rec = _rec([{"role": "user", "content": BAD_OPENING}, {"role": "assistant", "content": "Done, here it is."}])
    problems = [p for _, p in turn_issues(rec)]
    assert any("written as the assistant" in p for p in problems)
    assert any("code-style parameter text" in p for p in problems)
    assert not TurnValidator().check(rec).passed


@pytest.mark.parametrize("opening,ok", [
    ("I'm heading to Lisbon soon - could you check the weather there and find me a hotel for 3 nights?", True),
    ("My order ORD-5521 still hasn't arrived. Can you look it up?", True),
    ("I'll be in Paris next week; which museums are open on Monday?", True),  # "I'll" as a user plans
    ("Sure! Here's the message: find me cocktails", False),
    ("Certainly, I can help with that.", False),
    ("I'll look that up for you right away.", False),
    ("Could you please provide me with the stock symbol?", False),
    ("How is NVDA trading? Details: symbol = NVDA", False),  # the prompt's facts line copied
    ("Check the forecast (city=Lisbon, days=3)", False),
    ("Find flights with originSkyId=LOND please", False),
    ("How can I help you today?", False),
])
def test_opening_rules(opening, ok):
    rec = _rec([{"role": "user", "content": opening}])
    assert TurnValidator().check(rec).passed is ok, turn_issues(rec)


def test_a_later_user_turn_may_say_sure_but_not_speak_as_the_assistant():
    msgs = [{"role": "user", "content": "Find me a cocktail recipe please."},
            {"role": "assistant", "content": "Which cocktail would you like?"},
            {"role": "user", "content": "Sure, a mojito."}]
    assert TurnValidator().check(_rec(msgs)).passed
    msgs[2] = {"role": "user", "content": "Could you please provide your preferred cocktail?"}
    assert not TurnValidator().check(_rec(msgs)).passed


def test_code_written_turns_fail_by_source_and_older_records_by_template():
    msgs = [{"role": "user", "content": "Find me a cocktail recipe please."},
            {"role": "assistant", "content": "Let me look that up.", "tool_calls": [{"name": "x", "parameters": {}}]},
            {"role": "tool", "name": "x", "content": "{}"},
            {"role": "assistant", "content": "The mojito has rum, mint and lime."}]
    assert TurnValidator().check(_rec(msgs, {"0": "model", "1": "model", "3": "model"})).passed
    bad = TurnValidator().check(_rec(msgs, {"0": "model", "1": "fallback", "3": "model"}))
    assert not bad.passed and "messages[1]: say turn was written by code (fallback)" in bad.reason
    assert not TurnValidator().check(_rec(msgs)).passed  # no turn_sources: the fallback template is recognised


def test_a_fallback_turn_blocks_passed_even_with_a_perfect_judge(built):
    m = Scripted(say=lambda n, msgs: "")  # the assistant never manages a sentence before a call
    rec = _pipe(built, m, max_repairs=0).produce("conv_f", PLAN)
    assert rec["judge_scores"]["mean_score"] == pytest.approx(4.6)  # the judge liked it
    assert "fallback" in rec["metadata"]["turn_sources"].values()
    assert not rec["passed"] and "validator:turns" in rec["judge_scores"]["failed_gates"]


def test_appended_values_are_marked_and_block_passed(built):
    m = Scripted(opening=lambda n, msgs: "Please find me some cocktails and a recipe.")  # states no value
    rec = _pipe(built, m, max_repairs=0).produce("conv_a", PLAN)
    first = rec["messages"][0]["content"]
    if re.search(r"\(\w+=", first):  # the plan needed a value the user did not give
        assert rec["metadata"]["turn_sources"]["0"] == "appended" and not rec["passed"]
    else:
        assert rec["metadata"]["turn_sources"]["0"] == "model"


# --- chains --------------------------------------------------------------------------------
def _openai_file(tmp_path) -> Path:
    f = tmp_path / "functions.json"
    fn = lambda name, desc, props, req: {"type": "function", "function": {  # noqa: E731
        "name": name, "description": desc, "parameters": {"type": "object", "properties": props, "required": req}}}
    f.write_text(json.dumps([
        fn("get_sec_filings", "Get the latest SEC filings of a company by its stock symbol",
           {"symbol": {"type": "string"}}, ["symbol"]),
        fn("book_movie_tickets", "Book tickets for a movie at a cinema",
           {"movie": {"type": "string"}, "number_of_tickets": {"type": "integer"}, "location": {"type": "string"}},
           ["movie", "number_of_tickets", "location"]),
        fn("update_view", "Update a database view with a new SQL definition",
           {"view_name": {"type": "string"}, "definition": {"type": "string"}}, ["view_name", "definition"]),
        fn("search_products", "Find products in the shop catalogue", {"q": {"type": "string"}}, ["q"]),
        fn("add_to_cart", "Add a product to the shopping cart", {"product_id": {"type": "string"}}, ["product_id"]),
    ]))
    return f


def test_openai_functions_of_one_file_are_not_one_domain(tmp_path):
    reg = ToolRegistry.build(load_file(_openai_file(tmp_path)))
    g = ProjectedGraph.build(reg)
    sec, movie, view = "functions::get_sec_filings", "functions::book_movie_tickets", "functions::update_view"
    for a in (sec, movie, view):
        for b in (sec, movie, view):
            assert a == b or g.edge(a, b) is None, (a, b, g.edge(a, b))
    assert g.edge("functions::search_products", "functions::add_to_cart") is not None  # "product": one topic
    sampler = ChainSampler(reg, g, 2, 3)
    for i in range(40):
        for mode in ("sequential", "multi_tool", "parallel"):
            plan = sampler.sample(mode, sampler.rng(1, i))
            if plan is not None:
                assert set(plan.endpoint_ids) <= {"functions::search_products", "functions::add_to_cart"}
    v = ChainValidator(reg, g)
    res = v.check({"metadata": {"endpoint_ids": [sec, movie, view], "plan": {"parallel": False}}})
    assert not res.passed and "no data flow and no shared domain" in res.reason
    assert not v.check({"metadata": {"endpoint_ids": [sec, movie], "plan": {"parallel": True}}}).passed


def test_toolbench_chains_all_pass_the_chain_validator(built):
    v = ChainValidator(built.reg, built.projected)
    sampler = ChainSampler(built.reg, built.projected, 2, 3)
    for i in range(60):
        plan = sampler.sample("mixed", sampler.rng(42, i))
        assert v.check({"metadata": {"endpoint_ids": plan.endpoint_ids, "plan": plan.to_dict()}}).passed, plan


def test_a_chain_of_unrelated_tools_is_never_passed_nor_repaired(built):
    m = Scripted()
    pipe = _pipe(built, m)
    plan = ChainPlan(["the_cocktail_db::list_of_cocktails", "investors_exchange_iex_trading::ohlc"], "sequential",
                     "multi_tool_chain", "Food")
    assert built.projected.edge(*plan.endpoint_ids) is None
    rec = pipe.produce("conv_c", plan)
    assert not rec["passed"] and rec["validation"]["failed"][0] == "chain" and rec["metadata"]["repairs"] == 0


# --- (b) the repair ---------------------------------------------------------------------------
def test_max_repairs_defaults_to_two_everywhere():
    from ads.config import load_config
    from ads.generators.tool_use import DEFAULT_CONFIG, ToolUseConfig

    assert ToolUseConfig().max_repairs == 2 and load_config(ToolUseConfig, DEFAULT_CONFIG).max_repairs == 2
    import inspect
    assert inspect.signature(ToolUsePipeline).parameters["max_repairs"].default == 2


def test_surgical_repair_rewrites_only_the_failing_turn_with_the_feedback(built):
    m = Scripted(opening=lambda n, msgs: BAD_OPENING if n == 1 else None)  # fixed on the second try
    rec = _pipe(built, m).produce("conv_s", PLAN)
    assert rec["passed"] and rec["metadata"]["repairs"] == 1 and rec["metadata"]["repair_kinds"] == ["surgical"]
    assert rec["metadata"]["repair"]["turns"] == [0]
    assert m.n["opening"] == 2 and len(m.of("arguments")) == 2  # the calls were not made again
    repair_prompt = m.of("opening")[1][2]
    assert "written as the assistant" in repair_prompt and "Sure, I'll do that!" in repair_prompt
    assert not turn_issues(rec)


def test_judge_rationale_reaches_the_surgical_repair_of_the_final_answer(built):
    def judge(sid, text):
        if sid.endswith(":0"):
            return {"tool_correctness": 9, "task_completion": 0, "naturalness": 9,
                    "rationale": "The answer ignores the recipe instructions."}
        return 9
    m = Scripted(judge=judge)
    rec = _pipe(built, m).produce("conv_j", PLAN)
    assert rec["passed"] and rec["metadata"]["repair_kinds"] == ["surgical"]
    assert rec["metadata"]["repair"]["turns"] == [len(rec["messages"]) - 1]
    prompt = m.of("final")[1][2]
    assert "The answer ignores the recipe instructions." in prompt and "task completion 1.0/5" in prompt
    assert m.n["opening"] == 1  # the opening was kept


def test_surgical_then_full_rewrite_then_give_up_counts_attempts(built):
    m = Scripted(opening=lambda n, msgs: BAD_OPENING)  # never fixed
    pipe = _pipe(built, m)
    rec = pipe.produce("conv_g", PLAN)
    assert not rec["passed"] and rec["metadata"]["repairs"] == 2
    assert rec["metadata"]["repair_kinds"] == ["surgical", "rewrite"]
    assert m.n["opening"] == 3 and len(m.of("judge")) == 3
    rewrite = m.of("opening")[2]
    assert rewrite[1].startswith("conv_g:a2:")  # a new sample, with the feedback in its prompt
    assert "An earlier message was rejected" in rewrite[2] and "code-style parameter text" in rewrite[2]
    assert len(m.of("arguments")) == 4  # the rewrite made the calls again
    m2 = Scripted(opening=lambda n, msgs: BAD_OPENING)
    assert _pipe(built, m2, max_repairs=1).produce("conv_g", PLAN)["metadata"]["repair_kinds"] == ["surgical"]


def test_wrong_tool_calls_go_straight_to_a_full_rewrite(built):
    m = Scripted(judge=lambda sid, text: {"tool_correctness": 0, "task_completion": 9, "naturalness": 9,
                                          "rationale": "Invented ids."} if sid.endswith(":0") else 9)
    rec = _pipe(built, m).produce("conv_t", PLAN)
    assert rec["passed"] and rec["metadata"]["repair_kinds"] == ["rewrite"]
    assert "Invented ids." in m.of("opening")[1][2] and "Invented ids." in m.of("final")[1][2]


def test_feedback_and_targets_are_plain_functions():
    scores = {"ok": True, "tool_correctness": 4.6, "task_completion": 1.8, "naturalness": 4.6, "mean_score": 3.67,
              "reasoning": "No values quoted."}
    fb = feedback_text(["turns"], {"turns": "messages[0]: x"}, scores, 3.5)
    assert fb == "turns: messages[0]: x; judge: task completion 1.8/5; judge says: No values quoted."
    msgs = [{"role": "user", "content": "Find me a mojito recipe please."},
            {"role": "assistant", "content": "On it.", "tool_calls": [{"name": "a", "parameters": {}}]},
            {"role": "tool", "name": "a", "content": "{}"}, {"role": "assistant", "content": "Rum and mint."}]
    assert repair_targets(_rec(msgs), [], scores, 3.5) == [3]
    assert repair_targets(_rec(msgs), ["structure"], scores, 3.5) is None
    assert repair_targets(_rec(msgs), ["novelty"], None, 3.5) == [0]


# --- (c) the seed's command lines --------------------------------------------------------------
def _cli(argv, monkeypatch, m: Scripted, seen: dict):
    import ads.generators.tool_use as tu
    import ads.generators.tools.tool_use_commands as cl

    orig = ORIG_RUN

    def run(cfg, ctx, **kw):
        seen["judge"] = cfg.models.judge.name if cfg.models.judge else None
        seen["run_kw"] = kw
        return orig(cfg, ctx, model=m.model, judge_model=m.model, embedder=HashEmbedder(), progress=False, **kw)

    def models(cfg):
        seen["judge"] = cfg.models.judge.name if cfg.models.judge else None
        return m.model, m.model
    monkeypatch.setattr(cl, "run", run)
    monkeypatch.setattr(cl, "evaluation_models", models)
    return tu.main(argv)


from ads.generators.tool_use import run as ORIG_RUN  # noqa: E402  (before any test patches it)

SEED_COMMANDS = re.compile(r"^\.venv/bin/python main\.py tools (.+?)\s*(#.*)?$", re.M)


def _seed_block() -> list[str]:
    doc = (ROOT / "docs" / "tool_use.md").read_text()
    block = doc.split("## The design document's commands", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [mm.group(1) for mm in SEED_COMMANDS.finditer(block)]


def test_the_seed_commands_in_the_doc_run_as_written(tmp_path, monkeypatch, capsys):
    """Each command of the design document, as docs/tool_use.md prints it, at a tiny size: --n 50 runs
    as --n 3, paths point into tmp_path, the scripted model stands in for the local GGUFs."""
    cmds = _seed_block()
    assert any(c.startswith("generate --n 50 --seed 42 --evaluate") for c in cmds)
    assert any("--judge-model" in c and "--verbose" in c for c in cmds)
    assert any(c.startswith("evaluate ") and "--model" in c and "--repair" in c for c in cmds)
    assert {c.split()[0] for c in cmds} >= {"build", "generate", "evaluate", "validate", "metrics", "inspect"}
    monkeypatch.chdir(tmp_path)
    common = ["--set", f"results_dir={tmp_path}/results", "--set", "tracking.wandb=false", "--set", "cache.enabled=false"]
    # conversation 1's first opening is in the assistant's voice, so --verbose shows a repair
    m = Scripted(bad_sid="conv_42_0001:a0:")
    for c in cmds:
        argv = c.replace("--n 50", "--n 3").split()
        seen: dict = {}
        extra = common if argv[0] in ("generate", "evaluate") else []
        rc = _cli(argv + extra, monkeypatch, m, seen)
        out = capsys.readouterr()
        if argv[0] == "evaluate":
            assert rc in (0, 2) and seen["judge"] == argv[argv.index("--model") + 1]
            assert "conv_42_0000: " in out.out  # --verbose: one decision per conversation
        else:
            assert rc == 0, (c, out.err[-2000:], out.out[-1500:])
        if "--judge-model" in argv:
            assert seen["judge"] == argv[argv.index("--judge-model") + 1] and seen["run_kw"] == {"verbose": True}
            line = next(x for x in out.out.splitlines() if x.startswith("conv_42_0001: "))
            assert "repairs=" in line and "['surgical'" in line, line
    recs = [json.loads(x) for x in (tmp_path / "output" / "conversations.jsonl").read_text().splitlines()]
    assert len(recs) == 3 and (tmp_path / "output" / "evaluated.jsonl").exists()


def test_judge_model_flag_rejects_an_empty_name(tmp_path, monkeypatch, capsys):
    rc = _cli(["generate", "--n", "1", "--judge-model", " ", "--set", f"results_dir={tmp_path}"], monkeypatch,
              Scripted(), {})
    assert rc == 2 and "empty model name" in capsys.readouterr().err
