"""The dataset card (README.md with the Hub's YAML front matter) of an export.

Every number on the card is computed here from the exported records and the run's
config.yaml, never typed: counts (attempted, accepted, rejected by reason), the
near-duplicate rate of the accepted texts by the shared `NoveltyFilter`, the judge score
distribution where records carry judge scores, the shared diversity figures, and the model
files' digests. A model file's digest is its size plus the sha256 of its first MiB (reading a
500 MB GGUF whole would cost seconds per export; size + first MiB tells builds apart, and the
card says that this is what it is).
"""
from __future__ import annotations

import hashlib
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

NEAR_DUP_THRESHOLD = 0.7  # 3-word shingle Jaccard at which two accepted texts count as near-duplicates
NEAR_DUP_K = 3
DIGEST_BYTES = 1 << 20
HUB_LICENCES = {"apache-2.0", "mit", "cc-by-sa-4.0", "cc-by-4.0"}


def reason_key(reason: str | None) -> str:
    """A rejection reason without its per-record detail ("length: 3 words < 25" -> "length")."""
    r = (reason or "rejected").strip()
    return r.split(": ", 1)[0][:80] or "rejected"


def near_duplicates(texts: list[str]) -> dict[str, Any]:
    from ads.quality.novelty import NoveltyFilter

    f = NoveltyFilter(NEAR_DUP_THRESHOLD, k=NEAR_DUP_K)
    dups = 0
    for i, t in enumerate(texts):
        if not f.check(t).is_novel:
            dups += 1
        f.add(str(i), t)
    return {"n": len(texts), "near_duplicates": dups, "rate": round(dups / len(texts), 4) if texts else None,
            "method": f"ads.quality.novelty.NoveltyFilter(threshold={NEAR_DUP_THRESHOLD}, k={NEAR_DUP_K}), each "
                      f"accepted text against the ones before it"}


def score_distribution(scores: list[float]) -> dict[str, Any] | None:
    if not scores:
        return None
    hist = Counter(round(s) for s in scores)
    q = statistics.quantiles(scores, n=4) if len(scores) >= 2 else [scores[0]] * 3
    return {"n": len(scores), "mean": round(statistics.fmean(scores), 4), "min": min(scores), "max": max(scores),
            "p25": round(q[0], 4), "median": round(q[1], 4), "p75": round(q[2], 4),
            "histogram": {str(k): v for k, v in sorted(hist.items())}}


