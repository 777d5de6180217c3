"""GGUF models through llama-cpp-python, with JSON-schema-constrained decoding.

Small models (135M-0.5B) rarely write valid JSON on request; a grammar compiled from the
JSON schema makes every completion parse. Grammars are compiled once per schema. llama.cpp
contexts are not thread-safe, so calls on one instance are serialised.

Reproducibility first, then speed. llama-cpp-python can reuse the KV cache of the prompt
prefix a request shares with the previous one; that saves re-reading the chat template and
system prompt on every call (resetting instead cost 14% of tokens/s on short prompts, bench/README.md). It is only
safe if the logits do not depend on how the prompt was split into batches: on a build where
they do, greedy output would depend on which request came before, and a resumed run would
not reproduce a fresh one. `reuse_prefix=None` (the default) therefore checks this build at
load (`split_invariant`: a prompt decoded in one batch, in two, and after a different
prompt that shares its start must give bit-identical logits) and reuses prefixes only if it
holds; otherwise the context is reset before every call. `True`/`False` force either way. The
verdict is kept per (file, build, thread count) in ~/.cache/ads-harness/split_invariant.json.
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
from models.errors import ModelLoadError


def derived_seed(seed: int, sample_id: int | str) -> int:
    """One 31-bit seed from (seed, sample_id), so k samples of one prompt differ reproducibly."""
    digest = hashlib.sha256(f"{seed}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


_PROBE = ("The river rose after three days of rain, and the old stone bridge that the town had "
          "built two centuries earlier was closed while engineers inspected its arches.")
_INVARIANT: dict[str, bool] = {}
MIN_REST = 2  # prompt tokens always decoded afresh: a 1-token batch takes another kernel path


def _last_logits(llm: Any) -> Any:
    import numpy as np

    return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).copy()


def split_invariant(llm: Any) -> bool:
    """True if this llama.cpp build gives bit-identical last-token logits for a prompt decoded
    in one batch, in two batches of any shape prefix reuse can produce, and as the
    continuation of a different prompt (and its generated tokens) that shares its start.
    Kernels for small batches differ by build and quantisation: SmolLM2's Q8 passes on
    x86 CPUs, Qwen2.5's 4-bit GGUF does not (repacked kernels want multiples of 4 rows).
    Leaves the context empty."""
    import numpy as np

    toks = llm.tokenize(_PROBE.encode("utf-8"), add_bos=True)
    other = llm.tokenize(b" A completely different ending about mountains.", add_bos=False)
    n = len(toks)

    def split(keep: int, detour: list[int] = ()) -> Any:
        llm.reset()
        llm.eval(toks[:keep] + list(detour))
        for t in detour[:3]:  # a few one-token decodes, as generation leaves behind
            llm.eval([t])
        llm._ctx.kv_cache_seq_rm(-1, keep, -1)  # roll back to the shared prefix, as Llama.generate does
        llm.n_tokens = keep
        llm.eval(toks[keep:])
        return _last_logits(llm)

    try:
        llm.reset()
        llm.eval(toks)
        ref = _last_logits(llm)
        cuts = [n - r for r in (MIN_REST, 3, 5, 7, n // 2)] + [1]
        same = all(np.array_equal(ref, split(k)) for k in cuts) and \
            all(np.array_equal(ref, split(k, other)) for k in (n - MIN_REST, n // 2))
    finally:
        llm.reset()
    return bool(same)


def _probe_key(path: Path, n_threads: int) -> str:
    """What the probe's answer depends on: this model file, this llama.cpp build, the thread count."""
    import llama_cpp

    st = path.stat()
    lib = Path(llama_cpp.__file__).parent / "lib"
    libs = sorted((f.name, f.stat().st_size, int(f.stat().st_mtime)) for f in lib.glob("*.so*")) if lib.is_dir() else []
    blob = json.dumps([str(path.resolve()), st.st_size, int(st.st_mtime), llama_cpp.__version__, libs, n_threads])
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def probe_cache_path() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ads-harness" / "split_invariant.json"


def probed_split_invariant(llm: Any, path: Path) -> bool:
    """`split_invariant` once per (file, build, thread count) on this machine: the answer is kept in
    memory and in ~/.cache/ads-harness, since under CPU contention the probe can take seconds and
    every process that loads a model (kill-test restarts, Ray workers) would pay it again."""
    key = _probe_key(path, llm.n_threads)
    if key in _INVARIANT:
        return _INVARIANT[key]
    store = probe_cache_path()
    try:
        known = json.loads(store.read_text())
    except (OSError, ValueError):
        known = {}
    if isinstance(known, dict) and isinstance(known.get(key), bool):
        _INVARIANT[key] = known[key]
        return known[key]
    _INVARIANT[key] = split_invariant(llm)
    try:
        from models.files import atomic_write_json

        store.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(store, {**(known if isinstance(known, dict) else {}), key: _INVARIANT[key]})
    except OSError:
        pass  # a read-only home only costs the probe again next time
    return _INVARIANT[key]


class LlamaCppModel:
    def __init__(self, path: str | Path, *, model_id: str | None = None, n_ctx: int = 2048,
                 n_threads: int | None = None, n_batch: int = 512, verbose: bool = False,
                 reuse_prefix: bool | None = None):
        from llama_cpp import Llama

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelLoadError(f"GGUF file not found: {self.path}")
        self.model_id = model_id or self.path.stem
        self.n_ctx = n_ctx
        threads = n_threads or os.cpu_count() or 1
        # prompt processing gets the same thread count: llama-cpp-python would otherwise use every
        # core for it, and a run limited to 1 thread beside other work then spins on a busy core
        self.llm = Llama(model_path=str(self.path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                         n_batch=n_batch, verbose=verbose, seed=0)
        if reuse_prefix is None:
            reuse_prefix = probed_split_invariant(self.llm, self.path)
        self.reuse_prefix = reuse_prefix
        if self.reuse_prefix:
            self._bound_reuse()
        self._lock = threading.Lock()
        self._grammars: dict[str, Any] = {}

    def _bound_reuse(self) -> None:
        """Make Llama.generate decode at least MIN_REST prompt tokens afresh: on a repeated
        prompt it would otherwise replay only the last one, in a 1-token batch whose logits
        differ from the batched ones."""
        llm, inner = self.llm, self.llm.generate

        def generate(tokens: Any, *args: Any, **kwargs: Any) -> Any:
            tokens = list(tokens)
            llm.n_tokens = min(llm.n_tokens, max(0, len(tokens) - MIN_REST))
            return inner(tokens, *args, **kwargs)

        llm.generate = generate

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
