"""A pool of OpenAI-compatible servers with the same model, driven as one Model (`base_urls:`)."""
from __future__ import annotations

import threading
from typing import Any

from models.base import Completion, Message
from models.errors import ModelLoadError
from models.openai_compat import EndpointFailingError, EndpointRejectedError, OpenAICompatModel
from models.ratelimit import CircuitBreaker


class OpenAICompatPool:
    """Several servers with the same model (vLLM replicas, llama.cpp servers) driven as one Model.

    Each request goes to the endpoint with the fewest requests in flight from this process
    (ties rotate), so concurrent callers (Ray workers, threads) spread over the pool. Every
    endpoint keeps its own client: its own `max_concurrency` slots, requests/tokens-per-minute
    buckets, retries and circuit breaker. When one endpoint's circuit opens, its requests move
    to the others; only when every endpoint is failing does the call raise
    `EndpointFailingError`, naming each, so sustained 429s end a run loudly.
    The request seed is derived from (seed, sample_id) as for one endpoint, so which server
    answers does not change the request.
    """

    def __init__(self, members: list[OpenAICompatModel]):
        if not members:
            raise ValueError("a pool needs at least one endpoint")
        self.members = members
        self.model_id = members[0].model_id
        self._in_flight = [0] * len(members)
        self._next = 0
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg: Any, **overrides: Any) -> "OpenAICompatPool":
        urls = list(dict.fromkeys(([cfg.base_url] if cfg.base_url else []) + list(cfg.base_urls or [])))
        if not urls:
            raise ModelLoadError(f"model {cfg.name!r}: a server pool needs base_urls")
        members = []
        for url in urls:
            one = cfg.model_copy(update={"base_url": url, "base_urls": None})
            members.append(OpenAICompatModel.from_config(one, **overrides))
        return cls(members)

    def __repr__(self) -> str:
        return f"OpenAICompatPool({', '.join(m._display_url for m in self.members)})"

    def close(self) -> None:
        for m in self.members:
            m.close()

    def in_flight(self) -> list[int]:
        with self._lock:
            return list(self._in_flight)

    def _pick(self, exclude: set[int]) -> int | None:
        with self._lock:
            n = len(self.members)
            order = [(self._next + k) % n for k in range(n)]
            live = [i for i in order if i not in exclude and self.members[i].breaker.state != CircuitBreaker.OPEN]
            if not live:
                return None
            i = min(live, key=lambda j: self._in_flight[j])  # min keeps the first of equals: rotation
            self._next = (i + 1) % n
            self._in_flight[i] += 1
            return i

    def generate(self, messages: list[Message], **kw: Any) -> Completion:
        tried: set[int] = set()
        errors: list[str] = []
        rejected = 0
        while True:
            i = self._pick(tried)
            if i is None:
                break
            failed: EndpointFailingError | None = None
            try:
                return self.members[i].generate(messages, **kw)
            except EndpointFailingError as e:
                failed = e
            finally:
                with self._lock:
                    self._in_flight[i] -= 1
            tried.add(i)
            errors.append(str(failed))
            rejected += isinstance(failed, EndpointRejectedError)
        for j, m in enumerate(self.members):
            if j not in tried:
                errors.append(f"endpoint {m._display_url}: circuit open (last: {m._last_failure})")
        if rejected == len(errors):  # every endpoint refused the request itself (key, model name)
            raise EndpointRejectedError(f"all {len(self.members)} endpoints of the pool refused the request: "
                                        + " | ".join(errors))
        raise EndpointFailingError(f"all {len(self.members)} endpoints of the pool are failing: " + " | ".join(errors))
