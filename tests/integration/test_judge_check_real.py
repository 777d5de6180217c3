"""main.py judge-check's measurement path on the real SmolLM2-135M GGUF (issue 24).

Whether SmolLM2 separates good from bad is measured, not asserted (docs/judge_check.md records
it: it does not); what is asserted is that every judgment on a real model either scores or is
counted as a failure, and the report's figures are consistent with the items.
"""
from __future__ import annotations

from ads.quality.calibration import check_use


def test_judge_check_on_a_real_model_reports_every_item(smollm):
    r = check_use("recipe", smollm, n_good=2, judge_kw={"max_attempts": 1})
    assert r.n == 4 and r.good == 2 and r.bad == 2 and 0 <= r.failures <= 4
    if r.failures < 4:
        assert r.accuracy is not None and 0 <= r.accuracy <= 1
    if r.auc is not None:
        assert 0 <= r.auc <= 1 and r.separates is (r.auc >= 0.75)
