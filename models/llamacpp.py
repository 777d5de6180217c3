"""GGUF models through llama-cpp-python, with JSON-schema-constrained decoding.

Small models (135M-0.5B) rarely write valid JSON on request; a grammar compiled from the
JSON schema makes every completion parse. Grammars are compiled once per schema. llama.cpp
contexts are not thread-safe, so calls on one instance are serialised. `json_decoding`
picks the engine: llguidance token masks applied as a logits processor (the default:
models/constrained.py, GBNF's grammar and GBNF's choice of tokens at ~1.7x less cost per
token; a schema it cannot read falls back to GBNF), or llama.cpp's GBNF grammar sampler.

Reproducibility first, then speed. A call can skip the prompt tokens whose KV state it
already has: from the previous call on this instance, and with `prefix_cache_mb` from a RAM
cache of recent prompts' states (models/prefix_cache.py). That saves re-reading the chat
template, system prompt and shared context on every call (resetting instead cost 14% of
tokens/s on short prompts, bench/README.md). It is only safe if the logits do not depend on
how the prompt was split into batches: on a build where they do, greedy output would depend
on which request came before, and a resumed run would not reproduce a fresh one.
`reuse_prefix=None` (the default) therefore checks this build at load (`split_invariant`: a
prompt decoded in one batch, in two, and after a different prompt that shares its start must
give bit-identical logits). Builds that fail it at arbitrary cuts are probed again at cuts
that are multiples of 4 and 8 followed by at least twice that many tokens (Qwen2.5's 4-bit
GGUF on x86 repacks its weights for kernels that take activation rows in blocks: there, cuts
at multiples of 4 followed by >= 8 tokens are bit-identical, see models/prefix_cache.py);
reuse is then on at the smallest alignment that holds, and off (the context reset before
every call) if none does. `True`/`False` force either way (True: any
cut). Only prompt-batch-evaluated tokens are ever reused, never generated ones (see
models/prefix_cache.py), and the part of the prompt after the cut is decoded in n_batch
chunks at the same absolute positions as a fresh evaluation. Verdicts are kept per (file,
build, thread count) in ~/.cache/ads-harness/split_invariant.json.

Every completion reports what it computed in `meta`: prompt tokens actually evaluated
(`prompt_eval_tokens`, after reuse), `prefix_reused`, `prefill_s` (cache lookup, state load
and prompt evaluation) and `decode_s` (sampling and one-token decodes until the end).
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from models.base import Completion, Message, ModelError, derived_seed, validate_messages
from models.errors import ModelLoadError
from models.prefix_cache import MIN_REST, PrefixStateCache, common_prefix, min_rest, reusable

JSON_ENGINES = ("gbnf", "llguidance")
log = logging.getLogger(__name__)


_PROBE = ("The river rose after three days of rain, and the old stone bridge that the town had "
          "built two centuries earlier was closed while engineers inspected its arches.")
_INVARIANT: dict[str, Any] = {}
ALIGNMENTS = (4, 8)  # cut alignments probed when arbitrary cuts are not split-invariant


def _last_logits(llm: Any) -> Any:
    import numpy as np

    return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).copy()


def split_invariant(llm: Any, align: int = 1) -> bool:
    """True if this llama.cpp build gives bit-identical last-token logits for a prompt decoded
    in one batch, in two batches of any shape prefix reuse can produce, and as the
    continuation of a different prompt (and its generated tokens) that shares its start.
    `align` > 1: only the cuts reuse at that alignment produces (multiples of it, followed by
    at least min_rest(align) tokens), in one and in two steps, on a prompt twice as long.
    Kernels for small batches differ by build and quantisation: SmolLM2's GGUF passes at any
    cut on x86 CPUs, Qwen2.5's 4-bit GGUF only at aligned cuts. Leaves the context empty."""
    import numpy as np

    text = _PROBE if align <= 1 else f"{_PROBE} {_PROBE}"
    toks = llm.tokenize(text.encode("utf-8"), add_bos=True)
    other = llm.tokenize(b" A completely different ending about mountains.", add_bos=False)
    n = len(toks)

    def split(keeps: list[int], detour: list[int] = ()) -> Any:
        llm.reset()
        llm.eval(toks[:keeps[0]] + list(detour))
        for t in detour[:3]:  # a few one-token decodes, as generation leaves behind
            llm.eval([t])
        llm._ctx.kv_cache_seq_rm(-1, keeps[0], -1)  # roll back to the shared prefix, as Llama.generate does
        llm.n_tokens = keeps[0]
        for a, b in zip(keeps, keeps[1:] + [n]):
            llm.eval(toks[a:b])
        return _last_logits(llm)

    if align <= 1:
        cuts = [[n - r] for r in (MIN_REST, 3, 5, 7, n // 2)] + [[1]]
        detours = [n - MIN_REST, n // 2]
    else:
        ks = list(range(align, n - min_rest(align) + 1, align))
        if not ks:
            return False
        cuts = [[k] for k in sorted({ks[0], ks[len(ks) // 2], ks[-1]})] + ([ks[:1] + ks[-1:]] if len(ks) > 1 else [])
        detours = sorted({ks[0], ks[-1]})
    try:
        llm.reset()
        llm.eval(toks)
        ref = _last_logits(llm)
        same = all(np.array_equal(ref, split(k)) for k in cuts) and \
            all(np.array_equal(ref, split([k], other)) for k in detours)
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


def _remembered(key: str, valid: Any, probe: Any) -> Any:
    """The probe's verdict under `key`: from memory, from ~/.cache/ads-harness, or probed and stored."""
    if key in _INVARIANT:
        return _INVARIANT[key]
    store = probe_cache_path()
    try:
        known = json.loads(store.read_text())
    except (OSError, ValueError):
        known = {}
    if isinstance(known, dict) and valid(known.get(key)):
        _INVARIANT[key] = known[key]
        return known[key]
    _INVARIANT[key] = probe()
    try:
        from models.files import atomic_write_json

        store.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(store, {**(known if isinstance(known, dict) else {}), key: _INVARIANT[key]})
    except OSError:
        pass  # a read-only home only costs the probe again next time
    return _INVARIANT[key]


def probed_split_invariant(llm: Any, path: Path) -> bool:
    """`split_invariant` once per (file, build, thread count) on this machine: the answer is kept in
    memory and in ~/.cache/ads-harness, since under CPU contention the probe can take seconds and
    every process that loads a model (kill-test restarts, Ray workers) would pay it again."""
    return _remembered(_probe_key(path, llm.n_threads), lambda v: isinstance(v, bool), lambda: split_invariant(llm))


def probed_reuse_align(llm: Any, path: Path) -> int:
    """The cut alignment at which prefix reuse is split-invariant on this build: 1 (any cut),
    one of ALIGNMENTS, or 0 (none: no reuse). Remembered like probed_split_invariant."""
    if probed_split_invariant(llm, path):
        return 1

    def probe() -> int:
        return next((a for a in ALIGNMENTS if split_invariant(llm, a)), 0)

    return int(_remembered(f"{_probe_key(path, llm.n_threads)}:aligned-reuse:{min_rest(ALIGNMENTS[0])}",
                           lambda v: type(v) is int and (v == 0 or v in ALIGNMENTS), probe))


class LlamaCppModel:
    def __init__(self, path: str | Path, *, model_id: str | None = None, n_ctx: int = 2048,
                 n_threads: int | None = None, n_batch: int = 512, verbose: bool = False,
                 reuse_prefix: bool | None = None, prefix_cache_mb: int = 0, json_decoding: str = "llguidance"):
        from llama_cpp import Llama

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelLoadError(f"GGUF file not found: {self.path}")
        if json_decoding not in JSON_ENGINES:
            raise ModelLoadError(f"json_decoding must be one of {', '.join(JSON_ENGINES)}, got {json_decoding!r}")
        self.model_id = model_id or self.path.stem
        self.n_ctx = n_ctx
        threads = n_threads or os.cpu_count() or 1
        # prompt processing gets the same thread count: llama-cpp-python would otherwise use every
        # core for it, and a run limited to 1 thread beside other work then spins on a busy core
        llm = Llama(model_path=str(self.path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                    n_batch=n_batch, verbose=verbose, seed=0)
        if reuse_prefix is None:
            align = probed_reuse_align(llm, self.path)
        else:
            align = 1 if reuse_prefix else 0
        self._attach(llm, reuse_align=align, prefix_cache_mb=prefix_cache_mb, json_decoding=json_decoding)

    def _attach(self, llm: Any, *, reuse_align: int, prefix_cache_mb: int = 0, json_decoding: str = "gbnf") -> None:
        """Wrap a loaded llama_cpp.Llama (unit tests pass a stand-in with the same interface)."""
        self.llm = llm
        self.n_batch = llm.n_batch
        self.reuse_align = reuse_align
        self.reuse_prefix = self.reuse_align > 0
        self.state_cache = (PrefixStateCache(int(prefix_cache_mb) << 20)
                            if self.reuse_prefix and prefix_cache_mb > 0 else None)
        self._masks: Any = None
        if json_decoding == "llguidance":
            from models import constrained

            if constrained.available():
                self._masks = constrained.JsonMasks(self.llm)
            else:  # the same outputs, only dearer: say so once and decode with GBNF
                log.warning("json_decoding llguidance: the llguidance package is not installed "
                            "(pip install -r requirements.txt); JSON-schema calls use GBNF")
                json_decoding = "gbnf"
        self.json_decoding = json_decoding
        self._lock = threading.Lock()
        self._grammars: dict[str, Any] = {}
        self._batched = 0  # leading tokens of the live context that were prompt-batch evaluated
        self._call: dict[str, Any] | None = None  # accounting of the call in progress
        self._instrument()

    @property
    def cache_identity(self) -> str:
        """The request cache's key for this model (models/caching.py): the one a llama.cpp model
        always had, plus the JSON engine when it is not GBNF. llguidance's masks are built to
        allow exactly GBNF's tokens (and gave the same outputs wherever compared), but a cached
        completion is replayed only for the engine that produced it. Prefix reuse and the state
        cache are not part of it: they never change an output."""
        from models.caching import _file_identity

        base = f"{type(self).__name__}|{_file_identity(self.path)}|{self.model_id}"
        return base if self.json_decoding == "gbnf" else f"{base}|json:{self.json_decoding}"

    # -- prompt state reuse and accounting ------------------------------------------------
    def _instrument(self) -> None:
        """Route Llama.generate through `_prepare` (which prefix to keep, from the live context or
        the state cache) and time/count Llama.eval's prompt batch apart from the one-token decodes."""
        llm, inner_generate, inner_eval = self.llm, self.llm.generate, self.llm.eval

        def generate(tokens: Any, *args: Any, **kwargs: Any) -> Any:
            tokens = list(tokens)
            self._prepare(tokens)
            return inner_generate(tokens, *args, **kwargs)

        def eval_(tokens: Any) -> None:
            call = self._call
            if call is None or call["phase"] != "prefill":
                return inner_eval(tokens)
            tokens = list(tokens)
            n = len(tokens)
            # decode the rest of the prompt in n_batch chunks at the absolute positions a fresh
            # evaluation uses: first up to the next chunk boundary, then whole chunks
            head = (-llm.n_tokens) % self.n_batch
            if 0 < head < n:
                inner_eval(tokens[:head])
                tokens = tokens[head:]
            inner_eval(tokens)
            call["prompt_eval_tokens"] += n
            call["phase"] = "decode"
            call["t_prefilled"] = time.perf_counter()
            self._batched = llm.n_tokens

        llm.generate, llm.eval = generate, eval_

    def _prepare(self, tokens: list[int]) -> None:
        llm, call = self.llm, self._call
        n = len(tokens)
        if call is not None:
            call.update(phase="prefill", n_prompt=n)
        keep = 0
        if self.reuse_prefix:
            live = common_prefix(llm.input_ids[:llm.n_tokens], tokens)
            keep = reusable(live, self._batched, n, align=self.reuse_align, n_batch=self.n_batch)
            if self.state_cache is not None:
                entry, p = self.state_cache.best(
                    tokens, lambda c: reusable(c, c, n, align=self.reuse_align, n_batch=self.n_batch))
                if entry is not None and p > keep and self._load(entry):
                    keep = p
                    self.state_cache.stats.tokens_reused += p
                    if call is not None:
                        call["state_cache"] = "hit"
        llm.n_tokens = min(keep, llm.n_tokens)
        self._batched = min(self._batched, llm.n_tokens)
        if call is not None:
            call["prefix_reused"] = llm.n_tokens

    def _load(self, entry: Any) -> bool:
        """Replace the live context by a cached prompt state."""
        llm, t0 = self.llm, time.perf_counter()
        m = len(entry.tokens)
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        ok = self._write_state(entry.blob)
        if ok:
            llm.input_ids[:m] = entry.tokens
            llm.n_tokens = m
            self._batched = m
        else:  # cannot happen for a state saved from this context; decode the whole prompt then
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
            llm.n_tokens = self._batched = 0
        llm._requires_eval = True
        self.state_cache.stats.load_s += time.perf_counter() - t0
        if ok:
            self.state_cache.stats.hits += 1
        return ok

    def _save(self, n_prompt: int) -> None:
        """Keep the state of this call's prompt in the state cache (its generated tokens are
        dropped first: they are never reused)."""
        cache, llm = self.state_cache, self.llm
        if cache is None or self._batched < n_prompt or n_prompt < cache.min_tokens:
            return
        prompt = llm.input_ids[:n_prompt].copy()
        if cache.covers(prompt):
            return
        t0 = time.perf_counter()
        llm._ctx.kv_cache_seq_rm(-1, n_prompt, -1)
        llm.n_tokens = n_prompt
        blob = self._read_state()
        if blob:
            cache.put(prompt, blob)
        cache.stats.save_s += time.perf_counter() - t0

    def _read_state(self) -> bytearray | None:
        """The KV state of the live context's sequence (llama_state_seq_get_data)."""
        import llama_cpp

        ctx = self.llm._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        blob = bytearray(size)
        written = llama_cpp.llama_state_seq_get_data(ctx, (ctypes.c_uint8 * size).from_buffer(blob), size, 0)
        if not 0 < written <= size:
            return None
        return blob if written == size else blob[:written]

    def _write_state(self, blob: bytearray) -> bool:
        import llama_cpp

        buf = (ctypes.c_uint8 * len(blob)).from_buffer(blob)
        return llama_cpp.llama_state_seq_set_data(self.llm._ctx.ctx, buf, len(blob), 0) == len(blob)

    # -- decoding -------------------------------------------------------------------------
    def _grammar(self, schema: dict[str, Any]) -> Any:
        from llama_cpp import LlamaGrammar

        from models.constrained import CONVERT_LOCK, schema_text

        key = schema_text(schema)
        if key not in self._grammars:
            with CONVERT_LOCK:  # the llguidance path swaps a converter global while it converts
                self._grammars[key] = LlamaGrammar.from_json_schema(key, verbose=False)
        return self._grammars[key]

    def _constrain(self, schema: dict[str, Any], kwargs: dict[str, Any]) -> Any:
        """Set the grammar or the token-mask processor for a JSON-schema call; returns the processor."""
        if self._masks is not None:
            grammar = self._masks.grammar(schema)
            if grammar is not None:
                from llama_cpp import LogitsProcessorList

                proc = self._masks.processor(grammar)
                kwargs["logits_processor"] = LogitsProcessorList([proc])
                return proc
        kwargs["grammar"] = self._grammar(schema)
        return None

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def generate(self, messages: list[Message], *, max_tokens: int = 256, temperature: float = 0.0, seed: int = 0,
                 sample_id: int | str = 0, json_schema: dict[str, Any] | None = None) -> Completion:
        validate_messages(messages)
        kwargs: dict[str, Any] = dict(messages=messages, max_tokens=max_tokens, temperature=float(temperature),
                                      seed=derived_seed(seed, sample_id))
        with self._lock:
            proc = self._constrain(json_schema, kwargs) if json_schema is not None else None
            if not self.reuse_prefix:
                self.llm.reset()
                self._batched = 0
            t0 = time.perf_counter()
            call = self._call = {"phase": "setup", "prompt_eval_tokens": 0, "prefix_reused": 0, "n_prompt": 0,
                                 "t_prefilled": None, "state_cache": "miss" if self.state_cache is not None else None}
            try:
                out = self.llm.create_chat_completion(**kwargs)
            except ValueError as e:  # e.g. prompt longer than the context window
                self._forget()
                raise ModelError(f"{self.model_id}: {e}") from e
            except BaseException:
                self._forget()
                raise
            finally:
                self._call = None
            t1 = time.perf_counter()
            self._save(call["n_prompt"])
        latency = t1 - t0
        t_pre = call["t_prefilled"] or t1
        meta: dict[str, Any] = {"prompt_eval_tokens": call["prompt_eval_tokens"],
                                "prefix_reused": call["prefix_reused"],
                                "prefill_s": round(t_pre - t0, 6), "decode_s": round(t1 - t_pre, 6)}
        if call["state_cache"] is not None:
            meta["state_cache"] = call["state_cache"]
        if proc is not None:
            meta["json_decoding"] = "llguidance"
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            model_id=self.model_id,
            latency_s=latency,
            finish_reason=choice.get("finish_reason") or "stop",
            meta=meta,
        )

    def _forget(self) -> None:
        """After a failed call the live context is in an unknown state: reuse none of it."""
        self.llm.reset()
        self._batched = 0
