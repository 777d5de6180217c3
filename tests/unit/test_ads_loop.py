"""The ADS loop's control flow, specified on scripted models and a tiny API registry."""
from __future__ import annotations

import json
import re

import pytest

from ads.generators.active_search import ADSConfig, ActiveDataSearch
from ads.generators.ads_runner import run
from ads.generators.trajectory import parse_trajectory, trajectory_schema
from ads.run import RunContext
from ads.store import JsonlStore
from ads.tasks import Task
from apis.base import ApiRegistry, ArgSpec, Observation
from models.fake import FakeModel

FACTS = {"Alpha": "kw-alpha", "Beta": "kw-beta", "Gamma": "kw-gamma", "Delta": "kw-delta",
         "Eps": "kw-eps", "Zeta": "kw-zeta"}


class Retrieval:
    name, description, cost = "information_retrieval", "search the corpus", 1.0
    args = {"query": ArgSpec("string", max_length=200)}

    def __call__(self, query):
        hits = [t for t, kw in FACTS.items() if kw in query]
        return Observation(text=" ".join(f"The answer is {t}." for t in hits) or "nothing found",
                           payload={"hits": hits}, cost=self.cost)


class Demos:
    name, description, cost = "demonstration_generation", "write examples", 3.0
    args = {"topic": ArgSpec("string", max_length=200)}

    def __call__(self, topic):
        return Observation(text="Q: something? A: something.", cost=self.cost)


def tasks():
    mk = lambda i, t: Task(id=f"wiki_name-{i}", family="wiki_name", prompt=f"Name the subject. Key {FACTS[t]}",
                           gold=t, source=str(i))
    train = [mk(i, t) for i, t in enumerate(["Alpha", "Beta", "Gamma"])]
    test = [mk(i + 10, t) for i, t in enumerate(["Delta", "Eps", "Zeta"])]
    return train, test


def policy_fn(messages, kw):
    m = re.search(r"The answer is (\w+)", messages[-1]["content"])
    return m.group(1) if m else "I do not know"


def optimizer_fn(messages, kw):
    """Sample 0 retrieves with the task's key, sample 1 wastes money; exemplars teach retrieval."""
    prompt = messages[-1]["content"]
    key = re.findall(r"Key (kw-\w+)", prompt)[-1]
    retrieve = json.dumps({"calls": [{"name": "information_retrieval", "arguments": {"query": key}}]})
    if "Plans that worked" in prompt or str(kw["sample_id"]).endswith(":0"):
        return retrieve
    if str(kw["sample_id"]).endswith(":1"):
        return json.dumps({"calls": [{"name": "demonstration_generation", "arguments": {"topic": "stuff"}}]})
    return "not json at all"


def make(tmp_path, optimizer=optimizer_fn, **loop):
    cfg = ADSConfig.model_validate({
        "name": "t", "results_dir": str(tmp_path / "results"), "cache": {"path": str(tmp_path / "c.sqlite")},
        "tracking": {"wandb": False}, "loop": {"iterations": 2, "trajectories_per_task": 2, "lambda_cost": 0.05,
                                               **loop}})
    return cfg, dict(policy_model=FakeModel(policy_fn, "fake-policy"), optimizer_model=FakeModel(optimizer, "fake-opt"),
                     api_model=FakeModel(["unused"]), tasks=tasks(),
                     registry=ApiRegistry([Retrieval(), Demos()]))


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


def test_reward_is_gain_minus_cost_and_best_is_accepted(tmp_path):
    cfg, parts = make(tmp_path)
    ctx = RunContext.create(cfg)
    run(cfg, ctx, **parts)
    recs = JsonlStore(ctx.run_dir / "trajectories.jsonl").read()
    it1 = [r for r in recs if r["iteration"] == 1]
    retrieval = [r for r in it1 if r["calls"] and r["calls"][0]["name"] == "information_retrieval"]
    demos = [r for r in it1 if r["calls"] and r["calls"][0]["name"] == "demonstration_generation"]
    assert retrieval and all(r["reward"] == pytest.approx(1 - 0.05 * 1) for r in retrieval)
    assert demos and all(r["reward"] == pytest.approx(-0.05 * 3) and not r["accepted"] for r in demos)
    for task_id in {r["task_id"] for r in it1}:  # exactly one accepted per task: a best-reward retrieval plan
        accepted = [r for r in it1 if r["task_id"] == task_id and r["accepted"]]
        assert len(accepted) == 1 and accepted[0]["calls"][0]["name"] == "information_retrieval"
    acquired = JsonlStore(ctx.run_dir / "acquired_data.jsonl").read()
    assert {a["api"] for a in acquired} == {"information_retrieval"} and len(acquired) == 3 * 2


def test_evaluation_compares_learned_with_all_baselines(tmp_path):
    cfg, parts = make(tmp_path)
    ctx = RunContext.create(cfg)
    summary = run(cfg, ctx, **parts)
    ev = json.loads((ctx.run_dir / "evaluation_results.json").read_text())
    final = ev["final"]["methods"]
    assert set(final) == {"no_data", "learned", "random_equal_cost", "always_retrieve"}
    assert final["learned"]["mean_score"] == 1.0 and final["no_data"]["mean_score"] == 0.0
    assert final["learned"]["win_rate"] == 1.0 and final["random_equal_cost"]["mean_cost"] <= 1.0
    assert any("BEATS no_data" in line for line in ev["verdict"])
    for name in ("training_metrics.json", "trajectories.jsonl", "acquired_data.jsonl", "ledger.jsonl", "state.json",
                 "reward.png", "cost.png", "win_rate.png", "summary.json", "config.yaml", "run_info.json"):
        assert (ctx.run_dir / name).exists(), name
    assert (ctx.run_dir / "acquired_dataset" / "README.md").exists()
    assert summary["ledger"]["run"]["api_calls"] > 0


