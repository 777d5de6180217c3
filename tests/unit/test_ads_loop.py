"""The ADS loop, specified on scripted models and a tiny API registry.

Each task is an instruction set about one fact key; retrieval with the key returns the answer.
The scripted optimizer only knows two things by itself: in training, sample 0 retrieves with
`{task}` and sample 1 wastes money; at evaluation it fetches nothing unless its prompt shows an
accepted plan (the exemplar memory), which it copies. So new tasks are solved only through the
memory, and trained tasks' held-out instructions only through the aggregated dataset.
"""
from __future__ import annotations

import json
import re

import pytest

from ads.active_search.instruction_sets import Instruction, Task
from ads.downstream.evalset import is_heldout
from ads.active_search.loop import ADSConfig
from ads.active_search.outputs import run
from ads.active_search.planning import ExemplarMemory, random_plan
from ads.active_search.api_trajectories import parse_trajectory, trajectory_schema
from ads.run import RunContext
from ads.store import JsonlStore
from apis.api_registry import ApiRegistry, ArgSpec, Observation
from models.fake import FakeModel

KEYS = ["alpha", "beta", "gamma", "delta", "eps", "zeta"]
# article ids outside the downstream evaluation pool (the export leaves those out)
SRC = {k: next(f"doc-{k}{n}" for n in range(100) if not is_heldout(f"doc-{k}{n}")) for k in KEYS}


class Retrieval:
    name, description, cost = "information_retrieval", "search the corpus", 1.0
    args = {"query": ArgSpec("string", max_length=400), "top_k": ArgSpec("integer", required=False, minimum=1,
                                                                         maximum=5, default=2)}

    def __call__(self, query, top_k=None):
        hits = [k for k in KEYS if f"kw-{k}" in query]
        passages = [{"id": SRC[k], "title": k.title(), "text": f"The answer is {k.title()}."} for k in hits]
        return Observation(text=" ".join(p["text"] for p in passages) or "nothing found",
                           payload={"query": query, "passages": passages}, cost=self.cost)


class Demos:
    name, description, cost = "demonstration_generation", "write examples", 3.0
    args = {"topic": ArgSpec("string", max_length=200)}

    def __call__(self, topic):
        return Observation(text="Q: something? A: something.", payload={"pairs": [
            {"instruction": "something?", "response": "something."}]}, cost=self.cost)


def make_task(i: int, key: str) -> Task:
    ins = [Instruction(id=f"t{i}/{j}", prompt=f"Name the thing.\nKey kw-{key} question {j}", gold=key.title(),
                       scorer="name", source=f"doc-{key}") for j in range(5)]
    return Task(id=f"task-{key}", family="wiki", train=ins[:3], held_out=ins[3:],
                sources={f"doc-{key}": f"GOLD DOCUMENT {key}: the answer is {key.title()}."})


def tasks():
    return [make_task(i, k) for i, k in enumerate(KEYS[:3])], [make_task(i + 3, k) for i, k in enumerate(KEYS[3:])]


def policy_fn(messages, kw):
    m = re.search(r"answer is (\w+)", messages[-1]["content"])
    return m.group(1) if m else "I do not know"


PROMPTS: list[str] = []


def optimizer_fn(messages, kw):
    prompt = messages[-1]["content"]
    PROMPTS.append(prompt)
    shown = re.findall(r"Plan: (\{.*\})", prompt)
    if shown:
        return shown[0]
    sid = str(kw["sample_id"])
    if ":eval" in sid:  # on a new task it knows nothing by itself
        return json.dumps({"calls": []})
    if sid.endswith(":s0"):
        return json.dumps({"calls": [{"name": "information_retrieval", "arguments": {"query": "{task}"}}]})
    if sid.endswith(":s1"):
        return json.dumps({"calls": [{"name": "demonstration_generation", "arguments": {"topic": "stuff"}}]})
    return json.dumps({"calls": []})


