"""Every parser of model output survives junk: >= 1,000 malformed inputs each, zero crashes,
and each malformed input is reported as a rejection (an error value), never as success.

Small models emit truncated JSON, prose, wrong types and unicode noise; the strategies below
mix all of those with near-valid JSON, which is where hand-written parsers usually break.
"""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ads.active_search.api_trajectories import parse_trajectory
from ads.quality.judge import DEFAULT_CRITERIA, Judge, parse_judgment
from apis.demonstrations import validate_pairs
from models.fake import FakeModel
from models.structured import parse_json

FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                              st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=12)


@st.composite
def model_output(draw) -> str:
    """Prose, JSON of any shape, JSON cut short, or JSON wrapped in chatter."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.text(max_size=200))
    text = json.dumps(draw(json_values), allow_nan=True)
    if kind == 1:
        return text
    if kind == 2:
        return text[: draw(st.integers(0, max(0, len(text) - 1)))]
    return draw(st.text(max_size=30)) + text + draw(st.text(max_size=30))


@st.composite
def near_trajectory(draw) -> str:
    """Objects that look like plans but are wrong somewhere."""
    call = st.fixed_dictionaries({}, optional={"name": json_values, "arguments": json_values})
    obj = draw(st.fixed_dictionaries({}, optional={"calls": st.one_of(json_values, st.lists(call, max_size=5))}))
    return json.dumps(obj)


@FUZZ
@given(st.one_of(model_output(), near_trajectory()))
def test_trajectory_parser_never_raises_and_flags_bad_plans(text):
    t = parse_trajectory(text, max_calls=2)
    if t.ok:  # success only when the shape is really right
        assert len(t.calls) <= 2
        assert all(isinstance(c.name, str) and isinstance(c.arguments, dict) for c in t.calls)
    else:
        assert t.calls == [] and t.parse_error


@FUZZ
@given(model_output())
def test_judgment_parser_never_raises_and_scores_are_in_range(text):
    scores, rationale, clamped, err = parse_judgment(text, DEFAULT_CRITERIA)
    if err is None:
        assert set(scores) == {c.name for c in DEFAULT_CRITERIA}
        assert all(0 <= v <= 10 for v in scores.values())
    else:
        assert scores == {}


SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}, "n": {"type": "integer", "minimum": 0}},
          "required": ["answer", "n"], "additionalProperties": False}


@FUZZ
@given(model_output())
def test_schema_parser_never_raises_and_returns_only_valid_objects(text):
    obj, err = parse_json(text, SCHEMA)
    if err is None:
        assert isinstance(obj, dict) and isinstance(obj["answer"], str) and obj["n"] >= 0
    else:
        assert obj is None


@FUZZ
@given(st.lists(json_values, max_size=6))
def test_demonstration_validator_keeps_only_real_pairs(items):
    kept, rejected = validate_pairs(items, topic="volcano", request="write pairs about volcano", k=3)
    assert len(kept) <= 3
    assert len(kept) + sum(rejected.values()) == len(items)
    assert all(p["instruction"].strip() and p["response"].strip() for p in kept)


@settings(max_examples=200, deadline=None)
@given(st.lists(model_output(), min_size=1, max_size=3))
def test_judge_on_junk_outputs_is_a_failed_judgment_not_a_crash(outputs):
    judge = Judge(FakeModel(outputs + outputs + outputs, "junk"), {"max_attempts": 3})
    j = judge.judge("a response", instruction="an instruction")
    assert j.ok == (j.error is None)
    if not j.ok:
        assert j.scores == {} and judge.stats()["failures"] == 1
