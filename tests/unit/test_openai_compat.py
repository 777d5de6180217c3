"""OpenAICompatModel against a scripted HTTP server on 127.0.0.1.

The fake server plays back a script of responses (429 with/without Retry-After, 5xx, slow
answers past the client timeout, bodies that are not JSON) and records every request and
the peak number of requests in flight, so the tests check behaviour from the server's
side: how many requests were really sent, with which body and headers.
"""
from __future__ import annotations

import logging
import threading
import time
import traceback
from typing import Any

import pytest

from ads.config import ModelConfig
from tests.fake_http import FakeServer, Reply, ok
from models.base import ModelError
from models.errors import ModelLoadError
from models.base import derived_seed
from models.openai_compat import EndpointFailingError, EndpointRejectedError, OpenAICompatModel
from models.openai_http import chat_completions_url, estimate_request_tokens, parse_retry_after, safe_url, schema_name
from models.ratelimit import CircuitBreaker, CircuitOpen, TokenBucket

SECRET = "sk-test-SECRET-7f3a9c1e5b2d4a6f8e0c"
KEY_ENV = "ADS_TEST_OPENAI_KEY"
MSGS = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hi."}]


@pytest.fixture
def server():
    s = FakeServer()
    yield s
    s.stop()


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    return SECRET


def make(server: FakeServer, **kw: Any) -> OpenAICompatModel:
    opts: dict[str, Any] = dict(api_key_env=KEY_ENV, timeout_s=2.0, max_retries=3, backoff_base_s=0.001,
                                backoff_max_s=0.01, breaker_cooldown_s=30.0)
    model = kw.pop("model", "test-model")
    opts.update(kw)
    return OpenAICompatModel(server.base_url, model, **opts)


# --------------------------------------------------------------------------- happy path


def test_posts_an_openai_chat_request_and_reads_usage(server, key):
    m = make(server)
    out = m.generate(MSGS, max_tokens=7, temperature=0.3, seed=5, sample_id=2)
    assert server.count == 1
    req = server.requests[0]
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["authorization"] == f"Bearer {SECRET}"
    body = req["json"]
    assert body["model"] == "test-model" and body["messages"] == MSGS
    assert body["max_tokens"] == 7 and body["temperature"] == pytest.approx(0.3) and body["stream"] is False
    assert body["seed"] == derived_seed(5, 2) and "response_format" not in body
    assert out.text == "hi" and out.finish_reason == "stop" and out.model_id == "test-model"
    assert (out.prompt_tokens, out.completion_tokens) == (11, 2)
    assert out.latency_s > 0 and not out.cached
    assert out.meta["attempts"] == 1 and out.meta["usage_estimated"] is False
    assert out.meta["seed"] == derived_seed(5, 2) and out.meta["served_model"] == "served-name"


def test_samples_of_one_prompt_get_distinct_seeds(server):
    m = make(server)
    m.generate(MSGS, seed=1, sample_id=0)
    m.generate(MSGS, seed=1, sample_id=1)
    seeds = [r["json"]["seed"] for r in server.requests]
    assert seeds[0] != seeds[1]


