"""The executor: local vs Ray give the same records, ledger and resume (ADS loop on scripted models).

The Ray tests start one local cluster (2 CPUs, 2 workers) for the module and shut it down after.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ads.config import ConfigError, config_hash, load_config
from ads.executor import LocalExecutor
from ads.active_search.loop import ADSConfig
from ads.active_search.outputs import run
from ads.run import RunContext, run_id_for
from ads.store import JsonlStore

import test_ads_loop as fakes  # scripted models and APIs of the ADS loop tests (tests/unit on sys.path)

ROOT = Path(__file__).resolve().parents[2]


def outputs(run_dir: Path) -> dict:
    """Everything a run writes that must not depend on the executor (timestamps and wall times excluded)."""
    out = {}
    for name in ("trajectories", "eval", "training_data"):
        out[name] = [json.dumps(r, sort_keys=True) for r in JsonlStore(run_dir / f"{name}.jsonl").read()]
    out["ledger"] = [json.dumps({k: v for k, v in r.items() if k not in ("ts", "wall_s")}, sort_keys=True)
                     for r in JsonlStore(run_dir / "ledger.jsonl", id_field="_none").read()]
    out["final"] = json.loads((run_dir / "evaluation_results.json").read_text())["final"]
    return out


def make(tmp_path, executor: str = "local", **loop):
    cfg, parts = fakes.make(tmp_path, **loop)
    cfg = ADSConfig.model_validate({**cfg.model_dump(mode="json"), "executor": {"kind": executor, "workers": 2}})
    return cfg, parts


# --- local, no ray ------------------------------------------------------------------------------
def test_local_executor_keeps_order_and_never_imports_ray():
    assert LocalExecutor().map(lambda env, x: (env, x * x), [3, 1, 2], env="e") == [("e", 9), ("e", 1), ("e", 4)]
    code = ("import sys; from ads.executor import make_executor; from ads.active_search.loop import ADSConfig; "
            "ex = make_executor(ADSConfig().executor); ex.map(lambda e, x: x, [1], env=None); "
            "print(ex.kind, 'ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["local", "False"]


def test_executor_config_is_validated_and_not_part_of_the_run_id(tmp_path):
    with pytest.raises(ConfigError, match="executor.kind"):
        load_config(ADSConfig, None, ["executor.kind=dask"])
    with pytest.raises(ConfigError, match="executor.workers"):
        load_config(ADSConfig, None, ["executor.workers=0"])
    local = load_config(ADSConfig, None, [])
    ray_cfg = load_config(ADSConfig, None, ["executor.kind=ray", "executor.workers=4", "executor.address=auto"])
    assert ray_cfg.executor.kind == "ray" and ray_cfg.executor.workers == 4
    assert config_hash(local) == config_hash(ray_cfg) and run_id_for(local) == run_id_for(ray_cfg)
    assert config_hash(local) != config_hash(load_config(ADSConfig, None, ["loop.task_batch=2"]))


def run_kinds(tmp_path, kinds, **loop) -> dict:
    """The same run once per executor kind: {kind: (outputs, the driver's scripted models)}."""
    res = {}
    for kind in kinds:
        cfg, parts = make(tmp_path / kind, executor=kind, **loop)
        ctx = RunContext.create(cfg)
        run(cfg, ctx, **parts)
        res[kind] = (outputs(ctx.run_dir), parts)
    return res


def test_threads_executor_gives_the_same_records_and_ledger_as_local(tmp_path):
    """Threads build their own env from the factory, like Ray actors: same contract, no Ray needed."""
    res = {k: out for k, (out, _) in run_kinds(tmp_path, ("local", "threads"), task_batch=3).items()}
    assert res["local"]["ledger"] and any('"kind": "api"' in e for e in res["local"]["ledger"])
    for key in res["local"]:
        assert res["threads"][key] == res["local"][key], key


def test_task_batch_tasks_share_the_memory_of_the_batch_start(tmp_path):
    """task_batch 1 keeps the sequential semantics (later tasks see earlier tasks' accepted plans);
    with task_batch 3 no training task of iteration 1 sees another's plan from the same iteration."""
    used = {}
    for batch in (1, 3):
        cfg, parts = make(tmp_path / f"b{batch}", iterations=1, task_batch=batch)
        ctx = RunContext.create(cfg)
        run(cfg, ctx, **parts)
        used[batch] = [r["exemplars_used"] for r in JsonlStore(ctx.run_dir / "trajectories.jsonl").read()
                       if r["iteration"] == 1 and not r.get("null_plan")]
    assert used[1] == [0, 0, 1, 1, 2, 2]
    assert used[3] == [0] * 6


def test_killed_mid_batch_resumes_to_the_same_records(tmp_path):
    """A kill inside a batch leaves later memory entries on disk; the resumed batch must not see them."""
    _, killed = fakes.full_and_killed(tmp_path, make, task_batch=3)
    traj = killed.run_dir / "trajectories.jsonl"
    lines = traj.read_text().splitlines(keepends=True)
    # keep only the first task of iteration 1 (its 2 samples; sample 0 was accepted): the other two
    # tasks of that batch must again see an empty memory, not the restored plan
    assert [json.loads(x)["id"] for x in lines[:2]] == ["it1-task-alpha-s0", "it1-task-alpha-s1"]
    assert json.loads(lines[0])["accepted"]
    traj.write_text("".join(lines[:2]))
    (killed.run_dir / "summary.json").unlink()
    cfg3, parts3 = make(tmp_path, task_batch=3)
    resumed = RunContext.create(cfg3, run_dir=tmp_path / "killed", resume=True)
    run(cfg3, resumed, **parts3)
    a = sorted(json.dumps(r, sort_keys=True) for r in JsonlStore(tmp_path / "full" / "trajectories.jsonl").read())
    b = sorted(json.dumps(r, sort_keys=True) for r in JsonlStore(traj).read())
    assert a == b


# --- Ray: one local cluster for the module --------------------------------------------------------
@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    from ads.ray_executor import init_ray

    # the scripted models live in test modules that Ray workers cannot import: ship them by value
    cloudpickle.register_pickle_by_value(fakes)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    owns = init_ray(workers=2)
    yield ray
    if owns:
        ray.shutdown()


def test_ray_gives_the_same_records_ledger_and_evaluation_as_local(tmp_path, ray_cluster):
    runs = run_kinds(tmp_path, ("local", "ray"), task_batch=2)
    res = {k: out for k, (out, _) in runs.items()}
    assert runs["local"][1]["policy_model"].calls
    ray_parts = runs["ray"][1]  # the driver's own models were never called: the work ran on the workers
    assert ray_parts["policy_model"].calls == [] and ray_parts["optimizer_model"].calls == []
    assert res["local"]["trajectories"] and res["local"]["eval"] and res["local"]["ledger"]
    for key in res["local"]:
        assert res["ray"][key] == res["local"][key], key


def test_killed_run_resumed_on_ray_matches_the_same_run_resumed_locally(tmp_path, ray_cluster):
    """Kill a local run, then resume one copy locally and one on Ray: same folder (run id), same records,
    same ledger; and the trajectories equal those of an uninterrupted run."""
    _, killed = fakes.full_and_killed(tmp_path, make)
    fakes.keep_lines(killed.run_dir / "trajectories.jsonl", 3)
    fakes.keep_lines(killed.run_dir / "eval.jsonl", 5)
    (killed.run_dir / "summary.json").unlink()
    shutil.copytree(killed.run_dir, tmp_path / "killed_copy")
    cache = Path(killed.cfg.cache.path)
    shutil.copy(cache, tmp_path / "cache_at_kill")
    res = {}
    for kind, d in (("local", tmp_path / "killed"), ("ray", tmp_path / "killed_copy")):
        shutil.copy(tmp_path / "cache_at_kill", cache)  # each resume starts from the cache the kill left
        c, p = make(tmp_path, executor=kind)
        assert run_id_for(c) == run_id_for(killed.cfg)  # the executor does not change the run folder
        run(c, RunContext.create(c, run_dir=d, resume=True), **p)
        res[kind] = outputs(d)
    for key in res["local"]:
        assert res["ray"][key] == res["local"][key], key
    ids = [json.loads(x)["id"] for x in res["ray"]["trajectories"]]
    assert len(ids) == len(set(ids))
    a = [json.dumps(r, sort_keys=True) for r in JsonlStore(tmp_path / "full" / "trajectories.jsonl").read()]
    assert sorted(a) == sorted(res["ray"]["trajectories"])


class _Env:
    def __init__(self):
        from ads.ledger import CostLedger

        self.ledger = CostLedger(None)


def _fail_on_three(env, x):
    from ads.ledger import LedgerEntry
    from models.openai_compat import EndpointFailingError

    env.ledger.record(LedgerEntry(kind="api", role=f"item{x}", cost_units=float(x)))
    if x == 3:
        raise EndpointFailingError("endpoint http://x/v1 is failing")
    return x * 10


def test_ray_worker_error_surfaces_in_order_after_earlier_results_and_their_ledger(ray_cluster):
    from ads.ray_executor import RayExecutor
    from ads.ledger import CostLedger
    from models.openai_compat import EndpointFailingError

    ex = RayExecutor(workers=2)
    ledger = CostLedger(None)
    got = []
    try:
        with pytest.raises(EndpointFailingError, match="is failing"):
            for r in ex.imap(_fail_on_three, [1, 2, 3, 4, 5], factory=_Env, ledger=ledger):
                got.append(r)
        assert len(set(ex.worker_pids())) == 2
    finally:
        ex.close()
    assert got == [10, 20]
    assert [e.role for e in ledger.entries] == ["item1", "item2", "item3"]
