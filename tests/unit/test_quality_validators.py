"""Validators built from a YAML `validators:` block and run on real Wikipedia text.

Embedding validators get a small bag-of-words embedder here (control flow only); the real
MiniLM is exercised in tests/integration/test_quality_real.py. Judge validators get a
scripted FakeModel.
"""
from __future__ import annotations

import json
import zlib

import numpy as np
import pytest
import yaml

from ads.config import ConfigError
from ads.quality.samples import near_duplicate, wiki_articles
from ads.quality.text import words
from ads.quality.validator_specs import build_validators
from ads.quality.validators import SuiteResult, ValidationResult, ValidatorSuite, validation_counts
from models.fake import FakeModel


class BagOfWords:
    """Unit vectors of hashed word counts: cosine = word overlap. Counts its calls."""

    def __init__(self, dim: int = 512):
        self.dim, self.calls = dim, 0

    def encode(self, texts):
        self.calls += 1
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in words(t):
                out[i, zlib.crc32(w.encode()) % self.dim] += 1
        n = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(n == 0, 1, n)


@pytest.fixture(scope="module")
def arts():
    a = wiki_articles("en-us", limit=300, min_words=30)
    assert len(a) == 300
    return a


YAML = """
validators:
  - {type: length, min_words: 20, max_words: 400}
  - {type: regex, pattern: '^[A-Z0-9"(]', field: text}
  - {type: distinct_n, n: 2, min: 0.6}
  - {type: embedding_similarity, reference_field: source, min: 0.7, max: 0.98}  # bag-of-words scale
  - {type: json_schema, field: meta, schema: {type: object, required: [topic], properties: {topic: {type: string}}}}
"""


def items_from(arts, shift=0):
    """An output (the first 60% of an extract) with its source (the whole extract of article i+shift)."""
    out = []
    for i, a in enumerate(arts):
        toks = a["extract"].split()
        out.append({"id": f"a{i}", "text": " ".join(toks[:max(20, int(0.6 * len(toks)))]),
                    "source": arts[(i + shift) % len(arts)]["extract"],
                    "meta": json.dumps({"topic": a.get("topic") or "none"})})
    return out


def test_yaml_block_builds_named_validators_in_order():
    vs = build_validators(yaml.safe_load(YAML)["validators"], embedder=BagOfWords())
    assert [v.name for v in vs] == ["length", "regex", "distinct_n", "embedding_similarity", "json_schema"]


def test_real_extracts_pass_and_counts_add_up(arts):
    suite = ValidatorSuite.from_config(yaml.safe_load(YAML)["validators"], embedder=BagOfWords())
    results = [suite.run(it, it["id"]) for it in items_from(arts)]
    counts = suite.counts()
    assert counts["_items"]["passed"] + counts["_items"]["failed"] == 300
    assert counts["_items"]["passed"] >= 280  # real encyclopedic prose is what these rules expect
    for name in ("length", "regex", "distinct_n", "embedding_similarity", "json_schema"):
        c = counts[name]
        assert c["passed"] + c["failed"] + c["skipped"] == 300
    # the stored form of the outcomes gives the same per-validator counts (resumed runs)
    stored = [json.loads(json.dumps(r.to_dict())) for r in results]
    assert validation_counts(stored) == {k: v for k, v in counts.items() if k != "_items"}
    assert validation_counts(results) == validation_counts(stored)


def test_outputs_paired_with_the_wrong_source_fail_similarity(arts):
    suite = ValidatorSuite.from_config(yaml.safe_load(YAML)["validators"], embedder=BagOfWords())
    for it in items_from(arts, shift=1):
        suite.run(it, it["id"])
    c = suite.counts()["embedding_similarity"]
    assert c["failed"] >= 0.95 * (c["passed"] + c["failed"])


