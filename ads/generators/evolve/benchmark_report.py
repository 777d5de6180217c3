"""What a finished (or resumed-and-finished) benchmark run says about itself: the per-category
table, the diversity figures, the learning curves and their plots, and the terminal report.

Everything here is computed from the items and attempt events, the two files a run leaves,
so a resumed run reports on the whole benchmark, not only on the attempts of its own process.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from ads.generators.evolve.attempt import item_text
from ads.quality import EMATracker
from ads.quality.diversity import distinct_n, mean_pairwise_jaccard_distance, normalized_entropy
from ads.report import print_table
from ads.tracking import plot_curves

Rows = Sequence[dict[str, Any]]


def by_category(categories: Sequence[str], seeds: Rows, items: Rows, events: Rows, ema: EMATracker,
                accept_ema: EMATracker) -> dict[str, dict[str, Any]]:
    """Per category (asked-for or produced): seeds, items, attempts aimed at it, acceptance, scores, EMAs."""
    out = {}
    for c in sorted(set(categories) | {i["category"] for i in items}):
        att = [e for e in events if e["target_category"] == c]
        acc = [i for i in items if i["category"] == c]
        scores = [i["score_0_10"] for i in acc if i.get("score_0_10") is not None]
        out[c] = {"seeds": sum(s["category"] == c for s in seeds), "items": len(acc),
                  "attempts_targeted": len(att),
                  "acceptance_rate": round(sum(e["outcome"] == "accepted" for e in att) / len(att), 4)
                  if att else None,
                  "mean_score": round(sum(scores) / len(scores), 3) if scores else None,
                  "ema": ema.get(c), "acceptance_ema": accept_ema.get(c)}
    return out


def diversity(items: Rows, n_categories: int) -> dict[str, float | None]:
    texts = [item_text(i) for i in items]
    return {"category_entropy": round(normalized_entropy([i["category"] for i in items], n_categories), 4),
            "distinct_2": round(distinct_n(texts, 2), 4) if texts else None,
            "mean_pairwise_jaccard_distance": round(mean_pairwise_jaccard_distance(texts), 4)
            if len(texts) > 1 else None}


def curves(events: Rows, items: Rows, alpha: float) -> dict[str, list[tuple[int, float]]]:
    """Per-attempt learning curves from the event log: (attempt, value) points. The score EMA is
    read from the items (it is stored after each), so it is carried flat between acceptances."""
    by_id = {i["id"]: i for i in items}
    out: dict[str, list[tuple[int, float]]] = {"ema_global": [], "acceptance_ema": [], "cumulative": []}
    cats: dict[str, list[tuple[int, float]]] = {}
    acc_ema = EMATracker(alpha)
    ema_g, acc = None, 0
    for e in events:
        a = e["attempt"]
        ok = e["outcome"] == "accepted"
        acc += ok
        acc_ema.update(float(ok))
        out["acceptance_ema"].append((a, acc_ema.value))
        out["cumulative"].append((a, acc / (a + 1)))
        item = by_id.get(e.get("item_id")) if ok else None
        if item is not None and isinstance(item.get("ema_global"), (int, float)):
            ema_g = float(item["ema_global"])
            cats.setdefault(item["category"], []).append((a, float(item["ema_category"])))
        if ema_g is not None:
            out["ema_global"].append((a, ema_g))
    out.update({f"ema[{c}]": pts for c, pts in sorted(cats.items())})
    return out


def write_plots(run_dir: Path, events: Rows, items: Rows, alpha: float, round_size: int) -> None:
    """ema.png (score EMAs, global and per category) and acceptance.png, when there is anything to draw."""
    cv = curves(events, items, alpha)
    xy = lambda pts: ([p[0] for p in pts], [p[1] for p in pts])  # noqa: E731
    if cv["ema_global"]:
        series = {"global (carried between acceptances)": xy(cv["ema_global"])}
        series.update({k[4:-1]: xy(v) for k, v in cv.items() if k.startswith("ema[")})
        plot_curves(run_dir / "ema.png", "Judge-score EMA of accepted items, by attempt", series,
                    xlabel="attempt", ylabel="EMA of score_0_10")
    if cv["acceptance_ema"]:
        rs = round_size
        rounds: dict[int, list[int]] = {}
        for e in events:
            rounds.setdefault(e["attempt"] // rs, []).append(int(e["outcome"] == "accepted"))
        plot_curves(run_dir / "acceptance.png", "Acceptance over attempts",
                    {f"acceptance EMA (alpha {alpha})": xy(cv["acceptance_ema"]),
                     "cumulative acceptance rate": xy(cv["cumulative"]),
                     f"rate per round of {rs}": ([min(r * rs + rs - 1, len(events) - 1) for r in rounds],
                                                [sum(v) / len(v) for v in rounds.values()])},
                    xlabel="attempt", ylabel="rate")


def fmt_num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def print_report(s: dict[str, Any]) -> None:
    """The category table, the outcome table and the run's figures; `s` is the finished summary
    (ctx.finish added run_id, run_dir and the ledger)."""
    fmt = lambda v, f="{:.2f}": "-" if v is None else f.format(v)  # noqa: E731
    rows = [[c, str(v["seeds"]), str(v["attempts_targeted"]), str(v["items"]), fmt(v["acceptance_rate"]),
             fmt(v["mean_score"]), fmt(v["ema"]), fmt(v["acceptance_ema"])] for c, v in s["by_category"].items()]
    print_table(f"Self-evolving benchmark ({s['run_id']}): {s['accepted']} accepted of {s['attempts']} attempts",
                ["category", "seeds", "attempts targeted", "items", "accept rate", "mean score", "score EMA",
                 "accept EMA"], rows)
    reasons = sorted(s["rejection_reasons"].items(), key=lambda kv: (-kv[1], kv[0]))
    print_table("Attempt outcomes", ["outcome / rejection reason", "count", "share of attempts"],
                [["accepted", str(s["accepted"]), fmt(s["accepted"] / s["attempts"] if s["attempts"] else None)]]
                + [[f"rejected: {k}", str(v), fmt(v / s["attempts"])] for k, v in reasons])
    led = s["ledger"]["run"]
    print(f"score EMA {fmt_num(s['ema_global'])}, acceptance EMA {fmt_num(s['acceptance_ema'])}; warm start: "
          f"{s['warm_start']}; {s['attempts_this_process']} attempts in {s['loop_s']} s "
          f"({s['s_per_attempt']} s each); diversity {json.dumps(s['diversity'])}")
    print(f"ledger: {led['model_calls']} model calls ({led['cached_calls']} cached), {led['total_tokens']} tokens; "
          f"benchmark: {s['benchmark_path']}; events: {s['runlog_path']}; plots: {s['run_dir']}/ema.png, "
          f"acceptance.png")
