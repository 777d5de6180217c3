"""The seed pool: evaluation tasks cut from real data, split into template + instance.

Self-Instruct needs demonstrations of the output format before the generator has produced
anything. Hand-written seeds would say more about their author than about the data, so the
default pool is built from the real task sets in `ads.gold_tasks` (GSM8K, and Wikipedia
name / cloze / topic tasks) plus a summarisation family over the same Wikipedia extracts.
Each of those prompts is "one instruction line" + "the instance", which is exactly the
instruction / user_input split the generator must learn to write. A JSONL file of seeds
(instruction, user_input, category, ...) can replace or extend them.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from ads.config import ConfigError
from ads.store import jsonl_lines
from ads.gold_tasks import TasksConfig, build_task_sets

# task family in ads.gold_tasks -> (category, difficulty, skills, expected answer type)
FAMILY_META: dict[str, tuple[str, str, list[str], str]] = {
    "gsm8k": ("math_word_problem", "medium", ["arithmetic", "multi-step reasoning"], "number"),
    "wiki_name": ("entity_identification", "medium", ["world knowledge", "reading"], "short_text"),
    "wiki_cloze": ("fact_recall", "hard", ["world knowledge", "numbers"], "number"),
    "topic": ("topic_classification", "easy", ["reading", "classification"], "label"),
}
SUMMARY_CATEGORY = "summarization"
SUMMARY_INSTRUCTION = "Summarize the passage below in one sentence of at most 25 words."
ANSWER_TYPES = ["number", "short_text", "long_text", "label", "list", "boolean", "code"]
DIFFICULTIES = ["easy", "medium", "hard"]


def _seed(idx: str, instruction: str, user_input: str, category: str, difficulty: str, skills: list[str],
          answer_type: str, reference: str | None, source: str) -> dict[str, Any]:
    return {"id": idx, "instruction": instruction.strip(), "user_input": user_input.strip(), "category": category,
            "difficulty": difficulty, "skills_tested": list(skills), "expected_answer_type": answer_type,
            "reference_answer": reference, "source": source}


def real_seed_tasks(per_category: int, seed: int = 0) -> list[dict[str, Any]]:
    """`per_category` seeds for each of the five categories, from disjoint real sources."""
    if per_category < 1:
        raise ConfigError("seeds.per_category must be >= 1")
    fams = {f: per_category for f in FAMILY_META}
    train, _ = build_task_sets(TasksConfig(families=fams, test_families={f: 0 for f in fams}, seed=seed))
    out = []
    for t in train:
        instruction, _, instance = t.prompt.partition("\n")
        cat, diff, skills, ans = FAMILY_META[t.family]
        out.append(_seed(f"seed-{t.id}", instruction, instance, cat, diff, skills, ans, t.gold, t.source))
    used = {t.source for t in train}
    from apis.corpus import load_wiki

    docs = [d for d in load_wiki() if d.id not in used and 40 <= len(d.text.split()) <= 120]
    for d in random.Random(f"{seed}:summaries").sample(docs, per_category):
        out.append(_seed(f"seed-summary-{d.id}", SUMMARY_INSTRUCTION, d.text, SUMMARY_CATEGORY, "easy",
                         ["reading", "compression"], "long_text", d.description or None, d.id))
    return out


def load_seed_file(path: str | Path) -> list[dict[str, Any]]:
    """Seeds from JSONL: instruction, user_input and category are required, the rest defaults."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"seeds.path: file not found: {path}")
    out = []
    for n, (where, r) in enumerate(jsonl_lines(path, ConfigError), 1):
        if not isinstance(r, dict):
            raise ConfigError(f"{where}: must be a JSON object")
        for key in ("instruction", "user_input", "category"):
            if not isinstance(r.get(key), str) or not r[key].strip():
                raise ConfigError(f"{where}: needs a non-empty string field '{key}'")
        diff = r.get("difficulty", "medium")
        if diff not in DIFFICULTIES:
            raise ConfigError(f"{where}: difficulty must be one of {DIFFICULTIES}")
        ans = r.get("expected_answer_type", "short_text")
        if ans not in ANSWER_TYPES:
            raise ConfigError(f"{where}: expected_answer_type must be one of {ANSWER_TYPES}")
        out.append(_seed(f"seed-file-{r.get('id', n)}", r["instruction"], r["user_input"], r["category"], diff,
                         [str(s) for s in r.get("skills_tested", [])], ans, r.get("reference_answer"), str(path)))
    if not out:
        raise ConfigError(f"{path}: no seed tasks in the file")
    return out
