"""The task-level ADS loop on real models and data: SmolLM2 as policy and optimizer, BM25 over the
real Wikipedia subset, tasks of questions about real articles.

Two iterations on a handful of tasks so it fits in CI on 2 cores. The test checks that every
output the run promises exists and agrees with the ledger and the records (rows of accepted
trajectories only, held-out instructions never in an optimizer prompt's records, cost-matched
random baseline, paired intervals), not that the optimizer learned something: a handful of
tasks cannot show that; the README's measured runs do.
"""
from __future__ import annotations

import json

import pytest

from ads.active_search.instruction_sets import TasksConfig
from ads.active_search.loop import ADSConfig, LoopConfig
from ads.active_search.outputs import run
from ads.config import CacheConfig, ModelConfig, TrackingConfig
from ads.run import RunContext
from apis.factory import ApisConfig


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_two_iteration_task_level_run_writes_every_output(tmp_path, smollm_path):
    small = ModelConfig(name="smollm2-135m", n_ctx=2048)
    cfg = ADSConfig(
        name="ci-ads", seed=0, policy=small, optimizer=small,
        tasks=TasksConfig(families={"wiki": 2}, test_families={"wiki": 1}, instructions_per_task=4,
                          train_instructions=2),
        apis=ApisConfig.model_validate({"enabled": ["information_retrieval", "question_answering"],
                                        "retrieval": {"top_k": 2, "passage_chars": 300, "max_top_k": 4},
                                        "qa": {"top_k": 1, "passage_chars": 300, "max_tokens": 24}}),
        loop=LoopConfig(iterations=2, trajectories_per_task=2, max_calls=1, optimizer_max_tokens=80,
                        answer_max_tokens=12, context_chars=700, coverage_bonus=0.1),
        cache=CacheConfig(path=str(tmp_path / "requests.sqlite")),
        tracking=TrackingConfig(wandb=True),
    )
    ctx = RunContext.create(cfg, run_dir=tmp_path / "run")
    summary = run(cfg, ctx)
    d = tmp_path / "run"

    for name in ("evaluation_results.json", "training_metrics.json", "trajectories.jsonl", "training_data.jsonl",
                 "eval.jsonl", "tasks.json", "ledger.jsonl", "ledger_summary.json", "state.json", "summary.json",
                 "config.yaml", "run_info.json", "metrics.jsonl", "reward.png", "score.png", "cost.png",
                 "accepted.png"):
        assert (d / name).is_file(), name
    assert (d / "training_dataset" / "README.md").is_file()
    # issue 23 on real data: the generic export exists, and main.py finetune's reader takes both datasets
    from ads.downstream.data import DataConfig, load_examples
    from ads.export.core import load_run

    assert (d / "export" / "README.md").is_file() and (d / "export" / "hf").is_dir()
    assert len(load_run(d).accepted) + len(load_run(d).rejected) == len(_jsonl(d / "training_data.jsonl"))
    if summary["export"]["rows"]:
        assert len(load_examples(DataConfig(path=str(d / "training_dataset")))) == summary["export"]["rows"]
    assert list((d / "wandb").glob("offline-run-*")), "an offline W&B run was written"

    tasks = json.loads((d / "tasks.json").read_text())
    assert len(tasks["trained"]) == 2 and len(tasks["held_out"]) == 1
    assert all(len(t["train"]) == 2 and len(t["held_out"]) == 2 for t in tasks["trained"] + tasks["held_out"])
    from ads.downstream.evalset import is_heldout  # checked, not assumed: no task article is a fine-tuning eval one

    assert not any(is_heldout(s) for t in tasks["trained"] + tasks["held_out"] for s in t["sources"])

    ev = json.loads((d / "evaluation_results.json").read_text())
    m = ev["final"]["methods"]
    assert set(m) == {"no_data", "learned", "random", "always_retrieve", "oracle"}
    assert all(s["n_instructions"] == 6 for s in m.values())  # 3 tasks x 2 held-out instructions
    for s in m.values():
        assert 0.0 <= s["mean_score"] <= 1.0 and abs(s["win_rate"] + s["tie_rate"] + s["loss_rate"] - 1) < 1e-6
    assert abs(m["random"]["mean_cost"] - m["learned"]["mean_cost"]) <= 0.1 * max(m["learned"]["mean_cost"], 1e-9)
    c = ev["final"]["comparisons"]["learned vs no_data"]
    assert c["n"] == 6 and c["ci95"][0] <= c["mean_diff"] <= c["ci95"][1]
    assert ev["verdict"] and ev["total_tasks"] == 3 and len(ev["task_results"]) == 15
    lo, hi = ev["win_rate_ci95"]
    assert lo <= ev["win_rate"] <= hi and sum(f["tasks"] for f in ev["win_rate_by_family"].values()) == 3
    # the oracle had its gold article in context (no cost); on 6 instructions a 135M policy need not beat no data
    assert m["oracle"]["mean_cost"] == 0 and m["oracle"]["mean_tokens"] > m["no_data"]["mean_tokens"]

    training = json.loads((d / "training_metrics.json").read_text())
    assert [t["iteration"] for t in training] == [1, 2]
    trajs = _jsonl(d / "trajectories.jsonl")
    assert len({t["id"] for t in trajs}) == len(trajs) >= 8  # 2 tasks x 2 iterations x 2 samples (+ null plans)
    # every row of the training data comes from an accepted trajectory of its task, none from elsewhere
    # reward = score gain + 0.1 x the change in answer coverage (with new rows only) - lambda x cost
    for t in trajs:
        if t.get("null_plan") or t["reward"] is None:
            continue
        assert all(c is None or 0 <= c <= 1 for c in (t["coverage_before"], t["coverage_with"]))
        moved = t["n_new_rows"] and None not in (t["coverage_before"], t["coverage_with"])
        bonus = 0.1 * (t["coverage_with"] - t["coverage_before"]) if moved else 0.0
        assert t["reward"] == pytest.approx(t["gain"] + bonus - cfg.loop.lambda_cost * t["cost"], abs=2e-6)
    rows = _jsonl(d / "training_data.jsonl")
    accepted = {t["id"] for t in trajs if t["accepted"]}
    assert all(r["trajectory_id"] in accepted and r["kind"] in ("passage", "qa") for r in rows)
    assert len(rows) == len({r["id"] for r in rows})
    held = {i["prompt"] for t in tasks["trained"] + tasks["held_out"] for i in t["held_out"]}
    assert not any(h in json.dumps(trajs) for h in held)

    led = _jsonl(d / "ledger.jsonl")
    total = sum(r.get("prompt_tokens", 0) + r.get("completion_tokens", 0) for r in led)
    assert summary["ledger"]["run"]["total_tokens"] == total > 0
    assert summary["ledger"]["run"]["api_calls"] == sum(1 for r in led if r.get("kind") == "api")