def make(tmp_path, optimizer=optimizer_fn, policy=policy_fn, **loop):
    cfg = ADSConfig.model_validate({
        "name": "t", "results_dir": str(tmp_path / "results"), "cache": {"path": str(tmp_path / "c.sqlite")},
        "tracking": {"wandb": False}, "loop": {"iterations": 2, "trajectories_per_task": 2, "lambda_cost": 0.05,
                                               **loop}})
    return cfg, dict(policy_model=FakeModel(policy, "fake-policy"), optimizer_model=FakeModel(optimizer, "fake-opt"),
                     api_model=FakeModel(["unused"]), tasks=tasks(), registry=ApiRegistry([Retrieval(), Demos()]))


def run_once(tmp_path, **loop):
    cfg, parts = make(tmp_path, **loop)
    ctx = RunContext.create(cfg)
    summary = run(cfg, ctx, **parts)
    ev = json.loads((ctx.run_dir / "evaluation_results.json").read_text())
    return ctx, summary, ev


def full_and_killed(tmp_path, make_fn=None, **loop):
    """Two identical complete runs in `full/` and `killed/`; the caller cuts `killed/`'s files to
    where a kill would have left them, then resumes it."""
    ctxs = []
    for name in ("full", "killed"):
        cfg, parts = (make_fn or make)(tmp_path, **loop)
        ctx = RunContext.create(cfg, run_dir=tmp_path / name)
        run(cfg, ctx, **parts)
        ctxs.append(ctx)
    return ctxs


def keep_lines(path, n, torn=""):
    """Leave the first n lines of a JSONL file (plus an optional torn fragment)."""
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:n]) + torn)


def test_reward_is_train_score_gain_minus_cost_and_the_best_plan_is_accepted(tmp_path):
    ctx, _, _ = run_once(tmp_path)
    recs = JsonlStore(ctx.run_dir / "trajectories.jsonl").read()
    it1 = [r for r in recs if r["iteration"] == 1]
    retrieval = [r for r in it1 if r["calls"] and r["calls"][0]["name"] == "information_retrieval"]
    demos = [r for r in it1 if r["calls"] and r["calls"][0]["name"] == "demonstration_generation"]
    assert retrieval and all(r["reward"] == pytest.approx(1 - 0.05 * 1) for r in retrieval)
    assert all(r["score_before"] == 0 and r["scores_with"] == [1.0, 1.0, 1.0] for r in retrieval)
    assert demos and all(r["reward"] == pytest.approx(-0.05 * 3) and not r["accepted"] for r in demos)
    for task_id in {r["task_id"] for r in it1}:  # exactly one accepted per task: the retrieval plan
        accepted = [r for r in it1 if r["task_id"] == task_id and r["accepted"]]
        assert len(accepted) == 1 and accepted[0]["calls"][0]["name"] == "information_retrieval"


@pytest.mark.parametrize("bonus, accepted", [(0.0, False), (0.2, True)])
def test_a_plan_that_fetches_the_answers_wins_through_the_coverage_bonus_when_the_policy_cannot_use_them(
        tmp_path, bonus, accepted):
    ctx, _, _ = run_once(tmp_path, iterations=1, coverage_bonus=bonus, policy=lambda m, kw: "I do not know")
    recs = JsonlStore(ctx.run_dir / "trajectories.jsonl").read()
    retrieval = [r for r in recs if r["calls"] and r["calls"][0]["name"] == "information_retrieval"]
    demos = [r for r in recs if r["calls"] and r["calls"][0]["name"] == "demonstration_generation"]
    assert retrieval and all(r["gain"] == 0 and (r["coverage_before"], r["coverage_with"]) == (0, 1) for r in retrieval)
    assert all(r["reward"] == pytest.approx(bonus - 0.05) for r in retrieval)
    for task_id in {r["task_id"] for r in recs}:  # the retrieval plan is taken, or (no bonus) the empty plan
        taken = [r for r in recs if r["task_id"] == task_id and r["accepted"]]
        assert len(taken) == 1 and bool(taken[0]["calls"]) == accepted
    # the demonstrations hold no answer: the bonus never pays for them
    assert demos and all(r["coverage_with"] == 0 and r["reward"] == pytest.approx(-0.15) for r in demos)


def test_the_weakness_signal_shows_train_instructions_answers_and_scores(tmp_path):
    PROMPTS.clear()
    run_once(tmp_path, iterations=1)
    first = PROMPTS[0]
    assert "Key kw-alpha question 0" in first and "assistant: 'I do not know' (score 0.00)" in first


