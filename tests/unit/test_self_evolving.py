"""The self-evolving benchmark loop, specified on scripted models.

The generator's behaviour is scripted per attempt (its `sample_id` is "gen:<attempt>"), so
each test says which attempt writes a good task, a malformed reply, a near-duplicate, ...;
the judge reacts to a marker word in the task's input.
"""
from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from ads.config import ConfigError, load_config
from ads.generators.evolve.curriculum import category_weights, pick_demos, pick_difficulty, sample_category, \
    warm_start_ema
from ads.generators.evolve.prompts import task_schema
from ads.generators.self_evolving import (SelfEvolvingConfig, SelfEvolvingGenerator, build_parser,
                                         config_from_args, run)
from ads.harness.runner import open_stores
from ads.quality.ema import EMATracker
from ads.run import RunContext
from ads.store import JsonlStore
from models.base import ModelError
from models.fake import FakeModel
from models.openai_compat import EndpointFailingError

ROOT = Path(__file__).resolve().parents[2]
CATS = ["arithmetic", "capitals", "spelling"]
SEED_TEXT = {
    "arithmetic": [("Add the two numbers and give only the sum.", "17 and 25"),
                   ("Multiply the numbers given and answer with the product.", "six times seven")],
    "capitals": [("Name the capital city of the country below.", "Portugal"),
                 ("Which city is the seat of government of this state?", "Australia")],
    "spelling": [("Spell the word below backwards, letter by letter.", "lantern"),
                 ("Count the vowels in the given word.", "encyclopedia")],
}


def seeds() -> list[dict]:
    return [{"id": f"seed-{c}-{i}", "instruction": ins, "user_input": inp, "category": c, "difficulty": "easy",
             "skills_tested": ["basics"], "expected_answer_type": "short_text", "reference_answer": None,
             "source": "test"}
            for c, rows in SEED_TEXT.items() for i, (ins, inp) in enumerate(rows)]


def attempt_of(kw) -> int:
    return int(str(kw["sample_id"]).split(":")[1])


SHARED_INPUT = " ".join(f"c{i}" for i in range(60))


def task_json(n: int, category: str, marker: str = "fine", user_input: str | None = None, **extra) -> str:
    """A valid task whose instruction and input share no words with other attempts' tasks."""
    words = " ".join(f"tok{n}w{i}" for i in range(10))
    return json.dumps({"instruction": "Reverse these tokens: " + " ".join(f"ins{n}w{i}" for i in range(5)),
                       "user_input": f"{marker} {words}" if user_input is None else user_input,
                       "category": category, "difficulty": "medium", "skills_tested": ["ordering"],
                       "expected_answer_type": "list", **extra})


def make_generator(plan: dict[int, str] | None = None):
    """plan: attempt -> behaviour; default "fine" (a new, valid task in the requested category)."""
    plan = plan or {}

    def fn(messages, kw):
        n = attempt_of(kw)
        cat = re.search(r'category "([^"]+)"', messages[-1]["content"]).group(1)
        kind = plan.get(n, "fine")
        if kind == "malformed":
            return "Sure! Here is a new task: reverse the tokens (no JSON, sorry)"
        if kind == "truncated":
            return task_json(n, cat)[:60]
        if kind == "empty_input":
            return task_json(n, cat, user_input="   ")
        if kind == "duplicate":
            s = seeds()[0]
            return json.dumps({k: s[k] for k in ("instruction", "user_input", "category", "difficulty",
                                                 "skills_tested", "expected_answer_type")})
        if kind == "seed_instruction":  # a seed's template on a new input
            return json.dumps({**json.loads(task_json(n, cat)), "instruction": seeds()[0]["instruction"]})
        if kind == "same_input":  # a new instruction on an input already in the pool
            return task_json(n, cat, user_input=SHARED_INPUT)
        if kind == "wrong_type":
            return task_json(n, cat, skills_tested="ordering")
        if kind == "error":
            raise ModelError("generator backend failed")
        if kind == "endpoint_down":
            raise EndpointFailingError("circuit open")
        return task_json(n, cat, marker=kind)
    return fn


def judge_fn(messages, kw):
    user = re.search(r"^Input: (.*)$", messages[-1]["content"], re.M).group(1)  # not the similar tasks shown
    if "judgebad" in user:
        return "I think this task is fine, maybe a seven?"
    if "judgeboom" in user:
        raise ModelError("judge backend failed")
    score = 2 if "lowscore" in user else (9 if "great" in user else 7)
    novel = "notnovel" not in user
    return json.dumps({"analysis": "clear task, correct answer", "novel": novel, "difficulty": "medium",
                       "tags": ["ordering", "ordering", "tokens"], "score_0_10": score})