def test_length_bounds_in_words_and_chars(arts):
    (v,) = build_validators([{"type": "length", "min_words": 5, "max_words": 60, "max_chars": 350}])
    short, text = "Too short.", arts[0]["extract"]
    r = v.check(short)
    assert not r.passed and "2 words" in r.reason and r.score == 2
    n = len(words(text))
    assert v.check(text).passed == (5 <= n <= 60 and len(text) <= 350)
    first = " ".join(text.split()[:40])
    assert v.check({"text": first}).passed == (len(first) <= 350)
    assert not v.check({"answer": first}).passed and "missing field 'text'" in v.check({"answer": first}).reason


def test_regex_search_fullmatch_and_forbidden(arts):
    vs = build_validators([
        {"type": "regex", "name": "has_year", "pattern": r"\b1[0-9]{3}\b"},
        {"type": "regex", "name": "answer_format", "pattern": r"Answer: .+", "mode": "fullmatch", "field": "out"},
        {"type": "regex", "name": "no_refusal", "pattern": r"as an ai", "must_match": False, "ignore_case": True},
    ])
    by = {v.name: v for v in vs}
    with_year = [a["extract"] for a in arts if by["has_year"].check(a["extract"]).passed]
    assert 30 < len(with_year) < 300
    assert by["answer_format"].check({"out": "Answer: Paris"}).passed
    assert not by["answer_format"].check({"out": "The answer: Paris"}).passed
    assert not by["no_refusal"].check("As an AI language model I cannot").passed
    assert by["no_refusal"].check(arts[0]["extract"]).passed


def test_json_schema_on_model_output_and_on_the_item():
    schema = {"type": "object", "required": ["question", "answer"],
              "properties": {"question": {"type": "string", "minLength": 5}, "answer": {"type": "string"}},
              "additionalProperties": False}
    (v,) = build_validators([{"type": "json_schema", "field": "raw", "schema": schema}])
    assert v.check({"raw": '{"question": "Who wrote Hamlet?", "answer": "Shakespeare"}'}).passed
    assert v.check({"raw": 'Here you go: {"question": "Who wrote Hamlet?", "answer": "Shakespeare"} Done.'}).passed
    r = v.check({"raw": '{"question": "Who?", "answer": "Shakespeare", "extra": 1}'})
    assert not r.passed and "'extra' was unexpected" in r.reason and "+1 more" in r.reason
    assert "not JSON" in v.check({"raw": "no json at all"}).reason
    (whole,) = build_validators([{"type": "json_schema", "schema": schema}])  # field omitted: the item itself
    assert whole.check({"question": "Who wrote Hamlet?", "answer": "Shakespeare"}).passed


def test_distinct_n_catches_a_looping_output(arts):
    (v,) = build_validators([{"type": "distinct_n", "n": 2, "min": 0.6}])
    assert sum(v.check(a["extract"]).passed for a in arts) >= 295
    loop = " ".join(arts[0]["extract"].split()[:12]) + " " + "and the city is the city is the city is " * 8
    r = v.check(loop)
    assert not r.passed and r.score < 0.6


def test_embedding_similarity_bounds(arts):
    emb = BagOfWords()
    (v,) = build_validators([{"type": "embedding_similarity", "reference_field": "source", "min": 0.5, "max": 0.99}],
                            embedder=emb)
    a, b = arts[0]["extract"], arts[1]["extract"]
    para = near_duplicate(a, 0.1, seed=1)
    assert v.check({"text": para, "source": a}).passed
    low = v.check({"text": b, "source": a})
    assert not low.passed and low.score < 0.5 and "outside" in low.reason
    assert not v.check({"text": a, "source": a}).passed  # a verbatim copy is above max
    assert not v.check({"text": "", "source": a}).passed
    assert "missing field 'source'" in v.check({"text": a}).reason


