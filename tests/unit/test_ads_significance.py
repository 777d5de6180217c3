"""The statistics ADS reports: paired bootstrap intervals, sign tests, and the per-task win rate
with its Wilson interval and per-family breakdown."""
import pytest

from ads.active_search import significance
from ads.active_search.evaluation import task_level


def test_sign_test_is_the_exact_two_sided_binomial():
    assert significance.sign_test(5, 0) == 0.0625  # 2 * (1/2)^5
    assert significance.sign_test(8, 1) == pytest.approx(0.039, abs=5e-4)
    assert significance.sign_test(0, 0) == 1.0 and significance.sign_test(3, 3) == 1.0


def test_the_bootstrap_interval_excludes_zero_only_for_a_clear_paired_effect():
    clear = significance.compare([1.0] * 20 + [0.0] * 4, [0.0] * 24)
    assert clear["ci95"][0] > 0 and significance.word(clear) == "BEATS"
    mixed = significance.compare([1.0, 0.0] * 6, [0.0, 1.0] * 6)
    assert mixed["ci95"][0] < 0 < mixed["ci95"][1] and significance.word(mixed) == "no clear difference from"
    assert "95% CI" in significance.sentence("learned", "no_data", mixed)
    with pytest.raises(ValueError):
        significance.compare([1.0], [1.0, 0.0])


@pytest.mark.parametrize("k, n, lo, hi", [(0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634), (10, 10, 0.7225, 1.0),
                                          (51, 90, 0.4635, 0.6645)])
def test_wilson_interval_matches_the_textbook_values(k, n, lo, hi):
    assert significance.wilson_interval(k, n) == pytest.approx((lo, hi), abs=1e-3)


def _rec(task, family, scores, no_data):
    return {"task_id": task, "family": family, "scores": scores, "no_data_scores": no_data, "policy_errors": 0}


def test_task_level_win_rate_carries_its_interval_and_each_familys_share():
    learned = [_rec(f"w{i}", "wiki", [1.0, 0.0], [0.0, 0.0]) for i in range(6)]
    learned += [_rec(f"g{i}", "gsm8k", [0.0, 0.0], [0.0, 0.0]) for i in range(3)]
    learned.append(_rec("g3", "gsm8k", [0.0, 0.0], [1.0, 0.0]))
    tl = task_level({"learned": learned})
    assert tl["win_rate"] == 0.6 and tl["tie_rate"] == 0.3 and tl["loss_rate"] == 0.1
    assert tl["win_rate_ci95"] == list(significance.wilson_interval(6, 10))
    assert tl["win_rate_by_family"] == {"gsm8k": {"tasks": 4, "wins": 0, "win_rate": 0.0},
                                        "wiki": {"tasks": 6, "wins": 6, "win_rate": 1.0}}
