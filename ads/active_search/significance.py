"""Paired comparisons over held-out instructions: bootstrap confidence intervals and sign tests.

Two methods are compared on the same instructions, so the unit is the per-instruction score
difference. The mean difference gets a percentile bootstrap 95% interval (resampling
instructions, a fixed seed so a report is reproducible) and the wins/losses a two-sided exact
sign test (ties dropped). A verdict says BEATS or LOSES only when the interval excludes 0;
otherwise it says there is no clear difference and prints the interval, because a mean of 16
items without one says nothing.
"""
from __future__ import annotations

from math import comb
from typing import Any

import numpy as np

RESAMPLES = 10_000


def bootstrap_ci(diffs: list[float], level: float = 0.95, resamples: int = RESAMPLES,
                 seed: int = 0) -> tuple[float, float]:
    d = np.asarray(diffs, dtype=float)
    if d.size == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return (round(float(lo), 4), round(float(hi), 4))


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact binomial p-value of wins vs losses under p = 1/2."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    p = 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n
    return round(min(1.0, p), 6)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion: unlike p +- z*se it stays inside [0, 1] and does
    not collapse to a point at 0 or n successes, which matters for win rates over a few dozen tasks."""
    if n <= 0:
        return (0.0, 0.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return (round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4))


def compare(a: list[float], b: list[float], seed: int = 0) -> dict[str, Any]:
    """a vs b, paired by position."""
    if len(a) != len(b):
        raise ValueError(f"paired comparison needs equal lengths, got {len(a)} and {len(b)}")
    diffs = [x - y for x, y in zip(a, b)]
    wins = sum(d > 0 for d in diffs)
    losses = sum(d < 0 for d in diffs)
    lo, hi = bootstrap_ci(diffs, seed=seed)
    return {"n": len(diffs), "mean_diff": round(float(np.mean(diffs)), 4) if diffs else 0.0, "ci95": [lo, hi],
            "wins": wins, "losses": losses, "ties": len(diffs) - wins - losses, "sign_test_p": sign_test(wins, losses)}


def word(c: dict[str, Any]) -> str:
    lo, hi = c["ci95"]
    if c["n"] and lo > 0:
        return "BEATS"
    if c["n"] and hi < 0:
        return "LOSES to"
    return "no clear difference from"


def sentence(a: str, b: str, c: dict[str, Any]) -> str:
    lo, hi = c["ci95"]
    return (f"{a} {word(c)} {b}: mean difference {c['mean_diff']:+.3f} (95% CI [{lo:+.3f}, {hi:+.3f}], "
            f"{c['wins']} wins / {c['losses']} losses / {c['ties']} ties, sign test p={c['sign_test_p']:.3g}, "
            f"n={c['n']} held-out instructions)")
