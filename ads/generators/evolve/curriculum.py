"""What to ask the generator for next, and how the EMAs survive a restart.

* Category: weight (1 + n_c) ** -power, n_c = tasks of category c in the pool (seeds plus
  accepted items), so a category that keeps getting rejected keeps getting asked for
  until it catches up, while every category keeps a non-zero chance.
* Difficulty: from the category's quality EMA (the global one until the category has
  its own). High recent scores mean the generator copes: ask for harder items. Scores
  near the acceptance bar mean it struggles: ask for easier ones. No history: medium.
  The quality EMA only sees accepted items, so it cannot notice a category where nearly
  everything is rejected; the category's acceptance EMA (1 accepted / 0 rejected per
  attempt) does, and below `easy_accept_below` the request is "easy" whatever the scores.
* Warm start: accepted items carry `ema_global` / `ema_category` as they were after the
  item, so the state after the last item is read back directly; items written without
  those fields (an older run, a hand-made file) are replayed score by score instead.
"""
from __future__ import annotations

import random
from typing import Any, Iterable, Mapping, Sequence

from ads.quality.ema import EMATracker


def category_weights(counts: Mapping[str, int], categories: Sequence[str], power: float = 1.0) -> dict[str, float]:
    raw = {c: (1.0 + counts.get(c, 0)) ** -power for c in categories}
    total = sum(raw.values())
    return {c: w / total for c, w in raw.items()}


def sample_category(counts: Mapping[str, int], categories: Sequence[str], rng: random.Random,
                    power: float = 1.0) -> str:
    w = category_weights(counts, categories, power)
    return rng.choices(list(w), weights=list(w.values()), k=1)[0]


def pick_difficulty(ema: float | None, easy_below: float, hard_above: float,
                    acceptance_ema: float | None = None, easy_accept_below: float = 0.0) -> str:
    if acceptance_ema is not None and acceptance_ema < easy_accept_below:
        return "easy"
    if ema is None:
        return "medium"
    if ema >= hard_above:
        return "hard"
    if ema < easy_below:
        return "easy"
    return "medium"


def pick_demos(pool: Sequence[dict[str, Any]], category: str, k: int, rng: random.Random) -> list[dict[str, Any]]:
    """Half the demos (rounded up) from the target category, the rest from the others, newest
    items not favoured: the pool's own mix is what the generator sees."""
    if k <= 0 or not pool:
        return []
    same = [t for t in pool if t["category"] == category]
    other = [t for t in pool if t["category"] != category]
    n_same = min(len(same), (k + 1) // 2)
    picked = rng.sample(same, n_same) + rng.sample(other, min(len(other), k - n_same))
    rng.shuffle(picked)
    return picked


def warm_start_ema(items: Iterable[Mapping[str, Any]], alpha: float,
                   score_key: str = "score_0_10") -> tuple[EMATracker, str]:
    """(tracker, how): how is "empty", "stored" (read from the items' EMA fields) or "replayed"."""
    items = [it for it in items if it.get(score_key) is not None]
    if not items:
        return EMATracker(alpha), "empty"
    stored = all(isinstance(it.get("ema_global"), (int, float)) and isinstance(it.get("ema_category"), (int, float))
                 and it.get("category") is not None for it in items)
    if not stored:
        return EMATracker.from_items(items, alpha=alpha, score_key=score_key, category_key="category"), "replayed"
    cats: dict[str, float] = {}
    counts: dict[str, int] = {}
    for it in items:
        c = str(it["category"])
        cats[c] = float(it["ema_category"])
        counts[c] = counts.get(c, 0) + 1
    state = {"alpha": alpha, "initial": None, "value": float(items[-1]["ema_global"]), "count": len(items),
             "categories": cats, "category_counts": counts}
    return EMATracker.from_dict(state), "stored"
