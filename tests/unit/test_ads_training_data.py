"""What the policy reads of a task's dataset: the rows most relevant to the instruction, few of them."""
import pytest
from pydantic import ValidationError

from ads.active_search.instruction_sets import Instruction
from ads.active_search.loop import LoopConfig
from ads.active_search.policy import Policy
from ads.active_search.training_data import answer_coverage, rank_rows, select_rows
from models.fake import FakeModel

ARTICLE = ("Arthashastra: Kautilya's Arthashastra is an Ancient Indian Sanskrit treatise on statecraft. The text "
           "is likely the work of several authors over centuries, starting as a compilation of Arthashastras.")
# longer, and shares more words of three letters or more with the question than the article does
NEIGHBOUR = ("The Art of War: The Art of War is an ancient Chinese military treatise that was written in the late "
             "Spring and Autumn period. The work, which is attributed to the ancient Chinese military strategist "
             "Sun Tzu, is composed of thirteen chapters, and each one of them is devoted to a different set of "
             "skills or arts related to warfare; they were then written down from oral teachings.")
QA = "Q: Who wrote the Art of War?\nA: Sun Tzu"
QUESTION = ("Subject: Arthashastra\nSentence: The text is likely the work of several authors over centuries, "
            "starting as a compilation of ___, texts which according to Olivelle date from the 2nd c. BCE and "
            "were written and then related to the one they are each devoted to.")


def rows(*texts):
    return [{"id": f"r{i}", "kind": "passage", "text": t} for i, t in enumerate(texts)]


def test_the_row_holding_the_questions_sentence_ranks_above_a_longer_one_sharing_more_common_words():
    data = rows(NEIGHBOUR, QA, ARTICLE)
    assert rank_rows(data, QUESTION)[0] == 2
    assert [r["id"] for r in select_rows(data, QUESTION, budget_chars=len(ARTICLE) + 5)] == ["r2"]


def test_at_most_max_rows_are_kept_even_when_all_would_fit_and_they_come_back_in_dataset_order():
    data = rows(NEIGHBOUR, QA, ARTICLE)
    assert select_rows(data, QUESTION, budget_chars=10_000) == data  # no cap: everything that fits
    assert [r["id"] for r in select_rows(data, QUESTION, budget_chars=10_000, max_rows=1)] == ["r2"]
    two = [r["id"] for r in select_rows(data, QUESTION, budget_chars=10_000, max_rows=2)]
    assert len(two) == 2 and "r2" in two and two == sorted(two)


def test_a_row_over_the_budget_is_skipped_for_the_next_best_that_fits():
    data = rows(ARTICLE + " " * 500, QA)
    assert [r["id"] for r in select_rows(data, QUESTION, budget_chars=300, max_rows=1)] == ["r1"]


def test_a_query_with_no_content_words_keeps_the_dataset_order():
    data = rows(NEIGHBOUR, QA, ARTICLE)
    assert rank_rows(data, "the of and") == [0, 1, 2]
    assert rank_rows([], QUESTION) == []


def test_the_policy_prompt_holds_only_the_most_relevant_row_by_default():
    seen = []

    def recording(messages, kw):
        seen.append(messages[-1]["content"])
        return "Olivelle"

    ins = Instruction(id="t/1", prompt="Fill in the blank with the missing name.\n" + QUESTION, gold="Olivelle",
                      scorer="name", source="Arthashastra")
    policy = Policy(FakeModel(recording), seed=0, answer_max_tokens=8, reasoning_max_tokens=16, context_chars=2000,
                    context_rows=LoopConfig().context_rows)
    assert policy.answer(ins, rows(NEIGHBOUR, QA, ARTICLE)).score == 1.0
    (prompt,) = seen
    assert "Kautilya" in prompt and "Sun Tzu" not in prompt


@pytest.mark.parametrize("value", [0, -1, "two"])
def test_context_rows_must_be_a_positive_count_or_null(value):
    with pytest.raises(ValidationError, match="context_rows"):
        LoopConfig(context_rows=value)
    assert LoopConfig(context_rows=None).context_rows is None


def _ins(gold, scorer="name", content=QUESTION):
    return Instruction(id=f"i-{gold}", prompt=f"Fill in the blank.\n{content}", gold=gold, scorer=scorer, source="s")


def test_coverage_counts_an_answer_only_in_the_rows_the_policy_is_shown():
    data = rows(NEIGHBOUR, ARTICLE)
    # "Sun Tzu" is in the dataset, but the row shown for this question is the article
    assert answer_coverage([_ins("Arthashastras"), _ins("Sun Tzu")], data, 2000, max_rows=1) == 0.5
    assert answer_coverage([_ins("Arthashastras"), _ins("Sun Tzu")], data, 2000, max_rows=None) == 1.0
    assert answer_coverage([_ins("Arthashastra's")], data, 2000, 1) == 0.0  # whole words, not a prefix
    assert answer_coverage([_ins("Arthashastras")], [], 2000, 1) == 0.0


def test_coverage_ignores_math_labels_and_judged_instructions():
    data = rows("Worked solution: 3 boxes of 24 make 72. The answer is 72.")
    assert answer_coverage([_ins("72", "math"), _ins("Science", "label")], data, 2000, 1) is None
    assert answer_coverage([_ins("72", "number"), _ins("72", "math")], data, 2000, 1) == 1.0