def make(tmp_path, plan=None, *, answer="tokA tokB", judge=judge_fn, run_dir=None, resume=False, **knobs):
    base = {"name": "t", "results_dir": str(tmp_path / "results"), "cache": {"path": str(tmp_path / "c.sqlite")},
            "tracking": {"wandb": False}, "accept_target": 3, "max_attempts": 8, "min_score": 6.0,
            "ema_alpha": 0.5, "demo_k": 3, "seed": 3}
    cfg = SelfEvolvingConfig.model_validate({**base, **knobs})
    ctx = RunContext.create(cfg, resume=resume, run_dir=run_dir or tmp_path / "run")
    return cfg, ctx, dict(generator_model=FakeModel(make_generator(plan), "fake-gen"),
                          answer_model=FakeModel([answer], "fake-ans"), judge_model=FakeModel(judge, "fake-judge"),
                          seeds=seeds())


def events(d: Path) -> list[dict]:
    return [e for e in JsonlStore(d / "run_logs.jsonl") if "attempt" in e]


def items(d: Path) -> list[dict]:
    return JsonlStore(d / "benchmark.jsonl").read()


# --- generation: one schema-constrained task per call, from k demonstrations -------------------
def test_each_attempt_is_one_generation_call_with_k_demos_and_the_task_schema(tmp_path):
    cfg, ctx, parts = make(tmp_path, accept_target=3, max_attempts=3, demo_k=3)
    run(cfg, ctx, **parts)
    calls = parts["generator_model"].calls
    assert [c["sample_id"] for c in calls] == ["gen:0", "gen:1", "gen:2"]
    for c, ev in zip(calls, events(ctx.run_dir)):
        prompt = c["messages"][-1]["content"]
        assert len(re.findall(r"^Example \d+: \{", prompt, re.M)) == 3
        assert "exactly ONE new task" in prompt
        schema = c["json_schema"]
        assert set(schema["required"]) == {"instruction", "user_input", "category", "difficulty", "skills_tested",
                                           "expected_answer_type"}
        assert schema["properties"]["user_input"]["minLength"] == 1
        # the request names the sampled category and the grammar allows only that one
        assert schema["properties"]["category"]["enum"] == [ev["target_category"]]
        assert f'category "{ev["target_category"]}"' in prompt
        assert len(ev["demo_ids"]) == 3
    stored = items(ctx.run_dir)
    assert len(stored) == 3
    for it in stored:
        for key in ("instruction", "user_input", "category", "difficulty", "skills_tested", "expected_answer_type",
                    "answer", "judge", "score_0_10", "ema_global", "ema_category"):
            assert key in it, key
        assert it["user_input"].strip()
        assert it["tags"] == ["ordering", "tokens"]  # judge tags, de-duplicated


def test_half_the_demos_come_from_the_target_category():
    pool = seeds()
    rng = random.Random(0)
    for _ in range(20):
        demos = pick_demos(pool, "capitals", 4, rng)
        assert len(demos) == 4 and len({d["id"] for d in demos}) == 4
        assert sum(d["category"] == "capitals" for d in demos) == 2
    assert pick_demos(pool, "capitals", 0, rng) == []


# --- what to ask for: rare categories, difficulty from the EMAs --------------------------------
def test_category_sampling_favours_under_represented_categories():
    counts = {"a": 10, "b": 1, "c": 0}
    w = category_weights(counts, ["a", "b", "c"])
    assert w["c"] > w["b"] > w["a"] > 0
    assert abs(sum(w.values()) - 1) < 1e-9
    rng = random.Random(1)
    drawn = Counter(sample_category(counts, ["a", "b", "c"], rng) for _ in range(3000))
    assert drawn["c"] > drawn["b"] > drawn["a"]
    flat = category_weights(counts, ["a", "b", "c"], power=0.0)
    assert len(set(round(v, 9) for v in flat.values())) == 1


def test_the_loop_fills_the_category_that_has_fewest_tasks(tmp_path):
    # a steep bias (power 50) makes the choice all but deterministic: always a rarest category
    cfg, ctx, parts = make(tmp_path, accept_target=6, max_attempts=6, category_power=50.0)
    parts["seeds"] = [s for s in parts["seeds"] if s["category"] != "spelling"] + parts["seeds"][-1:]
    run(cfg, ctx, **parts)
    assert events(ctx.run_dir)[0]["target_category"] == "spelling"  # 1 seed against 2 and 2
    pool = Counter(s["category"] for s in parts["seeds"]) + Counter(i["category"] for i in items(ctx.run_dir))
    assert sum(pool.values()) == 11 and max(pool.values()) - min(pool.values()) <= 1


def test_difficulty_follows_the_category_emas():
    assert pick_difficulty(None, 7.5, 8.0) == "medium"
    assert pick_difficulty(9.0, 7.5, 8.0) == "hard"
    assert pick_difficulty(7.0, 7.5, 8.0) == "easy"
    assert pick_difficulty(7.8, 7.5, 8.0) == "medium"
    # a category whose attempts keep failing is asked for easy tasks whatever its scores
    assert pick_difficulty(9.0, 7.5, 8.0, acceptance_ema=0.1, easy_accept_below=0.2) == "easy"
    assert pick_difficulty(9.0, 7.5, 8.0, acceptance_ema=0.5, easy_accept_below=0.2) == "hard"


