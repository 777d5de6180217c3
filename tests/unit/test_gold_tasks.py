"""Scorers and the train/test split of the ADS task families."""
from __future__ import annotations

import json

import pytest

from ads.config import ConfigError
from ads.gold_tasks import TasksConfig, build_task_sets, score_gsm8k, score_label, score_name, score_number
from apis.corpus import Document


def test_name_scorer_accepts_the_name_inside_a_sentence_and_plural_forms():
    assert score_name("It is the Denisovans.", "Denisovan") == 1.0
    assert score_name("Marie Curie", "Marie Curie") == 1.0
    assert score_name("Curie", "Marie Curie") == pytest.approx(2 / 3, abs=1e-3)
    assert score_name("Napoleon", "Marie Curie") == 0.0
    # short words and double-s words are not "singularised" into something else
    assert score_name("glass", "glas") < 1.0


def test_number_and_gsm8k_scorers():
    assert score_number("It was founded in 1,204.", "1204") == 1.0
    assert score_number("no number", "12") == 0.0
    assert score_gsm8k("3 + 4 = 7, so the answer is 18", "18") == 1.0
    assert score_gsm8k("18 apples, then 3 left", "18") == 0.0  # the last number counts


def test_label_scorer_takes_the_first_label_mentioned():
    labels = ["History", "Science", "Arts"]
    assert score_label("Science, not History", "Science", labels) == 1.0
    assert score_label("History or Science", "Science", labels) == 0.0
    assert score_label("none of them", "Science", labels) == 0.0


def _docs(n: int) -> list[Document]:
    return [Document(id=f"d{i}", title=f"Thing{i}", text=f"Thing{i} is an object made in {1500 + i}. It is old.",
                     description="an object", topic="History" if i % 2 else "Science") for i in range(n)]


def test_split_counts_per_side_and_never_shares_a_source():
    cfg = TasksConfig(families={"wiki_name": 3, "topic": 2}, test_families={"wiki_name": 1, "topic": 4})
    train, test = build_task_sets(cfg, docs=_docs(40))
    fam = lambda ts, f: sum(t.family == f for t in ts)  # noqa: E731
    assert (fam(train, "wiki_name"), fam(train, "topic")) == (3, 2)
    assert (fam(test, "wiki_name"), fam(test, "topic")) == (1, 4)
    assert not {t.source for t in train} & {t.source for t in test}


def test_unknown_family_and_mismatched_sides_fail_when_the_config_loads():
    with pytest.raises(ValueError, match="(?s)families.*unknown family"):
        TasksConfig(families={"wiki_nmae": 1})
    with pytest.raises(ValueError, match="(?s)test_families.*same families"):
        TasksConfig(families={"wiki_name": 1}, test_families={"topic": 1})


def test_user_family_needs_enough_tasks_in_the_file(tmp_path):
    path = tmp_path / "user.jsonl"
    path.write_text("\n".join(json.dumps({"instruction": f"say {i}", "reference": str(i)}) for i in range(3)))
    train, test = build_task_sets(TasksConfig(families={"user": 2}, test_families={"user": 1},
                                              user_tasks_path=str(path)))
    assert len(train) == 2 and len(test) == 1
    with pytest.raises(ConfigError, match="has 3 tasks"):
        build_task_sets(TasksConfig(families={"user": 3}, user_tasks_path=str(path)))
