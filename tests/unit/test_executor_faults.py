"""A Ray worker that dies (SIGKILL) or overruns `item_timeout_s` mid-item: the worker is replaced
from the same factory, the item retried, results kept in input order, the lost attempt counted in
the ledger with unknown spend; after `max_item_retries` one clear error (ads/ray_executor.py).

One local cluster (2 CPUs, 2 workers) for the module, as in test_executor.py.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest

from ads.config import ConfigError, load_config
from ads.active_search.loop import ADSConfig
from ads.executor import LocalExecutor
from ads.ledger import LOST, CostLedger, LedgerEntry


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    from ads.ray_executor import init_ray

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    owns = init_ray(workers=2)
    yield ray
    if owns:
        ray.shutdown()


class _Env:
    def __init__(self):
        self.ledger = CostLedger(None)


def _first_time(folder: str, x: int) -> bool:
    """True only the first time any process asks for item x (a marker file in the test's tmp_path)."""
    try:
        fd = os.open(os.path.join(folder, f"seen-{x}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def _record(env, x: int) -> int:
    env.ledger.record(LedgerEntry(kind="api", role=f"item{x}", cost_units=float(x), prompt_tokens=x))
    return x * 10


def _die() -> None:
    # a reply still on its way out dies with the worker (then the driver cannot tell which of the
    # items it held was running: see RayExecutor.imap); let the previous item's reply leave first
    time.sleep(0.3)
    os.kill(os.getpid(), signal.SIGKILL)


def _killed_once(env, item):
    """Item (folder, x, doomed): the worker SIGKILLs itself the first time it runs a doomed item,
    after recording a ledger entry (lost with it)."""
    folder, x, doomed = item
    out = _record(env, x)
    if doomed and _first_time(folder, x):
        _die()
    return out


def _always_killed(env, item):
    folder, x, doomed = item
    out = _record(env, x)
    if doomed:
        _die()
    return out


def _slow_once(env, item):
    """Item (folder, x, slow): sleeps far past the timeout the first time it runs a slow item."""
    folder, x, slow = item
    out = _record(env, x)
    if slow and _first_time(folder, x):
        time.sleep(120)
    return out


def _always_slow(env, item):
    folder, x, slow = item
    if slow:
        time.sleep(120)
    return _record(env, x)


def _ledger_rows(ledger: CostLedger) -> list[dict]:
    return [{k: v for k, v in e.to_dict().items() if k != "ts"} for e in ledger.entries]


# --- the ledger's lost-attempt entries (no Ray) -----------------------------------------------------
def test_lost_attempt_entries_count_as_lost_with_unknown_spend_and_leave_other_rows_unchanged(tmp_path):
    from ads.ledger import lost_attempt

    led = CostLedger(tmp_path / "ledger.jsonl")
    led.record(LedgerEntry(kind="model", role="policy", prompt_tokens=5, completion_tokens=2, cost_units=1.5))
    before = led.totals()
    assert set(led.entries[0].to_dict()) == set(LedgerEntry.__dataclass_fields__) - {"item", "reason"}
    led.record(lost_attempt("executor", 3, "worker died"))
    row = json.loads((tmp_path / "ledger.jsonl").read_text().splitlines()[-1])
    assert row["kind"] == LOST and row["item"] == 3 and row["reason"] == "worker died" and not row["ok"]
    assert row["prompt_tokens"] is None and row["completion_tokens"] is None and row["cost_units"] is None
    t = led.totals()
    assert t == {**before, "lost_attempts": 1, "spend_complete": False}  # known sums unchanged, failed_calls too
    reloaded = CostLedger(tmp_path / "ledger.jsonl")
    assert reloaded.summary() == led.summary()
    assert reloaded.summary()["by_role"]["executor"]["lost_attempts"] == 1
    assert "lost_attempts" not in reloaded.summary()["by_role"]["policy"]


def test_executor_config_validates_the_retry_and_timeout_knobs():
    cfg = load_config(ADSConfig, None, []).executor
    assert cfg.max_item_retries == 2 and cfg.item_timeout_s is None
    cfg = load_config(ADSConfig, None, ["executor.item_timeout_s=30", "executor.max_item_retries=0"]).executor
    assert cfg.item_timeout_s == 30.0 and cfg.max_item_retries == 0
    for bad, key in (("executor.item_timeout_s=0", "item_timeout_s"), ("executor.item_timeout_s=-1", "item_timeout_s"),
                     ("executor.max_item_retries=-1", "max_item_retries")):
        with pytest.raises(ConfigError, match=f"executor.{key}"):
            load_config(ADSConfig, None, [bad])


# --- Ray --------------------------------------------------------------------------------------------
def _executor(**kw):
    from ads.ray_executor import RayExecutor

    return RayExecutor(workers=2, **kw)


def test_a_killed_worker_is_replaced_and_its_item_retried_with_the_same_results(tmp_path, ray_cluster):
    items = [(str(tmp_path), x, x == 3) for x in range(1, 7)]
    ledger = CostLedger(tmp_path / "ledger.jsonl")
    ex = _executor()
    try:
        pids = set(ex.worker_pids())
        got = ex.map(_killed_once, items, factory=_Env, ledger=ledger)
        after = set(ex.worker_pids())
    finally:
        ex.close()
    assert (tmp_path / "seen-3").exists()  # the kill did happen
    assert len(after) == 2 and len(after - pids) == 1  # one worker replaced, the other kept
    # the same run without a kill (the marker is there now), locally: same results, same entries
    ref_env = _Env()
    assert got == LocalExecutor().map(_killed_once, items, env=ref_env) == [10, 20, 30, 40, 50, 60]
    rows = _ledger_rows(ledger)
    assert [r for r in rows if r["kind"] != LOST] == _ledger_rows(ref_env.ledger)
    lost = [r for r in rows if r["kind"] == LOST]
    assert len(lost) == 1 and lost[0]["item"] == 2 and lost[0]["reason"] == "worker died"
    assert lost[0]["cost_units"] is None and lost[0]["prompt_tokens"] is None
    # every item's entries once (the killed attempt's entry died with it), the lost entry just before item 3's
    assert [r["role"] for r in rows] == ["item1", "item2", "executor", "item3", "item4", "item5", "item6"]
    s = CostLedger(tmp_path / "ledger.jsonl").summary()
    assert s["run"]["lost_attempts"] == 1 and s["run"]["spend_complete"] is False
    assert s["run"]["api_calls"] == 6 and s["run"]["cost_units"] == 21.0 and s["run"]["prompt_tokens"] == 21


def _killed_at_once(env, item):
    folder, x, doomed = item
    out = _record(env, x)
    if doomed and _first_time(folder, x):
        os.kill(os.getpid(), signal.SIGKILL)  # no pause: the previous item's reply may die with it
    return out


def test_a_worker_killed_at_once_after_an_item_still_gives_every_result_once(tmp_path, ray_cluster):
    """The kill may take the reply of the item before it (item 0 on the same worker) along: then the
    driver cannot tell which was running, records the first as lost, charges no retry and reruns both
    alone. Either way: every result in order, one lost attempt, no item given up on."""
    items = [(str(tmp_path), x, x == 3) for x in range(1, 7)]
    ledger = CostLedger(None)
    ex = _executor(max_item_retries=1)
    try:
        got = ex.map(_killed_at_once, items, factory=_Env, ledger=ledger)
    finally:
        ex.close()
    assert got == [10, 20, 30, 40, 50, 60] and (tmp_path / "seen-3").exists()
    rows = _ledger_rows(ledger)
    lost = [r["item"] for r in rows if r["kind"] == LOST]
    assert len(lost) == 1 and lost[0] in (0, 2), lost
    assert [r["role"] for r in rows if r["kind"] != LOST] == [f"item{x}" for x in range(1, 7)]


def test_an_item_over_the_timeout_has_its_worker_killed_and_is_retried(tmp_path, ray_cluster):
    items = [(str(tmp_path), x, x == 2) for x in range(1, 6)]
    ledger = CostLedger(None)
    ex = _executor(item_timeout_s=2.0)
    try:
        ex.worker_pids()  # actors up: the clock below measures the map
        t0 = time.monotonic()
        got = ex.map(_slow_once, items, factory=_Env, ledger=ledger)
        wall = time.monotonic() - t0
    finally:
        ex.close()
    assert got == [10, 20, 30, 40, 50]
    assert wall < 60, wall  # the 120 s sleep was cut short
    rows = _ledger_rows(ledger)
    assert [(r["item"], r["reason"]) for r in rows if r["kind"] == LOST] == [(1, "timeout")]
    assert [r["role"] for r in rows] == ["item1", "executor", "item2", "item3", "item4", "item5"]
    assert ledger.summary()["run"]["lost_attempts"] == 1


def test_retries_exhausted_raise_one_clear_error_after_the_earlier_results(tmp_path, ray_cluster):
    from ads.config import ExecutorConfig
    from ads.executor import make_executor
    from ads.ray_executor import ItemTimeoutError, WorkerLostError

    ex = make_executor(ExecutorConfig(kind="ray", workers=2, max_item_retries=1, item_timeout_s=1.5))
    assert (ex.max_item_retries, ex.item_timeout_s) == (1, 1.5)
    try:
        ledger, got = CostLedger(None), []
        with pytest.raises(WorkerLostError, match=r"item 1: its Ray worker died on each of its 2 attempts"):
            for r in ex.imap(_always_killed, [(str(tmp_path), x, x == 2) for x in (1, 2, 3)], factory=_Env,
                             ledger=ledger):
                got.append(r)
        assert got == [10]
        assert [(r["role"], r.get("item")) for r in _ledger_rows(ledger)] == [
            ("item1", None), ("executor", 1), ("executor", 1)]
        ledger, got = CostLedger(None), []
        with pytest.raises(ItemTimeoutError, match=r"item 0 ran longer than item_timeout_s=1.5 s on each of its 2"):
            for r in ex.imap(_always_slow, [(str(tmp_path), x, x == 1) for x in (1, 2)], factory=_Env, ledger=ledger):
                got.append(r)
        assert got == []
        assert [(r["kind"], r["item"], r["reason"]) for r in _ledger_rows(ledger)] == [(LOST, 0, "timeout")] * 2
        assert ledger.summary()["run"]["lost_attempts"] == 2
        assert ex.map(_always_killed, [(str(tmp_path), 7, False)], factory=_Env) == [70]  # the pool still works
    finally:
        ex.close()
