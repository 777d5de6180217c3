"""ADS tasks as instruction sets: how they are built from articles, GSM8K and user files, and split."""
from __future__ import annotations

import json

import pytest

from ads.active_search.instruction_sets import (Instruction, TasksConfig, article_instructions, build_task_sets,
                                                reveals, score_contains, scorer)
from ads.config import ConfigError, load_config
from ads.downstream.evalset import is_heldout
from apis.corpus import Document

TEXT = ("The Foo Bridge is a bridge in Lyon built in 1887 by Gustave Eiffel. It crosses the Rhone River near "
        "the old town centre. The bridge was rebuilt in 1952 after damage in the Second World War. It carries "
        "about 20,000 vehicles a day between Croix-Rousse and the Presqu'ile. Its main span is 142 metres long and "
        "painted grey by Ripolin engineers.")


def docs(n=40):
    out = []
    for i in range(n):
        out.append(Document(id=f"d{i}", title=f"Foo Bridge {i}", text=TEXT.replace("Foo Bridge", f"Foo Bridge {i}"),
                            description="bridge in France", topic="Technology"))
    return out


def test_an_article_gives_one_question_per_sentence_and_no_held_out_answer_shows_in_a_train_one():
    cfg = TasksConfig(families={"wiki": 3}, test_families={"wiki": 3})
    train, test = build_task_sets(cfg, docs=docs())
    assert len(train) == 3 and len(test) == 3
    for t in train + test:
        assert len(t.train) == 3 and len(t.held_out) == 2 and t.family == "wiki"
        sentences = [i.prompt.split("Sentence: ")[-1] for i in t.instructions]
        assert len(set(sentences)) == 5  # two blanks in one sentence would show each other's answer
        assert not reveals(t.train, t.held_out)
        assert all(i.source in t.sources and not is_heldout(i.source) for i in t.instructions)
    assert not {s for t in train for s in t.sources} & {s for t in test for s in t.sources}


def test_article_questions_mask_numbers_and_names_but_never_the_title():
    import random

    qs = article_instructions(docs(1)[0], random.Random(0))
    kinds = {q.id.rsplit("-", 1)[-1][:3] for q in qs}
    assert {"nam", "num", "ent"} <= kinds
    for q in qs:
        assert "___" in q.prompt and q.gold and q.gold.lower() not in q.prompt.split("Sentence: ")[-1].lower()
        if q.scorer == "name" and "num" not in q.id and not q.id.endswith("-name"):
            assert "Foo" not in q.gold


@pytest.mark.parametrize("overrides,needle", [
    (["tasks.families={gsm8k: -1}"], "whole numbers >= 0"),
    (["tasks.families={wiki_name: 2}"], "unknown family"),
    (["tasks.train_instructions=5"], "must be below instructions_per_task"),
    (["tasks.instructions_per_task=1"], "instructions_per_task"),
    (["tasks.test_families={gsm8k: 1}"], "same families"),
])
def test_bad_task_settings_are_one_error_naming_the_key(overrides, needle):
    from ads.active_search.loop import ADSConfig

    with pytest.raises(ConfigError, match=needle):
        load_config(ADSConfig, None, overrides)


def test_user_tasks_group_by_their_task_field_and_score_as_configured(tmp_path):
    f = tmp_path / "tasks.jsonl"
    lines = [{"task": t, "instruction": f"Question {t}{j}?", "reference": "Paris"} for t in "ab" for j in range(3)]
    lines[0]["scoring"] = "exact"
    f.write_text("".join(json.dumps(x) + "\n" for x in lines))
    cfg = TasksConfig(families={"user": 1}, test_families={"user": 1}, user_tasks_path=str(f), train_instructions=2,
                      user_scoring="contains")
    train, test = build_task_sets(cfg)
    assert {t.id for t in train + test} == {"user-a", "user-b"}
    t = next(t for t in train + test if t.id == "user-a")
    assert len(t.train) == 2 and len(t.held_out) == 1
    scorers = {i.prompt: i.scorer for i in t.instructions}
    assert scorers["Question a0?"] == "exact" and scorers["Question a1?"] == "contains"
    long = "The capital of France, which you asked about, is Paris, on the Seine."
    assert score_contains(long, "Paris") == 1.0
    assert scorer(Instruction("x", "q", "Paris", "contains", ""))(long) == 1.0
    assert scorer(Instruction("x", "q", "Paris", "f1", ""))(long) < 0.3  # what the old F1 default scored
    assert scorer(Instruction("x", "q", "Paris", "exact", ""))(long) == 0.0


def test_user_task_files_with_mistakes_name_the_line(tmp_path):
    f = tmp_path / "tasks.jsonl"
    f.write_text(json.dumps({"task": "a", "instruction": "q?"}) + "\n" + json.dumps({"task": "a", "instruction": 3}) + "\n")
    with pytest.raises(ConfigError, match=r"tasks.jsonl:2"):
        build_task_sets(TasksConfig(families={"user": 1}, user_tasks_path=str(f), train_instructions=1))
    f.write_text(json.dumps({"task": "a", "instruction": "only one"}) + "\n")
    with pytest.raises(ConfigError, match="at least 2"):
        build_task_sets(TasksConfig(families={"user": 1}, user_tasks_path=str(f), train_instructions=1))


def test_gsm8k_tasks_group_problems_and_keep_the_worked_solution_for_the_oracle():
    rows = [{"source": f"gsm8k-{i}", "question": f"What is {i}+1?", "solution": f"{i}+1={i + 1}", "answer": str(i + 1)}
            for i in range(200)]
    train, test = build_task_sets(TasksConfig(families={"gsm8k": 2}, test_families={"gsm8k": 1}), gsm8k=rows)
    assert len(train) == 2 and len(test) == 1
    for t in train + test:
        assert len(t.instructions) == 5 and all(i.scorer == "math" and not is_heldout(i.source) for i in t.instructions)
        assert all(t.sources[i.source].endswith(f"The answer is {i.gold}.") for i in t.instructions)
