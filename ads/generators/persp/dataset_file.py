"""dataset.json: the seed's file layout, assembled from responses.jsonl at the end of a run.

The file is rebuilt from the stored records alone (never from in-memory results), so a run
resumed after a kill writes the same dataset an uninterrupted run would. Quality figures
(flags for copies and near-duplicates, judge means, diversity) and the estimate-vs-actual
token check are computed here because they read the same records.
"""
from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ads.generators.persp.engine import unit_id
from ads.generators.persp.inputs import TaskInput
from ads.generators.persp.settings import Perspective, PerspectivesConfig
from ads.run import RunContext
from ads.store import atomic_write_json


def assemble(cfg: PerspectivesConfig, tasks: list[TaskInput], perspectives: list[Perspective],
             records: dict[str, dict[str, Any]], provider: str, estimate: dict[str, Any], ctx: RunContext,
             failures: list[dict[str, str]]) -> tuple[dict[str, Any], dict[str, Any]]:
    from ads.quality import NoveltyFilter, diversity_report
    from ads.quality.text import shingles

    agents = [p.model_dump() for p in perspectives]
    if cfg.add_references:
        agents = [{"condition": "Reference", "reading": None, "strategy": None, "temperature": None}] + agents
    out_tasks = []
    per = {p.condition: defaultdict(float) for p in perspectives}
    texts: dict[str, list[str]] = {p.condition: [] for p in perspectives}
    judged: dict[str, list[float]] = {p.condition: [] for p in perspectives}
    for t in tasks:
        responses, preps, statuses, flags, scores = [], [], [], [], []
        if cfg.add_references:
            responses.append(t.reference)
            preps.append(None)
            statuses.append("reference" if t.reference is not None else "missing")
            flags.append(None)
            scores.append(None)
        nov = NoveltyFilter(cfg.quality.novelty_threshold, k=3)  # per input: near-duplicates among siblings
        input_shingles = shingles(t.input, 3)
        for i, p in enumerate(perspectives):
            r = records.get(unit_id(t.id, i))
            st = r["status"] if r else "missing"
            resp = r["response"] if r else None
            responses.append(resp)
            preps.append(r["preparation"] if r else None)
            statuses.append(st)
            stats = per[p.condition]
            stats[st] += 1
            flag = None
            if isinstance(resp, (str, dict)):
                text = resp if isinstance(resp, str) else json.dumps(resp, ensure_ascii=False)
                texts[p.condition].append(text)
                stats["words"] += len(text.split())
                # containment, not Jaccard: a response that copies the first half of the input is a copy
                own = shingles(text, 3)
                chk = nov.check_and_add(f"p{i}", text)
                if len(own & input_shingles) / max(1, len(own)) >= cfg.quality.novelty_threshold:
                    flag = "copy_of_input"
                    stats["copy_of"] += 1
                elif not chk.is_novel:
                    flag = f"near_duplicate_of_{perspectives[int(chk.nearest_id[1:])].condition}"
                    stats["near_duplicate_of"] += 1
            flags.append(flag)
            j = (r or {}).get("judge")
            score = j.get("overall") if j and j.get("ok") else None
            if score is not None:
                judged[p.condition].append(score)
            scores.append(score)
        task_out = {"id": t.id, "context": t.input, "reference": t.reference, "responses": responses,
                    "preparations": preps, "statuses": statuses, "flags": flags,
                    "metadata": {**t.extra, "truncated": t.truncated}}
        if cfg.quality.judge.enabled:
            task_out["judge_scores"] = scores
        out_tasks.append(task_out)

    quality: dict[str, Any] = {"by_perspective": {}}
    for p in perspectives:
        s = per[p.condition]
        n_resp = len(texts[p.condition])
        quality["by_perspective"][p.condition] = {
            "ok": int(s["ok"]), "rejected": int(s["rejected"]), "missing": int(s["missing"]),
            "mean_words": round(s["words"] / n_resp, 1) if n_resp else None,
            "copy_of_input": int(s["copy_of"]), "near_duplicate": int(s["near_duplicate_of"]),
            "judge_mean": (round(sum(judged[p.condition]) / len(judged[p.condition]), 3)
                           if judged[p.condition] else None),
            "judged": len(judged[p.condition]),
            "diversity": diversity_report(texts[p.condition]) if n_resp >= 2 else None,
        }
    all_recs = list(records.values())
    reasons = defaultdict(int)
    for r in all_recs:
        for reason in r.get("reasons", []):
            reasons[reason.split(":")[0]] += 1
    quality["totals"] = {"units": len(tasks) * len(perspectives), "ok": sum(r["status"] == "ok" for r in all_recs),
                         "rejected": sum(r["status"] == "rejected" for r in all_recs),
                         "retried": sum(r["attempts"] > 1 for r in all_recs), "failed_this_run": len(failures),
                         "rejection_reasons": dict(reasons)}

    check = estimate_check(estimate, perspectives, tasks, records)
    led = ctx.ledger
    g, j = led.totals(role="generator"), led.totals(role="judge")
    metadata = {
        "model_config": cfg.models.generator.model_dump(mode="json"),
        "api_provider": provider,
        "data_config": cfg.data_config.model_dump(mode="json"),
        "generation_time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "token_usage": {"prompt_tokens": g["prompt_tokens"], "completion_tokens": g["completion_tokens"],
                        "total_tokens": g["total_tokens"], "replayed_from_cache_tokens": g["replayed_tokens"],
                        "judge_total_tokens": j["total_tokens"]},
        "api_calls": {"total_calls": g["model_calls"], "cached_calls": g["cached_calls"],
                      "failed_calls": g["failed_calls"], "judge_calls": j["model_calls"]},
        "estimated_tokens": estimate,
        "estimate_check": check,
        "test_mode": cfg.test, "seed": cfg.seed, "run_id": ctx.run_id,
        "add_references": cfg.add_references,
        "output_format": cfg.output_format.model_dump(mode="json") if cfg.output_format else None,
        "quality": quality,
    }
    dataset = {"task_type": cfg.task_type, "task_description": cfg.task_description, "agent_perspectives": agents,
               "tasks": out_tasks, "metadata": metadata}
    return dataset, quality