def test_embedding_spread_remembers_only_accepted_items(arts):
    emb = BagOfWords()
    suite = ValidatorSuite.from_config([{"type": "embedding_spread", "max_similarity": 0.9},
                                        {"type": "length", "max_words": 10_000}], embedder=emb)
    a = arts[0]["extract"]
    assert suite.run({"text": a}).passed
    assert not suite.run({"text": near_duplicate(a, 0.03, seed=2)}).passed
    assert suite.run({"text": arts[1]["extract"]}).passed
    # an item another validator rejects is not remembered, so its twin is still accepted
    strict = ValidatorSuite.from_config([{"type": "embedding_spread", "max_similarity": 0.9},
                                         {"type": "regex", "pattern": "^NEVER"}], embedder=emb, fail_fast=False)
    assert not strict.run({"text": a}).passed
    again = strict.run({"text": a})
    assert {r.name: r.passed for r in again.results} == {"regex": False, "embedding_spread": True}


def faithful_judge(messages, kw):
    """Scores 9 when every response word appears in the reference, else 2 (a scripted judge)."""
    user = messages[1]["content"]
    ref = user.split("REFERENCE:\n", 1)[1].split("\n\nRESPONSE:\n", 1)[0]
    resp = user.split("RESPONSE:\n", 1)[1]
    score = 9 if set(words(resp)) <= set(words(ref)) else 2
    return json.dumps({"rationale": "checked word support", "scores": {"faithfulness": score}})


def test_judge_faithfulness_uses_the_source_field(arts):
    model = FakeModel(faithful_judge)
    (v,) = build_validators([{"type": "judge_faithfulness", "source_field": "context", "min_score": 6}],
                            judge_model=model)
    src = arts[5]["extract"]
    supported = " ".join(src.split()[:15])
    ok = v.check({"id": "q1", "text": supported, "context": src})
    assert ok.passed and ok.score == 9
    bad = v.check({"id": "q2", "text": supported + " It was demolished by Martians in 1850.", "context": src})
    assert not bad.passed and bad.score == 2 and "judge score 2" in bad.reason
    assert model.calls[0]["json_schema"]["properties"]["scores"]["required"] == ["faithfulness"]
    assert model.calls[0]["sample_id"] != model.calls[1]["sample_id"]  # per-item sample ids


def test_judge_failure_fails_the_item_with_the_reason():
    model = FakeModel(["not json"])
    (v,) = build_validators([{"type": "judge_faithfulness", "max_attempts": 2}], judge_model=model)
    r = v.check({"text": "x", "source": "y"})
    assert not r.passed and "judge failed after 2 attempts" in r.reason and len(model.calls) == 2


def test_judge_score_gates_on_one_criterion():
    model = FakeModel(['{"rationale": "r", "scores": {"style": 3, "facts": 9}}'])
    (v,) = build_validators([{"type": "judge_score", "criterion": "facts", "min_score": 7, "instruction_field": "q",
                              "criteria": [{"name": "style", "description": "Reads well."},
                                           {"name": "facts", "description": "Correct facts."}]}], judge_model=model)
    r = v.check({"q": "Capital of France?", "text": "Paris."})
    assert r.passed and r.score == 9
    assert "Capital of France?" in model.calls[0]["messages"][1]["content"]


def test_novelty_validator_in_a_suite(arts):
    suite = ValidatorSuite.from_config([{"type": "novelty", "threshold": 0.5, "method": "minhash"}])
    texts = [a["extract"] for a in arts[:50]]
    assert all(suite.run(t, f"t{i}").passed for i, t in enumerate(texts))
    r = suite.run(near_duplicate(texts[4], 0.04, seed=9))
    assert not r.passed and "near-duplicate of t4" in r.results[0].reason


def test_fail_fast_runs_cheap_validators_first_and_skips_the_judge():
    model = FakeModel(['{"rationale": "r", "scores": {"faithfulness": 9}}'])
    suite = ValidatorSuite.from_config([{"type": "judge_faithfulness"}, {"type": "length", "min_words": 3}],
                                       judge_model=model)
    assert [v.name for v in suite.validators] == ["length", "judge_faithfulness"]
    r = suite.run({"text": "two words", "source": "s"})
    assert not r.passed and r.skipped == ["judge_faithfulness"] and model.calls == []
    assert suite.run({"text": "three words here", "source": "three words here"}).passed
    c = suite.counts()
    assert c["judge_faithfulness"] == {"passed": 1, "failed": 0, "skipped": 1, "pass_rate": 1.0}
    assert c["length"] == {"passed": 1, "failed": 1, "skipped": 0, "pass_rate": 0.5}


