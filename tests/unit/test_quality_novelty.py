"""NoveltyFilter on real Wikipedia extracts: near-duplicates rejected and traced to their source,
unrelated text accepted, and template-made outputs that differ only in slot values kept apart."""
from __future__ import annotations

import pytest

from ads.quality.novelty import NoveltyFilter
from ads.quality.samples import near_duplicate, wiki_articles
from ads.quality.text import jaccard, shingles

METHODS = ["exact", "minhash"]

# A generator's fixed wording around two short slots (title, one-line description): the
# boilerplate is most of every output, so outputs about different articles look alike.
CARD = ("Here is a short fact card generated for the quiz deck. Topic: {title}. In brief: {description}. "
        "Please remember that this card was produced automatically and may contain mistakes, so check a "
        "reliable source before you cite it in your own work.")


@pytest.fixture(scope="module")
def articles():
    arts = wiki_articles("en-us", limit=400, min_words=40)
    assert len(arts) == 400
    return arts


@pytest.fixture(scope="module")
def cards():
    arts = [a for a in wiki_articles("en-us") if a.get("description")][:240]
    assert len({a["title"] for a in arts}) == 240
    return [CARD.format(title=a["title"], description=a["description"]) for a in arts]


def filled(method, texts, **kw):
    f = NoveltyFilter(0.5, method=method, **kw)
    for i, t in enumerate(texts):
        f.add(f"p{i}", t)
    return f


@pytest.mark.parametrize("method", METHODS)
def test_edited_copies_are_rejected_and_point_to_their_source(articles, method):
    pool = [a["extract"] for a in articles[:300]]
    f = filled(method, pool)
    for i in range(0, 300, 5):  # 60 near-duplicates, ~5% of words deleted, swapped or replaced
        dup = near_duplicate(pool[i], rate=0.05, seed=i)
        assert dup != pool[i]
        res = f.check(dup)
        assert not res.is_novel, (i, res)
        assert res.nearest_id == f"p{i}" and 0.5 <= res.max_sim < 1.0


@pytest.mark.parametrize("method", METHODS)
def test_unrelated_articles_are_novel(articles, method):
    f = filled(method, [a["extract"] for a in articles[:300]])
    results = [f.check(a["extract"]) for a in articles[300:]]
    assert all(r.is_novel for r in results)
    assert max(r.max_sim for r in results) < 0.2


@pytest.mark.parametrize("method", METHODS)
def test_exact_copy_has_similarity_one(articles, method):
    f = filled(method, [a["extract"] for a in articles[:50]])
    assert f.check(articles[7]["extract"]) == (False, 1.0, "p7")


def test_minhash_estimate_tracks_exact_jaccard(articles):
    """On candidates the MinHash estimate stays within sampling error of the true Jaccard."""
    pool = [a["extract"] for a in articles[:300]]
    ex, mh = filled("exact", pool), filled("minhash", pool)
    errs = []
    for i in range(0, 300, 10):
        dup = near_duplicate(pool[i], rate=0.08, seed=100 + i)
        true = jaccard(shingles(dup), shingles(pool[i]))
        assert ex.check(dup).max_sim == pytest.approx(true, abs=1e-6)
        r = mh.check(dup)
        if r.nearest_id == f"p{i}":
            errs.append(abs(r.max_sim - true))
    assert len(errs) >= 25 and sum(errs) / len(errs) < 0.06 and max(errs) < 0.2


def test_check_and_add_keeps_only_novel_texts(articles):
    texts = [a["extract"] for a in articles[:100]]
    dups = [near_duplicate(t, 0.03, seed=i) for i, t in enumerate(texts[:20])]
    f = NoveltyFilter(0.5)
    accepted = [f.check_and_add(f"t{i}", t).is_novel for i, t in enumerate(texts + dups)]
    assert accepted == [True] * 100 + [False] * 20 and len(f) == 100
    assert f.stats()["rejections"] == 20 and f.stats()["checks"] == 120


