"""A scripted model for unit tests of control flow. Never used where a real model runs."""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterable

from models.base import Completion, Message, validate_messages

Responder = Callable[[list[Message], dict[str, Any]], str]


class FakeModel:
    """Answers from a script: a list of texts served in order (cycled), or a function.

    The function gets the messages and the sampling keywords, so a test can make the answer
    depend on the prompt, the temperature or the sample id. Token counts are whitespace
    words, which is enough for ledger arithmetic to be checked exactly.
    """

    def __init__(self, script: Iterable[str] | Responder, model_id: str = "fake", latency_s: float = 0.0):
        self.model_id = model_id
        self._fn: Responder | None = script if callable(script) else None
        self._texts = [] if callable(script) else list(script)
        if self._fn is None and not self._texts:
            raise ValueError("FakeModel needs at least one scripted response")
        self._i = 0
        self._lock = threading.Lock()
        self.latency_s = latency_s
        self.calls: list[dict[str, Any]] = []

    def __getstate__(self) -> dict[str, Any]:  # picklable (a Ray worker gets its own copy), lock excluded
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def generate(self, messages, *, max_tokens=256, temperature=0.0, seed=0, sample_id=0, json_schema=None):
        validate_messages(messages)
        kw = dict(max_tokens=max_tokens, temperature=temperature, seed=seed, sample_id=sample_id,
                  json_schema=json_schema)
        with self._lock:
            self.calls.append({"messages": messages, **kw})
            if self._fn is not None:
                text = self._fn(messages, kw)
            else:
                text = self._texts[self._i % len(self._texts)]
                self._i += 1
        if self.latency_s:
            time.sleep(self.latency_s)
        prompt = sum(len(m["content"].split()) for m in messages)
        return Completion(text=text, prompt_tokens=prompt, completion_tokens=len(text.split()),
                          model_id=self.model_id, latency_s=self.latency_s)