def test_a_crashing_validator_is_counted_not_raised():
    class Broken:
        name, cost = "broken", 0

        def check(self, item):
            raise KeyError("boom")

    suite = ValidatorSuite([Broken()])
    r = suite.run("anything")
    assert not r.passed and "validator error: KeyError" in r.results[0].reason
    assert suite.counts()["broken"]["failed"] == 1


@pytest.mark.parametrize("entries, needle", [
    ([{"type": "lenght", "min_words": 3}], "unknown validator type 'lenght'"),
    ([{"type": "length", "min_wrds": 3}], "'min_wrds': unknown key"),
    ([{"type": "length"}], "at least one of"),
    ([{"type": "length", "min_words": "five"}], "'min_words'"),
    ([{"type": "regex", "pattern": "(unclosed"}], "not a valid regular expression"),
    ([{"type": "json_schema", "schema": {"type": "strng"}}], "not a valid JSON schema"),
    ([{"type": "embedding_similarity", "reference_field": "s"}], "min and/or max"),
    ([{"type": "judge_faithfulness", "min_score": 6}], "needs a judge model"),
    ([{"min_words": 3}], "unknown validator type None"),
    ([{"type": "length", "min_words": 1, "name": "n"}, {"type": "regex", "pattern": "x", "name": "n"}], "unique"),
])
def test_config_errors_name_the_problem(entries, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")) as e:
        build_validators(entries, source="configs/gen.yaml: validators")
    assert "configs/gen.yaml: validators" in str(e.value)


def test_judge_score_criterion_must_be_in_the_rubric():
    with pytest.raises(ConfigError, match="criterion"):
        build_validators([{"type": "judge_score", "criterion": "nonexistent"}], judge_model=FakeModel(["{}"]))


def test_repeated_types_get_field_names():
    vs = build_validators([{"type": "length", "max_words": 5, "field": "q"}, {"type": "length", "max_words": 50}])
    assert [v.name for v in vs] == ["length:q", "length:text"]


def test_validation_counts_accepts_suite_results_and_lists():
    r1 = SuiteResult(False, [ValidationResult("a", True, ""), ValidationResult("b", False, "")], skipped=["c"])
    r2 = [ValidationResult("a", False, ""), {"name": "c", "passed": True, "reason": ""}]
    assert validation_counts([r1, r1.to_dict(), r2]) == {
        "a": {"passed": 2, "failed": 1, "skipped": 0, "pass_rate": 0.6667},
        "b": {"passed": 0, "failed": 2, "skipped": 0, "pass_rate": 0.0},
        "c": {"passed": 1, "failed": 0, "skipped": 2, "pass_rate": 1.0},
    }
    with pytest.raises(ValueError):
        validation_counts([42])


def test_generator_config_checks_the_block_at_load_time(tmp_path):
    from ads.config import RunConfig, load_config
    from ads.quality.validator_specs import ValidatorSpec

    class GenConfig(RunConfig):
        validators: list[ValidatorSpec] = []

    p = tmp_path / "gen.yaml"
    p.write_text("name: g\nvalidators:\n  - {type: length, max_words: 50}\n  - {type: regex, patern: x}\n")
    with pytest.raises(ConfigError, match=r"validators\.1\.regex\.patern': unknown key"):
        load_config(GenConfig, p)
    p.write_text("validators:\n  - {type: lenght, max_words: 50}\n")
    with pytest.raises(ConfigError, match="'lenght'"):
        load_config(GenConfig, p)
    p.write_text(YAML)
    cfg = load_config(GenConfig, p)
    vs = build_validators(cfg.validators, embedder=BagOfWords())
    assert [v.name for v in vs] == ["length", "regex", "distinct_n", "embedding_similarity", "json_schema"]
    assert vs[4].check({"meta": '{"topic": "Arts"}'}).passed and not vs[4].check({"meta": "{}"}).passed