def test_no_authorization_header_when_the_key_variable_is_unset(server, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    make(server).generate(MSGS)
    assert "authorization" not in server.requests[0]["headers"]


def test_missing_usage_falls_back_to_an_estimate(server):
    server.script = [ok(text="hello there friend")]  # no usage field
    out = make(server).generate(MSGS)
    assert out.meta["usage_estimated"] is True
    assert out.completion_tokens == 5  # approx_tokens("hello there friend") = ceil(18/4)
    assert out.prompt_tokens > 0


def test_finish_reason_and_null_content_are_reported(server):
    body = ok().body
    body["choices"][0].update(finish_reason="length", message={"role": "assistant", "content": None})
    server.script = [Reply(body=body)]
    out = make(server).generate(MSGS)
    assert out.text == "" and out.finish_reason == "length"


# --------------------------------------------------------------------------- retries


def test_429_and_500_are_retried_until_success(server):
    server.script = [Reply(429, {"error": "slow down"}), Reply(500, "oops"), Reply(502, "bad gateway")]
    out = make(server, max_retries=3).generate(MSGS)
    assert server.count == 4 and out.meta["attempts"] == 4 and out.text == "hi"


def test_retry_after_seconds_is_honoured(server):
    server.script = [Reply(429, {"error": "rate"}, headers={"Retry-After": "0.3"})]
    t0 = time.perf_counter()
    make(server).generate(MSGS)
    assert time.perf_counter() - t0 >= 0.3
    assert server.count == 2


def test_retry_after_ms_is_honoured(server):
    server.script = [Reply(429, {"error": "rate"}, headers={"retry-after-ms": "250"})]
    t0 = time.perf_counter()
    make(server).generate(MSGS)
    assert time.perf_counter() - t0 >= 0.25


def test_retry_after_is_capped(server):
    server.script = [Reply(503, "busy", headers={"Retry-After": "3600"})]
    t0 = time.perf_counter()
    make(server, retry_after_max_s=0.05).generate(MSGS)
    assert time.perf_counter() - t0 < 1.0


def test_slow_response_past_the_timeout_is_retried(server):
    server.script = [Reply(delay_s=1.0)]
    t0 = time.perf_counter()
    out = make(server, timeout_s=0.2).generate(MSGS)
    elapsed = time.perf_counter() - t0
    assert out.meta["attempts"] == 2 and server.count == 2
    assert 0.2 <= elapsed < 0.9


def test_malformed_json_body_is_retried(server):
    server.script = [Reply(200, "{not json"), Reply(200, {"no": "choices"}), Reply(200, {"choices": []})]
    out = make(server, max_retries=3).generate(MSGS)
    assert out.text == "hi" and server.count == 4


def test_persistently_malformed_body_ends_in_a_clear_error(server):
    server.default = Reply(200, "<html>proxy error</html>")
    with pytest.raises(ModelError) as ei:
        make(server, max_retries=2).generate(MSGS)
    msg = str(ei.value)
    assert "after 3 attempts" in msg and "not a chat completion" in msg and server.base_url in msg
    assert server.count == 3


def test_error_after_the_last_retry_names_url_status_and_attempts(server, key):
    server.default = Reply(503, {"error": "overloaded"})
    m = make(server, max_retries=2)
    with pytest.raises(ModelError) as ei:
        m.generate(MSGS)
    msg = str(ei.value)
    assert f"{server.base_url}/chat/completions" in msg
    assert "503" in msg and "after 3 attempts" in msg and "overloaded" in msg
    assert server.count == 3
    assert not isinstance(ei.value, EndpointFailingError)


def test_client_errors_are_not_retried(server):
    server.default = Reply(404, {"error": "model not found"})
    with pytest.raises(EndpointRejectedError) as ei:
        make(server).generate(MSGS)
    assert server.count == 1
    assert "404" in str(ei.value) and "not retried" in str(ei.value) and "model not found" in str(ei.value)


def test_connection_refused_is_retried_then_reported():
    s = FakeServer()
    url = s.base_url
    s.stop()  # nothing listens on that port any more
    m = OpenAICompatModel(url, "m", api_key_env=None, timeout_s=1.0, max_retries=2, backoff_base_s=0.001)
    with pytest.raises(ModelError) as ei:
        m.generate(MSGS)
    assert "after 3 attempts" in str(ei.value) and "connection" in str(ei.value) and url in str(ei.value)


# --------------------------------------------------------------------------- circuit breaker


def test_sustained_429s_open_the_breaker_and_later_calls_fail_fast(server):
    server.default = Reply(429, {"error": "rate limited"})
    m = make(server, max_retries=10, breaker_threshold=4)
    with pytest.raises(EndpointFailingError) as ei:
        m.generate(MSGS)
    assert server.count == 4  # the breaker stopped the retry loop at the threshold
    assert "is failing" in str(ei.value) and "429" in str(ei.value)
    t0 = time.perf_counter()
    for _ in range(5):
        with pytest.raises(EndpointFailingError):
            m.generate(MSGS)
    assert time.perf_counter() - t0 < 0.2
    assert server.count == 4  # nothing more reached the server
    assert m.breaker.state == CircuitBreaker.OPEN


def test_breaker_half_opens_after_the_cooldown_and_a_success_closes_it(server):
    server.default = Reply(500, "down")
    m = make(server, max_retries=0, breaker_threshold=2, breaker_cooldown_s=0.2)
    for _ in range(2):
        with pytest.raises(ModelError):
            m.generate(MSGS)
    with pytest.raises(EndpointFailingError):
        m.generate(MSGS)
    assert server.count == 2
    server.default = ok()
    time.sleep(0.25)
    assert m.breaker.state == CircuitBreaker.HALF_OPEN
    assert m.generate(MSGS).text == "hi"
    assert m.breaker.state == CircuitBreaker.CLOSED and server.count == 3


def test_a_success_resets_the_consecutive_failure_count(server):
    server.script = [Reply(500), Reply(500), ok(), Reply(500), Reply(500)]
    m = make(server, max_retries=3, breaker_threshold=3)
    m.generate(MSGS)
    m.generate(MSGS)  # would trip the breaker if failures carried over the success
    assert m.breaker.state == CircuitBreaker.CLOSED


# --------------------------------------------------------------------------- concurrency & rate limits


def test_concurrency_bound_is_respected_server_side(server):
    server.default = Reply(body=ok().body, delay_s=0.1)
    m = make(server, max_concurrency=2)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            m.generate(MSGS)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not errors and server.count == 8
    assert server.max_in_flight == 2


def test_waiting_for_a_free_slot_is_not_a_timeout(server):
    """Queued callers wait on the semaphore, not in the connection pool, where the wait would count
    against the request timeout and turn a busy-but-healthy endpoint into retries and breaker trips."""
    # each request takes 0.25 s of a 1 s timeout (room for a loaded machine); the last of 6 callers
    # waits 1.25 s for its slot, so a wait counted against the timeout would fail it
    server.default = Reply(body=ok().body, delay_s=0.25)
    m = make(server, max_concurrency=1, timeout_s=1.0, max_retries=0)
    outs: list[Any] = []
    threads = [threading.Thread(target=lambda: outs.append(_try(m))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert all(not isinstance(o, BaseException) and o.meta["attempts"] == 1 for o in outs), outs
    assert len(outs) == 6 and server.count == 6 and server.max_in_flight == 1


def _try(m: OpenAICompatModel) -> Any:
    try:
        return m.generate(MSGS)
    except BaseException as e:  # noqa: BLE001
        return e


def test_requests_per_minute_limit_spaces_requests(server):
    m = make(server, requests_per_minute=600, rate_burst_s=0.1)  # 10/s, burst of 1
    t0 = time.perf_counter()
    for _ in range(4):
        m.generate(MSGS)
    assert time.perf_counter() - t0 >= 0.28  # 3 waits of ~0.1 s


def test_tokens_per_minute_limit_waits_for_the_estimate(server):
    est = estimate_request_tokens(MSGS, 50)
    # the bucket holds exactly one request's estimate and refills it in ~0.2 s; usage (13) refunds part of it
    m = make(server, tokens_per_minute=est * 60 / 0.2, rate_burst_s=0.2)
    server.default = ok(usage={"prompt_tokens": est - 50, "completion_tokens": 50})
    t0 = time.perf_counter()
    for _ in range(3):
        m.generate(MSGS, max_tokens=50)
    assert time.perf_counter() - t0 >= 0.35


def test_token_bucket_with_a_fake_clock():
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    b = TokenBucket(60, capacity=2, clock=lambda: now[0], sleep=sleep)  # 1 token/s
    assert b.acquire(1) == 0 and b.acquire(1) == 0
    assert b.acquire(1) == pytest.approx(1.0)
    # a request bigger than the capacity waits for a full bucket, then leaves a debt
    now[0] += 10
    assert b.acquire(5) == 0
    assert b.level == pytest.approx(-3)
    assert b.acquire(1) == pytest.approx(4.0)
    b.credit(100)
    assert b.level == 2


def test_circuit_breaker_with_a_fake_clock():
    now = [0.0]
    br = CircuitBreaker(2, cooldown_s=10, clock=lambda: now[0])
    br.before_call(); br.record_failure()
    br.before_call(); br.record_failure()
    with pytest.raises(CircuitOpen):
        br.before_call()
    now[0] = 10.5
    br.before_call()  # the half-open probe
    with pytest.raises(CircuitOpen):
        br.before_call()  # only one probe at a time
    br.record_failure()  # probe failed: open again
    with pytest.raises(CircuitOpen):
        br.before_call()
    now[0] = 21
    br.before_call(); br.record_success()
    assert br.state == CircuitBreaker.CLOSED and br.times_opened == 2
    br.before_call()


# --------------------------------------------------------------------------- structured output

SCHEMA = {"title": "City answer", "type": "object", "properties": {"city": {"type": "string"}},
          "required": ["city"], "additionalProperties": False}


def test_json_schema_form(server):
    make(server, schema_format="json_schema").generate(MSGS, json_schema=SCHEMA)
    rf = server.requests[0]["json"]["response_format"]
    assert rf == {"type": "json_schema", "json_schema": {"name": "City_answer", "schema": SCHEMA, "strict": True}}


def test_json_object_form_for_llama_cpp_python(server):
    out = make(server, schema_format="json_object").generate(MSGS, json_schema=SCHEMA)
    assert server.requests[0]["json"]["response_format"] == {"type": "json_object", "schema": SCHEMA}
    assert out.meta["schema_format"] == "json_object"


@pytest.mark.parametrize("status", [422, 500])  # llama-cpp-python 0.3.x really answers 500 here
def test_auto_falls_back_once_when_json_schema_is_refused_and_remembers(server, status):
    def llama_cpp_python_like(req: dict) -> Reply | None:
        rf = req["json"].get("response_format")
        if rf and rf["type"] != "json_object":
            return Reply(status, {"error": {"message": "1 validation error: {'loc': ('body', 'response_format', "
                                                       "'type'), 'msg': \"Input should be 'text' or 'json_object'\"}"}})
        return None

    server.responder = llama_cpp_python_like
    m = make(server, max_retries=0)
    out = m.generate(MSGS, json_schema=SCHEMA)
    assert [r["json"]["response_format"]["type"] for r in server.requests] == ["json_schema", "json_object"]
    assert out.meta["schema_format"] == "json_object" and m.breaker.consecutive_failures == 0
    m.generate(MSGS, json_schema=SCHEMA)
    assert server.count == 3 and server.requests[2]["json"]["response_format"]["type"] == "json_object"
    m.generate(MSGS)  # plain requests carry no response_format
    assert "response_format" not in server.requests[3]["json"]


def test_a_plain_5xx_on_a_schema_request_is_retried_not_taken_for_a_refusal(server):
    server.script = [Reply(503, {"error": "overloaded"})]
    out = make(server).generate(MSGS, json_schema=SCHEMA)
    assert [r["json"]["response_format"]["type"] for r in server.requests] == ["json_schema", "json_schema"]
    assert out.meta["schema_format"] == "json_schema"


def test_auto_keeps_json_schema_when_the_server_accepts_it(server):
    m = make(server)
    m.generate(MSGS, json_schema=SCHEMA)
    m.generate(MSGS, json_schema=SCHEMA)
    assert [r["json"]["response_format"]["type"] for r in server.requests] == ["json_schema", "json_schema"]


def test_schema_name_is_sanitised():
    assert schema_name({"title": "a b/c!"}) == "a_b_c"
    assert schema_name({}) == "response"
    assert len(schema_name({"title": "x" * 200})) == 64


# --------------------------------------------------------------------------- the key never leaks


def test_key_never_appears_in_logs_exceptions_or_repr(server, key, caplog):
    caplog.set_level(logging.DEBUG)  # includes httpx/httpcore debug logging
    echo = {"error": {"message": f"Incorrect API key provided: {SECRET}"}}
    server.script = [Reply(500, echo), Reply(429, echo)]
    server.default = Reply(401, echo)
    m = make(server, max_retries=3)
    with pytest.raises(EndpointRejectedError) as ei:
        m.generate(MSGS)
    server.default = Reply(503, echo)
    with pytest.raises(ModelError) as ei2:
        m.generate(MSGS)
    assert server.requests[0]["headers"]["authorization"] == f"Bearer {SECRET}"  # the key was really sent
    texts = [caplog.text, repr(m), str(m), vars(m).__repr__()]
    for exc in (ei.value, ei2.value):
        texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
        assert exc.__cause__ is None and exc.__context__ is None  # no httpx request (with headers) attached
    assert "Incorrect API key provided: ***" in str(ei.value)
    for t in texts:
        assert SECRET not in t
    assert "retry" in caplog.text  # the retries were logged (so the check above looked at something)


# --------------------------------------------------------------------------- config & helpers


def test_from_config_reads_endpoint_model_and_limits(server, key):
    cfg = ModelConfig(name="served-x", base_url=server.base_url, api_key_env=KEY_ENV, timeout_s=3.0,
                      max_retries=1, max_concurrency=3, requests_per_minute=6000.0)
    m = OpenAICompatModel.from_config(cfg, backoff_base_s=0.001)
    assert m.model == m.model_id == "served-x" and m.max_retries == 1 and m.max_concurrency == 3
    assert m.url == f"{server.base_url}/chat/completions"
    assert m.generate(MSGS).text == "hi"
    assert server.requests[0]["json"]["model"] == "served-x"
    with pytest.raises(ModelLoadError):
        OpenAICompatModel.from_config(ModelConfig(name="x"))


def test_url_helpers():
    assert chat_completions_url("http://h:8080") == "http://h:8080/v1/chat/completions"
    assert chat_completions_url("http://h:8080/v1/") == "http://h:8080/v1/chat/completions"
    assert chat_completions_url("https://api.x.com/openai/v1") == "https://api.x.com/openai/v1/chat/completions"
    assert chat_completions_url("http://h/v1/chat/completions") == "http://h/v1/chat/completions"
    with pytest.raises(ModelLoadError):
        chat_completions_url("h:8080")
    assert safe_url("https://user:pw@h:1/v1?key=abc") == "https://h:1/v1"


def test_retry_after_parsing():
    import httpx

    assert parse_retry_after(httpx.Headers({"Retry-After": "2"})) == 2.0
    assert parse_retry_after(httpx.Headers({"retry-after-ms": "1500", "Retry-After": "9"})) == 1.5
    assert parse_retry_after(httpx.Headers({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0
    assert parse_retry_after(httpx.Headers({"Retry-After": "soon"})) is None
    assert parse_retry_after(httpx.Headers({})) is None
