"""Judge calibration (issue 24): labelled sets from real data by controlled corruption, the AUC and
accuracy report, and `main.py judge-check CONFIG`, on scripted judges (models.fake.FakeModel)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ads.generators.tools.turns import TurnValidator
from ads.quality.calibration import auc, check_use, separates
from ads.quality.planted_sets import recipe_items, self_evolving_items, tool_use_items
from models.fake import FakeModel

ROOT = Path(__file__).resolve().parents[2]


def test_auc_is_the_mann_whitney_probability():
    assert auc([9, 8, 2, 1], [1, 1, 0, 0]) == 1.0
    assert auc([1, 2, 8, 9], [1, 1, 0, 0]) == 0.0
    assert auc([5, 5, 5, 5], [1, 0, 1, 0]) == 0.5
    assert auc([9, 5, 5, 1], [1, 1, 0, 0]) == pytest.approx(0.875)
    assert auc([1, 2], [1, 1]) is None


def test_tool_use_set_is_real_queries_and_one_corruption_each():
    items, built = tool_use_items(9)
    good = [i for i in items if i.label == 1]
    bad = [i for i in items if i.label == 0]
    assert len(good) == len(bad) == 9
    queries = {ex.query for ex in built.reg.examples}
    assert all(i.payload["messages"][0]["content"] in queries for i in good)  # real ToolBench requests
    assert {i.corruption for i in bad} == {"assistant_voice", "wrong_tool", "ignored_results"}
    for g, b in zip(good, bad):
        assert g.payload != b.payload
        if b.corruption == "assistant_voice":
            assert not TurnValidator().check(b.payload).passed  # the failure, planted
        if b.corruption == "wrong_tool":
            assert b.payload["tool_calls"][0]["name"] != g.payload["tool_calls"][0]["name"]
    assert all(TurnValidator().check(g.payload).passed for g in good if "=" not in g.payload["messages"][0]["content"])


def test_self_evolving_set_swaps_answers_within_a_category_and_plants_duplicates():
    items = self_evolving_items(8)
    assert len(items) == 16 and sum(i.label for i in items) == 8
    for k in range(0, len(items), 2):
        g, b = items[k], items[k + 1]
        assert g.payload["task"] is b.payload["task"] and g.payload["answer"] == str(g.payload["task"]["reference_answer"])
        assert b.payload["answer"] != g.payload["answer"] and b.corruption == "swapped_answer"
    for i in items:
        ids = [s["id"] for s in i.payload["similar"]]
        assert (i.payload["task"]["id"] in ids) is (not i.novel)
    assert {i.novel for i in items if i.label} == {True, False} and {i.novel for i in items if not i.label} == {True, False}


def test_recipe_set_pairs_a_subject_with_its_own_and_an_off_topic_extract():
    items = recipe_items(6)
    assert len(items) == 12
    for g, b in zip(items[::2], items[1::2]):
        assert g.payload["instruction"] == b.payload["instruction"] and g.payload["text"] != b.payload["text"]
        subject = g.payload["instruction"].split("about ", 1)[1].split(" (topic:")[0]
        assert subject.split()[0].lower() in g.payload["text"].lower()


def _judge(score_for):
    """A scripted judge for any of the three uses: `score_for(sample_id) -> 0..10` (the id names the item)."""

    def respond(messages, kw):
        sid = str(kw["sample_id"])
        s = score_for(sid)
        if s is None:
            return "not json at all"
        props = (kw["json_schema"] or {}).get("properties", {})
        if "score_0_10" in props:  # self-evolving TaskJudge
            return json.dumps({"analysis": "a", "difficulty": "medium", "novel": "_good" in sid, "score_0_10": s,
                               "tags": []})
        names = list(props["scores"]["properties"])
        return json.dumps({"rationale": "r", "scores": {n: s for n in names}})
    return FakeModel(respond)


PERFECT = _judge(lambda sid: 9 if "_good" in sid else 2)
FLAT = _judge(lambda sid: 9)  # the self-evolving judge: everything 8-10


@pytest.mark.parametrize("use", ["tool_use", "self_evolving", "recipe"])
def test_a_perfect_judge_separates_and_a_flat_one_does_not(use):
    r = check_use(use, PERFECT, n_good=6)
    assert r.auc == 1.0 and r.accuracy == 1.0 and r.separates and r.failures == 0
    assert r.mean_good > r.mean_bad
    f = check_use(use, FLAT, n_good=6)
    assert f.auc == 0.5 and not f.separates and f.accuracy == 0.5
    if use == "self_evolving":
        assert r.novelty_accuracy is not None and f.novel_rate == 0.5


def test_a_judge_blind_to_one_corruption_shows_it_per_corruption():
    blind = _judge(lambda sid: 2 if sid.endswith(("tool_0_bad", "tool_3_bad")) else 9)  # sees assistant_voice only
    r = check_use("tool_use", blind, n_good=6)
    assert r.by_corruption["assistant_voice"] < r.by_corruption["wrong_tool"] == r.by_corruption["ignored_results"]
    assert 0.5 < r.auc < 1.0


def test_unparseable_judgments_are_counted_not_raised():
    r = check_use("recipe", _judge(lambda sid: None if "_3_" in sid else (9 if "_good" in sid else 2)), n_good=5)
    assert r.failures == 2 and r.n == 10 and r.auc == 1.0


def _cli(argv, monkeypatch, model):
    from models import registry

    monkeypatch.setattr(registry.ModelPool, "get", lambda self, cfg: model)
    from ads.cli import main

    return main(["judge-check", *argv])


@pytest.mark.parametrize("model,code", [(PERFECT, 0), (FLAT, 1)])
def test_cli_reports_writes_json_and_exits_1_when_the_judge_does_not_separate(tmp_path, monkeypatch, capsys,
                                                                             model, code):
    out = tmp_path / "jc.json"
    rc = _cli([str(ROOT / "configs" / "tool_use.yaml"), "--n", "4", "--use", "tool_use", "--use", "recipe",
               "--out", str(out), "--set", "cache.enabled=false"], monkeypatch, model)
    assert rc == code
    text = capsys.readouterr()
    assert "Judge check" in text.out and "tool_use" in text.out and "recipe" in text.out
    data = json.loads(out.read_text())
    assert [r["use"] for r in data["reports"]] == ["tool_use", "recipe"]
    assert all(r["separates"] is (code == 0) for r in data["reports"])
    if code == 1:
        assert "does not separate" in text.err


def test_the_verdict_is_found_again_by_model_and_use(tmp_path, monkeypatch, capsys):
    rc = _cli([str(ROOT / "configs" / "tool_use.yaml"), "--n", "3", "--set", f"results_dir={tmp_path}",
               "--set", "cache.enabled=false"], monkeypatch, FLAT)
    assert rc == 1
    assert separates(tmp_path, FLAT.model_id, "tool_use") is False
    assert separates(tmp_path, FLAT.model_id, "recipe") is None and separates(tmp_path / "none", "x", "y") is None


@pytest.mark.parametrize("argv,needle", [
    (["nope.yaml"], "nope.yaml"),
    ([str(ROOT / "configs" / "tool_use.yaml"), "--n", "0"], "--n must be >= 1"),
    ([str(ROOT / "configs" / "default.yaml")], "has no judge use to check"),
    ([str(ROOT / "configs" / "recipes" / "wiki_topic_texts.yaml")], "configures no judge"),
])
def test_bad_input_is_one_line_and_exit_2(argv, needle, monkeypatch, capsys):
    assert _cli(argv, monkeypatch, FLAT) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_a_tool_use_run_says_when_its_judge_failed_the_check(tmp_path, monkeypatch, capsys):
    from test_tool_use import HashEmbedder, _cfg, schema_model

    from ads.generators.tool_use import run
    from ads.run import RunContext

    cfg = _cfg(tmp_path, n=1)
    m = schema_model(1)
    s = run(cfg, RunContext.create(cfg, run_dir=tmp_path / "a"), model=m, judge_model=m, embedder=HashEmbedder(),
            progress=False)
    assert s["judge_separates"] is None and "has not been checked" in capsys.readouterr().out
    d = Path(cfg.results_dir) / "judge_check"
    d.mkdir(parents=True)
    (d / "x.json").write_text(json.dumps({"judge_model": cfg.models.assistant.name, "reports": [
        {"use": "tool_use", "separates": False}]}))
    s = run(cfg, RunContext.create(cfg, run_dir=tmp_path / "b"), model=m, judge_model=m, embedder=HashEmbedder(),
            progress=False)
    assert s["judge_separates"] is False and "does not separate" in capsys.readouterr().err
