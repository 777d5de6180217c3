"""Rejection sampling over one task's sampled trajectories, and what an iteration adds up to.

Pure functions of the samples and the config, so the driver's commit and a resumed run's
"is this task finished?" reach the same decision from the same records.
"""
from __future__ import annotations

from statistics import mean
from typing import Any

from ads.active_search.instruction_sets import Task

# The free "fetch nothing" plan, always a candidate unless loop.null_plan_candidate is off.
NULL_PLAN: dict[str, Any] = {"id": None, "reward": 0.0, "cost": 0.0, "calls": []}


def choose(samples: list[dict[str, Any]], lp: Any) -> dict[str, Any] | None:
    """The accepted candidate: the best valid sample or NULL_PLAN (ties go to the cheaper, shorter,
    earlier plan), or None when even the best misses loop.accept_threshold."""
    valid = [r for r in samples if r["reward"] is not None]
    candidates = valid + ([NULL_PLAN] if lp.null_plan_candidate else [])
    best = max(candidates, key=lambda r: (r["reward"], -r["cost"], -len(r["calls"]))) if candidates else None
    return best if best is not None and best["reward"] >= lp.accept_threshold else None


def null_plan_id(it: int, task_id: str) -> str:
    return f"it{it}-{task_id}-null"


def task_records(it: int, task: Task, samples: list[dict[str, Any]], accepted: dict[str, Any] | None,
                 exemplars_used: int, had_data: bool) -> list[dict[str, Any]]:
    """The trajectory records of one task in one iteration: every sample, then the null plan's
    record when it won. `had_data`: the task had acquired rows before this iteration."""
    records = []
    for r in samples:
        rec = {**r, "iteration": it, "task_id": task.id, "family": task.family,
               "accepted": accepted is not None and r["id"] == accepted["id"], "null_plan": False,
               "exemplars_used": exemplars_used}
        rec["n_new_rows"] = len(rec.pop("new_rows"))
        records.append(rec)
    if accepted is not None and accepted["id"] is None:
        before = samples[0] if samples else {}
        records.append({"id": null_plan_id(it, task.id), "iteration": it, "task_id": task.id,
                        "family": task.family, "calls": [], "raw": "<null plan>", "parse_error": None,
                        "observations": [], "cost": 0.0, "reward": 0.0, "gain": 0.0,
                        "score_before": before.get("score_before"), "score_with": before.get("score_before"),
                        "accepted": True, "null_plan": True, "exemplars_used": exemplars_used, "n_new_rows": 0})
    data_hurt = any(r["gain"] < 0 for r in samples if r["reward"] is not None and r["calls"])
    already_right = bool(samples) and samples[0]["score_before"] >= 0.5
    for rec in records:
        # An accepted empty plan is an example for other tasks only when it was a finding: data
        # was tried and hurt, or the policy already answers. "Nothing tried helped" on a task the
        # policy fails is not a lesson (shown as one, it taught the optimizer to stop fetching);
        # nor is "nothing more needed" after a data plan: the memory keeps showing that plan.
        empty_lesson = (data_hurt or already_right) and not had_data
        rec["to_memory"] = rec["accepted"] and (bool(rec["calls"]) or empty_lesson)
    return records


def mean_or_zero(xs: list[float]) -> float:
    """statistics.mean, and 0 for nothing (a task with no scored instruction, an empty iteration)."""
    return float(mean(xs)) if xs else 0.0


def train_metrics(it: int, rows: list[dict[str, Any]], dataset_rows: int, total_tokens: int,
                  memory_size: int) -> dict[str, Any]:
    """One line of training_metrics.json from the iteration's trajectory records."""
    sampled = [r for r in rows if not r.get("null_plan")]
    rewards = [r["reward"] for r in sampled if r["reward"] is not None]
    by_task: dict[str, list[dict]] = {}
    for r in rows:
        by_task.setdefault(r["task_id"], []).append(r)
    best = [max((r["reward"] for r in rs if r["reward"] is not None), default=None) for rs in by_task.values()]
    best = [b for b in best if b is not None]
    accepted = [r for r in rows if r["accepted"]]
    return {
        "iteration": it,
        "tasks": len(by_task),
        "trajectories": len(sampled),
        "parse_failures": sum(r["parse_error"] is not None for r in sampled),
        "empty_plans_sampled": sum(r["parse_error"] is None and not r["calls"] for r in sampled),
        "mean_reward": round(mean_or_zero(rewards), 4) if rewards else None,
        "mean_best_reward": round(mean_or_zero(best), 4) if best else None,
        "accepted_data_plans": sum(bool(r["calls"]) for r in accepted),
        "accepted_empty_plans": sum(not r["calls"] for r in accepted),
        "acceptance_rate": round(len({r["task_id"] for r in accepted}) / max(1, len(by_task)), 4),
        "mean_gain_accepted_data": round(mean_or_zero([r["gain"] for r in accepted if r["calls"]]), 4),
        "api_cost": round(sum(r["cost"] for r in sampled), 4),
        "api_cost_per_task": round(sum(r["cost"] for r in sampled) / max(1, len(by_task)), 4),
        "dataset_rows": dataset_rows,
        "total_tokens": total_tokens,
        "memory_size": memory_size,
    }
