"""What a finished tool-use run leaves behind: evaluation_report.json, diversity.json (with the
coverage report), the coverage and quality plots, the summary's figures, and the report printed
at the end. `main.py tools evaluate` writes the same evaluation report from its own records.
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from ads.generators.tools.metrics import coverage, coverage_lines, diversity, evaluation_report
from ads.generators.tools.pipeline import Built
from ads.report import print_table
from ads.store import atomic_write_json


def sum_counts(records: list[dict[str, Any]]) -> dict[str, int]:
    """The builder's counters (model calls, fallbacks, rejections) over every conversation."""
    c: Counter = Counter()
    for r in records:
        c.update(r["metadata"].get("counts", {}))
    return dict(sorted(c.items()))


def run_figures(cfg: Any, run_dir: Path, built: Built, records: list[dict[str, Any]], out_path: Path,
                elapsed: float) -> dict[str, Any]:
    """Write the run's report files and plots; the figures summary.json gets."""
    reg = built.reg
    div = diversity(records, len(reg.tools()), len(reg.endpoints))
    cov = coverage(records, reg.categories(), reg.endpoints)
    report = evaluation_report(records, cfg.threshold)
    atomic_write_json(run_dir / "evaluation_report.json", report)
    atomic_write_json(run_dir / "diversity.json", {"diversity": div, "coverage": cov})
    write_plots(run_dir, records)
    # main.py judge-check's last verdict on this judge (issue 24): None when it was never checked
    from ads.quality.calibration import separates

    judge_ok = separates(cfg.results_dir, judge_name(cfg), "tool_use") if cfg.evaluate else None
    return {"conversations": len(records), "output": str(out_path), "passed": report["passed"],
            "judge_separates": judge_ok,
            "pass_rate": report["pass_rate"], "mean_score": report["mean_score"],
            "mean_quality_ok": report["mean_quality_ok"], "evaluation": report, "diversity": div,
            "coverage": cov, "counts": sum_counts(records), "generation_s": round(elapsed, 1)}


def judge_name(cfg: Any) -> str:
    return (cfg.models.judge or cfg.models.assistant).name


def print_report(cfg: Any, summary: dict[str, Any], elapsed: float) -> None:
    """Coverage, diversity, evaluation and counts, then what to make of the judge and what it cost."""
    report, div, n = summary["evaluation"], summary["diversity"], summary["conversations"]
    for line in coverage_lines(summary["coverage"]):
        print(line)
    rows = [[k, str(v)] for k, v in div.items()]
    print_table(f"Diversity ({n} conversations)", ["metric", "value"], rows)
    ms = report["mean_scores"]
    print_table("Evaluation", ["n", "passed", "judged", "mean score (1-5)", "tool corr.", "completion", "natural.",
                               "repairs", "failed gates"],
                [[str(report["n"]), str(report["passed"]), str(report["judged"]), str(report["mean_score"]),
                  str(ms["tool_correctness"]), str(ms["task_completion"]), str(ms["naturalness"]),
                  str(report["repairs"]), json.dumps(report["failed_gates"])]])
    print("counts: " + ", ".join(f"{k}={v}" for k, v in summary["counts"].items()))
    judge_ok, name = summary["judge_separates"], judge_name(cfg)
    if judge_ok is False:
        print(f"warning: judge-check found that the judge {name} does not separate good from bad "
              f"conversations (see {cfg.results_dir}/judge_check/); its scores gate on noise", file=sys.stderr)
    elif cfg.evaluate and judge_ok is None:
        print(f"note: the judge {name} has not been checked; run main.py judge-check on this config")
    led = summary["ledger"]["run"]
    print(f"ledger: {led['model_calls']} model calls ({led['cached_calls']} cached), {led['total_tokens']} tokens; "
          f"{n} conversations in {summary['output']} ({elapsed:.0f} s)")


def write_plots(run_dir: Path, records: list[dict[str, Any]]) -> None:
    from ads.tracking import plot_curves

    if not records:
        return
    xs = list(range(1, len(records) + 1))
    seen_e, seen_t, ye, yt = set(), set(), [], []
    for r in records:
        seen_e.update(r["metadata"]["endpoint_ids"])
        seen_t.update(r["metadata"]["tool_ids_used"])
        ye.append(len(seen_e))
        yt.append(len(seen_t))
    plot_curves(run_dir / "coverage.png", "Cumulative coverage", {"endpoints": (xs, ye), "tools": (xs, yt)},
                xlabel="conversation", ylabel="distinct so far")
    scored = [(i + 1, r["judge_scores"]["mean_score"]) for i, r in enumerate(records)
              if (r.get("judge_scores") or {}).get("ok")]
    if scored:
        run_mean, tot = [], 0.0
        for k, (_, s) in enumerate(scored, 1):
            tot += s
            run_mean.append(tot / k)
        plot_curves(run_dir / "quality.png", "Judge mean score (1-5)",
                    {"per conversation": ([x for x, _ in scored], [s for _, s in scored]),
                     "running mean": ([x for x, _ in scored], run_mean)}, xlabel="conversation", ylabel="score")