def test_requested_difficulty_rises_with_high_scores(tmp_path):
    # every task scores 9 ("great"), above hard_above=8: once a category has an EMA, ask for hard
    plan = {n: "great" for n in range(6)}
    cfg, ctx, parts = make(tmp_path, plan, accept_target=6, max_attempts=6)
    run(cfg, ctx, **parts)
    evs = events(ctx.run_dir)
    assert evs[0]["target_difficulty"] == "medium"  # no history yet
    seen: set[str] = set()
    for e in evs:
        if e["target_category"] in seen:
            assert e["target_difficulty"] == "hard", e
        seen.add(e["target_category"])
    assert any(e["target_difficulty"] == "hard" for e in evs)


# --- filters and rejections ----------------------------------------------------------------------
def test_every_rejection_is_logged_with_its_reason_and_the_answerer_runs_only_after_novelty(tmp_path):
    plan = {0: "malformed", 1: "duplicate", 2: "empty_input", 3: "wrong_type", 4: "truncated", 5: "lowscore",
            6: "notnovel", 7: "judgebad", 8: "error", 9: "judgeboom", 10: "fine"}
    cfg, ctx, parts = make(tmp_path, plan, accept_target=1, max_attempts=11)
    summary = run(cfg, ctx, **parts)
    evs = events(ctx.run_dir)
    got = [(e["attempt"], e["outcome"], e["stage"], e["reason"]) for e in evs]
    assert got == [
        (0, "rejected", "parse", "malformed_task"),
        (1, "rejected", "novelty", "reused_instruction"),
        (2, "rejected", "check", "empty_user_input"),
        (3, "rejected", "parse", "malformed_task"),
        (4, "rejected", "parse", "malformed_task"),
        (5, "rejected", "judge", "low_score"),
        (6, "rejected", "judge", "judge_not_novel"),
        (7, "rejected", "judge", "judge_malformed"),
        (8, "error", "generate", "generator_error"),
        (9, "error", "judge", "judge_error"),
        (10, "accepted", "accept", None),
    ]
    assert evs[1]["instruction_max_similarity"] == 1.0 and evs[1]["instruction_nearest_id"] == "seed-arithmetic-0"
    assert "schema violation at skills_tested" in evs[3]["detail"]
    assert evs[5]["score_0_10"] == 2.0 and evs[5]["judge"]["rationale"]
    # no answer was paid for a task that failed parsing, checks or the novelty filter
    answered = sorted(int(c["sample_id"].split(":")[1]) for c in parts["answer_model"].calls)
    assert answered == [5, 6, 7, 9, 10]
    assert summary["rejection_reasons"] == {"malformed_task": 3, "reused_instruction": 1, "empty_user_input": 1,
                                            "low_score": 1, "judge_not_novel": 1, "judge_malformed": 1,
                                            "generator_error": 1, "judge_error": 1}
    assert summary["accepted"] == 1 and summary["attempts"] == 11
    assert [i["attempt"] for i in items(ctx.run_dir)] == [10]


def test_min_score_and_sim_thresholds_are_the_knobs_that_decide(tmp_path):
    # the same scripted run, with the bar lowered below the "lowscore" judgment, accepts it
    cfg, ctx, parts = make(tmp_path, {0: "lowscore"}, accept_target=1, max_attempts=1, min_score=2.0)
    run(cfg, ctx, **parts)
    assert [i["score_0_10"] for i in items(ctx.run_dir)] == [2.0]
    # a seed's template on new data is rejected by default, accepted with the instruction filter off
    for name, knob, reason in (("on", 0.7, "reused_instruction"), ("off", None, None)):
        cfg, ctx, parts = make(tmp_path, {0: "seed_instruction"}, accept_target=1, max_attempts=1,
                               instruction_sim_threshold=knob, run_dir=tmp_path / name,
                               cache={"path": str(tmp_path / f"{name}.sqlite")})
        s = run(cfg, ctx, **parts)
        assert events(tmp_path / name)[0]["reason"] == reason
    assert s["instruction_novelty"] is None
    # sim_threshold 1.0 still rejects an exact copy (Jaccard 1.0 reaches it)
    cfg, ctx, parts = make(tmp_path, {0: "duplicate"}, accept_target=1, max_attempts=1, sim_threshold=1.0,
                           instruction_sim_threshold=None, run_dir=tmp_path / "copy",
                           cache={"path": str(tmp_path / "copy.sqlite")})
    run(cfg, ctx, **parts)
    assert events(tmp_path / "copy")[0]["reason"] == "near_duplicate"


def test_an_accepted_task_blocks_its_near_duplicates(tmp_path):
    # attempts 0-2 write new instructions on one shared input: 0 is accepted, the others
    # differ only in their short instruction and are near-duplicates of it
    plan = {0: "same_input", 1: "same_input", 2: "same_input"}
    cfg, ctx, parts = make(tmp_path, plan, accept_target=2, max_attempts=4)
    run(cfg, ctx, **parts)
    evs = events(ctx.run_dir)
    assert [e["reason"] for e in evs] == [None, "near_duplicate", "near_duplicate", None]
    assert evs[1]["heuristic_nearest_id"] == "item-00000" and evs[1]["heuristic_max_similarity"] >= 0.7
    assert evs[1]["instruction_max_similarity"] < 0.7  # the instruction itself was new


