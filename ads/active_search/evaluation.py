"""Held-out evaluation: every method on every held-out instruction, paired, with intervals.

Two kinds of held-out instructions:
- `trained` tasks' held-out instructions: the learned method answers them with the dataset the
  task acquired in training (its cost is what the accepted trajectories spent);
- `new` tasks (never trained on): the optimizer, with its exemplar memory and the policy's
  answers on the task's train instructions, writes k trajectories now (the first greedy); each is
  executed and scored on the task's train instructions as in training, and the best one's rows
  (or none, when the empty plan wins) are the dataset. Every sampled plan's cost counts.
Methods, all in the same run and on the same instructions:
- no_data: the policy alone;
- learned: as above;
- random: random API calls with arguments cut from the task's train instructions, spending what
  learned spent on that task (so mean costs match; both are printed); on new tasks k random plans
  with the costs of learned's k plans, selected the same way, so only the proposer differs;
- always_retrieve: one retrieval per train instruction, its text as the query;
- oracle: the gold source document of each instruction in context, the ceiling a user can reach.
Records are per (method, task) in eval.jsonl, so a resumed evaluation skips finished ones.
The evaluation after an iteration is one round of the experiment (ADSGenerator): one work item
per task, run on the executor like the training's.
"""
from __future__ import annotations

import random
from statistics import mean
from typing import TYPE_CHECKING, Any, Iterable

from ads.active_search import significance
from ads.active_search.instruction_sets import Task
from ads.active_search.planning import random_plan, retrieve_plan, task_key
from ads.ledger import ledger_scope

if TYPE_CHECKING:  # pragma: no cover
    from ads.active_search.experiment import ADSGenerator
    from ads.active_search.loop import ActiveDataSearch

COMPARISONS = (("learned", "no_data"), ("random", "no_data"), ("always_retrieve", "no_data"), ("oracle", "no_data"),
               ("learned", "random"), ("learned", "always_retrieve"), ("learned", "oracle"))


def acquired_costs(records: Iterable[dict[str, Any]], upto: int) -> dict[str, float]:
    """Per trained task, what its accepted trajectories of iterations 1..upto spent (one read of the records)."""
    out: dict[str, float] = {}
    for r in records:
        if r.get("accepted") and isinstance(r["iteration"], int) and r["iteration"] <= upto:
            out[r["task_id"]] = round(out.get(r["task_id"], 0.0) + r["cost"], 6)
    return out


def eval_payloads(gen: "ADSGenerator", it: int) -> list[dict[str, Any]]:
    """One work item per task (trained, then new) for the evaluation after iteration `it`, carrying
    what the driver knows then: the task's dataset, its acquired cost, the memory's exemplars, and
    the records of the methods a resumed run already wrote (those are reused, not recomputed)."""
    stored = {r["id"]: r for r in gen.evals} if gen.evals.ids() else {}
    methods = gen.cfg.loop.methods
    spent = acquired_costs(gen.trajectories, it)
    items = []
    for split, tasks in (("trained", gen.trained), ("new", gen.held)):
        for task in tasks:
            items.append({
                "phase": "eval", "it": it, "task": task, "split": split,
                "dataset": gen.dataset(task.id, it + 1) if split == "trained" else [],
                "acquired_cost": spent.get(task.id, 0.0) if split == "trained" else 0.0,
                # the memory as it stood after training iteration `it` (a resumed run restores later entries)
                "exemplars": gen.memory.nearest(task_key(task), gen.cfg.loop.exemplars, before=(it + 1, 0)),
                "stored": {m: stored[e] for m in methods if (e := eval_id(it, m, task.id)) in stored},
            })
    return items


def eval_id(it: int, method: str, task_id: str) -> str:
    return f"eval-it{it}-{method}-{task_id}"


def eval_task_work(env: "ActiveDataSearch", item: dict[str, Any]) -> list[dict[str, Any]]:
    env.forget_answers()
    return eval_task(env, item["it"], item["task"], item["split"], item["dataset"], item["acquired_cost"],
                     item["exemplars"], item["stored"])


def eval_task(env: "ActiveDataSearch", it: int, task: Task, split: str, dataset: list[dict[str, Any]],
              acquired: float, exemplars: list[tuple[str, str]], stored: dict[str, dict[str, Any]]) -> list[dict]:
    """Every method on one task's held-out instructions ("no_data" first: its scope gets the no-data calls)."""
    learned = stored.get("learned")
    methods = list(env.cfg.loop.methods)
    recs = []
    for n, method in enumerate(methods):
        rec = stored.get(method)
        # A task resumed after some of its records: the stored methods run again (their calls replay
        # from the request cache) so that the answers a later method reuses are remembered, as in
        # the uninterrupted run, and that method is charged exactly what it was charged there.
        if rec is None or any(m not in stored for m in methods[n + 1:]):
            with ledger_scope(iteration=f"eval-{it}", task_id=f"eval:{method}:{task.id}"), \
                    env.ctx.ledger.measure() as spent:
                out = run_method(env, method, it, task, split, dataset, acquired, exemplars, learned)
        if rec is None:
            none = env.answers(task.held_out, [])
            rec = {"id": eval_id(it, method, task.id), "iteration": it, "method": method, "task_id": task.id,
                   "family": task.family, "split": split, "instructions": [i.id for i in task.held_out],
                   "scores": [a.score for a in out["answers"]], "no_data_scores": [a.score for a in none],
                   "answers": [a.text[:300] for a in out["answers"]], "gold": [i.gold for i in task.held_out],
                   "policy_errors": sum(a.error is not None for a in out["answers"]), "cost": out["cost"],
                   "tokens": spent["total_tokens"] + spent["replayed_tokens"], "calls": out.get("calls", []),
                   "parse_error": out.get("parse_error"), "rows": out.get("rows", 0),
                   "sample_costs": out.get("sample_costs", [])}
        if method == "learned":
            learned = rec
        recs.append(rec)
    return recs


