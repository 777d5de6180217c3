"""EMATracker: exact recurrence, per-category streams, warm start == replay, dict round trip."""
from __future__ import annotations

import json
import random

import pytest

from ads.quality.diversity import distinct_n
from ads.quality.ema import EMATracker
from ads.quality.samples import wiki_articles


@pytest.fixture(scope="module")
def items():
    """300 scored items from real articles across all topics: score = distinct-2 of the extract,
    category = the article's topic, in a fixed shuffled order (the order a run would store them)."""
    arts = random.Random(0).sample(wiki_articles("en-us"), 300)
    out = [{"id": a["title"], "score": distinct_n(a["extract"], 2), "category": a["topic"]} for a in arts]
    assert len({it["category"] for it in out}) >= 8
    return out


def test_recurrence_and_first_value():
    t = EMATracker(alpha=0.25)
    assert t.value is None and t.get("a") is None
    assert t.update(0.8, "a") == 0.8  # the first score is the average, no pull towards 0
    assert t.update(0.4, "b") == pytest.approx(0.25 * 0.4 + 0.75 * 0.8)
    assert t.get("a") == 0.8 and t.get("b") == 0.4  # each category starts at its own first score
    t.update(0.0, "a")
    assert t.get("a") == pytest.approx(0.6) and t.category_counts() == {"a": 2, "b": 1} and t.count == 3


def test_initial_value_biases_every_stream():
    t = EMATracker(alpha=0.5, initial=0.0)
    t.update(1.0, "x")
    assert t.value == 0.5 and t.get("x") == 0.5


def test_warm_start_equals_replay(items):
    live = EMATracker(alpha=0.1)
    for it in items:
        live.update(it["score"], it["category"])
    warm = EMATracker.from_items(items, alpha=0.1)
    assert warm.to_dict() == live.to_dict()  # bit-for-bit: same operations in the same order
    assert warm.categories == live.categories and len(warm.categories) >= 8


def test_resume_from_dict_continues_exactly(items):
    whole = EMATracker.from_items(items, alpha=0.2)
    first = EMATracker.from_items(items[:137], alpha=0.2)
    resumed = EMATracker.from_dict(json.loads(json.dumps(first.to_dict())))
    resumed.warm_start(items[137:])
    assert resumed.to_dict() == whole.to_dict()


def test_category_streams_follow_their_own_scores(items):
    t = EMATracker.from_items(items, alpha=0.3)
    for cat in {it["category"] for it in items}:
        sub = EMATracker.from_items([it for it in items if it["category"] == cat], alpha=0.3, category_key=None)
        assert t.get(cat) == pytest.approx(sub.value, abs=1e-12)


def test_unscored_items_are_skipped_and_bad_scores_refused(items):
    mixed = items[:10] + [{"score": None, "category": "x"}, {"category": "y"}] + items[10:20]
    assert EMATracker.from_items(mixed).to_dict() == EMATracker.from_items(items[:20]).to_dict()
    t = EMATracker()
    for bad in (float("nan"), float("inf"), "0.5", True):
        with pytest.raises(ValueError):
            t.update(bad)
    with pytest.raises(ValueError):
        EMATracker(alpha=0)
    assert t.count == 0 and t.value is None
