"""Diversity metrics on real extracts and on cases with known answers."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest

from ads.quality.diversity import (distinct_n, diversity_report, embedding_spread, mean_pairwise_jaccard_distance,
                                   normalized_entropy, shannon_entropy)
from ads.quality.samples import near_duplicate, wiki_articles
from ads.quality.text import jaccard, words


@pytest.fixture(scope="module")
def texts():
    arts = random.Random(1).sample(wiki_articles("en-us", min_words=30), 300)
    return [a["extract"] for a in arts], [a["topic"] for a in arts]


def test_entropy_known_values():
    assert shannon_entropy(["a", "b", "c", "d"]) == pytest.approx(2.0)
    assert shannon_entropy({"a": 3, "b": 1}) == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))
    assert shannon_entropy([]) == 0.0 and shannon_entropy(["x"] * 9) == 0.0
    assert shannon_entropy(["a", "b"], base=math.e) == pytest.approx(math.log(2))
    assert normalized_entropy(["a", "b", "c", "d"] * 5) == pytest.approx(1.0)
    assert normalized_entropy(["a"] * 7) == 0.0
    # categories never produced count against evenness when the full set is given
    assert normalized_entropy(["a", "b"], num_categories=4) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        normalized_entropy(["a", "b", "c"], num_categories=2)


def test_entropy_of_real_topics_drops_when_a_generator_collapses(texts):
    _, topics = texts
    balanced = normalized_entropy(topics)
    collapsed = normalized_entropy(topics[:30] + ["People"] * 270)
    assert 0.8 < balanced <= 1.0 and collapsed < 0.5 * balanced


def test_distinct_n_real_vs_repetitive(texts):
    docs, _ = texts
    real = distinct_n(docs, 2)
    copies = distinct_n([docs[0]] * 20 + docs[:10], 2)
    assert 0.7 < real <= 1.0 and copies < 0.5 * real
    assert distinct_n("the cat the cat the cat", 2) == pytest.approx(2 / 5)
    assert distinct_n(["one"], 2) == 0.0 and distinct_n("a b c", 1) == 1.0


def test_pairwise_jaccard_exact_and_sampled(texts):
    docs, _ = texts
    small = docs[:40]
    exact = mean_pairwise_jaccard_distance(small, max_pairs=10_000)
    sets = [set(words(t)) for t in small]
    brute = np.mean([1 - jaccard(sets[i], sets[j]) for i in range(40) for j in range(i + 1, 40)])
    assert exact == pytest.approx(brute)
    full = mean_pairwise_jaccard_distance(docs, max_pairs=10**6)
    sampled = mean_pairwise_jaccard_distance(docs, max_pairs=3000, seed=7)
    assert sampled == pytest.approx(full, abs=0.01)
    assert sampled == mean_pairwise_jaccard_distance(docs, max_pairs=3000, seed=7)  # seeded
    near = [near_duplicate(docs[0], 0.05, seed=s) for s in range(30)]
    assert mean_pairwise_jaccard_distance(near) < 0.3 < full
    assert mean_pairwise_jaccard_distance(docs[:1]) == 0.0


def test_embedding_spread_matches_brute_force():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 16))
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = xn @ xn.T
    brute = 1 - (cos.sum() - np.trace(cos)) / (50 * 49)
    assert embedding_spread(x) == pytest.approx(brute)
    assert embedding_spread(np.ones((5, 3))) == pytest.approx(0.0, abs=1e-12)
    assert embedding_spread(np.ones((1, 3))) == 0.0


def test_report_has_the_standard_block(texts):
    docs, topics = texts
    r = diversity_report(docs[:100], topics[:100])
    assert set(r) == {"n", "distinct_1", "distinct_2", "distinct_3", "mean_pairwise_jaccard_distance",
                      "entropy_bits", "normalized_entropy"}
    assert r["n"] == 100 and r["distinct_1"] < r["distinct_2"] < r["distinct_3"]