def test_an_accepted_instruction_is_not_accepted_again_with_new_data(tmp_path):
    def gen(messages, kw):  # attempt 1 reuses attempt 0's instruction on a new input
        n = attempt_of(kw)
        cat = re.search(r'category "([^"]+)"', messages[-1]["content"]).group(1)
        t = json.loads(task_json(n, cat))
        if n == 1:
            t["instruction"] = json.loads(task_json(0, cat))["instruction"]
        return json.dumps(t)
    cfg, ctx, parts = make(tmp_path, accept_target=2, max_attempts=3)
    parts["generator_model"] = FakeModel(gen, "fake-gen2")
    run(cfg, ctx, **parts)
    evs = events(ctx.run_dir)
    assert [e["reason"] for e in evs] == [None, "reused_instruction", None]
    assert evs[1]["instruction_nearest_id"] == "item-00000"
    assert parts["answer_model"].calls and all(c["sample_id"] != "ans:1" for c in parts["answer_model"].calls)


def test_minhash_novelty_option(tmp_path):
    plan = {0: "same_input", 1: "same_input"}
    cfg, ctx, parts = make(tmp_path, plan, accept_target=2, max_attempts=3, novelty_method="minhash")
    s = run(cfg, ctx, **parts)
    assert s["novelty"]["method"] == "minhash"
    assert [e["reason"] for e in events(ctx.run_dir)] == [None, "near_duplicate", None]


def test_judge_novelty_veto_can_be_switched_off_and_the_verdict_is_kept(tmp_path):
    cfg, ctx, parts = make(tmp_path, {0: "notnovel"}, accept_target=1, max_attempts=1, judge_novelty_veto=False)
    run(cfg, ctx, **parts)
    (it,) = items(ctx.run_dir)
    assert it["judge"]["novel"] is False and it["score_0_10"] == 7.0


def test_attempts_run_in_this_process_whatever_the_executor_kind(tmp_path, capsys):
    """Attempt n depends on every attempt before it, so there is nothing to hand to workers: a
    `threads` (or `ray`) config runs here one attempt at a time, as `local` does, and says so."""
    cfg, ctx, parts = make(tmp_path, {1: "lowscore"}, accept_target=2, max_attempts=4,
                           executor={"kind": "threads", "workers": 2})
    s = run(cfg, ctx, **parts)
    assert "runs in this process, one attempt at a time" in capsys.readouterr().out
    assert s["accepted"] == 2 and [e["reason"] for e in events(ctx.run_dir)] == [None, "low_score", None]


def test_a_failing_endpoint_ends_the_run_with_a_logged_event(tmp_path):
    cfg, ctx, parts = make(tmp_path, {1: "endpoint_down"}, accept_target=3, max_attempts=3)
    with pytest.raises(EndpointFailingError):
        run(cfg, ctx, **parts)
    log = JsonlStore(ctx.run_dir / "run_logs.jsonl").read()
    assert log[-1]["event"] == "run_aborted" and log[-1]["at_attempt"] == 1
    assert [e["attempt"] for e in events(ctx.run_dir)] == [0]


# --- EMA: stored with each item, restored on restart ----------------------------------------------
def test_items_carry_the_emas_after_them(tmp_path):
    plan = {0: "great", 1: "fine", 2: "great", 3: "fine"}
    cfg, ctx, parts = make(tmp_path, plan, accept_target=4, max_attempts=4, ema_alpha=0.5)
    run(cfg, ctx, **parts)
    stored = items(ctx.run_dir)
    t = EMATracker(0.5)
    for it in stored:
        t.update(it["score_0_10"], it["category"])
        assert it["ema_global"] == pytest.approx(t.value)
        assert it["ema_category"] == pytest.approx(t.get(it["category"]))
    assert [it["score_0_10"] for it in stored] == [9.0, 7.0, 9.0, 7.0]


def test_warm_start_reads_stored_emas_and_replays_when_they_are_missing(tmp_path):
    stored = [{"score_0_10": 8.0, "category": "a", "ema_global": 8.0, "ema_category": 8.0},
              {"score_0_10": 6.0, "category": "b", "ema_global": 7.3, "ema_category": 6.0}]
    t, how = warm_start_ema(stored, alpha=0.5)
    assert how == "stored" and t.value == 7.3 and t.get("b") == 6.0 and t.count == 2
    bare = [{k: v for k, v in it.items() if not k.startswith("ema")} for it in stored]
    t, how = warm_start_ema(bare, alpha=0.5)
    assert how == "replayed" and t.value == pytest.approx(7.0) and t.get("a") == 8.0
    assert warm_start_ema([], 0.5)[1] == "empty"


