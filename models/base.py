"""The one contract every model backend honours.

Generators never know which backend they talk to: a llama.cpp GGUF, a transformers
checkpoint, an OpenAI-compatible server or a scripted fake all answer `generate` with a
`Completion` that carries its own token usage, so the cost ledger and the request cache
can wrap any of them from the outside.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from models.errors import FatalModelError, ModelError, ModelNotFoundError  # noqa: F401 (re-exported)

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": "..."}


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    model_id: str
    latency_s: float
    cached: bool = False
    finish_reason: str = "stop"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Completion":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@runtime_checkable
class Model(Protocol):
    """Anything that turns chat messages into a Completion.

    `seed` and `sample_id` together make a request reproducible and distinct: k samples of
    the same prompt carry different sample ids, so a cache keeps them apart and a re-run
    replays each one.
    """

    model_id: str

    def generate(
        self,
        messages: list[Message],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int = 0,
        sample_id: int | str = 0,
        json_schema: dict[str, Any] | None = None,
    ) -> Completion: ...


def validate_messages(messages: list[Message]) -> None:
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list of {'role', 'content'} dicts")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in {"system", "user", "assistant", "tool"}:
            raise ValueError(f"messages[{i}] needs a role of system/user/assistant/tool, got {m!r}")
        if not isinstance(m.get("content"), str):
            raise ValueError(f"messages[{i}].content must be a string")


def request_key(
    model_id: str,
    messages: list[Message],
    *,
    max_tokens: int,
    temperature: float,
    seed: int,
    sample_id: int | str,
    json_schema: dict[str, Any] | None,
) -> str:
    """sha256 over a canonical JSON of everything that can change the answer.

    The schema is serialized in its own key order: a grammar generates properties in that
    order, so two schemas that differ only in order give different completions."""
    payload = {
        "model_id": model_id,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": round(float(temperature), 6),
        "seed": seed,
        "sample_id": str(sample_id),
        "json_schema": None if json_schema is None else json.dumps(json_schema, ensure_ascii=False),
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def derived_seed(seed: int, sample_id: int | str, bits: int = 31) -> int:
    """One seed from (seed, sample_id), so k samples of one prompt differ reproducibly and a re-run
    draws the same stream. llama.cpp takes 31 bits; torch generators take 63."""
    digest = hashlib.sha256(f"{seed}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8 if bits > 32 else 4], "little") & ((1 << bits) - 1)


def approx_tokens(text: str) -> int:
    """A tokenizer-free estimate for backends that report no usage (about 4 chars a token)."""
    return max(1, (len(text) + 3) // 4) if text else 0
