"""A Model backed by any OpenAI-compatible `/v1/chat/completions` endpoint.

The same client talks to a local llama.cpp server (C++ `llama-server` or
`python -m llama_cpp.server`), vLLM, or a hosted API. A data-generation run sends thousands
of requests from several threads, so the client has to be a good citizen and must never
fail silently:

* throttle before sending (requests-per-minute and tokens-per-minute token buckets, and a
  semaphore bounding in-flight requests per instance), because a refused request costs a
  round trip and a backoff;
* retry what is transient (429, 408/409/425, 5xx, timeouts, connection errors, a 2xx whose
  body is not the expected JSON) with exponential backoff and full jitter, honouring
  `Retry-After` / `retry-after-ms`, and raise a `ModelError` naming the endpoint, the last
  status and the attempt count when the budget is spent;
* trip a circuit breaker after N consecutive failed attempts: while open, every call fails
  at once with `EndpointFailingError`, so sustained 429s surface as an error instead of a
  run that quietly writes zero records.

The API key is read from the environment variable named in the config, per request, and
only ever placed in the Authorization header. It is never stored on the instance, logged,
or put into an exception; error text is scrubbed of it in case a server echoes it back, and
errors are raised outside `except` blocks so no httpx request (whose headers hold the key)
hangs off `__cause__`/`__context__`.

Structured output. OpenAI, vLLM and the C++ llama-server accept
`response_format={"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`;
llama-cpp-python's server (0.3.x) only accepts `{"type": "json_object", "schema": ...}` and
answers the former with HTTP 500 and a validation message naming `response_format`.
`schema_format` picks one: "json_schema", "json_object", or "auto" (default), which sends
the OpenAI form first and, if the server refuses it (400/422, or any error whose body names
response_format/json_schema), re-sends the llama-cpp-python form once, and from then on
uses whichever form worked. The probe costs one extra request per instance; set the form
explicitly to avoid it.

The URL, key-safety, Retry-After and request-size helpers are in `models.openai_http`; several
servers with the same model driven as one Model are `models.openai_pool.OpenAICompatPool`.
"""
from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from models.base import Completion, FatalModelError, Message, ModelError, approx_tokens, derived_seed, validate_messages
from models.errors import ModelLoadError
from models.openai_http import (chat_completions_url, default_key_env, estimate_request_tokens, is_insecure_remote,
                                parse_retry_after, safe_url, schema_name)
from models.ratelimit import CircuitBreaker, CircuitOpen, TokenBucket
from models.structured import loads_bounded

log = logging.getLogger(__name__)

SchemaFormat = Literal["auto", "json_schema", "json_object"]
RETRYABLE_STATUS = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))


class EndpointFailingError(FatalModelError):
    """The circuit breaker is open: the endpoint failed repeatedly and calls fail fast.

    A generator that catches ModelError per record should let this one end the run (or
    at least report it), because every following record would fail the same way.
    """


class EndpointRejectedError(EndpointFailingError):
    """The server refused the request for a reason no retry changes: 400/401/403/404/422 (bad
    request, wrong or missing API key, no such model) or a URL scheme it cannot speak.

    A subclass of EndpointFailingError so every generator's `except EndpointFailingError: raise`
    lets it end the run: a wrong key used to become one counted "rejection" per record and a
    run that exited 0 with a table of zero scores.
    """


def refuses_json_schema(failure: "_Failure") -> bool:
    """Did the server reject the OpenAI json_schema response_format (rather than fail for another reason)?

    llama-cpp-python's server answers a request-validation error with HTTP 500 and a body naming
    `response_format`; others use 400/422. A 5xx that does not name the field stays a retryable failure.
    """
    if failure.status in (400, 422):
        return True
    return failure.status is not None and ("response_format" in failure.detail or "json_schema" in failure.detail)


@dataclass
class _Failure:
    """One failed attempt, described without anything that could hold the key."""

    kind: str  # "http" | "timeout" | "connection" | "malformed"
    detail: str
    status: int | None = None
    retry_after: float | None = None
    retryable: bool = True

    def describe(self) -> str:
        if self.status is not None:
            return f"HTTP {self.status} {httpx.codes.get_reason_phrase(self.status)}: {self.detail}".rstrip(": ")
        return f"{self.kind}: {self.detail}"


