"""Bandit, tool-use and perspectives on the executor: `threads` and `ray` (2 workers) write the same
records and ledger as `local` for the same seed (scripted models; ads/executor.py, docs/executor.md).

All Ray tests here share one local cluster (2 CPUs), started once for the module.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ads.run import RunContext
from ads.store import JsonlStore
from models.fake import FakeModel

import test_bandit_loop as bandit_t  # scripted bandit model and config (tests/unit on sys.path)
import test_perspectives as persp_t
from test_perspectives import responder as persp_responder
import test_tool_use as tool_t

KINDS = ["threads", "ray"]


def with_executor(cfg, kind: str):
    return type(cfg).model_validate({**cfg.model_dump(mode="json", by_alias=True),
                                     "executor": {"kind": kind, "workers": 2}})


def ledger(run_dir: Path) -> list[str]:
    return [json.dumps({k: v for k, v in r.items() if k not in ("ts", "wall_s")}, sort_keys=True)
            for r in JsonlStore(run_dir / "ledger.jsonl", id_field="_none").read()]


def records(path: Path, drop=("wall_s", "latency_s", "created_at"), id_field: str = "id") -> list[str]:
    return [json.dumps({k: v for k, v in r.items() if k not in drop}, sort_keys=True)
            for r in JsonlStore(path, id_field=id_field).read()]


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    from ads.ray_executor import init_ray

    # scripted responders live in test modules that Ray workers cannot import: ship them by value
    for mod in (bandit_t, persp_t, tool_t, sys.modules[__name__]):
        cloudpickle.register_pickle_by_value(mod)
    owns = init_ray(workers=2)
    yield ray
    if owns:
        ray.shutdown()


def need(kind: str, request) -> None:
    if kind == "ray":
        request.getfixturevalue("ray_cluster")


def local_and(kind: str, runner, tmp_path: Path, request) -> tuple[dict, FakeModel]:
    """`runner` with the local executor, then with `kind`; every output must be equal.
    Returns (the local outputs, the other run's driver model)."""
    need(kind, request)
    local, _ = runner(tmp_path, "local")
    other, driver_model = runner(tmp_path, kind)
    for key in local:
        assert other[key] == local[key], key
    return local, driver_model


# --- bandit recipes -------------------------------------------------------------------------------
def run_bandit(tmp_path: Path, kind: str) -> tuple[dict, FakeModel]:
    from ads.generators.bandit_recipes import run

    cfg = with_executor(bandit_t.config(tmp_path / kind, recipe={"target_count": 12}), kind)
    model = FakeModel(bandit_t.by_temperature)
    ctx = RunContext.create(cfg)
    run(cfg, ctx, model=model)
    d = ctx.run_dir
    out = {name: records(d / f"{name}.jsonl", id_field="iteration" if name == "iterations" else "id")
           for name in ("samples", "dataset", "iterations")}
    out["ledger"] = ledger(d)
    return out, model


@pytest.mark.parametrize("kind", KINDS)
def test_bandit_on_the_executor_writes_the_local_records(tmp_path, kind, request):
    local, driver_model = local_and(kind, run_bandit, tmp_path, request)
    # the novelty validator rejected something and several arms were pulled: order-dependent state mattered
    samples = [json.loads(s) for s in local["samples"]]
    assert len({s["arm"] for s in samples}) > 1 and any(not s["accepted"] for s in samples)
    assert local["ledger"] and len(local["dataset"]) == 12
    if kind == "ray":  # generation ran on the workers, not on the driver's model
        assert driver_model.calls == []


# --- perspectives -------------------------------------------------------------------------------
def run_persp(tmp_path: Path, kind: str) -> tuple[dict, FakeModel]:
    from ads.generators import perspectives as P

    (tmp_path / kind).mkdir()
    data = persp_t.base_config(tmp_path / kind)
    data["model_config"]["max_concurrency"] = 1  # the local reference runs in order: a deterministic ledger
    data["quality"] = {"max_attempts": 2, "validators": [{"type": "length", "min_words": 12}]}
    data["executor"] = {"kind": kind, "workers": 2}
    model = FakeModel(persp_short_first)
    summary = P.run_pipeline(data, model=model, progress=False)
    d = Path(summary["run_dir"])
    out = {"responses": records(d / "responses.jsonl"), "ledger": ledger(d),
           "tasks": json.loads((d / "dataset.json").read_text())["tasks"]}
    return out, model


def persp_short_first(messages, kw):
    """Too short on the first strategy call of odd units (a validator retry), else the scripted answer."""
    sid = str(kw["sample_id"])
    if not sid.endswith(("reading", "retry1")) and int(sid.split("-p")[1][:2]) % 2:
        return "Too short."
    return persp_responder(messages, kw)


@pytest.mark.parametrize("kind", KINDS)
def test_perspectives_on_the_executor_write_the_local_records(tmp_path, kind, request):
    local, driver_model = local_and(kind, run_persp, tmp_path, request)
    recs = [json.loads(r) for r in local["responses"]]
    assert len(recs) == 6 and any(r["attempts"] == 2 for r in recs) and local["ledger"]
    if kind == "ray":
        assert driver_model.calls == []  # the estimate counts tokens without calling the model


# --- tool-use conversations -------------------------------------------------------------------
def run_tool_use(tmp_path: Path, kind: str) -> tuple[dict, FakeModel]:
    from ads.generators.tool_use import run

    cfg = with_executor(tool_t._cfg(tmp_path / kind, n=6, max_repairs=1, novelty_threshold=0.4), kind)
    m = FakeModel(generous_judge)
    ctx = RunContext.create(cfg, run_dir=tmp_path / kind / "run")
    run(cfg, ctx, model=m, judge_model=m, embedder=tool_t.HashEmbedder(), progress=False)
    return {"conversations": records(ctx.run_dir / "conversations.jsonl", id_field="conversation_id"),
            "ledger": ledger(ctx.run_dir)}, m


_TOOL_MODEL = tool_t.schema_model(1)


def generous_judge(messages, kw):
    """The tool-use fake (same opening every time, so novelty bites), with a judge that gives full marks:
    attempts then pass every gate but novelty."""
    s = kw["json_schema"]
    if s and "rationale" in s.get("properties", {}):
        crit = s["properties"]["scores"]["properties"]
        return json.dumps({"rationale": "Fine.", "scores": {c: 10 for c in crit}})
    return _TOOL_MODEL.generate(messages, json_schema=s, seed=kw["seed"], sample_id=kw["sample_id"]).text


@pytest.mark.parametrize("kind", KINDS)
def test_tool_use_on_the_executor_writes_the_local_records(tmp_path, kind, request):
    local, driver_model = local_and(kind, run_tool_use, tmp_path, request)
    recs = [json.loads(r) for r in local["conversations"]]
    assert len(recs) == 6  # (injected models are not ledgered by tool_use.run, locally or on workers)
    # the order-dependent novelty check rejected an attempt that passed everything else, and a repair
    # followed: the driver, not the worker, decided that
    assert any(r["passed"] for r in recs)
    assert any("novelty" in r["validation"]["failed"] and r["metadata"]["repairs"] == 1 for r in recs)


def test_bandit_killed_mid_batch_locally_resumes_on_ray_to_the_uninterrupted_records(tmp_path, ray_cluster):
    """Killed after 4 attempts (inside the second batch of 3), resumed with executor.kind ray: the
    resumed batch generates only its missing items on the workers, and the files equal a straight run."""
    from ads.generators.bandit_recipes import run

    straight, _ = run_bandit(tmp_path, "local")
    cfg = bandit_t.config(tmp_path / "killed", recipe={"target_count": 12})
    with pytest.raises(bandit_t.Interrupt):
        run(cfg, RunContext.create(cfg, run_dir=tmp_path / "killed" / "run"),
            model=FakeModel(bandit_t.interrupted_after(4)))
    assert len(JsonlStore(tmp_path / "killed" / "run" / "samples.jsonl").read()) == 4
    ray_cfg = with_executor(cfg, "ray")
    driver_model = FakeModel(bandit_t.by_temperature)
    run(ray_cfg, RunContext.create(ray_cfg, resume=True, run_dir=tmp_path / "killed" / "run"), model=driver_model)
    d = tmp_path / "killed" / "run"
    for name in ("samples", "dataset", "iterations"):
        got = records(d / f"{name}.jsonl", id_field="iteration" if name == "iterations" else "id")
        assert got == straight[name], name
    assert driver_model.calls == []
