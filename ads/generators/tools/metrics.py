"""Dataset-level figures for a JSONL of conversations: diversity, coverage, evaluation report,
and the per-conversation lines: the inspection (with argument lineage across steps) and the
--verbose decision.

Diversity uses the shared `ads.quality.diversity` functions: Shannon entropy (bits, and
normalised by the number of tools/endpoints the registry offers, so never-used tools count
against it) and mean pairwise Jaccard dissimilarity of each conversation's endpoint set.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Any, Iterable

from ads.quality.diversity import distinct_n, mean_pairwise_jaccard_distance, normalized_entropy, shannon_entropy


def _ep_token(eid: str) -> str:
    return eid.replace("::", "__")


def diversity(records: list[dict[str, Any]], num_tools: int | None = None,
              num_endpoints: int | None = None) -> dict[str, Any]:
    md = [r["metadata"] for r in records]
    tools = [t for m in md for t in m["tool_ids_used"]]
    eps = [e for m in md for e in m["endpoint_ids"]]
    chains = [" ".join(_ep_token(e) for e in m["endpoint_ids"]) for m in md]
    toolsets = [" ".join(sorted(m["tool_ids_used"])) for m in md]
    openings = [next((x["content"] for x in r["messages"] if x["role"] == "user"), "") for r in records]
    out = {
        "n": len(records),
        "tool_entropy_bits": round(shannon_entropy(tools), 4),
        "tool_entropy_normalized": round(normalized_entropy(tools, num_tools), 4) if tools else 0.0,
        "endpoint_entropy_bits": round(shannon_entropy(eps), 4),
        "endpoint_entropy_normalized": round(normalized_entropy(eps, num_endpoints), 4) if eps else 0.0,
        "domain_entropy_bits": round(shannon_entropy(m["domain"] for m in md), 4),
        "pattern_entropy_bits": round(shannon_entropy(m["pattern_type"] for m in md), 4),
        "endpoint_set_jaccard_dissimilarity": round(mean_pairwise_jaccard_distance(chains), 4),
        "tool_set_jaccard_dissimilarity": round(mean_pairwise_jaccard_distance(toolsets), 4),
        "distinct_tools": len(set(tools)), "distinct_endpoints": len(set(eps)),
        "unique_chains": len(set(chains)), "opening_distinct_2": round(distinct_n(openings, 2), 4),
    }
    return out


def coverage(records: list[dict[str, Any]], categories: Iterable[str] = (), endpoints: Iterable[str] = ()) -> dict:
    md = [r["metadata"] for r in records]
    dom = Counter(m["domain"] for m in md)
    pat = Counter(m["pattern_type"] for m in md)
    modes = Counter(m["sampling_mode"] for m in md)
    used_eps = {e for m in md for e in m["endpoint_ids"]}
    endpoints, categories = list(endpoints), list(categories)
    return {"domains": dict(dom.most_common()), "patterns": dict(pat.most_common()), "modes": dict(modes.most_common()),
            "underrepresented_domains": sorted(d for d, c in dom.items() if c == 1),
            "unused_domains": sorted(set(categories) - set(dom)),
            "endpoint_coverage": round(len(used_eps) / len(endpoints), 4) if endpoints else None,
            "endpoints_used": len(used_eps), "endpoints_total": len(endpoints)}


def coverage_lines(cov: dict[str, Any], width: int = 30) -> list[str]:
    lines = [f"[coverage] Domain distribution ({len(cov['domains'])} domains):"]
    for d, c in cov["domains"].items():
        lines.append(f"  {d[:34]:<34} {c:>4}  {'█' * min(c, width)}")
    lines.append(f"[coverage] Pattern distribution: {cov['patterns']}")
    lines.append(f"[coverage] Endpoints used: {cov['endpoints_used']}/{cov['endpoints_total']}"
                 + (f" ({cov['endpoint_coverage']:.0%})" if cov["endpoint_coverage"] is not None else ""))
    if cov["underrepresented_domains"]:
        lines.append(f"[coverage] Underrepresented domains (1 conversation each): {cov['underrepresented_domains']}")
    if cov["unused_domains"]:
        lines.append(f"[coverage] Domains never used: {cov['unused_domains']}")
    return lines


def evaluation_report(records: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    from ads.generators.tools.quality import CRITERIA_NAMES

    scored = [r["judge_scores"] for r in records if r.get("judge_scores") and r["judge_scores"].get("ok")]
    gates = Counter(g for r in records for g in (r.get("judge_scores") or {}).get("failed_gates", []))
    mean = {c: round(sum(s[c] for s in scored) / len(scored), 3) if scored else None for c in CRITERIA_NAMES}
    overall = round(sum(s["mean_score"] for s in scored) / len(scored), 3) if scored else None
    # a record the judge never saw (generate without --evaluate) is not a judge failure
    attempted = [r for r in records if r.get("judge_scores") and r["judge_scores"].get("judged", True) is not False]
    return {"n": len(records), "judged": len(scored), "judge_failures": len(attempted) - len(scored),
            "passed": sum(1 for r in records if r.get("passed")),
            "pass_rate": round(sum(1 for r in records if r.get("passed")) / len(records), 4) if records else None,
            "mean_scores": mean, "mean_score": overall, "threshold": threshold,
            "mean_quality_ok": overall is not None and overall >= threshold,
            "failed_gates": dict(gates.most_common()),
            "repairs": sum(int(r["metadata"].get("repairs", 0)) for r in records),
            "repaired_to_pass": sum(1 for r in records if r.get("passed") and r["metadata"].get("repairs", 0) > 0),
            # the seed's end-to-end figures: how many conversations needed at least one repair, and which kind
            "needed_repair": sum(1 for r in records if r["metadata"].get("repairs", 0) > 0),
            "needed_repair_rate": round(sum(1 for r in records if r["metadata"].get("repairs", 0) > 0) / len(records), 4)
            if records else None,
            "repair_kinds": dict(Counter(k for r in records for k in r["metadata"].get("repair_kinds", []) if k)),
            "templated_turns": sum(1 for r in records for v in (r["metadata"].get("turn_sources") or {}).values()
                                   if v != "model")}


def inspect_lines(rec: dict[str, Any], verbose: bool = False) -> list[str]:
    md = rec["metadata"]
    js = rec.get("judge_scores") or {}
    score = f"mean {js.get('mean_score')}" if js.get("ok") else ("not judged" if not js else "judge failed")
    lines = [f"{rec['conversation_id']}  passed={rec.get('passed')}  {score}  mode={md['sampling_mode']}  "
             f"pattern={md['pattern_type']}  domain={md['domain']}  calls={md['num_tool_calls']}  "
             f"clarifications={md['num_clarification_questions']}  grounding_rate={md['memory_grounding_rate']}"]
    if js.get("failed_gates"):
        lines.append(f"  failed gates: {js['failed_gates']}")
    for w in md.get("grounding_warnings", []):
        lines.append(f"  [grounding] step {w['step']} ({w['endpoint']}) unresolvable: {w['params']}")
    if not verbose:
        return lines
    outputs = rec.get("tool_outputs", [])
    for row in md.get("lineage", []):
        step = row["step"]
        from_out = [a for a in row["arguments"] if a["source"] == "tool_output"]
        tag = "FIRST STEP" if step == 0 else ("GROUNDED via " + ", ".join(f"{a['param']}←step{a['from_step']}"
                                                                           for a in from_out) if from_out else
                                              "NOT GROUNDED in earlier outputs")
        lines.append(f"step {step}: {row['endpoint']}  [{tag}]")
        args = {a["param"]: a["value"] for a in row["arguments"]}
        lines.append(f"        → input:  {json.dumps(args, ensure_ascii=False)[:200]}")
        for a in row["arguments"]:
            if a["source"] == "tool_output":
                lines.append(f"        ← {a['param']}: {a['value']!r}  (from step {a['from_step']} output field "
                             f"{a['path']})")
            elif a["source"] == "model":
                lines.append(f"        ! {a['param']}: {a['value']!r}  (written by the model; not in the user's words "
                             f"or earlier outputs)")
        out = outputs[step]["output"] if step < len(outputs) else {}
        lines.append(f"        → output fields: [{', '.join(list(out)[:8])}]")
    return lines


def decision_line(rec: dict[str, Any]) -> str:
    """One line per conversation for --verbose: the decision, the gates, the repairs and why."""
    js = rec.get("judge_scores") or {}
    md = rec["metadata"]
    line = (f"{rec['conversation_id']}: {'passed' if rec.get('passed') else 'REJECTED'} mean={js.get('mean_score')} "
            f"repairs={md.get('repairs', 0)} {md.get('repair_kinds') or ''}".rstrip())
    if not rec.get("passed"):
        reasons = (rec.get("validation") or {}).get("reasons") or {}
        why = "; ".join(f"{k}: {v}" for k, v in reasons.items())
        line += f" gates={js.get('failed_gates')}" + (f" ({why[:300]})" if why else "")
    return line
