"""What a finished run shows: two plots in the run folder and the per-perspective table.

Both read the `quality` figures dataset_file.assemble() computed, so the terminal, the PNGs
and dataset.json's metadata never disagree.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ads.generators.persp.inputs import TaskInput
from ads.generators.persp.settings import Perspective


def write_plots(run_dir: Path, perspectives: list[Perspective], quality: dict[str, Any],
                tasks: list[TaskInput]) -> None:
    from ads.tracking import plot_curves

    xs = list(range(1, len(perspectives) + 1))
    by = quality["by_perspective"]
    series = {"accepted fraction": (xs, [by[p.condition]["ok"] / max(1, len(tasks)) for p in perspectives])}
    if any(by[p.condition]["judge_mean"] is not None for p in perspectives):
        series["judge mean / 10"] = (xs, [(by[p.condition]["judge_mean"] or 0) / 10 for p in perspectives])
    plot_curves(run_dir / "perspectives.png", "Per perspective (x = index in agent_perspectives)", series,
                xlabel="perspective", ylabel="fraction")
    words = (xs, [by[p.condition]["mean_words"] or 0 for p in perspectives])
    plot_curves(run_dir / "response_length.png", "Mean response length per perspective", {"words": words},
                xlabel="perspective", ylabel="words")


def print_report(task_type: str, run_id: str, quality: dict[str, Any], dataset: dict[str, Any],
                 out: str | Path) -> None:
    from ads.report import print_table

    rows = []
    for i, (cond, s) in enumerate(quality["by_perspective"].items(), 1):
        div = s["diversity"] or {}
        rows.append([str(i), cond, f"{s['ok']}/{s['rejected']}/{s['missing']}", str(s["mean_words"]),
                     str(s["copy_of_input"]), str(s["near_duplicate"]),
                     "-" if s["judge_mean"] is None else f"{s['judge_mean']:.2f} (n={s['judged']})",
                     str(div.get("distinct_2", "-"))])
    print_table(f"{task_type}: responses per perspective ({run_id})",
                ["#", "condition", "ok/rejected/missing", "mean words", "copies input", "near-dup of sibling",
                 "judge mean", "distinct-2"], rows)
    md = dataset["metadata"]
    tu, ac, est = md["token_usage"], md["api_calls"], md["estimated_tokens"]
    print(f"tokens: {tu['prompt_tokens']} prompt + {tu['completion_tokens']} completion computed "
          f"({tu['replayed_from_cache_tokens']} replayed from cache); estimated before generation: "
          f"{est['prompt_tokens']} prompt, <= {est['max_completion_tokens']} completion; "
          f"{ac['total_calls']} calls ({ac['cached_calls']} cached, {ac['failed_calls']} failed)")
    chk = md["estimate_check"]
    parts = [f"{cond} {v['actual_first_pass_prompt_tokens']}/{v['estimated_prompt_tokens']}"
             for cond, v in chk["by_perspective"].items()]
    print(f"estimate check (actual/estimated first-pass prompt tokens): total "
          f"{chk['actual_first_pass_prompt_tokens']}/{chk['estimated_prompt_tokens']} "
          f"(ratio {chk['ratio_actual_to_estimate']}); " + ", ".join(parts))
    q = quality["totals"]
    print(f"units: {q['ok']} ok, {q['rejected']} rejected ({q['rejection_reasons']}), {q['retried']} retried, "
          f"{q['failed_this_run']} failed this run" + (" (rerun with --resume to retry them)"
                                                       if q["failed_this_run"] else "") + f"; dataset: {out}")