def run_method(env: "ActiveDataSearch", method: str, it: int, task: Task, split: str, dataset: list[dict[str, Any]],
               acquired: float, exemplars: list[tuple[str, str]], learned: dict[str, Any] | None) -> dict[str, Any]:
    held = task.held_out
    if method == "no_data":
        return {"answers": env.answers(held, []), "cost": 0.0}
    if method == "oracle":  # the gold document(s) in context; an instruction without one gets none
        ctx = {i.id: f"[1] {task.sources[i.source]}" for i in held if i.source in task.sources}
        return {"answers": env.answers(held, [], context={i.id: ctx.get(i.id, "") for i in held}), "cost": 0.0}
    if method == "always_retrieve":
        res = env.run_plan(task, retrieve_plan(task), [], [], f"eval-{it}", eval_id(it, method, task.id),
                           score_train=False)
        return {"answers": env.answers(held, res["new_rows"]), "cost": res["cost"], "calls": res["calls"],
                "rows": len(res["new_rows"])}
    if split == "trained":  # learned: the dataset acquired in training; random: one plan spending as much
        if method == "learned":
            return {"answers": env.answers(held, dataset), "cost": acquired, "rows": len(dataset)}
        target = learned["cost"] if learned is not None else 0.0
        trajs = [random_plan(task, env.registry, target, random.Random(f"{env.cfg.seed}:{task.id}:{it}:{target}"))]
        return select(env, it, method, task, trajs, score=False)
    # a new task: k plans, each executed and scored on the task's train instructions like in training, the
    # best one's rows kept (the empty plan is a candidate); random proposes k plans of the same costs
    k = env.cfg.loop.trajectories_per_task
    if method == "learned":
        current = [(a.text, a.score) for a in env.answers(task.train, [])]
        trajs = [env.optimizer.propose(task, current, exemplars, f"{task.id}:eval{it}:s{s}",
                                       0.0 if s == 0 else env.cfg.loop.optimizer_temperature) for s in range(k)]
    elif method == "random":
        targets = (learned or {}).get("sample_costs") or [0.0] * k
        trajs = [random_plan(task, env.registry, t, random.Random(f"{env.cfg.seed}:{task.id}:{it}:{s}:{t}"))
                 for s, t in enumerate(targets)]
    else:
        raise ValueError(f"unknown method {method!r}")
    return select(env, it, method, task, trajs, score=True)


def select(env: "ActiveDataSearch", it: int, method: str, task: Task, trajs: list[Any], score: bool) -> dict[str, Any]:
    """Execute the plans; with `score`, keep the one whose rows raise the train-instruction score most
    (reward as in training; the empty plan is a candidate), else the only one. Every plan's cost is spent."""
    before = env.answers(task.train, []) if score else []
    results = [env.run_plan(task, t, [], before, f"eval-{it}", f"{eval_id(it, method, task.id)}-s{s}",
                            score_train=score) for s, t in enumerate(trajs)]
    best = results[0] if results else None
    if score:
        null = {"reward": 0.0, "cost": 0.0, "calls": [], "new_rows": [], "parse_error": None}
        candidates = [r for r in results if r["reward"] is not None] + [null]
        best = max(candidates, key=lambda r: (r["reward"], -r["cost"], -len(r["calls"])))
        if best["reward"] < env.cfg.loop.accept_threshold:
            best = null
    rows = best["new_rows"] if best else []
    return {"answers": env.answers(task.held_out, rows), "cost": round(sum(r["cost"] for r in results), 6),
            "calls": best["calls"] if best else [], "rows": len(rows), "sample_costs": [r["cost"] for r in results],
            "parse_error": next((r["parse_error"] for r in results if r["parse_error"]), None)}


# --- summaries -------------------------------------------------------------------------------------
def _instr_scores(recs: list[dict[str, Any]]) -> dict[str, float]:
    return {f"{r['task_id']}|{i}": s for r in recs for i, s in zip(r["instructions"], r["scores"])}


