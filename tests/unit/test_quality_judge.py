"""The LLM judge's contract with a scripted model: schema sent, scores parsed, malformed output
retried with a new sample id, persistent failure counted and returned, never raised."""
from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from ads.config import ConfigError
from ads.quality.judge import FAITHFULNESS_CRITERIA, Judge, JudgeConfig, judgment_schema, parse_judgment
from ads.quality.samples import wiki_articles
from models.base import ModelError
from models.fake import FakeModel

RUBRIC = {"criteria": [{"name": "accuracy", "description": "Facts agree with the reference.", "weight": 2},
                       {"name": "concision", "description": "No padding or repetition."}]}


@pytest.fixture(scope="module")
def article():
    return wiki_articles("en-us", limit=1)[0]


def good(acc=8, con=5, rationale="Mostly accurate and short."):
    return json.dumps({"rationale": rationale, "scores": {"accuracy": acc, "concision": con}})


def test_good_json_is_parsed_with_weighted_overall(article):
    model = FakeModel([good()])
    j = Judge(model, RUBRIC).judge(article["extract"][:200], instruction="Summarise the article.",
                                   reference=article["extract"])
    assert j.ok and j.scores == {"accuracy": 8, "concision": 5} and j.attempts == 1
    assert j.overall == pytest.approx((8 * 2 + 5) / 3, abs=1e-4)
    assert j.rationale == "Mostly accurate and short." and j.error is None
    call = model.calls[0]
    assert call["json_schema"]["properties"]["scores"]["required"] == ["accuracy", "concision"]
    prompt = "\n".join(m["content"] for m in call["messages"])
    assert "Facts agree with the reference." in prompt and article["extract"][:100] in prompt


def test_schema_is_valid_and_bounds_each_criterion():
    schema = judgment_schema(JudgeConfig.model_validate(RUBRIC).criteria)
    Draft202012Validator.check_schema(schema)
    v = Draft202012Validator(schema)
    assert v.is_valid(json.loads(good()))
    assert not v.is_valid(json.loads(good(acc=11)))
    assert not v.is_valid({"rationale": "x", "scores": {"accuracy": 3}})
    assert schema["properties"]["scores"]["properties"]["accuracy"] == {"type": "integer", "minimum": 0, "maximum": 10}


def test_malformed_then_good_is_retried_with_a_new_sample_id_and_temperature():
    model = FakeModel(['{"rationale": "cut off', good(6, 6)])
    judge = Judge(model, {**RUBRIC, "retry_temperature": 0.9})
    j = judge.judge("Paris is the capital of France.", sample_id="item-3")
    assert j.ok and j.attempts == 2 and j.scores == {"accuracy": 6, "concision": 6}
    ids = [c["sample_id"] for c in model.calls]
    assert ids[0] == "item-3" and ids[1] != ids[0]
    assert [c["temperature"] for c in model.calls] == [0.0, 0.9]
    assert judge.stats() == {"judgments": 1, "ok": 1, "failures": 0, "retries": 1, "clamped": 0, "model_errors": 0}


def test_always_malformed_is_a_counted_failure_not_an_exception():
    bad = ["I think it is good.", '{"rationale": "no scores"}', '{"scores": {"accuracy": "high", "concision": 3}}']
    model = FakeModel(bad)
    judge = Judge(model, {**RUBRIC, "max_attempts": 3})
    j = judge.judge("Some response.")
    assert not j.ok and j.attempts == 3 and len(model.calls) == 3 and j.scores == {}
    assert "after 3 attempts" in j.error and "accuracy" in j.error  # the last reason is kept
    assert not j.passed(0)
    assert len({c["sample_id"] for c in model.calls}) == 3
    j2 = judge.judge("Another response.")
    assert not j2.ok
    assert judge.stats()["failures"] == 2 and judge.stats()["ok"] == 0 and judge.stats()["retries"] == 4


def test_out_of_range_scores_are_clamped_and_reported():
    j = Judge(FakeModel([good(acc=14, con=-2)]), RUBRIC).judge("x")
    assert j.ok and j.scores == {"accuracy": 10, "concision": 0} and sorted(j.clamped) == ["accuracy", "concision"]


def test_lenient_shapes_are_accepted():
    """Backends without grammars write flat objects, floats and numeric strings, often inside prose."""
    crit = JudgeConfig.model_validate(RUBRIC).criteria
    scores, rationale, clamped, err = parse_judgment(
        'Sure! Here is my verdict: {"accuracy": "7", "concision": 8.6, "rationale": "ok"} Hope this helps.', crit)
    assert err is None and scores == {"accuracy": 7, "concision": 9} and rationale == "ok" and clamped == []
    for text in ['{"scores": {"accuracy": true, "concision": 3}}', '{"scores": {"accuracy": NaN, "concision": 3}}',
                 "[1, 2]", ""]:
        assert parse_judgment(text, crit)[3] is not None, text


def test_backend_errors_are_retried_then_returned_as_failure():
    calls = []

    def flaky(messages, kw):
        calls.append(kw["sample_id"])
        if len(calls) == 1:
            raise ModelError("server unavailable")
        return good()

    j = Judge(FakeModel(flaky), RUBRIC).judge("x")
    assert j.ok and j.attempts == 2

    def down(messages, kw):
        raise ModelError("server unavailable")

    judge = Judge(FakeModel(down), RUBRIC)
    j = judge.judge("x")
    assert not j.ok and "server unavailable" in j.error and judge.stats()["model_errors"] == 3


def test_default_rubric_and_faithfulness_rubric():
    j = Judge(FakeModel([json.dumps({"rationale": "r", "scores": {"correctness": 9, "helpfulness": 6,
                                                                  "clarity": 6}})])).judge("x")
    assert j.ok and j.overall == 7.0
    faith = Judge(FakeModel(['{"rationale": "unsupported claim", "scores": {"faithfulness": 2}}']),
                  criteria=FAITHFULNESS_CRITERIA)
    j = faith.judge("The Eiffel Tower is in Rome.", reference="The Eiffel Tower is in Paris.")
    assert j.ok and j.overall == 2.0 and not j.passed(6) and j.passed(2, "faithfulness")


def test_long_inputs_are_cut_to_fit_the_context(article):
    model = FakeModel([good()])
    Judge(model, {**RUBRIC, "max_input_chars": 200}).judge(article["extract"] * 20, reference=article["extract"] * 20)
    user = model.calls[0]["messages"][1]["content"]
    assert len(user) < 600 and "[...]" in user


@pytest.mark.parametrize("bad, key", [({"criteria": [{"name": "a", "desc": "x"}]}, "criteria.0.desc"),
                                      ({"criteria": []}, "criteria"),
                                      ({"criteria": [{"name": "Bad Name", "description": "x"}]}, "criteria.0.name"),
                                      ({"max_attemps": 2}, "max_attemps"),
                                      ({"criteria": [{"name": "a", "description": "x"}] * 2}, "unique")])
def test_bad_rubric_config_is_a_config_error_naming_the_key(bad, key):
    with pytest.raises(ConfigError, match=key):
        Judge(FakeModel([good()]), bad, source="judge_rubric")


def test_overlong_rationale_from_a_backend_without_grammar_is_cut():
    j = Judge(FakeModel([good(rationale="word " * 300)]), {**RUBRIC, "rationale_max_chars": 50}).judge("x")
    assert j.ok and len(j.rationale) == 50