def test_duplicate_id_is_refused():
    f = NoveltyFilter()
    f.add("a", "one two three four")
    with pytest.raises(ValueError, match="already"):
        f.add("a", "five six seven eight")


# --- templates ---------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_without_stripping_template_outputs_merge_into_one_cluster(cards, method):
    """The failure being guarded against: boilerplate alone pushes Jaccard over the threshold."""
    f = NoveltyFilter(0.5, method=method)
    kept = sum(f.check_and_add(f"c{i}", c).is_novel for i, c in enumerate(cards))
    assert kept <= 5


@pytest.mark.parametrize("method", METHODS)
def test_declared_template_keeps_slot_variants_apart(cards, method):
    f = NoveltyFilter(0.5, method=method, templates=[CARD])
    assert all(f.check_and_add(f"c{i}", c).is_novel for i, c in enumerate(cards))
    # the same slot values again are still duplicates, with or without small wording drift
    assert f.check(cards[10]) == (False, 1.0, "c10")
    drift = cards[11].replace("Here is a short", "Here is a").replace("so check", "so please check")
    assert f.check(drift).nearest_id == "c11" and not f.check(drift).is_novel


@pytest.mark.parametrize("method", METHODS)
def test_regex_patterns_strip_fixed_text(cards, method):
    patterns = [r"Here is a short fact card generated for the quiz deck\.",
                r"Please remember that this card .*$", r"Topic:|In brief:"]
    f = NoveltyFilter(0.5, method=method, patterns=patterns)
    assert all(f.check_and_add(f"c{i}", c).is_novel for i, c in enumerate(cards))
    assert not f.check(cards[3]).is_novel


@pytest.mark.parametrize("method", METHODS)
def test_fitted_boilerplate_keeps_slot_variants_apart(cards, method):
    f = NoveltyFilter(0.5, method=method, learn_boilerplate=True)
    boiler = f.fit_boilerplate(cards[:100])
    assert "fact card generated" in boiler and "may contain mistakes" in boiler
    assert not any("kubrick" in s for s in boiler)  # slot text is not boilerplate
    assert all(f.check_and_add(f"c{i}", c).is_novel for i, c in enumerate(cards))
    assert f.check(cards[42]) == (False, 1.0, "c42")


@pytest.mark.parametrize("method", METHODS)
def test_boilerplate_is_learned_online_from_checked_texts(cards, method):
    """No sample up front: the first outputs are rejected while the filter has seen too few texts,
    but every check counts as evidence, so it learns the template and then keeps variants apart."""
    f = NoveltyFilter(0.5, method=method, learn_boilerplate=True, boilerplate_min_texts=20, boilerplate_warmup=60)
    early = [f.check_and_add(f"c{i}", c).is_novel for i, c in enumerate(cards[:20])]
    assert sum(early) <= 3 and f.learning
    later = [f.check_and_add(f"c{i}", c).is_novel for i, c in enumerate(cards[20:], start=20)]
    assert all(later) and not f.learning
    assert len(f.boilerplate) >= 20
    assert f.check(cards[100]) == (False, 1.0, "c100")


def test_boilerplate_learning_leaves_ordinary_prose_alone(articles):
    """On varied real prose no shingle is in half the texts: nothing is learned as boilerplate."""
    f = NoveltyFilter(0.5, learn_boilerplate=True)
    assert f.fit_boilerplate([a["extract"] for a in articles[:200]]) == frozenset()


def test_template_without_slot_is_rejected():
    with pytest.raises(ValueError, match="slot"):
        NoveltyFilter(templates=["no placeholders here"])


def test_all_template_texts_match_each_other_only():
    f = NoveltyFilter(0.5, templates=["Answer: {x}."])
    f.add("empty", "Answer: .")
    assert f.check("Answer:  .") == (False, 1.0, "empty")
    assert f.check("Answer: Paris is the capital of France.").is_novel
