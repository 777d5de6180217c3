"""A pool of OpenAI-compatible servers (several base URLs) against local fake HTTP servers:
load spreads over the pool, 429/500/timeouts are survived, a failing endpoint's circuit moves its
traffic to the others, and a pool where every endpoint keeps answering 429 ends a run loudly."""
from __future__ import annotations

import threading

import pytest

from ads.config import ModelConfig
from fake_http import FakeServer, Reply, ok
from models.openai_compat import EndpointFailingError
from models.openai_pool import OpenAICompatPool
from models.registry import load

FAST = dict(backoff_base_s=0.01, backoff_max_s=0.05, retry_after_max_s=0.05)
MSG = [{"role": "user", "content": "hello"}]


@pytest.fixture
def servers():
    made = []

    def start(n=2, **kw):
        for _ in range(n):
            made.append(FakeServer(**kw))
        return made[-n:]

    yield start
    for s in made:
        s.stop()


def pool_for(servers, **cfg):
    mc = ModelConfig(name="m", base_urls=[s.base_url for s in servers], api_key_env="", **cfg)
    return OpenAICompatPool.from_config(mc, **FAST)


def hammer(model, n_threads=8, per_thread=3):
    out, errs = [], []

    def go(t):
        for k in range(per_thread):
            try:
                out.append(model.generate(MSG, seed=1, sample_id=f"{t}:{k}", max_tokens=8).text)
            except Exception as e:  # collected, asserted by the caller
                errs.append(e)

    ths = [threading.Thread(target=go, args=(t,)) for t in range(n_threads)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    return out, errs


def test_registry_builds_a_pool_and_load_spreads_within_each_endpoints_limit(servers):
    a, b = servers(2, default=Reply(body=ok("hi").body, delay_s=0.05))
    model = load(ModelConfig(name="m", base_urls=[a.base_url, b.base_url], api_key_env="", max_concurrency=2))
    assert isinstance(model, OpenAICompatPool)
    out, errs = hammer(model)
    assert errs == [] and out == ["hi"] * 24
    assert a.count + b.count == 24 and min(a.count, b.count) >= 6  # both used
    assert a.max_in_flight <= 2 and b.max_in_flight <= 2  # each endpoint's max_concurrency holds
    assert max(a.max_in_flight, b.max_in_flight) == 2  # and is used to the full
    model.close()


def test_transient_429_500_and_timeouts_are_survived(servers):
    (a,) = servers(1)
    a.script = [Reply(status=429, headers={"Retry-After": "0"}), Reply(status=500), ok("x"),
                Reply(status=503), Reply(body=ok("late").body, delay_s=1.5)]
    pool = pool_for([a], timeout_s=0.5, max_retries=4, max_concurrency=1)
    texts = [pool.generate(MSG, sample_id=i).text for i in range(3)]
    assert texts == ["x", "hi", "hi"]  # 429, 500 retried; 503 then a timeout retried
    assert a.count == 7


def test_an_endpoint_that_keeps_failing_has_its_traffic_moved_to_the_others(servers):
    bad, good = servers(2)
    bad.default = Reply(status=429, headers={"Retry-After": "0"})
    pool = pool_for([bad, good], max_retries=1)
    out, errs = hammer(pool, n_threads=4, per_thread=5)
    # a request that met the bad endpoint before its circuit opened may fail after its retries;
    # once open (after 4 failed attempts), every request goes to the good one
    assert len(out) + len(errs) == 20 and len(out) >= 14
    assert all(not isinstance(e, EndpointFailingError) for e in errs)
    assert pool.members[0].breaker.times_opened >= 1
    assert bad.count <= 8 and good.count == len(out)


def test_sustained_429_everywhere_raises_naming_every_endpoint(servers):
    a, b = servers(2, default=Reply(status=429, headers={"Retry-After": "0"}))
    pool = pool_for([a, b], max_retries=1)
    with pytest.raises(EndpointFailingError) as ei:
        for i in range(10):
            try:
                pool.generate(MSG, sample_id=i)
            except EndpointFailingError:
                raise
            except Exception:
                continue  # retries spent on one request: the breaker has not opened yet
    msg = str(ei.value)
    assert "all 2 endpoints" in msg and f"127.0.0.1:{a.port}" in msg and f"127.0.0.1:{b.port}" in msg
    assert "429" in msg


def test_ads_run_on_a_429_pool_fails_loudly_instead_of_writing_nothing(servers, tmp_path):
    from ads.active_search.loop import ADSConfig
    from ads.active_search.outputs import run
    from ads.run import RunContext
    from apis.api_registry import ApiRegistry

    import test_ads_loop as fakes

    a, b = servers(2, default=Reply(status=429, headers={"Retry-After": "0"}))
    remote = {"name": "m", "base_urls": [a.base_url, b.base_url], "api_key_env": "", "max_retries": 1}
    cfg = ADSConfig.model_validate({"name": "t", "results_dir": str(tmp_path / "r"), "tracking": {"wandb": False},
                                    "cache": {"enabled": False}, "policy": remote, "optimizer": remote,
                                    "loop": {"iterations": 1}})
    ctx = RunContext.create(cfg)
    with pytest.raises(EndpointFailingError, match="all 2 endpoints"):
        run(cfg, ctx, tasks=fakes.tasks(), registry=ApiRegistry([fakes.Retrieval()]))
    assert not (ctx.run_dir / "summary.json").exists()
