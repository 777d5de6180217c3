"""Runs an ADS experiment end to end and writes its report.

Outputs in the run folder: evaluation_results.json, training_metrics.json,
trajectories.jsonl, acquired_data.jsonl (+ a `datasets` copy with a data card), eval.jsonl,
ledger.jsonl, state.json, summary.json and PNG plots of reward, cost and win rate; with the
LoRA options (ads_lora.py) also policy_lora/itN/ and optimizer_lora/itN/ (peft adapter folders).
"""
from __future__ import annotations

from typing import Any

from ads.generators.active_search import ADSConfig, ActiveDataSearch
from ads.report import print_table, verdict
from ads.run import RunContext
from ads.store import atomic_write_json, atomic_write_text
from ads.tracking import plot_curves

__all__ = ["ADSConfig", "run"]


def run(cfg: ADSConfig, ctx: RunContext, **components: Any) -> dict[str, Any]:
    ads = ActiveDataSearch(cfg, ctx, **components)
    print(f"tasks: {len(ads.train)} train, {len(ads.test)} held-out "
          f"({', '.join(f'{f}={n}' for f, n in cfg.tasks.families.items())}); "
          f"{cfg.loop.iterations} iterations x {cfg.loop.trajectories_per_task} trajectories per task")
    result = ads.run()
    d = ctx.run_dir
    atomic_write_json(d / "training_metrics.json", result["training"])
    final = result["evaluation"][-1]
    evaluation = {"per_iteration": result["evaluation"], "final": final, "verdict": verdict(final),
                  "task_results": [r for r in ads.evals if r["iteration"] == final["iteration"]]}
    atomic_write_json(d / "evaluation_results.json", evaluation)
    export_dataset(ctx, list(ads.acquired))
    write_plots(ctx, result)
    summary = ctx.finish({"final_evaluation": {m: {k: v for k, v in s.items() if k != "by_family"}
                                               for m, s in final["methods"].items()},
                          "verdict": evaluation["verdict"], "training": result["training"],
                          "final_models": final.get("models")})  # model ids that served (a LoRA's carries its hash)
    rows = []
    for method, s in final["methods"].items():
        rows.append([method, f"{s['mean_score']:.3f}", f"{s['win_rate']:.2f}/{s['tie_rate']:.2f}/{s['loss_rate']:.2f}",
                     f"{s['mean_cost']:.2f}", f"{s['mean_tokens']:.0f}",
                     "  ".join(f"{f}={v:.2f}" for f, v in s["by_family"].items())])
    print_table(f"Held-out evaluation after iteration {final['iteration']} ({ctx.run_id})",
                ["method", "mean score", "win/tie/loss vs no data", "API cost/task", "tokens/task", "score by family"],
                rows)
    train_rows = [[str(t["iteration"]), str(t["mean_reward"]), str(t["mean_best_reward"]), str(t["acceptance_rate"]),
                   f"{t['accepted_data_plans']}+{t['accepted_null_plans']} null", str(t["parse_failures"]),
                   str(t["api_cost"]), str(t["total_tokens"])] for t in result["training"]]
    print_table("Training iterations", ["iter", "mean reward", "mean best", "accept rate", "accepted",
                                        "parse failures", "API cost", "tokens"], train_rows)
    for t in result["training"]:  # loop.policy_update / optimizer_update: lora (ads_lora.py)
        for role in ("policy", "optimizer"):
            info = t.get(f"{role}_lora")
            if info is None:
                continue
            losses = info.get("losses") or []
            done = (f"trained on {info.get('examples')} examples, {info.get('steps')} steps, loss "
                    f"{losses[0]:.3f} -> {losses[-1]:.3f}, {info.get('train_time_s')} s, {info.get('tokens')} tokens"
                    + (" (loaded, not retrained)" if info.get("resumed") else "")) if info.get("trained") and losses \
                else f"not retrained ({info.get('reason')})"
            print(f"{role} LoRA after iteration {t['iteration']}: {done}; serving {info.get('model_id')}")
    for line in evaluation["verdict"]:
        print(line)
    led = summary["ledger"]["run"]
    print(f"ledger: {led['model_calls']} model calls ({led['cached_calls']} cached), {led['api_calls']} API calls, "
          f"{led['total_tokens']} tokens, {led['cost_units']} cost units; outputs in {d}")
    return summary


def export_dataset(ctx: RunContext, records: list[dict[str, Any]]) -> None:
    """Save the acquired data as a `datasets` folder with a short data card."""
    from datasets import Dataset

    rows = [{"id": r["id"], "iteration": r["iteration"], "task_id": r["task_id"], "family": r["family"],
             "api": r["api"], "arguments": str(r["arguments"]), "text": r["text"], "reward": float(r["reward"] or 0)}
            for r in records]
    out = ctx.run_dir / "acquired_dataset"
    if rows:
        Dataset.from_list(rows).save_to_disk(str(out))
    apis = sorted({r["api"] for r in rows})
    card = f"""# Acquired data: {ctx.run_id}

Data gathered by the ADS optimizer's accepted trajectories (reward >= threshold) while
training on the task families {sorted({r['family'] for r in rows}) or '[]'}.

- records: {len(rows)}
- APIs: {', '.join(apis) or 'none'}
- fields: id, iteration, task_id, family, api, arguments, text, reward
- sources: retrieval passages are from the English Wikipedia Level-4 vital-articles summaries
  (CC BY-SA 4.0); demonstrations and answers were written by the configured local model
  ({ctx.cfg.policy.name}) and are synthetic.
- load: `datasets.load_from_disk("{out}")`
"""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "README.md", card)


def write_plots(ctx: RunContext, result: dict[str, Any]) -> None:
    d = ctx.run_dir
    tr = result["training"]
    its = [t["iteration"] for t in tr]
    plot_curves(d / "reward.png", "Training reward by iteration",
                {"mean reward": (its, [t["mean_reward"] or 0 for t in tr]),
                 "mean best reward": (its, [t["mean_best_reward"] or 0 for t in tr])}, ylabel="reward")
    ev = result["evaluation"]
    methods = sorted({m for e in ev for m in e["methods"]})
    eits = [e["iteration"] for e in ev]
    plot_curves(d / "win_rate.png", "Held-out win rate vs the no-data policy",
                {m: (eits, [e["methods"][m]["win_rate"] for e in ev]) for m in methods if m != "no_data"},
                ylabel="win rate")
    plot_curves(d / "score.png", "Held-out mean score", {m: (eits, [e["methods"][m]["mean_score"] for e in ev])
                                                         for m in methods}, ylabel="score")
    plot_curves(d / "cost.png", "API cost by iteration",
                {"train (all trajectories)": (its, [t["api_cost"] for t in tr]),
                 **{f"eval {m}/task": (eits, [e["methods"][m]["mean_cost"] for e in ev]) for m in methods
                    if m != "no_data"}}, ylabel="cost units")
