"""Diversity of a generated set: how evenly it covers categories, and how unlike its texts are.

Every number is dataset-level (one call over the whole set), for run summaries and for
comparing a generator against its baselines on the same footing:

* `shannon_entropy` / `normalized_entropy` over labels (categories, tools called, patterns);
  the normalised form divides by log(number of categories), so 1.0 is perfectly even.
* `distinct_n`: unique n-grams over all n-grams; low values mean repeated phrasing.
* `mean_pairwise_jaccard_distance`: 1 - Jaccard of word (or k-shingle) sets, averaged over
  all pairs, or over `max_pairs` pairs drawn with a seed when the set is large.
* `embedding_spread`: mean pairwise cosine distance of embeddings, exact in O(n).
"""
from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any, Hashable, Iterable, Mapping, Sequence

import numpy as np

from ads.quality.text import jaccard, ngrams, shingle_tokens, words


def _counts(labels: Iterable[Hashable] | Mapping[Hashable, int]) -> Counter:
    if isinstance(labels, Mapping):
        c = Counter({k: int(v) for k, v in labels.items() if v})
        if any(v < 0 for v in c.values()):
            raise ValueError("counts must be non-negative")
        return c
    return Counter(labels)


def shannon_entropy(labels: Iterable[Hashable] | Mapping[Hashable, int], base: float = 2.0) -> float:
    """Entropy of the label distribution (labels, or a {label: count} mapping); 0.0 when empty."""
    c = _counts(labels)
    n = sum(c.values())
    if n == 0:
        return 0.0
    h = -sum((v / n) * math.log(v / n) for v in c.values() if v)
    return max(0.0, h / math.log(base))


def normalized_entropy(labels: Iterable[Hashable] | Mapping[Hashable, int], num_categories: int | None = None) -> float:
    """Entropy / log(K), K = `num_categories` (all that could occur) or the distinct labels seen.

    Passing the full category count penalises categories never produced; with K <= 1 the
    value is 0.0 (a single category has no spread).
    """
    c = _counts(labels)
    k = num_categories if num_categories is not None else len(c)
    if num_categories is not None and len(c) > num_categories:
        raise ValueError(f"{len(c)} distinct labels but num_categories={num_categories}")
    if k <= 1:
        return 0.0
    return shannon_entropy(c, base=math.e) / math.log(k)


def distinct_n(texts: str | Iterable[str], n: int = 2) -> float:
    """Unique n-grams / total n-grams over the texts (pooled); 0.0 when there are none."""
    if isinstance(texts, str):
        texts = [texts]
    total, uniq = 0, set()
    for t in texts:
        g = ngrams(words(t), n)
        total += len(g)
        uniq.update(g)
    return len(uniq) / total if total else 0.0


def _pairs(n: int, max_pairs: int, seed: int) -> list[tuple[int, int]]:
    all_pairs = n * (n - 1) // 2
    if all_pairs <= max_pairs:
        return [(i, j) for i in range(n) for j in range(i + 1, n)]
    rng = random.Random(seed)
    out = set()
    while len(out) < max_pairs:
        i, j = rng.randrange(n), rng.randrange(n)
        if i != j:
            out.add((min(i, j), max(i, j)))
    return sorted(out)


def mean_pairwise_jaccard_distance(texts: Sequence[str], k: int = 1, max_pairs: int = 20000, seed: int = 0) -> float:
    """Mean of 1 - Jaccard over pairs of texts (word sets for k=1, k-word shingles otherwise).

    Exact when n(n-1)/2 <= max_pairs; otherwise `max_pairs` distinct pairs sampled with `seed`.
    Fewer than two texts give 0.0.
    """
    if len(texts) < 2:
        return 0.0
    sets = [set(words(t)) if k == 1 else shingle_tokens(words(t), k) for t in texts]
    pairs = _pairs(len(sets), max_pairs, seed)
    return sum(1.0 - jaccard(sets[i], sets[j]) for i, j in pairs) / len(pairs)


def embedding_spread(embeddings: Any) -> float:
    """Mean pairwise cosine distance (1 - cos) over distinct pairs; 0.0 for fewer than two rows.

    With unit vectors, sum_{i != j} cos(i, j) = |sum v|^2 - n, so no n x n matrix is built.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError("embeddings must be a 2-D array (n, dim)")
    n = x.shape[0]
    if n < 2:
        return 0.0
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms == 0, 1.0, norms)
    s = x.sum(axis=0)
    mean_cos = (float(s @ s) - float((x * x).sum())) / (n * (n - 1))
    return 1.0 - mean_cos


def diversity_report(texts: Sequence[str], labels: Iterable[Hashable] | None = None, *,
                     num_categories: int | None = None, max_pairs: int = 20000, seed: int = 0) -> dict[str, float]:
    """The standard block of diversity figures for a run summary."""
    out = {"n": float(len(texts)), "distinct_1": distinct_n(texts, 1), "distinct_2": distinct_n(texts, 2),
           "distinct_3": distinct_n(texts, 3),
           "mean_pairwise_jaccard_distance": mean_pairwise_jaccard_distance(texts, 1, max_pairs, seed)}
    if labels is not None:
        labels = list(labels)
        out["entropy_bits"] = shannon_entropy(labels)
        out["normalized_entropy"] = normalized_entropy(labels, num_categories)
    return {k: round(v, 6) for k, v in out.items()}