def test_accepted_rows_are_typed_with_provenance_and_aggregated_per_task(tmp_path):
    ctx, _, ev = run_once(tmp_path)
    rows = JsonlStore(ctx.run_dir / "training_data.jsonl").read()
    assert {r["task_id"] for r in rows} == {"task-alpha", "task-beta", "task-gamma"}
    assert all(r["kind"] == "passage" and r["api"] == "information_retrieval" and r["iteration"] == 1
               and r["arguments"] == {"query": "{task}"} and r["cost"] == 1.0 and r["source"] == SRC[r["task_id"][5:]]
               for r in rows)
    assert len(rows) == len({r["id"] for r in rows}) == 3  # iteration 2 fetched the same passages: no duplicates
    # iteration 2's accepted plan was the free null plan, yet the trained tasks keep iteration 1's data
    trained = ev["final"]["comparisons"]["learned vs no_data (trained tasks)"]
    assert trained["mean_diff"] == 1.0 and trained["n"] == 6


def test_new_tasks_are_solved_through_the_exemplar_memory_only(tmp_path):
    _, _, ev = run_once(tmp_path)
    assert ev["final"]["methods"]["learned"]["by_split"] == {"new": 1.0, "trained": 1.0}
    _, _, ev0 = run_once(tmp_path / "no-memory", exemplars=0)
    assert ev0["final"]["methods"]["learned"]["by_split"]["new"] == 0.0


def test_a_memory_that_forgets_fails_the_new_tasks(tmp_path, monkeypatch):
    monkeypatch.setattr(ExemplarMemory, "nearest", lambda self, *a, **k: [])
    _, _, ev = run_once(tmp_path)
    assert ev["final"]["methods"]["learned"]["by_split"]["new"] == 0.0


def test_no_held_out_instruction_or_gold_document_reaches_the_optimizer(tmp_path):
    PROMPTS.clear()
    ctx, _, _ = run_once(tmp_path)
    held = [i.prompt for t in tasks()[0] + tasks()[1] for i in t.held_out]
    gold_docs = [s for t in tasks()[0] + tasks()[1] for s in t.sources.values()]
    assert PROMPTS and not any(h in p for h in held for p in PROMPTS)
    assert not any("GOLD DOCUMENT" in p for p in PROMPTS) and all(g.startswith("GOLD DOCUMENT") for g in gold_docs)
    trajs = JsonlStore(ctx.run_dir / "trajectories.jsonl").read()
    blob = json.dumps(trajs) + (ctx.run_dir / "training_data.jsonl").read_text()
    assert not any(h in blob for h in held)


def test_evaluation_has_every_method_paired_with_intervals_and_matched_cost(tmp_path):
    ctx, summary, ev = run_once(tmp_path)
    m = ev["final"]["methods"]
    assert set(m) == {"no_data", "learned", "random", "always_retrieve", "oracle"}
    assert all(s["n_instructions"] == 12 for s in m.values())  # 6 tasks x 2 held-out instructions
    assert m["no_data"]["mean_score"] == 0.0 and m["learned"]["mean_score"] == 1.0 and m["oracle"]["mean_score"] == 1.0
    lc, rc = m["learned"]["mean_cost"], m["random"]["mean_cost"]
    assert lc > 0 and abs(lc - rc) <= 0.1 * lc
    c = ev["final"]["comparisons"]["learned vs no_data"]
    assert c["ci95"] == [1.0, 1.0] and c["wins"] == 12 and c["sign_test_p"] < 0.001
    assert ev["verdict"][0].startswith("learned BEATS no_data")
    assert set(ev["metrics"]) == {"win_rate", "tie_rate", "loss_rate", "avg_score"}
    assert ev["total_tasks"] == 6 and ev["completed_tasks"] == 6 and ev["win_rate"] == 1.0
    assert ev["win_rate_ci95"][0] > 0.5 and ev["win_rate_by_family"] == {"wiki": {"tasks": 6, "wins": 6, "win_rate": 1.0}}
    assert all("api_cost" in r and r["instructions"] for r in ev["task_results"])
    for name in ("training_metrics.json", "trajectories.jsonl", "training_data.jsonl", "ledger.jsonl", "state.json",
                 "reward.png", "cost.png", "accepted.png", "score.png", "summary.json", "config.yaml", "tasks.json"):
        assert (ctx.run_dir / name).exists(), name
    assert summary["ledger"]["run"]["api_calls"] > 0
    assert (ctx.run_dir / "export" / "README.md").exists()  # the generic export (docs/export.md) of every run
    # on new tasks learned samples k plans and keeps the best; random proposes k plans of the same costs
    evals = JsonlStore(ctx.run_dir / "eval.jsonl").read()
    new = {(r["method"], r["task_id"]): r for r in evals if r["split"] == "new"}
    for (method, tid), r in new.items():
        if method == "learned":
            assert len(r["sample_costs"]) == 2 and r["sample_costs"] == new[("random", tid)]["sample_costs"]
            assert r["cost"] == sum(r["sample_costs"]) == new[("random", tid)]["cost"]