def estimate_check(estimate: dict[str, Any], perspectives: list[Perspective], tasks: list[TaskInput],
                   records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The pre-generation estimate next to what the first pass of each unit actually took.

    Quality retries are extra calls the estimate cannot foresee, so they are compared
    separately; for perspectives with a reading step the estimate is an upper bound.
    """
    by: dict[str, Any] = {}
    actual = retries_prompt = completion = 0
    for i, p in enumerate(perspectives):
        recs = [records[k] for k in (unit_id(t.id, i) for t in tasks) if k in records]
        a = sum(r["usage"].get("first_pass_prompt_tokens", 0) for r in recs)
        by[p.condition] = {"estimated_prompt_tokens": estimate["prompt_tokens_by_perspective"].get(p.condition),
                           "actual_first_pass_prompt_tokens": a, "units": len(recs),
                           "estimate_is": "upper bound (reading notes unknown)" if p.reading else "exact"}
        actual += a
        for r in recs:
            u = r["usage"]
            if not u.get("cached_calls"):  # all computed: what is not first pass went to quality retries
                retries_prompt += max(0, u["prompt_tokens"] - u.get("first_pass_prompt_tokens", 0))
            completion += u["completion_tokens"]
    complete = all(v["units"] == len(tasks) for v in by.values())
    return {"complete": complete, "estimated_prompt_tokens": estimate["prompt_tokens"],
            "actual_first_pass_prompt_tokens": actual,
            "ratio_actual_to_estimate": (round(actual / estimate["prompt_tokens"], 4)
                                         if estimate["prompt_tokens"] else None),
            "quality_retry_prompt_tokens": retries_prompt,
            "max_completion_tokens_estimated": estimate["max_completion_tokens"],
            "completion_tokens_computed": completion, "by_perspective": by,
            "note": "completion_tokens_computed and quality_retry_prompt_tokens leave out calls replayed from "
                    "the cache"}



def write_dataset(cfg: PerspectivesConfig, dataset: dict[str, Any], run_dir: Path) -> tuple[Path, Path | None]:
    """dataset.json in the run folder, and the seed's `[task_type]_[model]_[timestamp].json` copy in
    `output_dir` when the config names one (where the original tool's users look for it)."""
    out = run_dir / "dataset.json"
    atomic_write_json(out, dataset)
    if not cfg.output_dir:
        return out, None
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    model_slug = Path(cfg.models.generator.model_name).name.replace("/", "_")
    copy = Path(cfg.output_dir) / f"{cfg.task_type}_{model_slug}_{stamp}.json"
    atomic_write_json(copy, dataset)
    return out, copy