def _model_configs(obj: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """(config key, model section) for every model the config names (ModelConfig or perspectives' model_config)."""
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(obj, dict):
        if isinstance(obj.get("name"), str) and ("n_ctx" in obj or "backend" in obj):
            return [(path, obj)]
        if isinstance(obj.get("model_name"), str):
            return [(path, {"name": obj["model_name"], "backend": "auto"})]
        for k, v in obj.items():
            out += _model_configs(v, f"{path}.{k}" if path else str(k))
    return out


def file_digest(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        head = f.read(DIGEST_BYTES)
    return {"file": path.name, "size_bytes": path.stat().st_size, "sha256_first_mib": hashlib.sha256(head).hexdigest()}


def models(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    from ads.config import ModelConfig
    from models.registry import resolve

    out, seen = [], set()
    for role, m in _model_configs({k: v for k, v in cfg.items() if k not in ("cache", "tracking", "executor")}):
        if (role, m["name"]) in seen:
            continue
        seen.add((role, m["name"]))
        entry: dict[str, Any] = {"role": role, "name": m["name"]}
        try:
            fields = {k: v for k, v in m.items() if k in ModelConfig.model_fields}
            r = resolve(ModelConfig.model_validate(fields), cfg.get("models_dir", "cache/models"))
            entry["backend"] = r.backend
            loc = Path(r.location)
            if r.backend != "openai" and loc.is_file():
                entry.update(file_digest(loc))
        except Exception as e:  # noqa: BLE001 - an unresolvable model is reported, not fatal
            entry["digest"] = f"not resolvable here ({type(e).__name__})"
        out.append(entry)
    return out


def compute_stats(run: Any) -> dict[str, Any]:
    from ads.quality.diversity import diversity_report

    spec = run.spec
    acc = run.accepted
    reasons = Counter(reason_key(r["reject_reason"]) for r in run.rejected)
    texts = [r[spec.text_field] for r in acc if r.get(spec.text_field)]
    labels = [str(r.get(spec.label_field)) for r in acc if r.get(spec.text_field)] if spec.label_field else None
    return {
        "counts": {"attempted": len(run.rows), "accepted": len(acc), "rejected": len(run.rejected),
                   "rejected_by_reason": dict(reasons.most_common()),
                   "acceptance_rate": round(len(acc) / len(run.rows), 4) if run.rows else None,
                   "with_instruction_and_response": sum(1 for r in acc if r["instruction"] and r["response"])},
        "near_duplicates": near_duplicates(texts),
        "judge_scores": score_distribution([r["judge_score"] for r in acc if r["judge_score"] is not None]),
        "judge_scores_all_attempts": score_distribution([r["judge_score"] for r in run.rows
                                                         if r["judge_score"] is not None]),
        "diversity": diversity_report(texts, labels) if len(texts) >= 2 else None,
        "models": models(run.cfg),
        "seed": run.cfg.get("seed"),
        "sources": spec.sources(run.cfg),
    }


def _size_category(n: int) -> str:
    for lim, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < lim:
            return name
    return "n>1M"


def front_matter(run: Any, stats: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    lic = {s["licence"].lower() for s in stats["sources"]}
    data_files = [{"split": s, "path": f"parquet/{s}.parquet"} for s in manifest["splits"]
                  if f"parquet/{s}.parquet" in manifest["files"]]
    fm: dict[str, Any] = {
        "license": lic.pop() if len(lic) == 1 and next(iter(lic)) in HUB_LICENCES else "other",
        "pretty_name": f"{run.cfg.get('name', run.spec.kind)} ({run.spec.kind} generator)",
        "language": ["en"],
        "tags": ["synthetic", "ads-harness", run.spec.kind.replace("_", "-")],
        "task_categories": ["text-generation"],
        "size_categories": [_size_category(stats["counts"]["accepted"])],
    }
    if data_files:
        fm["configs"] = [{"config_name": "default", "data_files": data_files}]
    return fm


def _table(rows: list[list[Any]], head: list[str]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def card_text(run: Any, stats: dict[str, Any], manifest: dict[str, Any], dd: Any) -> str:
    spec, cfg, c = run.spec, run.cfg, stats["counts"]
    parts = ["---", yaml.safe_dump(front_matter(run, stats, manifest), sort_keys=False).strip(), "---", "",
             f"# {cfg.get('name', spec.kind)}: {spec.kind} export", "",
             f"Synthetic data made by the `{spec.kind}` generator of this harness, exported from `{run.run_dir}`"
             + (" (a partial run: no summary.json, the records present when it stopped)." if manifest["partial"]
                else "."), "",
             "## What generated it", "",
             f"- generator: `{spec.kind}`; seed: {stats['seed']}; the full resolved config is the run's "
             f"`config.yaml` (below)",
             f"- records read from: {', '.join(f'`{f}`' for f in spec.files)}"]
    if stats["models"]:
        parts += ["", "Models (digest = file size + sha256 of the file's first MiB, not of the whole file):", "",
                  _table([[m["role"], m["name"], m.get("backend", "-"), m.get("file", "-"), m.get("size_bytes", "-"),
                           m.get("sha256_first_mib", m.get("digest", "-"))] for m in stats["models"]],
                         ["role", "name", "backend", "file", "size (bytes)", "sha256 of first MiB"])]
    parts += ["", "## Source data and licences", ""]
    parts += [f"- {s['name']}: {s['licence']}" for s in stats["sources"]] or ["- none beyond the config"]
    parts += ["", "The generated text is also subject to the licences of the models that wrote it.", "",
              "## Counts", "",
              _table([["attempted", c["attempted"]], ["accepted", c["accepted"]], ["rejected", c["rejected"]],
                      ["acceptance rate", c["acceptance_rate"]],
                      ["accepted with instruction and response", c["with_instruction_and_response"]]],
                     ["", "records"])]
    if c["rejected_by_reason"]:
        parts += ["", "Rejected, by reason:", "", _table([[k, v] for k, v in c["rejected_by_reason"].items()],
                                                          ["reason", "records"])]
    nd = stats["near_duplicates"]
    parts += ["", "## Quality", "",
              f"- near-duplicate rate of the accepted `{spec.text_field}`: {nd['rate']} ({nd['near_duplicates']} of "
              f"{nd['n']}; {nd['method']})"]
    js = stats["judge_scores"]
    if js:
        parts += [f"- judge scores of the accepted records ({spec.score_scale or 'judge score'}): n={js['n']}, "
                  f"mean {js['mean']}, min {js['min']}, p25 {js['p25']}, median {js['median']}, p75 {js['p75']}, "
                  f"max {js['max']}; histogram (rounded score: records) {js['histogram']}"]
        ja = stats["judge_scores_all_attempts"]
        if ja and ja["n"] != js["n"]:
            parts += [f"- judge scores of every judged attempt: n={ja['n']}, mean {ja['mean']}, "
                      f"histogram {ja['histogram']}"]
    else:
        parts += ["- judge scores: the records carry none"]
    if stats["diversity"]:
        parts += ["- diversity (ads.quality.diversity.diversity_report"
                  + (f", labels = `{spec.label_field}`" if spec.label_field else "") + "): "
                  + ", ".join(f"{k} {v}" for k, v in stats["diversity"].items())]
    parts += ["", "## Structure", "",
              f"Splits: {', '.join(f'`{k}` ({v} rows)' for k, v in manifest['splits'].items())}. `train` holds the "
              f"accepted records; `rejected` (with `--include-rejected`) the others, each with `reject_reason`.", "",
              f"Fine-tuning fields: prompt `{spec.prompt_field}`"
              + (f" + input `{spec.input_field}`" if spec.input_field else "")
              + f", response `{spec.response_field}`; plain text `{spec.text_field}`."]
    parts += [f"- {n}" for n in spec.notes]
    feats = next(iter(dd.values())).features
    parts += ["", "Features:", "", "```", *[f"{k}: {v}" for k, v in feats.items()], "```",
              "", "## How to load it", "", "```python",
              "from datasets import load_from_disk, load_dataset",
              f"ds = load_from_disk(\"{manifest.get('out_hint', '<this folder>')}/hf\")          # DatasetDict",
              "ds = load_dataset(\"parquet\", data_files={\"train\": \"<this folder>/parquet/train.parquet\"})",
              "```", "",
              "Fine-tune on it: `main.py finetune configs/finetune.yaml --set data.path=<this folder>` "
              "(the fields above are read from `ads_export.json`).", "",
              "## Config (the run's config.yaml)", "", "```yaml",
              yaml.safe_dump(cfg, sort_keys=False).strip(), "```", ""]
    return "\n".join(parts)
