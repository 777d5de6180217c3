"""What a user reads of an ADS run: the result files, the terminal report, plots, exported datasets.

`run()` is the entry point (the experiment's rounds are experiment.py's ADSGenerator, driven by
the one runner); ADSGenerator.summary and .report call the writers here at the end of a run.

Outputs in the run folder:
- evaluation_results.json: per method and per split (trained tasks' new instructions / new
  tasks) mean scores, win/tie/loss against no data, cost and tokens per task, paired
  comparisons with bootstrap 95% intervals and sign tests, the verdict, the design document's
  fields (total_tasks, completed_tasks, failed_tasks, win_rate, tie_rate, loss_rate, avg_score)
  and per-task results with api_cost;
- training_metrics.json, trajectories.jsonl (every sample, rejected ones with their raw text),
  training_data.jsonl (every acquired row with provenance), eval.jsonl, tasks.json;
- training_dataset/ (`datasets.save_to_disk`, instruction/response + provenance, with a card)
  and training_dataset_by_task/<task>.jsonl: what `main.py finetune` reads directly. Rows from
  articles in the downstream evaluation pool are left out (and counted), so fine-tuning on the
  export never sees an article it is scored on;
- ledger.jsonl + ledger_summary.json, state.json, summary.json, PNG plots.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from ads.active_search.instruction_sets import Task
from ads.active_search.loop import ADSConfig
from ads.active_search.training_data import as_sft_pair
from ads.harness.runner import run_generator
from ads.report import print_table
from ads.run import RunContext
from ads.store import atomic_write_text
from ads.tracking import plot_curves

__all__ = ["ADSConfig", "run"]


def run(cfg: ADSConfig, ctx: RunContext, **components: Any) -> dict[str, Any]:
    """Run an ADS experiment to the end: the registry's entry for `kind: ads` (ads/harness/kinds.py).
    `components` are built models, tasks or an API registry to use instead of the config's (tests)."""
    from ads.active_search.experiment import ADSGenerator  # imported here: experiment.py imports the writers below

    return run_generator(ADSGenerator, cfg, ctx, **components)