@pytest.mark.parametrize("target", [0.0, 1.0, 2.0, 3.0, 5.0, 7.0])
def test_random_plans_spend_exactly_the_target_cost(target):
    import random

    from ads.active_search.api_trajectories import execute

    reg = ApiRegistry([Retrieval(), Demos()])
    for seed in range(20):
        traj = execute(random_plan(make_task(0, "alpha"), reg, target, random.Random(seed)), reg)
        assert traj.cost == target


def test_junk_optimizer_output_is_a_recorded_rejection(tmp_path):
    cfg, parts = make(tmp_path / "junk", optimizer=lambda m, kw: "I think you should search {oops", iterations=1)
    ctx = RunContext.create(cfg)
    run(cfg, ctx, **parts)
    sampled = [r for r in JsonlStore(ctx.run_dir / "trajectories.jsonl").read() if not r.get("null_plan")]
    assert sampled and all(r["parse_error"] and r["raw"].startswith("I think") and r["reward"] is None for r in sampled)
    metrics = json.loads((ctx.run_dir / "training_metrics.json").read_text())
    assert metrics[0]["parse_failures"] == len(sampled)


def test_tasks_where_data_never_helps_learn_the_empty_plan(tmp_path):
    cfg, parts = make(tmp_path, iterations=1)
    parts["policy_model"] = FakeModel(["I do not know"], "fake-policy")
    ctx = RunContext.create(cfg)
    run(cfg, ctx, **parts)
    recs = JsonlStore(ctx.run_dir / "trajectories.jsonl").read()
    accepted = [r for r in recs if r["accepted"]]
    assert [r["task_id"] for r in accepted] == [f"task-{k}" for k in KEYS[:3]]
    assert accepted[0]["null_plan"] and all(r["calls"] == [] for r in accepted)  # later: the memory's empty plan
    m = json.loads((ctx.run_dir / "training_metrics.json").read_text())[0]
    assert m["accepted_empty_plans"] == 3 and m["accepted_data_plans"] == 0


def test_killed_run_resumes_without_duplicates_and_same_result(tmp_path):
    _, ctx = full_and_killed(tmp_path)
    traj = ctx.run_dir / "trajectories.jsonl"
    keep_lines(traj, 3, torn=traj.read_text().splitlines(keepends=True)[3][:20])
    keep_lines(ctx.run_dir / "eval.jsonl", 5)
    (ctx.run_dir / "summary.json").unlink()
    cfg3, parts3 = make(tmp_path)
    run(cfg3, RunContext.create(cfg3, run_dir=tmp_path / "killed", resume=True), **parts3)
    for name in ("trajectories.jsonl", "training_data.jsonl"):
        a = sorted(json.dumps(r, sort_keys=True) for r in JsonlStore(tmp_path / "full" / name).read())
        b = sorted(json.dumps(r, sort_keys=True) for r in JsonlStore(ctx.run_dir / name).read())
        assert a == b, name
    fa, fb = (json.loads((tmp_path / d / "evaluation_results.json").read_text())["final"] for d in ("full", "killed"))
    for f in (fa, fb):
        f.pop("models")
        for m in f["methods"].values():
            m.pop("mean_tokens")
    assert fa == fb