def test_junk_optimizer_output_is_a_recorded_rejection(tmp_path):
    cfg, parts = make(tmp_path, optimizer=lambda m, kw: "I think you should search {oops", iterations=1)
    ctx = RunContext.create(cfg)
    run(cfg, ctx, **parts)
    recs = JsonlStore(ctx.run_dir / "trajectories.jsonl").read()
    sampled = [r for r in recs if not r.get("null_plan")]
    assert sampled and all(r["parse_error"] and r["raw"].startswith("I think") and r["reward"] is None for r in sampled)
    metrics = json.loads((ctx.run_dir / "training_metrics.json").read_text())
    assert metrics[0]["parse_failures"] == len(sampled)


def test_gain_zero_tasks_learn_the_null_plan(tmp_path):
    cfg, parts = make(tmp_path, iterations=1)
    parts["policy_model"] = FakeModel(["I do not know"], "fake-policy")  # data never helps
    ctx = RunContext.create(cfg)
    run(cfg, ctx, **parts)
    recs = JsonlStore(ctx.run_dir / "trajectories.jsonl").read()
    assert [r["id"] for r in recs if r["accepted"]] == [f"it1-wiki_name-{i}-null" for i in range(3)]


def test_killed_run_resumes_without_duplicates_and_same_result(tmp_path):
    _, ctx = full_and_killed(tmp_path)
    # simulate a kill: keep only the first 3 trajectory lines (+ a torn 4th) and no summary
    traj = ctx.run_dir / "trajectories.jsonl"
    keep_lines(traj, 3, torn=traj.read_text().splitlines(keepends=True)[3][:20])
    keep_lines(ctx.run_dir / "eval.jsonl", 5)
    (ctx.run_dir / "summary.json").unlink()
    cfg3, parts3 = make(tmp_path)
    resumed = RunContext.create(cfg3, run_dir=tmp_path / "killed", resume=True)
    run(cfg3, resumed, **parts3)
    ids = [r["id"] for r in JsonlStore(traj).read()]
    assert len(ids) == len(set(ids))
    a = sorted(json.dumps(r, sort_keys=True) for r in JsonlStore(tmp_path / "full" / "trajectories.jsonl").read())
    b = sorted(json.dumps(r, sort_keys=True) for r in JsonlStore(traj).read())
    assert a == b
    fa = json.loads((tmp_path / "full" / "evaluation_results.json").read_text())["final"]
    fb = json.loads((tmp_path / "killed" / "evaluation_results.json").read_text())["final"]
    assert fa == fb
    # training metrics are rebuilt from the stored records; only the compute spent may differ
    ta, tb = ([{k: v for k, v in m.items() if k != "total_tokens"}
               for m in json.loads((tmp_path / d / "training_metrics.json").read_text())] for d in ("full", "killed"))
    assert ta == tb


@pytest.mark.parametrize("keep", [1, 2, 3, 5])
def test_an_evaluation_resumed_inside_a_task_writes_the_uninterrupted_records(tmp_path, keep):
    """A kill between a held-out task's method records (no_data written, the rest not): the resumed
    run must not charge the no-data call again to the next method's `tokens` (it did once)."""
    _, ctx = full_and_killed(tmp_path, iterations=1)
    ev = ctx.run_dir / "eval.jsonl"
    keep_lines(ev, keep)
    (ctx.run_dir / "summary.json").unlink()
    cfg3, parts3 = make(tmp_path, iterations=1)
    run(cfg3, RunContext.create(cfg3, run_dir=tmp_path / "killed", resume=True), **parts3)
    want = JsonlStore(tmp_path / "full" / "eval.jsonl").read()
    assert any(r["tokens"] for r in want) and JsonlStore(ev).read() == want


def test_trajectory_schema_and_parser_agree():
    reg = ApiRegistry([Retrieval(), Demos()])
    schema = trajectory_schema(reg, max_calls=2)
    branches = schema["properties"]["calls"]["items"]["anyOf"]
    assert [b["properties"]["name"]["const"] for b in branches] == ["information_retrieval", "demonstration_generation"]
    t = parse_trajectory('{"calls": [{"name": "information_retrieval", "arguments": {"query": "x"}}]}', 2)
    assert t.ok and t.calls[0].arguments == {"query": "x"}
    for junk in ["", "{}", '{"calls": 3}', '{"calls": [{"arguments": {}}]}', '{"calls": [{"name": "a", "arguments": 1}]}',
                 json.dumps({"calls": [{"name": "a", "arguments": {}}] * 3})]:
        assert not parse_trajectory(junk, 2).ok


def test_task_placeholder_lets_one_plan_serve_every_task(tmp_path):
    """A plan that searches with "{task}" is stored as written and filled per task at execution."""
    generic = json.dumps({"calls": [{"name": "information_retrieval", "arguments": {"query": "{task}"}}]})
    cfg, parts = make(tmp_path, optimizer=lambda m, kw: generic, iterations=1)
    ctx = RunContext.create(cfg)
    ads = ActiveDataSearch(cfg, ctx, **parts)
    ads.run()
    rows = list(JsonlStore(ctx.run_dir / "trajectories.jsonl"))
    accepted = [r for r in rows if r.get("accepted")]
    assert accepted and all(r["calls"][0]["arguments"]["query"] == "{task}" for r in accepted)
    assert all(r["gain"] == 1.0 for r in accepted)  # the filled query found each task's own answer