def method_stats(recs: list[dict[str, Any]]) -> dict[str, Any]:
    pairs = [(s, b) for r in recs for s, b in zip(r["scores"], r["no_data_scores"])]
    n = len(pairs)
    fams: dict[str, list[float]] = {}
    splits: dict[str, list[float]] = {}
    for r in recs:
        fams.setdefault(r["family"], []).extend(r["scores"])
        splits.setdefault(r["split"], []).extend(r["scores"])
    return {
        "n_instructions": n, "n_tasks": len(recs),
        "mean_score": round(mean(s for s, _ in pairs), 4) if n else 0.0,
        "win_rate": round(sum(s > b for s, b in pairs) / n, 4) if n else 0.0,
        "tie_rate": round(sum(s == b for s, b in pairs) / n, 4) if n else 0.0,
        "loss_rate": round(sum(s < b for s, b in pairs) / n, 4) if n else 0.0,
        "mean_cost": round(mean(r["cost"] for r in recs), 4) if recs else 0.0,
        "mean_tokens": round(mean(r["tokens"] for r in recs), 1) if recs else 0.0,
        "policy_errors": sum(r["policy_errors"] for r in recs),
        "parse_failures": sum(r.get("parse_error") is not None for r in recs),
        "by_family": {f: round(mean(v), 4) for f, v in sorted(fams.items()) if v},
        "by_split": {s: round(mean(v), 4) for s, v in sorted(splits.items()) if v},
    }


def compare_methods(by_method: dict[str, list[dict[str, Any]]], a: str, b: str, seed: int,
                    split: str | None = None) -> dict[str, Any] | None:
    if a not in by_method or b not in by_method:
        return None
    sa = _instr_scores([r for r in by_method[a] if split is None or r["split"] == split])
    sb = _instr_scores([r for r in by_method[b] if split is None or r["split"] == split])
    keys = sorted(set(sa) & set(sb))
    return significance.compare([sa[k] for k in keys], [sb[k] for k in keys], seed=seed)


def summarize(it: int, results: list[dict[str, Any]], methods: list[str], seed: int) -> dict[str, Any]:
    by_method: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_method.setdefault(r["method"], []).append(r)
    out: dict[str, Any] = {"iteration": it, "methods": {m: method_stats(by_method[m]) for m in methods
                                                        if m in by_method}}
    comps = {}
    for a, b in COMPARISONS:
        for split in (None, "trained", "new"):
            c = compare_methods(by_method, a, b, seed, split)
            if c is not None and c["n"]:
                comps[f"{a} vs {b}" + (f" ({split} tasks)" if split else "")] = c
    out["comparisons"] = comps
    out["task_level"] = task_level(by_method)
    return out


def task_level(by_method: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The design document's per-task figures for the learned method against no data, with a Wilson
    interval on the win rate (over tasks) and the win rate of each task family, since one family
    the policy cannot gain on (a control) caps the whole mix's rate."""
    learned = by_method.get("learned", [])
    scored = [r for r in learned if r["scores"]]
    per_task = [(mean(r["scores"]), mean(r["no_data_scores"])) for r in scored]
    n = len(per_task)
    wins = sum(s > b for s, b in per_task)
    failed = [r["task_id"] for r in learned if r["policy_errors"] or r.get("parse_error")]
    families: dict[str, list[bool]] = {}
    for r, (s, b) in zip(scored, per_task):
        families.setdefault(r["family"], []).append(s > b)
    return {"total_tasks": len(learned), "completed_tasks": len(learned) - len(failed), "failed_tasks": len(failed),
            "win_rate": round(wins / n, 4) if n else 0.0,
            "win_rate_ci95": list(significance.wilson_interval(wins, n)),
            "tie_rate": round(sum(s == b for s, b in per_task) / n, 4) if n else 0.0,
            "loss_rate": round(sum(s < b for s, b in per_task) / n, 4) if n else 0.0,
            "avg_score": round(mean(s for s, _ in per_task), 4) if n else 0.0,
            "win_rate_by_family": {f: {"tasks": len(v), "wins": sum(v), "win_rate": round(sum(v) / len(v), 4)}
                                   for f, v in sorted(families.items())}}


def verdict(ev: dict[str, Any]) -> list[str]:
    lines = []
    for key in ("learned vs no_data", "learned vs random", "learned vs always_retrieve", "learned vs oracle",
                "learned vs no_data (trained tasks)", "learned vs no_data (new tasks)"):
        c = ev["comparisons"].get(key)
        if c is None:
            continue
        a, _, b = key.partition(" vs ")
        lines.append(significance.sentence(a, b, c))
    m = ev["methods"]
    if "learned" in m and "random" in m:
        lc, rc = m["learned"]["mean_cost"], m["random"]["mean_cost"]
        lines.append(f"cost per task: learned {lc:.2f}, random {rc:.2f}"
                     + ("" if abs(lc - rc) <= 0.1 * max(lc, 1e-9) or lc == rc else " (NOT matched within 10%)"))
    return lines


def flatten(ev: dict[str, Any]) -> dict[str, float]:
    flat: dict[str, float] = {}
    for method, m in ev["methods"].items():
        for k in ("mean_score", "win_rate", "mean_cost", "mean_tokens"):
            flat[f"eval/{method}/{k}"] = m[k]
        for fam, v in m["by_family"].items():
            flat[f"eval/{method}/family/{fam}"] = v
    for key, c in ev["comparisons"].items():
        flat[f"eval/diff/{key}"] = c["mean_diff"]
    return flat