class OpenAICompatModel:
    """Chat completions over HTTP; thread-safe, one instance shared by all workers of a run."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        model_id: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout_s: float = 60.0,
        connect_timeout_s: float | None = None,
        max_retries: int = 4,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        retry_after_max_s: float = 120.0,
        max_concurrency: int = 4,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        rate_burst_s: float = 10.0,
        breaker_threshold: int | None = None,
        breaker_cooldown_s: float = 30.0,
        schema_format: SchemaFormat = "auto",
        strict_schema: bool = True,
        transport: httpx.BaseTransport | None = None,
        trust_env: bool = False,
        allow_insecure_http: bool = False,
    ):
        if schema_format not in ("auto", "json_schema", "json_object"):
            raise ValueError("schema_format must be 'auto', 'json_schema' or 'json_object'")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        self.url = chat_completions_url(base_url)
        self._display_url = safe_url(self.url)
        # a key in a plain-http request is readable by anyone on the path: only to loopback, or when asked
        self._key_over_http_refused = is_insecure_remote(self.url) and not allow_insecure_http
        self.model = model
        self.model_id = model_id or model
        self.api_key_env = api_key_env or None
        self.max_retries = max(0, int(max_retries))
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.retry_after_max_s = retry_after_max_s
        self.max_concurrency = max_concurrency
        self.schema_format: SchemaFormat = schema_format
        self.strict_schema = strict_schema
        # auto mode: which form this server accepted; None until a schema request succeeds
        self._schema_form: str | None = None if schema_format == "auto" else schema_format
        self._slots = threading.BoundedSemaphore(max_concurrency)
        # buckets hold `rate_burst_s` seconds of allowance, so a cold start cannot fire a minute's quota at once
        self._rpm = TokenBucket(requests_per_minute, burst_s=rate_burst_s) if requests_per_minute else None
        self._tpm = TokenBucket(tokens_per_minute, burst_s=rate_burst_s) if tokens_per_minute else None
        # Default: two requests' worth of retries failing back to back opens the circuit.
        threshold = breaker_threshold if breaker_threshold is not None else max(3, 2 * (self.max_retries + 1))
        self.breaker = CircuitBreaker(threshold, breaker_cooldown_s)
        self._last_failure = "none"
        timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, connect_timeout_s or 10.0))
        self._client = httpx.Client(
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
            transport=transport,
            follow_redirects=False,
            # off by default: env proxies/.netrc must not see loopback traffic or inject credentials;
            # turn on for a hosted API behind a corporate proxy
            trust_env=trust_env,
        )

    @classmethod
    def from_config(cls, cfg: Any, **overrides: Any) -> "OpenAICompatModel":
        """Build from an `ads.config.ModelConfig`; keyword overrides win (tests, tuning)."""
        if not cfg.base_url:
            raise ModelLoadError(f"model {cfg.name!r}: the openai backend needs base_url (e.g. http://127.0.0.1:8080/v1)")
        kwargs: dict[str, Any] = dict(
            api_key_env=cfg.api_key_env if cfg.api_key_env is not None else default_key_env(cfg.base_url),
            allow_insecure_http=getattr(cfg, "allow_insecure_http", False),
            timeout_s=cfg.timeout_s,
            max_retries=cfg.max_retries,
            max_concurrency=cfg.max_concurrency,
            requests_per_minute=cfg.requests_per_minute,
            tokens_per_minute=cfg.tokens_per_minute,
        )
        kwargs.update(overrides)
        return cls(cfg.base_url, cfg.name, **kwargs)

    # -- key handling ---------------------------------------------------------------------

    def _api_key(self) -> str | None:
        if not self.api_key_env:
            return None
        return os.environ.get(self.api_key_env) or None

    def _redact(self, text: str) -> str:
        key = self._api_key()
        if key and len(key) >= 4:
            text = text.replace(key, "***")
        return text

    def __repr__(self) -> str:
        key_state = "set" if self._api_key() else "unset"
        return (f"OpenAICompatModel(model={self.model!r}, url={self._display_url!r}, "
                f"api_key_env={self.api_key_env!r} ({key_state}), max_concurrency={self.max_concurrency})")

    __str__ = __repr__

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "OpenAICompatModel":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- request building -----------------------------------------------------------------

    def _response_format(self, schema: dict[str, Any], form: str) -> dict[str, Any]:
        if form == "json_object":
            return {"type": "json_object", "schema": schema}
        return {"type": "json_schema",
                "json_schema": {"name": schema_name(schema), "schema": schema, "strict": self.strict_schema}}

    def _payload(self, messages: list[Message], max_tokens: int, temperature: float, seed: int,
                 schema: dict[str, Any] | None, form: str | None) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": int(max_tokens),
            "temperature": float(temperature),
            "seed": seed,
            "stream": False,
        }
        if schema is not None:
            payload["response_format"] = self._response_format(schema, form or "json_schema")
        return payload

    # -- one attempt ----------------------------------------------------------------------

    def _attempt(self, payload: dict[str, Any]) -> tuple[dict[str, Any] | None, _Failure | None]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = self._api_key()
        if key and self._key_over_http_refused:
            return None, _Failure("connection", f"refusing to send the API key in ${self.api_key_env} over plain "
                                                f"http to a host that is not loopback; use https, or set "
                                                f"allow_insecure_http: true for this model", retryable=False)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        failure: _Failure | None = None
        resp: httpx.Response | None = None
        with self._slots:
            try:
                resp = self._client.post(self.url, json=payload, headers=headers)
            except httpx.TimeoutException as e:
                failure = _Failure("timeout", f"{type(e).__name__} (no answer within the timeout)")
            except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as e:
                failure = _Failure("connection", f"{type(e).__name__}: {e}", retryable=False)
            except httpx.TransportError as e:
                failure = _Failure("connection", f"{type(e).__name__}: {e}")
        del headers, key
        if failure is not None:
            failure.detail = self._redact(failure.detail)
            return None, failure
        assert resp is not None
        status = resp.status_code
        if status >= 300:
            body = self._redact(resp.text[:300].replace("\n", " ").strip())
            return None, _Failure("http", body, status=status, retry_after=parse_retry_after(resp.headers),
                                  retryable=status in RETRYABLE_STATUS)
        try:
            data = loads_bounded(resp.content)  # deep/huge bodies: a malformed answer, not RecursionError
            choice = data["choices"][0]
            if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
                raise TypeError("choices[0].message missing")
        except (ValueError, KeyError, IndexError, TypeError) as e:
            snippet = self._redact(resp.text[:120].replace("\n", " "))
            return None, _Failure("malformed", f"HTTP {status} body is not a chat completion ({type(e).__name__}): "
                                               f"{snippet!r}")
        return data, None

    def _backoff(self, attempt: int, failure: _Failure) -> float:
        """Full jitter: uniform(0, min(cap, base * 2^(attempt-1))); Retry-After is a floor."""
        delay = random.uniform(0.0, min(self.backoff_max_s, self.backoff_base_s * (2 ** (attempt - 1))))
        if failure.retry_after is not None:
            delay = min(self.retry_after_max_s, failure.retry_after) + random.uniform(0.0, self.backoff_base_s)
        return delay

    def _breaker_error(self, e: CircuitOpen) -> EndpointFailingError:
        return EndpointFailingError(
            f"endpoint {self._display_url} is failing: {e.failures} consecutive failed requests "
            f"(last: {self._last_failure}); calls fail fast for {e.retry_in_s:.1f}s more (circuit breaker). "
            f"Check that the server is up, or lower max_concurrency / requests_per_minute / tokens_per_minute.")

    # -- the Model protocol ---------------------------------------------------------------

    def generate(
        self,
        messages: list[Message],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int = 0,
        sample_id: int | str = 0,
        json_schema: dict[str, Any] | None = None,
    ) -> Completion:
        validate_messages(messages)
        req_seed = derived_seed(seed, sample_id)
        form = self._schema_form or "json_schema"
        # auto mode, not yet settled: one re-send in the llama-cpp-python form if this one is refused
        can_fall_back = json_schema is not None and self.schema_format == "auto" and self._schema_form is None
        payload = self._payload(messages, max_tokens, temperature, req_seed, json_schema, form)
        estimate = estimate_request_tokens(messages, max_tokens)
        refused_note = ""
        attempts = 0
        t0 = time.perf_counter()
        data: dict[str, Any] | None = None
        failure: _Failure | None = None
        breaker_open: CircuitOpen | None = None
        max_attempts = self.max_retries + 1
        while attempts < max_attempts:
            try:
                self.breaker.before_call()
            except CircuitOpen as e:
                breaker_open = e
                break
            if self._rpm:
                self._rpm.acquire(1)
            if self._tpm:
                self._tpm.acquire(estimate)
            attempts += 1
            data, failure = self._attempt(payload)
            if failure is None:
                self.breaker.record_success()
                break
            if self._tpm:
                self._tpm.credit(estimate)  # a failed request consumed no tokens upstream
            # auto schema mode: the server refused the OpenAI json_schema form -> try the other one
            if can_fall_back and refuses_json_schema(failure):
                can_fall_back = False
                self.breaker.release_probe()
                refused_note = f" (after the json_schema response_format was refused: {failure.describe()})"
                form = "json_object"
                payload = self._payload(messages, max_tokens, temperature, req_seed, json_schema, form)
                max_attempts += 1  # the format probe does not use up a retry
                log.info("%s refused response_format json_schema (HTTP %s); using json_object+schema",
                         self._display_url, failure.status)
                continue
            if not failure.retryable:
                self.breaker.release_probe()
                break
            self.breaker.record_failure()
            self._last_failure = failure.describe()
            if attempts >= max_attempts:
                break
            delay = self._backoff(attempts, failure)
            log.warning("POST %s: %s; retry %d/%d in %.2fs", self._display_url, failure.describe(),
                        attempts, self.max_retries, delay)
            time.sleep(delay)
        latency = time.perf_counter() - t0

        if data is None:
            if breaker_open is not None:
                raise self._breaker_error(breaker_open)
            assert failure is not None
            if not failure.retryable:
                key_hint = f" and the API key in ${self.api_key_env}" if self.api_key_env else ""
                raise EndpointRejectedError(f"POST {self._display_url} (model {self.model!r}) failed: {failure.describe()}"
                                 f"{refused_note}; not retried (status {failure.status}). Check the model name, "
                                 f"the request{key_hint}.")
            raise ModelError(f"POST {self._display_url} (model {self.model!r}) failed after {attempts} attempts: "
                             f"last status {failure.status if failure.status is not None else failure.kind} "
                             f"({failure.describe()}){refused_note}")

        if json_schema is not None and self.schema_format == "auto" and self._schema_form is None:
            self._schema_form = form  # this server's accepted form, used from now on
        return self._completion(data, messages, latency, attempts, req_seed,
                                form if json_schema is not None else None, estimate)

    def _completion(self, data: dict[str, Any], messages: list[Message], latency: float, attempts: int,
                    req_seed: int, form: str | None, estimate: int) -> Completion:
        choice = data["choices"][0]
        text = choice["message"].get("content") or ""
        if not isinstance(text, str):
            text = json.dumps(text)
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        pt, ct = usage.get("prompt_tokens"), usage.get("completion_tokens")
        estimated = not (isinstance(pt, int) and isinstance(ct, int))
        if not isinstance(pt, int):
            pt = approx_tokens("\n".join(m["content"] for m in messages))
        if not isinstance(ct, int):
            ct = approx_tokens(text)
        if self._tpm:
            self._tpm.credit(estimate - (pt + ct))
        meta: dict[str, Any] = {"endpoint": self._display_url, "attempts": attempts, "seed": req_seed,
                                "usage_estimated": estimated}
        if form:
            meta["schema_format"] = form
        if isinstance(data.get("model"), str):
            meta["served_model"] = data["model"]
        return Completion(
            text=text,
            prompt_tokens=pt,
            completion_tokens=ct,
            model_id=self.model_id,
            latency_s=latency,
            finish_reason=choice.get("finish_reason") or "stop",
            meta=meta,
        )
