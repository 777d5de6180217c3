"""The quality toolkit on real models: MiniLM embeddings on real Wikipedia text, and the judge
on the real SmolLM2 GGUF through llama-cpp with a grammar-constrained judgment schema."""
from __future__ import annotations

import random

import numpy as np
import pytest
from jsonschema import Draft202012Validator

from ads.quality.embeddings import shared_embedder
from ads.quality.judge import Judge
from ads.quality.samples import sentences, wiki_articles
from ads.quality.validator_specs import build_validators
from ads.quality.validators import ValidatorSuite
from models.structured import extract_json

# Hand-written paraphrases of the opening of six real articles: different wording, same content.
PARAPHRASES = {
    "Adriatic Sea": "The Adriatic is the sea lying between Italy and the Balkans, the most northerly branch of the "
                    "Mediterranean, reaching from the Otranto strait up to the valley of the Po.",
    "Fermion": "Fermions are particles that obey Fermi-Dirac statistics: their spin is a half-integer and, by the "
               "Pauli exclusion principle, no two of them can share the same quantum state.",
    "Screw mechanism": "A screw turns a rotation into straight-line movement and a turning force into a pushing "
                       "force; it counts among the six classic simple machines.",
    "Gecko": "Geckos are small lizards, most of which eat insects and other animals; they live in warm regions on "
             "every continent apart from Antarctica.",
    "Parchment": "Parchment is a surface for writing prepared from the untanned hides of animals, mostly sheep, goats "
                 "and calves, and people in Europe and West Asia have written on it for over two thousand years.",
    "Georges Cuvier": "Georges Cuvier, a French zoologist and naturalist, is often called the father of paleontology; "
                      "early in the nineteenth century he founded comparative anatomy by comparing fossils with "
                      "living animals.",
}


@pytest.fixture(scope="module")
def corpus():
    arts = wiki_articles("en-us", min_words=30)
    by_title = {a["title"]: a for a in arts}
    assert set(PARAPHRASES) <= set(by_title)
    others = [a for a in random.Random(5).sample(arts, 200) if a["title"] not in PARAPHRASES]
    return by_title, others


@pytest.fixture(scope="module")
def embedder():
    e = shared_embedder()
    assert e is shared_embedder()  # one instance per process
    return e


def test_minilm_separates_paraphrases_from_unrelated_extracts(corpus, embedder):
    by_title, others = corpus
    unrelated = embedder.encode([o["extract"] for o in others])
    assert unrelated.shape == (len(others), 384)
    assert np.allclose(np.linalg.norm(unrelated, axis=1), 1.0, atol=1e-4)
    for title, para in PARAPHRASES.items():
        p, orig = embedder.encode([para, by_title[title]["extract"]])
        own = float(p @ orig)
        sims = unrelated @ p
        assert own >= 0.6, title
        assert own > sims.max() + 0.1, title  # the source beats every one of ~200 other articles
        assert np.percentile(sims, 95) < 0.3, title


def test_minilm_matches_descriptions_to_their_articles(corpus, embedder):
    """A short human description ("Body of water between the Italian and Balkan Peninsulas") finds its
    own article among 100: the embedding carries topic, not wording."""
    arts = random.Random(9).sample(list(corpus[0].values()), 100)
    d = embedder.encode([f"{a['title']}: {a['description']}" for a in arts if a.get("description")])
    x = embedder.encode([a["extract"] for a in arts if a.get("description")])
    s = d @ x.T
    assert (s.argmax(axis=1) == np.arange(len(s))).mean() >= 0.9
    assert s.diagonal().mean() > 0.5 > (s.sum() - s.trace()) / (len(s) * (len(s) - 1)) + 0.3


def test_embedding_validators_from_yaml_on_the_real_model(corpus):
    by_title, others = corpus
    suite = ValidatorSuite.from_config([
        {"type": "embedding_similarity", "reference_field": "source", "min": 0.3},
        {"type": "embedding_spread", "max_similarity": 0.9},
    ])  # no embedder passed: the shared MiniLM is used
    good = [{"text": p, "source": by_title[t]["extract"]} for t, p in PARAPHRASES.items()]
    assert all(suite.run(it).passed for it in good)
    # the same paraphrase again is too close to an accepted one
    again = suite.run(good[0])
    assert not again.passed and again.results[-1].name == "embedding_spread"
    # paraphrases paired with the wrong source fail the similarity gate
    titles = list(PARAPHRASES)
    wrong = [{"text": PARAPHRASES[t], "source": others[i]["extract"]} for i, t in enumerate(titles)]
    assert sum(not suite.run(it).passed for it in wrong) >= 5
    assert suite.counts()["embedding_similarity"]["failed"] >= 5


def test_judge_on_smollm_returns_a_parsed_schema_valid_judgment(smollm):
    art = wiki_articles("en-us", min_words=30)[0]
    ref = " ".join(sentences(art["extract"])[:2])
    judge = Judge(smollm, {"max_tokens": 160, "rationale_max_chars": 200})
    j = judge.judge(" ".join(sentences(art["extract"])[:1]), instruction=f"Summarise the article '{art['title']}'.",
                    reference=ref)
    assert j.ok, j.error
    assert set(j.scores) == {"correctness", "helpfulness", "clarity"}
    assert all(isinstance(v, int) and 0 <= v <= 10 for v in j.scores.values())
    assert 0 <= j.overall <= 10 and 1 <= j.attempts <= 3
    # the grammar made the raw text parse; after clamping, the judgment satisfies the schema
    raw, err = extract_json(j.raw)
    assert err is None and set(raw) == {"rationale", "scores"} and set(raw["scores"]) == set(j.scores)
    assert len(raw["rationale"]) <= 200  # maxLength is part of the grammar
    assert Draft202012Validator(judge.schema).is_valid({"rationale": j.rationale, "scores": j.scores})
    assert judge.stats()["ok"] == 1 and judge.stats()["failures"] == 0


def test_faithfulness_validator_runs_on_smollm(smollm):
    art = wiki_articles("en-us", min_words=30)[1]
    (v,) = build_validators([{"type": "judge_faithfulness", "min_score": 0}], judge_model=smollm)
    r = v.check({"id": "w1", "text": sentences(art["extract"])[0], "source": " ".join(sentences(art["extract"])[:2])})
    assert r.passed and r.score is not None and 0 <= r.score <= 10 and r.reason.startswith("judge score")