def test_a_restart_continues_the_emas_of_the_stored_benchmark(tmp_path):
    cfg, ctx, parts = make(tmp_path, {0: "great", 1: "fine"}, accept_target=2, max_attempts=10)
    run(cfg, ctx, **parts)
    first = items(ctx.run_dir)
    cfg, ctx, parts = make(tmp_path, {0: "great", 1: "fine", 2: "great"}, accept_target=3, max_attempts=10,
                           resume=True)
    s = run(cfg, ctx, **parts)
    assert s["warm_start"] == "stored" and s["resumed_from_attempt"] == 2
    third = items(ctx.run_dir)[2]
    assert third["ema_global"] == pytest.approx(0.5 * 9.0 + 0.5 * first[-1]["ema_global"])
    start = [e for e in JsonlStore(ctx.run_dir / "run_logs.jsonl") if e.get("event") == "run_start"]
    assert [e["resumed"] for e in start] == [False, True]
    assert start[1]["ema_global"] == first[-1]["ema_global"]


def test_a_hand_made_benchmark_without_emas_is_imported_and_replayed(tmp_path):
    bench, log = tmp_path / "data" / "benchmark.jsonl", tmp_path / "data" / "run_logs.jsonl"
    bench.parent.mkdir()
    old = [{"instruction": "Translate the word below into French.", "user_input": "cat", "category": "capitals",
            "score_0_10": 8}, {"instruction": "Give the plural of the noun below.", "user_input": "mouse",
                               "category": "spelling", "score_0_10": 6}]
    bench.write_text("".join(json.dumps(o) + "\n" for o in old))
    cfg, ctx, parts = make(tmp_path, accept_target=3, max_attempts=5, ema_alpha=0.5, benchmark_path=str(bench),
                           runlog_path=str(log), resume=True)
    s = run(cfg, ctx, **parts)
    assert s["warm_start"] == "replayed"
    new = JsonlStore(bench).read()[2:]
    assert len(new) == 1 and s["attempts"] == 1  # the two imported items count toward accept_target
    assert new[0]["ema_global"] == pytest.approx(0.5 * 7 + 0.5 * (0.5 * 6 + 0.5 * 8))


def test_benchmark_and_runlog_paths_go_together():
    with pytest.raises(ValueError, match="go together"):
        SelfEvolvingConfig(benchmark_path="data/b.jsonl")


def test_existing_benchmark_files_need_resume(tmp_path):
    bench, log = tmp_path / "b.jsonl", tmp_path / "l.jsonl"
    bench.write_text(json.dumps({"instruction": "x y z w", "user_input": "u", "category": "capitals"}) + "\n")
    with pytest.raises(ConfigError, match="--resume"):
        cfg, ctx, parts = make(tmp_path, benchmark_path=str(bench), runlog_path=str(log))
        SelfEvolvingGenerator(cfg, ctx, open_stores(SelfEvolvingGenerator, ctx), **parts)


# --- resume: no lost, no repeated items ------------------------------------------------------------
def test_kill_between_item_and_event_is_repaired_without_a_duplicate(tmp_path, monkeypatch):
    cfg, ctx, parts = make(tmp_path, accept_target=4, max_attempts=6)
    real_append = JsonlStore.append

    def dying_append(store, rec):
        if store.path.name == "run_logs.jsonl" and rec.get("attempt") == 2:
            raise KeyboardInterrupt  # the process dies after the item, before its event
        real_append(store, rec)
    monkeypatch.setattr(JsonlStore, "append", dying_append)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, ctx, **parts)
    monkeypatch.undo()
    assert len(items(ctx.run_dir)) == 3 and len(events(ctx.run_dir)) == 2
    # a torn half line, as a SIGKILL during a write leaves it
    with open(ctx.run_dir / "benchmark.jsonl", "a") as f:
        f.write('{"id": "item-000')
    cfg, ctx, parts = make(tmp_path, accept_target=4, max_attempts=6, resume=True)
    s = run(cfg, ctx, **parts)
    evs, its = events(ctx.run_dir), items(ctx.run_dir)
    assert [e["attempt"] for e in evs] == [0, 1, 2, 3]
    assert evs[2].get("recovered") is True and evs[2]["item_id"] == "item-00002"
    assert [i["id"] for i in its] == ["item-00000", "item-00001", "item-00002", "item-00003"]
    assert s["accepted"] == 4 and s["attempts"] == 4
    # attempt 2 was not generated again: the resumed process asked only for attempt 3
    assert [c["sample_id"] for c in parts["generator_model"].calls] == ["gen:3"]


def test_a_finished_run_resumed_does_nothing_more(tmp_path):
    cfg, ctx, parts = make(tmp_path, accept_target=2, max_attempts=4)
    run(cfg, ctx, **parts)
    cfg, ctx, parts = make(tmp_path, accept_target=2, max_attempts=4, resume=True)
    s = run(cfg, ctx, **parts)
    assert parts["generator_model"].calls == [] and s["accepted"] == 2 and len(items(ctx.run_dir)) == 2


def test_edited_files_are_refused_not_guessed(tmp_path):
    cfg, ctx, parts = make(tmp_path, accept_target=2, max_attempts=4)
    run(cfg, ctx, **parts)
    with open(ctx.run_dir / "benchmark.jsonl", "a") as f:
        f.write(json.dumps({**items(ctx.run_dir)[0], "id": "item-copy"}) + "\n")
    cfg, ctx, parts = make(tmp_path, accept_target=3, max_attempts=4, resume=True)
    with pytest.raises(ConfigError, match="several items claim attempt"):
        run(cfg, ctx, **parts)