def right_without_data(messages, kw):
    """A policy that answers from the key alone and is confused by reference material: the free
    empty plan wins every task, and is a lesson for the memory (data hurt)."""
    return "I do not know" if "Reference material" in messages[-1]["content"] else \
        re.findall(r"kw-(\w+)", messages[-1]["content"])[-1].title()


def test_a_kill_after_the_samples_but_before_the_null_plan_record_is_finished_on_resume(tmp_path):
    """A task is finished only once the last record it writes is on disk: the null plan's, when it won."""
    _, ctx = full_and_killed(tmp_path, policy=right_without_data, iterations=1)
    traj = ctx.run_dir / "trajectories.jsonl"
    lines = traj.read_text().splitlines(keepends=True)
    keep_lines(traj, next(i for i, line in enumerate(lines) if json.loads(line)["null_plan"]))
    (ctx.run_dir / "eval.jsonl").unlink()
    (ctx.run_dir / "summary.json").unlink()
    cfg, parts = make(tmp_path, policy=right_without_data, iterations=1)
    run(cfg, RunContext.create(cfg, run_dir=tmp_path / "killed", resume=True), **parts)
    full = JsonlStore(tmp_path / "full" / "trajectories.jsonl").read()
    assert next(r for r in full if r["null_plan"])["to_memory"]  # the cut record was a lesson for the memory
    assert JsonlStore(traj).read() == full


@pytest.mark.parametrize("keep", [1, 2, 4])
def test_an_evaluation_resumed_inside_a_task_writes_the_uninterrupted_records(tmp_path, keep):
    _, ctx = full_and_killed(tmp_path, iterations=1)
    ev = ctx.run_dir / "eval.jsonl"
    keep_lines(ev, keep)
    (ctx.run_dir / "summary.json").unlink()
    cfg3, parts3 = make(tmp_path, iterations=1)
    run(cfg3, RunContext.create(cfg3, run_dir=tmp_path / "killed", resume=True), **parts3)
    # tokens too: a later method reusing the no-data answers is charged as it was uninterrupted
    assert JsonlStore(ev).read() == JsonlStore(tmp_path / "full" / "eval.jsonl").read()


def test_trajectory_schema_carries_argument_bounds_and_agrees_with_the_parser():
    reg = ApiRegistry([Retrieval(), Demos()])
    schema = trajectory_schema(reg, max_calls=2)
    branches = schema["properties"]["calls"]["items"]["anyOf"]
    assert [b["properties"]["name"]["const"] for b in branches] == ["information_retrieval", "demonstration_generation"]
    args = branches[0]["properties"]["arguments"]["properties"]
    assert args["top_k"]["enum"] == [1, 2, 3, 4, 5] and args["query"]["maxLength"] == 160
    t = parse_trajectory('{"calls": [{"name": "information_retrieval", "arguments": {"query": "x"}}]}', 2)
    assert t.ok and t.calls[0].arguments == {"query": "x"}
    for junk in ["", "{}", '{"calls": 3}', '{"calls": [{"arguments": {}}]}', '{"calls": [{"name": "a", "arguments": 1}]}',
                 json.dumps({"calls": [{"name": "a", "arguments": {}}] * 3})]:
        assert not parse_trajectory(junk, 2).ok


def test_the_export_is_what_finetune_reads(tmp_path):
    from ads.downstream.data import DataConfig, load_examples

    ctx, summary, _ = run_once(tmp_path)
    assert summary["export"]["rows"] == 3
    examples = load_examples(DataConfig(path=str(ctx.run_dir / "training_dataset")))
    assert [e.response for e in examples] == ["The answer is Alpha.", "The answer is Beta.", "The answer is Gamma."]
    per_task = load_examples(DataConfig(path=str(ctx.run_dir / "training_dataset_by_task" / "task-alpha.jsonl")))
    assert len(per_task) == 1 and per_task[0].prompt == "Tell me about Alpha."


def test_active_data_search_needs_a_judge_for_unreferenced_instructions(tmp_path):
    from ads.config import ConfigError

    cfg, parts = make(tmp_path)
    t = make_task(0, "alpha")
    t.held_out[0].gold, t.held_out[0].scorer = None, "judge"
    parts["tasks"] = ([t], [])
    ctx = RunContext.create(cfg)
    with pytest.raises(ConfigError, match="judge"):
        run(cfg, ctx, **parts)
    assert not ctx.has_records()


