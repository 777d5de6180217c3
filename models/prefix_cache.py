"""Which prompt prefix a llama.cpp call may reuse, and a bounded RAM cache of prefix states.

A call only skips prompt tokens whose KV state is bit-identical to what a fresh evaluation of
its prompt would compute, so a greedy answer never depends on which calls came before (or
were replayed from the request cache). `reusable` is that rule, kept free of llama.cpp so it
can be tested on its own; the load-time probe in models/llamacpp.py decides the alignment:

- only tokens that were evaluated as part of a prompt batch are reused: a generated token's
  KV comes from a one-token decode, another kernel path (measured on SmolLM2 and Qwen2.5: a
  prompt continued after one-token-decoded KV gives different logits than the same prompt
  decoded in one batch);
- at least `min_rest(align)` prompt tokens are decoded afresh: MIN_REST (2) at any cut, since
  a one-token batch takes another kernel path; 2 x align at aligned cuts;
- the cut is a multiple of `align`: builds whose matrix kernels process rows in blocks are
  split-invariant only at block boundaries and with enough rows after the cut. Measured on
  Qwen2.5's 4-bit GGUF (1 and 2 threads, prompts of 40-150 tokens, with and without a
  different continuation evaluated and rolled back first): every cut at a multiple of 4
  followed by 8-15 tokens gave bit-identical logits (96 of 96), every one followed by 4-7
  tokens did not (24 of 24), nor did most cuts at other positions; align 1: any cut;
- the piece of n_batch chunk left after the cut keeps at least that many tokens (the rest of
  the prompt is decoded in chunks at the same absolute positions as a fresh evaluation).

`PrefixStateCache` keeps the KV state of recent prompts (opaque bytes, what llama.cpp's
`llama_state_seq_get_data` returns) in a least-recently-used map bounded in bytes; a call
loads the entry whose reusable prefix with its prompt is longest. llama-cpp-python's own
`LlamaRAMCache` is not used: each of its entries also copies the sampler score buffer
(n_batch x vocabulary floats: 100 MB for SmolLM2, 311 MB for Qwen2.5, whatever the prompt
length), it stores every prompt+completion state, and its lookup ignores the rule above.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

MIN_REST = 2  # prompt tokens always decoded afresh: a 1-token batch takes another kernel path


def min_rest(align: int) -> int:
    """Prompt tokens decoded afresh after a cut at this alignment."""
    return MIN_REST if align <= 1 else 2 * align


def common_prefix(a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray) -> int:
    """Length of the longest common prefix of two token sequences."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    m = min(len(a), len(b))
    if m == 0:
        return 0
    diff = np.flatnonzero(a[:m] != b[:m])
    return int(diff[0]) if len(diff) else m


def reusable(common: int, batched: int, n_prompt: int, *, align: int, n_batch: int) -> int:
    """How many leading prompt tokens of an `n_prompt`-token prompt may be taken from a state
    that shares `common` tokens with it, of which the first `batched` were prompt-batch
    evaluated. 0 when reuse is off (align 0)."""
    if align <= 0:
        return 0
    rest = min_rest(align)
    p = min(common, batched, n_prompt - rest)
    if p <= 0:
        return 0
    p -= p % align
    rest_in_chunk = n_batch - p % n_batch
    if p % n_batch and rest_in_chunk < rest and p + rest_in_chunk < n_prompt:
        p -= p % n_batch  # the piece up to the next chunk boundary would be too short a batch
    return max(p, 0)


@dataclass
class PrefixState:
    tokens: np.ndarray  # the prompt tokens (all prompt-batch evaluated) whose KV state `blob` holds
    blob: bytes | bytearray

    @property
    def nbytes(self) -> int:
        return len(self.blob) + self.tokens.nbytes


@dataclass
class CacheStats:
    lookups: int = 0
    hits: int = 0  # lookups that loaded a state (it beat what the live context already had)
    saved: int = 0
    evicted: int = 0
    tokens_reused: int = 0  # prompt tokens taken from loaded states
    load_s: float = 0.0
    save_s: float = 0.0
    extra: dict = field(default_factory=dict)


class PrefixStateCache:
    """LRU map from prompt token sequences to their KV state, bounded by `capacity_bytes`.

    An entry whose tokens are a prefix of a new entry's is dropped (the new state holds it);
    a new prompt that is a prefix of an entry is not stored again. Thread-safe.
    """

    def __init__(self, capacity_bytes: int, *, min_tokens: int = 16):
        self.capacity_bytes = int(capacity_bytes)
        self.min_tokens = min_tokens  # shorter prompts are not worth an entry
        self._entries: OrderedDict[int, PrefixState] = OrderedDict()
        self._next = 0
        self._lock = threading.Lock()
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(e.nbytes for e in self._entries.values())

    def best(self, tokens: Sequence[int], usable: Callable[[int], int]) -> tuple[PrefixState | None, int]:
        """The entry with the most reusable tokens for `tokens` (usable(common prefix length) says
        how many of a shared prefix may be reused) and that count; (None, 0) if none helps.
        A returned entry becomes the most recently used."""
        toks = np.asarray(tokens, dtype=np.int64)
        best_key, best_n = None, 0
        with self._lock:
            self.stats.lookups += 1
            for key, e in self._entries.items():
                n = usable(common_prefix(e.tokens, toks))
                if n > best_n:
                    best_key, best_n = key, n
            if best_key is None:
                return None, 0
            self._entries.move_to_end(best_key)
            return self._entries[best_key], best_n

    def covers(self, tokens: Sequence[int]) -> bool:
        """True if some entry already holds the state of all of `tokens` (they are a prefix of it)."""
        toks = np.asarray(tokens, dtype=np.int64)
        with self._lock:
            for key, e in self._entries.items():
                if len(e.tokens) >= len(toks) and common_prefix(e.tokens, toks) == len(toks):
                    self._entries.move_to_end(key)
                    return True
        return False

    def put(self, tokens: Sequence[int], blob: bytes | bytearray) -> bool:
        """Store the state of `tokens`; False if it was not stored (too short, too big, or covered)."""
        toks = np.asarray(tokens, dtype=np.int32)
        entry = PrefixState(toks, blob)
        if len(toks) < self.min_tokens or entry.nbytes > self.capacity_bytes:
            return False
        if self.covers(toks):
            return False
        with self._lock:
            for key in [k for k, e in self._entries.items()
                        if len(e.tokens) <= len(toks) and common_prefix(e.tokens, toks) == len(e.tokens)]:
                del self._entries[key]  # superseded: the new state holds all of it
            self._entries[self._next] = entry
            self._next += 1
            self.stats.saved += 1
            total = sum(e.nbytes for e in self._entries.values())
            while total > self.capacity_bytes and self._entries:
                _, old = self._entries.popitem(last=False)
                total -= old.nbytes
                self.stats.evicted += 1
        return True

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
