"""Real gold tasks for scoring a fine-tuned model, drawn from a held-out pool no training set touches.

The pool is fixed by a hash of each source (article title, GSM8K line number), not by the
run's seed or the number of tasks asked for: a quarter of all sources are held out, always
the same quarter. So the built-in real training sets (`builtin:wiki_name`, `builtin:gsm8k`,
drawn from the other three quarters) never share an article or a question with any eval
set, whatever sizes or seeds two configs use. The seed only picks which held-out sources
are used and in what order.

Families:
- wiki_name: "which subject is described?" from the article's short description and its
  first sentence with the title masked; scored by `ads.gold_tasks.score_name` (1.0 when the
  title appears in the answer, else token F1), plus the exact-hit rate.
- gsm8k: a GSM8K test question; scored by the last number in the answer.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from ads.config import ConfigError
from ads.gold_tasks import gsm8k_path, score_gsm8k, score_name

EVAL_FAMILIES = ("wiki_name", "gsm8k")
HELDOUT_BUCKETS = 4  # 1 in 4 sources is held out


@dataclass
class EvalItem:
    id: str
    family: str
    prompt: str
    gold: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _h(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def is_heldout(source: str) -> bool:
    """True for the fixed quarter of sources reserved for evaluation."""
    return _h(f"ads-downstream-heldout:{source}") % HELDOUT_BUCKETS == 0


def _seed_order(source: str, seed: int) -> int:
    return _h(f"{seed}:{source}")


# --- Wikipedia: name the subject ------------------------------------------------------------
def _first_sentence(text: str) -> str:
    m = re.match(r"(.+?[.!?])(\s|$)", text.strip())
    return m.group(1) if m else text.strip()


def _mask(text: str, title: str) -> str:
    base = re.sub(r"\s*\(.*?\)\s*$", "", title).strip()  # "Mercury (planet)" -> "Mercury"
    out = text
    for variant in sorted({title, base}, key=len, reverse=True):
        if len(variant) >= 3:
            out = re.sub(re.escape(variant), "___", out, flags=re.I)
    return out


def wiki_name_prompt(description: str, first_sentence_masked: str) -> str:
    return ("Which subject is described? Answer with the name only.\n"
            f"Description: {description}\nFirst sentence: {first_sentence_masked}")


@lru_cache(maxsize=2)
def wiki_name_pairs(heldout: bool) -> tuple[tuple[str, str, str], ...]:
    """(source, prompt, title) for every usable article on one side of the split."""
    from apis.corpus import load_corpus

    out = []
    for doc in load_corpus(None):
        if is_heldout(doc.id) != heldout or not doc.description or len(doc.title) < 3:
            continue
        first = _mask(_first_sentence(doc.text), doc.title)
        if "___" not in first:
            continue
        out.append((doc.id, wiki_name_prompt(doc.description, first), doc.title))
    return tuple(out)


# --- GSM8K -----------------------------------------------------------------------------------
def gsm8k_prompt(question: str) -> str:
    return f"Solve the problem. End with the final number.\n{question}"


@lru_cache(maxsize=1)
def _gsm8k_rows() -> tuple[tuple[str, str, str, str], ...]:
    rows = []
    with open(gsm8k_path(), encoding="utf-8") as f:
        for i, line in enumerate(f):
            r = json.loads(line)
            work, _, final = r["answer"].rpartition("####")
            rows.append((f"gsm8k-{i}", r["question"], re.sub(r"<<[^>]*>>", "", work).strip(),
                         final.strip().replace(",", "")))
    return tuple(rows)


def gsm8k_rows() -> list[dict[str, str]]:
    """All GSM8K test rows: source, question, worked solution (calculator marks removed), final number."""
    return [dict(zip(("source", "question", "solution", "answer"), r)) for r in _gsm8k_rows()]


def gsm8k_pairs(heldout: bool) -> list[tuple[str, str, str, str]]:
    """(source, prompt, final answer, worked solution) on one side of the split."""
    return [(r["source"], gsm8k_prompt(r["question"]), r["answer"], r["solution"])
            for r in gsm8k_rows() if is_heldout(r["source"]) == heldout]


# --- the eval set ----------------------------------------------------------------------------
def build_eval_set(tasks: dict[str, int], seed: int = 0) -> list[EvalItem]:
    unknown = set(tasks) - set(EVAL_FAMILIES)
    if unknown:
        raise ConfigError(f"eval.tasks: unknown family {sorted(unknown)}; choose from {list(EVAL_FAMILIES)}")
    items: list[EvalItem] = []
    for fam, n in tasks.items():
        if n <= 0:
            continue
        if fam == "wiki_name":
            pool = [(s, p, g) for s, p, g in wiki_name_pairs(heldout=True)]
        else:
            pool = [(s, p, g) for s, p, g, _ in gsm8k_pairs(heldout=True)]
        pool.sort(key=lambda x: _seed_order(x[0], seed))
        if len(pool) < n:
            raise ConfigError(f"eval.tasks.{fam}: asked for {n} tasks, the held-out pool has {len(pool)}")
        items += [EvalItem(id=f"{fam}-{s}", family=fam, prompt=p, gold=g, source=s) for s, p, g in pool[:n]]
    return items


def score(item: EvalItem, answer: str) -> float:
    if item.family == "wiki_name":
        return score_name(answer, item.gold)
    return score_gsm8k(answer, item.gold)


def summarize(items: list[EvalItem], answers: list[str]) -> dict[str, Any]:
    """Per-family mean score and exact-hit rate, plus the per-item records."""
    records = []
    by_fam: dict[str, list[float]] = {}
    for it, ans in zip(items, answers):
        s = score(it, ans)
        by_fam.setdefault(it.family, []).append(s)
        records.append({**it.to_dict(), "answer": ans, "score": s})
    fams = {f: {"n": len(v), "mean_score": round(sum(v) / len(v), 4),
                "exact": round(sum(1 for x in v if x >= 1.0) / len(v), 4)} for f, v in by_fam.items()}
    all_scores = [r["score"] for r in records]
    return {"n": len(records), "mean_score": round(sum(all_scores) / len(all_scores), 4) if all_scores else 0.0,
            "by_family": fams, "records": records}