def test_the_grammar_llama_cpp_compiles_from_the_schema_allows_only_in_range_integers():
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    grammar = json_schema_to_gbnf(json.dumps(trajectory_schema(ApiRegistry([Retrieval()]), max_calls=1)))
    rule = next(line for line in grammar.splitlines() if "top-k" in line and "::=" in line and '"1"' in line)
    assert [f'"{n}"' in rule for n in range(1, 7)] == [True] * 5 + [False]


def test_exemplars_are_task_relative_so_a_concrete_query_transfers_to_other_tasks(tmp_path):
    from ads.active_search.planning import task_relative

    t = make_task(0, "alpha")
    calls = [{"name": "information_retrieval", "arguments": {"query": "kw-alpha question", "top_k": 2}},
             {"name": "demonstration_generation", "arguments": {"topic": "unrelated words"}}]
    assert [c["arguments"] for c in task_relative(calls, t)] == [{"query": "{task}", "top_k": 2},
                                                                 {"topic": "unrelated words"}]

    def concrete(messages, kw):  # in training, sample 0 searches with its own task's key, never {task}
        shown = re.findall(r"Plan: (\{.*\})", messages[-1]["content"])
        if shown:
            return shown[0]
        key = re.findall(r"Key (kw-\w+)", messages[-1]["content"])[0]
        if str(kw["sample_id"]).endswith(":s0") and ":eval" not in str(kw["sample_id"]):
            return json.dumps({"calls": [{"name": "information_retrieval", "arguments": {"query": key}}]})
        return json.dumps({"calls": []})

    _, _, ev = run_once(tmp_path, optimizer=concrete)
    assert ev["final"]["methods"]["learned"]["by_split"]["new"] == 1.0


def test_rows_from_fine_tuning_evaluation_articles_are_left_out_of_the_export(tmp_path, monkeypatch):
    """A fine-tuned model is scored on the evaluation pool (ads.downstream.evalset): an ADS export that
    fetched one of those articles must not carry it into training."""
    pool = next(f"doc-x{n}" for n in range(1000) if is_heldout(f"doc-x{n}"))
    monkeypatch.setitem(SRC, "alpha", pool)
    ctx, summary, _ = run_once(tmp_path)
    assert summary["export"]["dropped_eval_overlap"] == 1 and summary["export"]["rows"] == 2
    from datasets import load_from_disk

    assert pool not in set(load_from_disk(str(ctx.run_dir / "training_dataset"))["source"])
    assert "1 rows whose article is in the downstream fine-tuning evaluation pool" in \
        (ctx.run_dir / "training_dataset" / "README.md").read_text()


def test_an_empty_plan_is_a_lesson_for_other_tasks_only_when_data_hurt_or_was_not_needed(tmp_path):
    def unhelped(messages, kw):  # data never changes the answer: nothing tried helped
        return "I do not know"

    def hurt(messages, kw):  # right without data, confused by it
        return "I do not know" if "Reference material" in messages[-1]["content"] else \
            re.findall(r"kw-(\w+)", messages[-1]["content"])[-1].title()

    for name, fn, lesson in (("unhelped", unhelped, False), ("hurt", hurt, True)):
        ctx, _, _ = run_once(tmp_path / name, policy=fn, iterations=1)
        recs = JsonlStore(ctx.run_dir / "trajectories.jsonl").read()
        accepted = [r for r in recs if r["accepted"]]
        assert len(accepted) == 3 and all(r["calls"] == [] for r in accepted)
        assert all(r["to_memory"] is lesson for r in accepted), name


def test_the_generic_export_rejects_rows_from_fine_tuning_evaluation_articles(tmp_path, monkeypatch):
    from ads.export.core import load_run

    pool = next(f"doc-x{n}" for n in range(1000) if is_heldout(f"doc-x{n}"))
    monkeypatch.setitem(SRC, "alpha", pool)
    ctx, _, _ = run_once(tmp_path)
    run = load_run(ctx.run_dir)
    assert [r["reject_reason"] for r in run.rejected] == ["article in the fine-tuning evaluation pool"]
    assert len(run.accepted) == 2
