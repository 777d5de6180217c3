"""Exponential moving averages of quality scores, overall and per category.

Adaptive generators steer by recent quality ("which category is improving, which is
stuck"); a plain mean over a long run stops moving. The first score of a stream becomes its
average (no bias towards an arbitrary start) unless `initial` is given. A resumed run
rebuilds the exact state from its stored items with `warm_start`, or from `to_dict()`.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping


def _as_score(x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ValueError(f"score must be a number, got {x!r}")
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"score must be finite, got {x!r}")
    return x


class EMATracker:
    def __init__(self, alpha: float = 0.1, initial: float | None = None):
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        self.alpha = float(alpha)
        self.initial = None if initial is None else _as_score(initial)
        self.value: float | None = self.initial
        self.count = 0
        self._cat: dict[str, float] = {}
        self._cat_count: dict[str, int] = {}

    def _step(self, old: float | None, x: float) -> float:
        return x if old is None else self.alpha * x + (1.0 - self.alpha) * old

    def update(self, score: float, category: str | None = None) -> float:
        """Fold one score in; returns the new overall average."""
        x = _as_score(score)
        self.value = self._step(self.value, x)
        self.count += 1
        if category is not None:
            c = str(category)
            self._cat[c] = self._step(self._cat.get(c, self.initial), x)
            self._cat_count[c] = self._cat_count.get(c, 0) + 1
        return self.value

    def get(self, category: str, default: float | None = None) -> float | None:
        return self._cat.get(str(category), default)

    @property
    def categories(self) -> dict[str, float]:
        return dict(self._cat)

    def category_counts(self) -> dict[str, int]:
        return dict(self._cat_count)

    def warm_start(self, items: Iterable[Mapping[str, Any]], score_key: str = "score",
                   category_key: str | None = "category") -> "EMATracker":
        """Replay stored items in order. Items whose score is missing or None are skipped
        (failed items carry no score); any other bad score raises."""
        for it in items:
            s = it.get(score_key)
            if s is None:
                continue
            self.update(s, it.get(category_key) if category_key else None)
        return self

    @classmethod
    def from_items(cls, items: Iterable[Mapping[str, Any]], alpha: float = 0.1, initial: float | None = None,
                   score_key: str = "score", category_key: str | None = "category") -> "EMATracker":
        return cls(alpha, initial).warm_start(items, score_key, category_key)

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "initial": self.initial, "value": self.value, "count": self.count,
                "categories": dict(self._cat), "category_counts": dict(self._cat_count)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EMATracker":
        t = cls(d["alpha"], d.get("initial"))
        t.value = None if d.get("value") is None else _as_score(d["value"])
        t.count = int(d.get("count", 0))
        t._cat = {str(k): _as_score(v) for k, v in (d.get("categories") or {}).items()}
        t._cat_count = {str(k): int(v) for k, v in (d.get("category_counts") or {}).items()}
        return t

    def __repr__(self) -> str:
        v = "None" if self.value is None else f"{self.value:.4f}"
        return f"EMATracker(alpha={self.alpha}, value={v}, count={self.count}, categories={len(self._cat)})"
