"""GGUF models through llama-cpp-python, with JSON-schema-constrained decoding.

Small models (135M-0.5B) rarely write valid JSON on request; a grammar compiled from the
JSON schema makes every completion parse. Grammars are compiled once per schema. llama.cpp
contexts are not thread-safe, so calls on one instance are serialised.

Reproducibility over speed: llama-cpp-python reuses the KV cache of a shared prompt prefix,
but evaluating the prompt in a different batch shape changes the logits slightly, and
greedy output then depends on which request came before. The context is therefore reset
before every call (`reuse_prefix=False`), so the same request always gives the same text.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from models.base import Completion, Message, ModelError, validate_messages


def derived_seed(seed: int, sample_id: int | str) -> int:
    """One 31-bit seed from (seed, sample_id), so k samples of one prompt differ reproducibly."""
    digest = hashlib.sha256(f"{seed}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class LlamaCppModel:
    def __init__(self, path: str | Path, *, model_id: str | None = None, n_ctx: int = 2048,
                 n_threads: int | None = None, n_batch: int = 512, verbose: bool = False,
                 reuse_prefix: bool = False):
        from llama_cpp import Llama

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"GGUF file not found: {self.path}")
        self.model_id = model_id or self.path.stem
        self.n_ctx = n_ctx
        self.llm = Llama(model_path=str(self.path), n_ctx=n_ctx, n_threads=n_threads or os.cpu_count() or 1,
                         n_batch=n_batch, verbose=verbose, seed=0)
        self.reuse_prefix = reuse_prefix
        self._lock = threading.Lock()
        self._grammars: dict[str, Any] = {}

    def _grammar(self, schema: dict[str, Any]) -> Any:
        from llama_cpp import LlamaGrammar

        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            self._grammars[key] = LlamaGrammar.from_json_schema(key, verbose=False)
        return self._grammars[key]

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def generate(self, messages: list[Message], *, max_tokens: int = 256, temperature: float = 0.0, seed: int = 0,
                 sample_id: int | str = 0, json_schema: dict[str, Any] | None = None) -> Completion:
        validate_messages(messages)
        kwargs: dict[str, Any] = dict(messages=messages, max_tokens=max_tokens, temperature=float(temperature),
                                      seed=derived_seed(seed, sample_id))
        with self._lock:
            if json_schema is not None:
                kwargs["grammar"] = self._grammar(json_schema)
            if not self.reuse_prefix:
                self.llm.reset()
            t0 = time.perf_counter()
            try:
                out = self.llm.create_chat_completion(**kwargs)
            except ValueError as e:  # e.g. prompt longer than the context window
                raise ModelError(f"{self.model_id}: {e}") from e
            latency = time.perf_counter() - t0
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            model_id=self.model_id,
            latency_s=latency,
            finish_reason=choice.get("finish_reason") or "stop",
        )