KILL_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
    from test_self_evolving import make
    from ads.generators.self_evolving import run
    from pathlib import Path
    cfg, ctx, parts = make(Path({tmp!r}), accept_target=12, max_attempts=20, run_dir=Path({run!r}),
                           resume={resume})
    for m in parts.values():
        if hasattr(m, "latency_s"):
            m.latency_s = 0.02
    run(cfg, ctx, **parts)
""")


def _run_script(tmp_path, run_dir, resume, kill_after_events=None):
    code = KILL_SCRIPT.format(root=str(ROOT), tests=str(ROOT / "tests" / "unit"), tmp=str(tmp_path),
                              run=str(run_dir), resume=resume)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    if kill_after_events is None:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]
        return
    log = run_dir / "run_logs.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and p.poll() is None:
        if log.exists() and log.read_text().count('"attempt": ') >= kill_after_events:
            break
        time.sleep(0.005)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    assert p.returncode == -signal.SIGKILL, "the run finished before it could be killed"


def test_sigkilled_run_resumes_to_the_same_benchmark_as_an_uninterrupted_run(tmp_path):
    plan_free = tmp_path / "whole"
    _run_script(tmp_path / "a", plan_free, resume=False)
    killed = tmp_path / "killed"
    _run_script(tmp_path / "b", killed, resume=False, kill_after_events=5)
    _run_script(tmp_path / "b", killed, resume=True)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "created_at"} for r in rows]  # noqa: E731
    whole, resumed = items(plan_free), items(killed)
    assert len(resumed) == 12 and len({i["id"] for i in resumed}) == 12
    assert strip(resumed) == strip(whole)
    evs = events(killed)
    assert [e["attempt"] for e in evs] == list(range(len(evs)))
    assert [e["item_id"] for e in evs if e["outcome"] == "accepted"] == [i["id"] for i in resumed]


# --- outputs and the command lines -----------------------------------------------------------------
def test_run_writes_summary_plots_and_metrics(tmp_path):
    cfg, ctx, parts = make(tmp_path, {1: "lowscore"}, accept_target=2, max_attempts=4)
    s = run(cfg, ctx, **parts)
    d = ctx.run_dir
    for name in ("benchmark.jsonl", "run_logs.jsonl", "summary.json", "ema.png", "acceptance.png",
                 "metrics.jsonl", "seeds.json", "ledger.jsonl"):
        assert (d / name).is_file() and (d / name).stat().st_size > 0, name
    assert s["acceptance_rate"] == round(2 / 3, 4)
    assert json.loads((d / "summary.json").read_text())["rejection_reasons"] == {"low_score": 1}
    metrics = JsonlStore(d / "metrics.jsonl").read()
    assert [m["accepted"] for m in metrics] == [1, 0, 1]


def test_flag_cli_maps_onto_the_config():
    args = build_parser().parse_args([
        "--accept-target", "5", "--max-attempts", "20", "--min-score", "6", "--ema-alpha", "0.3",
        "--sim-threshold", "0.6", "--demo-k", "3", "--gen-temperature", "0.8", "--ans-temp", "0.1",
        "--judge-temperature", "0.0", "--seed", "4", "--output-dir", "/tmp/x", "--judge-model",
        "qwen2.5-coder-0.5b-instruct", "--base-url", "http://127.0.0.1:8080/v1", "--model", "served-model",
        "--no-wandb", "--judge-novelty-veto", "false", "--set", "seeds.per_category=2"])
    cfg = config_from_args(args)
    assert (cfg.accept_target, cfg.max_attempts, cfg.min_score, cfg.ema_alpha, cfg.sim_threshold, cfg.demo_k,
            cfg.gen_temp, cfg.ans_temp, cfg.judge_temp, cfg.seed) == (5, 20, 6.0, 0.3, 0.6, 3, 0.8, 0.1, 0.0, 4)
    assert cfg.models.generator.name == "served-model" and cfg.models.generator.base_url == "http://127.0.0.1:8080/v1"
    assert cfg.models.judge.name == "qwen2.5-coder-0.5b-instruct" and cfg.models.judge.base_url == cfg.models.generator.base_url
    assert cfg.models.answerer is None and cfg.seeds.per_category == 2 and cfg.tracking.wandb is False
    assert cfg.judge_novelty_veto is False
    assert args.output_dir == "/tmp/x"
    # without flags, the config file's values stand
    plain = config_from_args(build_parser().parse_args([]))
    assert plain == load_config(SelfEvolvingConfig, ROOT / "configs" / "self_evolving.yaml")


def test_generate_command_config_accepts_set_overrides():
    cfg = load_config(SelfEvolvingConfig, ROOT / "configs" / "self_evolving.yaml",
                      ["accept_target=5", "max_attempts=20", "min_score=6",
                       "judge={name: qwen2.5-coder-0.5b-instruct}"])
    assert cfg.kind == "self_evolving" and cfg.accept_target == 5 and cfg.min_score == 6.0
    assert cfg.models.generator.name == "smollm2-135m" and cfg.models.judge.name == "qwen2.5-coder-0.5b-instruct"
    with pytest.raises(ConfigError, match="cannot exceed"):
        load_config(SelfEvolvingConfig, ROOT / "configs" / "self_evolving.yaml", ["accept_target=500"])


def test_flag_cli_reports_config_errors_as_exit_code_2(capsys):
    from ads.generators.self_evolving import main

    assert main(["--accept-target", "50", "--max-attempts", "3", "--no-wandb"]) == 2
    assert "cannot exceed max_attempts" in capsys.readouterr().err


def test_task_schema_rejects_unknown_target():
    with pytest.raises(ValueError):
        task_schema(CATS, only_category="poetry")


def test_judge_reasons_before_it_decides_even_with_sorted_grammar_keys():
    from ads.generators.evolve.prompts import judge_schema

    props = list(judge_schema()["properties"])
    assert props == sorted(props) and props[0] == "analysis"  # llama.cpp builds grammars with sorted keys
    assert props.index("analysis") < props.index("novel") < props.index("score_0_10")


def test_judge_verdict_fields_and_a_grammarless_reply_using_rationale():
    from ads.generators.evolve.task_judge import TaskJudge

    task = {"instruction": "Name the capital city of the country below.", "user_input": "Chile",
            "category": "capitals"}
    reply = json.dumps({"rationale": "fine", "novel": True, "difficulty": "easy", "tags": ["geo", "geo"],
                        "score_0_10": 11})
    v = TaskJudge(FakeModel([reply])).evaluate(task, "Santiago", [], seed=0, sample_id="j")
    assert v.ok and v.score == 10.0 and v.novel is True and v.tags == ["geo"] and v.rationale == "fine"
    bad = json.dumps({"analysis": "hm", "novel": "maybe", "difficulty": "easy", "tags": [], "score_0_10": 5})
    v = TaskJudge(FakeModel([bad]), max_attempts=1).evaluate(task, "Santiago", [], seed=0, sample_id="j")
    assert not v.ok and "novel" in v.error and not v.model_error


# --- the seed's command line: underscore flags and .env settings --------------------------------
def test_underscore_flags_are_aliases_of_the_hyphenated_ones():
    seed_style = build_parser().parse_args([
        "--accept_target", "5", "--max_attempts", "20", "--min_score", "6", "--ema_alpha", "0.3",
        "--sim_threshold", "0.6", "--demo_k", "3", "--gen_temp", "0.8", "--ans_temp", "0.1", "--judge_temp", "0.0",
        "--seed", "4", "--benchmark_path", "b.jsonl", "--runlog_path", "r.jsonl", "--output_dir", "/tmp/x",
        "--judge_model", "j", "--base_url", "http://h:1/v1", "--no_wandb", "--env_file", ""])
    hyphen = build_parser().parse_args([
        "--accept-target", "5", "--max-attempts", "20", "--min-score", "6", "--ema-alpha", "0.3",
        "--sim-threshold", "0.6", "--demo-k", "3", "--gen-temperature", "0.8", "--ans-temperature", "0.1",
        "--judge-temperature", "0.0", "--seed", "4", "--benchmark-path", "b.jsonl", "--runlog-path", "r.jsonl",
        "--output-dir", "/tmp/x", "--judge-model", "j", "--base-url", "http://h:1/v1", "--no-wandb",
        "--env-file", ""])
    assert vars(seed_style) == vars(hyphen)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--accept_targets", "5"])


def test_dotenv_parser_reads_key_value_lines_only(tmp_path):
    from ads.generators.evolve.env import parse_dotenv

    p = tmp_path / ".env"
    p.write_text("# endpoint\n\nBASE_URL=http://127.0.0.1:1234\nexport API_KEY='sk-a b#c'\n"
                 'MODEL="meta-llama-3.1-8b-instruct"  # served name\nTIMEOUT = 120 # seconds\nOTHER=$(rm -rf /)\n')
    assert parse_dotenv(p) == {"BASE_URL": "http://127.0.0.1:1234", "API_KEY": "sk-a b#c",
                               "MODEL": "meta-llama-3.1-8b-instruct", "TIMEOUT": "120", "OTHER": "$(rm -rf /)"}
    assert parse_dotenv(tmp_path / "missing.env") == {}


@pytest.mark.parametrize("line", ["API_KEY sk-secret-value", "API_KEY='sk-secret-value", "=sk-secret-value",
                                  "API_KEY='sk-secret-value' trailing"])
def test_a_bad_dotenv_line_is_named_by_number_without_its_text(tmp_path, line):
    from ads.generators.evolve.env import parse_dotenv

    p = tmp_path / ".env"
    p.write_text(f"BASE_URL=http://h:1\n{line}\n")
    with pytest.raises(ConfigError, match=r"\.env:2: expected KEY=VALUE") as e:
        parse_dotenv(p)
    assert "secret" not in str(e.value)


def test_dotenv_settings_map_onto_the_generator_and_the_environment_wins(tmp_path):
    from ads.generators.evolve.env import endpoint_settings, export_api_key

    env_file = tmp_path / ".env"
    env_file.write_text("BASE_URL=http://127.0.0.1:1234\nAPI_KEY=sk-from-file\nMODEL=file-model\nTIMEOUT=120\n")
    s, _ = endpoint_settings(env_file, environ={"MODEL": "env-model"})
    assert (s.base_url, s.model, s.timeout_s, s.api_key) == ("http://127.0.0.1:1234", "env-model", 120.0,
                                                              "sk-from-file")
    assert "sk-from-file" not in repr(s) and "MODEL from the environment" in s.sources
    args = build_parser().parse_args(["--env-file", str(env_file), "--set", "answerer={name: other}"])
    cfg = config_from_args(args, s)
    g = cfg.models.generator
    assert (g.name, g.base_url, g.timeout_s, g.api_key_env) == ("env-model", "http://127.0.0.1:1234", 120.0,
                                                                 "API_KEY")
    assert cfg.models.judge is None and cfg.models.answerer.name == "other"  # --set still wins over .env
    assert "sk-from-file" not in json.dumps(cfg.model_dump(mode="json"))
    # flags win over .env
    cfg = config_from_args(build_parser().parse_args(["--model", "flag-model", "--base-url", "http://h:9/v1"]), s)
    assert (cfg.models.generator.name, cfg.models.generator.base_url) == ("flag-model", "http://h:9/v1")
    environ: dict[str, str] = {}
    export_api_key(s, environ)
    assert environ == {"API_KEY": "sk-from-file"}
    already = {"API_KEY": "already"}
    export_api_key(s, already)  # a key already in the environment is not replaced
    assert already == {"API_KEY": "already"}
    with pytest.raises(ConfigError, match="TIMEOUT .* positive number"):
        endpoint_settings(None, environ={"TIMEOUT": "soon"})
    none, _ = endpoint_settings(tmp_path / "absent.env", environ={})
    assert not none.any and config_from_args(build_parser().parse_args([]), none) == \
        load_config(SelfEvolvingConfig, ROOT / "configs" / "self_evolving.yaml")


def seed_command_from_docs() -> list[str]:
    import shlex

    doc = (ROOT / "docs" / "self_evolving.md").read_text()
    block = doc.split("<!-- seed-command -->", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    argv = shlex.split(block.strip())
    assert argv[:3] == [".venv/bin/python", "main.py", "evolve"]
    return argv[2:]


def test_the_seeds_command_runs_as_written_against_a_dotenv_endpoint(tmp_path, monkeypatch, capsys):
    """The seed's example command from docs/self_evolving.md, endpoint and key from a .env file, run
    against the fake OpenAI-compatible server; two trailing flags shrink it (argparse: last wins)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fake_http import FakeServer, ok

    from ads.cli import main as cli

    secret = "sk-test-4f1d9c2e7b"
    counter = {"n": 0}

    def respond(req):
        body = req["json"] or {}
        fmt = json.dumps(body.get("response_format") or {})
        prompt = body["messages"][-1]["content"]
        if "score_0_10" in fmt:
            return ok(json.dumps({"analysis": "clear", "novel": True, "difficulty": "medium", "tags": ["t"],
                                  "score_0_10": 9}))
        if "user_input" in fmt:
            counter["n"] += 1
            n = counter["n"]
            cat = re.search(r'category "([^"]+)"', prompt).group(1)
            return ok(task_json(n, cat, marker="fine"))
        return ok("tok1 tok2")

    server = FakeServer()
    server.responder = respond
    try:
        for k in ("BASE_URL", "MODEL", "TIMEOUT"):
            monkeypatch.delenv(k, raising=False)
        monkeypatch.setenv("API_KEY", "")  # restored at teardown; the run exports the file's key into it
        monkeypatch.chdir(tmp_path)
        (tmp_path / ".env").write_text(f"BASE_URL=http://127.0.0.1:{server.port}\nAPI_KEY={secret}\n"
                                       "MODEL=served-model\nTIMEOUT=20\n")
        argv = seed_command_from_docs()
        assert "--accept_target" in argv and "--sim_threshold" in argv
        code = cli([*argv, "--accept_target", "2", "--max_attempts", "4", "--no_wandb", "--cache_path",
                    str(tmp_path / "c.sqlite"), "--set", "seeds.per_category=1"])
        out = capsys.readouterr()
        assert code == 0, out.err
    finally:
        server.stop()
    bench = JsonlStore(tmp_path / "data" / "benchmark.jsonl").read()
    log = JsonlStore(tmp_path / "data" / "run_logs.jsonl").read()
    assert len(bench) == 2 and sum(e.get("outcome") == "accepted" for e in log) == 2
    assert {r["json"]["model"] for r in server.requests} == {"served-model"}
    assert all(r["headers"].get("authorization") == f"Bearer {secret}" for r in server.requests)
    (run_dir,) = (tmp_path / "results").iterdir()
    cfg = (run_dir / "config.yaml").read_text()
    assert "api_key_env: API_KEY" in cfg and "min_score: 6.5" in cfg and "sim_threshold: 0.7" in cfg
    assert "BASE_URL from .env" in out.out and "API_KEY from .env" in out.out
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != ".env" and secret.encode() in p.read_bytes()]
    assert not leaked and secret not in out.out + out.err