def evaluation_results(final: dict[str, Any], per_iteration: list[dict[str, Any]], verdict: list[str],
                       tasks: list[Task], evals: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """evaluation_results.json: the final evaluation with the design document's fields on top."""
    return {**final["task_level"], "metrics": {k: final["task_level"][k] for k in
                                               ("win_rate", "tie_rate", "loss_rate", "avg_score")},
            "final": final, "per_iteration": per_iteration, "verdict": verdict,
            "task_results": task_rows(tasks, evals, final["iteration"])}


def task_rows(tasks: list[Task], evals: Iterable[dict[str, Any]], it: int) -> list[dict[str, Any]]:
    """Per task and method: the held-out instructions with their scores, and the API cost."""
    prompts = {i.id: i.prompt for t in tasks for i in t.instructions}
    out = []
    for r in evals:
        if r["iteration"] != it:
            continue
        out.append({"task_id": r["task_id"], "family": r["family"], "split": r["split"], "method": r["method"],
                    "score": round(sum(r["scores"]) / max(1, len(r["scores"])), 4), "api_cost": r["cost"],
                    "tokens": r["tokens"],
                    "instructions": [{"id": i, "instruction": prompts.get(i, ""), "answer": a, "gold": g, "score": s,
                                      "no_data_score": b}
                                     for i, a, g, s, b in zip(r["instructions"], r["answers"], r["gold"], r["scores"],
                                                              r["no_data_scores"])]})
    return out


def print_report(final: dict[str, Any], training: list[dict[str, Any]], summary: dict[str, Any],
                 export: dict[str, Any]) -> None:
    """The terminal's result: the held-out table, the training table, LoRA lines, the verdict, the ledger."""
    comps = final["comparisons"]
    rows = []
    for method, s in final["methods"].items():
        c = comps.get(f"{method} vs no_data")
        ci = f"{c['mean_diff']:+.3f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]" if c else "-"
        wtl = f"{s['win_rate']:.2f}/{s['tie_rate']:.2f}/{s['loss_rate']:.2f}"
        rows.append([method, f"{s['mean_score']:.3f}", ci, wtl,
                     f"{s['mean_cost']:.2f}", f"{s['mean_tokens']:.0f}",
                     "  ".join(f"{k}={v:.2f}" for k, v in s["by_split"].items())])
    n = next(iter(final["methods"].values()))["n_instructions"] if final["methods"] else 0
    print_table(f"Held-out instructions after iteration {final['iteration']} (n={n}; {summary['run_id']})",
                ["method", "mean score", "vs no_data: diff [95% CI]", "win/tie/loss", "API cost/task", "tokens/task",
                 "score by split"], rows)
    train_rows = [[str(t["iteration"]), str(t["mean_reward"]), str(t["mean_best_reward"]),
                   f"{t['accepted_data_plans']} data + {t['accepted_empty_plans']} empty",
                   str(t["parse_failures"]), str(t["api_cost_per_task"]), str(t["dataset_rows"]),
                   str(t["total_tokens"])]
                  for t in training]
    print_table("Training iterations", ["iter", "mean reward", "mean best", "accepted plans", "parse failures",
                                        "API cost/task", "dataset rows", "tokens"], train_rows)
    for t in training:
        for role in ("policy", "optimizer"):
            info = t.get(f"{role}_lora")
            if info is not None:
                print(f"{role} LoRA after iteration {t['iteration']}: "
                      + (f"trained on {info.get('examples')} examples, {info.get('steps')} steps"
                         if info.get("trained") else f"not retrained ({info.get('reason')})")
                      + f"; serving {info.get('model_id')}")
    for line in summary["verdict"]:
        print(line)
    tl = final["task_level"]
    print(f"per task (learned vs no data): {tl['completed_tasks']}/{tl['total_tasks']} completed, win rate "
          f"{tl['win_rate']:.2f} (95% CI [{tl['win_rate_ci95'][0]:.2f}, {tl['win_rate_ci95'][1]:.2f}]), "
          f"tie {tl['tie_rate']:.2f}, loss {tl['loss_rate']:.2f}, "
          f"avg score {tl['avg_score']:.3f}")
    if len(tl.get("win_rate_by_family", {})) > 1:
        print("win rate by family: " + ", ".join(f"{f} {v['wins']}/{v['tasks']}"
                                                 for f, v in tl["win_rate_by_family"].items()))
    led = summary["ledger"]["run"]
    print(f"training dataset: {export['rows']} rows exported to {export['path']} "
          f"({export['dropped_eval_overlap']} left out: their articles are in the fine-tuning evaluation pool)")
    print(f"ledger: {led['model_calls']} model calls ({led['cached_calls']} cached), {led['api_calls']} API calls, "
          f"{led['total_tokens']} tokens, {led['cost_units']} cost units; outputs in {summary['run_dir']}")


def export_datasets(ctx: RunContext, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The acquired rows as fine-tuning data: one `datasets` folder for all tasks, one JSONL per task."""
    from datasets import Dataset, Features, Value

    from ads.downstream.evalset import is_heldout

    kept, dropped = [], 0
    for r in rows:
        if r.get("source") and is_heldout(r["source"]):
            dropped += 1
            continue
        instruction, response = as_sft_pair(r)
        kept.append({"id": r["id"], "task_id": r["task_id"], "kind": r["kind"], "instruction": instruction,
                     "response": response, "text": r["text"], "source": r.get("source") or "",
                     "api": r["api"], "arguments": json.dumps(r["arguments"], ensure_ascii=False),
                     "cost": float(r["cost"] or 0), "iteration": int(r["iteration"]),
                     "trajectory_id": r["trajectory_id"]})
    d = ctx.run_dir
    out = d / "training_dataset"
    feats = Features({"id": Value("string"), "task_id": Value("string"), "kind": Value("string"),
                      "instruction": Value("string"), "response": Value("string"), "text": Value("string"),
                      "source": Value("string"), "api": Value("string"), "arguments": Value("string"),
                      "cost": Value("float64"), "iteration": Value("int64"), "trajectory_id": Value("string")})
    columns = {k: [r[k] for r in kept] for k in feats}  # from columns: an empty dataset keeps its features
    Dataset.from_dict(columns, features=feats).save_to_disk(str(out))
    by_task: dict[str, list[dict[str, Any]]] = {}
    for r in kept:
        by_task.setdefault(r["task_id"], []).append(r)
    per_task = d / "training_dataset_by_task"
    per_task.mkdir(exist_ok=True)
    for tid, rs in by_task.items():
        atomic_write_text(per_task / f"{tid.replace('/', '_')}.jsonl",
                          "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rs))
    kinds = {k: sum(r["kind"] == k for r in kept) for k in ("passage", "demonstration", "qa")}
    card = f"""# ADS training dataset: {ctx.run_id}

The data the ADS optimizer's accepted trajectories acquired for its trained tasks, one row
per passage, demonstration pair or question/answer pair, deduplicated per task.

- rows: {len(kept)} ({', '.join(f'{k}: {v}' for k, v in kinds.items())}) from {len(by_task)} tasks
- left out: {dropped} rows whose article is in the downstream fine-tuning evaluation pool
- fields: instruction, response (passages: "Tell me about <title>." -> the passage), text, kind,
  task_id, source (article id), api, arguments (JSON), cost, iteration, trajectory_id
- sources: passages are from the English Wikipedia Level-4 vital-articles summaries (CC BY-SA 4.0);
  demonstrations and answers were written by the local model {ctx.cfg.models.policy.name} and are synthetic
- fine-tune on it: `main.py finetune configs/finetune.yaml --set data.path={out}`
- load: `datasets.load_from_disk("{out}")`; per task: `{per_task}/<task>.jsonl`
"""
    atomic_write_text(out / "README.md", card)
    return {"path": str(out), "rows": len(kept), "tasks": len(by_task), "dropped_eval_overlap": dropped, **kinds}


def write_plots(d: Path, tr: list[dict[str, Any]], ev: list[dict[str, Any]]) -> None:
    """Training curves (reward, accepted plans, cost) and held-out curves (score, win rate) as PNGs."""
    its = [t["iteration"] for t in tr]
    plot_curves(d / "reward.png", "Training reward by iteration",
                {"mean reward": (its, [t["mean_reward"] or 0 for t in tr]),
                 "mean best reward": (its, [t["mean_best_reward"] or 0 for t in tr])}, ylabel="reward")
    plot_curves(d / "accepted.png", "Accepted plans by iteration",
                {"data-acquiring": (its, [t["accepted_data_plans"] for t in tr]),
                 "empty (no data needed)": (its, [t["accepted_empty_plans"] for t in tr])}, ylabel="tasks")
    plot_curves(d / "cost.png", "API cost per trained task by iteration",
                {"all sampled trajectories": (its, [t["api_cost_per_task"] for t in tr])}, ylabel="cost units")
    methods = sorted({m for e in ev for m in e["methods"]})
    eits = [e["iteration"] for e in ev]
    plot_curves(d / "score.png", "Held-out mean score", {m: (eits, [e["methods"][m]["mean_score"] for e in ev])
                                                         for m in methods}, ylabel="score")
    plot_curves(d / "win_rate.png", "Held-out win rate vs the no-data policy",
                {m: (eits, [e["methods"][m]["win_rate"] for e in ev]) for m in methods if m != "no_data"},
                ylabel="win rate")
