"""Prompt state reuse (models/prefix_cache.py, models/llamacpp.py) without a real model.

The rule (`reusable`), the bounded state cache, and LlamaCppModel's use of both on a stand-in
for llama_cpp.Llama that behaves like llama-cpp-python 0.3's Llama.generate/eval and records,
for every KV position, the token and the batch that computed it. What must hold: a call only
ever keeps KV that a prompt batch computed (never a generated token's one-token decode), keeps
at least min_rest(align) prompt tokens to decode, cuts at a multiple of the alignment, decodes
the rest in chunks at the absolute positions a fresh evaluation uses, and answers exactly as
with reuse off.
"""
from __future__ import annotations

import pickle
import zlib
from pathlib import Path

import numpy as np
import pytest

from models.llamacpp import LlamaCppModel
from models.prefix_cache import MIN_REST, PrefixStateCache, common_prefix, min_rest, reusable


# --- a stand-in for llama_cpp.Llama ------------------------------------------------------------
class _Ctx:
    def __init__(self, llm: "FakeLlama"):
        self.llm = llm

    def kv_cache_seq_rm(self, seq_id: int, p0: int, p1: int) -> bool:
        assert p1 == -1
        del self.llm.kv[p0:]
        return True


class FakeLlama:
    """What LlamaCppModel uses of llama_cpp.Llama. `kv[i]` = (token, start, size) of the batch
    that computed position i; `batches` lists every eval's (start, size)."""

    def __init__(self, n_ctx: int = 1024, n_batch: int = 512):
        self.n_batch = n_batch
        self.input_ids = np.zeros(n_ctx, dtype=np.intc)
        self.n_tokens = 0
        self.kv: list[tuple[int, int, int]] = []
        self._ctx = _Ctx(self)
        self._requires_eval = True
        self.batches: list[tuple[int, int]] = []
        self.prompts: list[list[int]] = []

    @property
    def _input_ids(self) -> np.ndarray:
        return self.input_ids[: self.n_tokens]

    @staticmethod
    def tokenize(text: str) -> list[int]:
        return [1] + [zlib.crc32(w.encode()) % 900 + 10 for w in text.split()]

    def reset(self) -> None:
        self.n_tokens = 0

    def eval(self, tokens) -> None:  # as llama_cpp.Llama.eval
        self._ctx.kv_cache_seq_rm(-1, self.n_tokens, -1)
        for i in range(0, len(tokens), self.n_batch):
            batch = list(tokens[i: i + self.n_batch])
            start = self.n_tokens
            self.input_ids[start: start + len(batch)] = batch
            self.kv.extend((t, start, len(batch)) for t in batch)
            self.batches.append((start, len(batch)))
            self.n_tokens += len(batch)

    def generate(self, tokens, **kw):  # the prefix logic of llama_cpp.Llama.generate (0.3.x)
        tokens = list(tokens)
        reset = True
        if self.n_tokens > 0:
            longest = common_prefix(self._input_ids, tokens)
            reuse = longest - 1 if longest == len(tokens) else longest
            if reuse > 0:
                self._ctx.kv_cache_seq_rm(-1, reuse, -1)
                reset, tokens, self.n_tokens = False, tokens[reuse:], reuse
        if reset:
            self.reset()
        while True:
            self.eval(tokens)
            # the next token depends on the whole context (by content only)
            nxt = int(sum((i + 1) * t for i, (t, _, _) in enumerate(self.kv)) % 900 + 10)
            yield nxt
            tokens = [nxt]

    def create_chat_completion(self, messages, max_tokens=16, temperature=0.0, seed=0, **kw):
        prompt = self.tokenize(" ".join(f"<{m['role']}> {m['content']}" for m in messages))
        self.prompts.append(prompt)
        out = []
        for tok in self.generate(prompt):
            out.append(tok)
            if len(out) >= max_tokens:
                break
        return {"choices": [{"message": {"content": " ".join(map(str, out))}, "finish_reason": "length"}],
                "usage": {"prompt_tokens": len(prompt), "completion_tokens": len(out)}}


class FakeBacked(LlamaCppModel):
    """LlamaCppModel on a FakeLlama: the state cache stores the fake's KV provenance list."""

    def _read_state(self):
        return bytearray(pickle.dumps(self.llm.kv))

    def _write_state(self, blob) -> bool:
        self.llm.kv = pickle.loads(bytes(blob))
        return True


def fake_model(align: int = 1, cache_mb: int = 0, n_batch: int = 512) -> FakeBacked:
    m = FakeBacked.__new__(FakeBacked)
    m.model_id, m.path, m.n_ctx = "fake-llama", Path("fake.gguf"), 1024
    m._attach(FakeLlama(n_batch=n_batch), reuse_align=align, prefix_cache_mb=cache_mb)
    return m


def words(n: int, tag: str) -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


def chat(system: str, user: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


# --- the rule ----------------------------------------------------------------------------
def test_common_prefix():
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([], [1]) == 0 and common_prefix([5], [6]) == 0
    assert common_prefix(np.array([1, 2, 3], dtype=np.intc), [1, 2, 3]) == 3


def test_reusable_keeps_only_batched_tokens_and_leaves_the_rest_to_decode():
    assert min_rest(1) == MIN_REST == 2 and min_rest(4) == 8
    assert reusable(100, 100, 100, align=1, n_batch=512) == 98  # a repeated prompt: the last 2 afresh
    assert reusable(100, 40, 120, align=1, n_batch=512) == 40  # beyond 40 the state holds generated tokens
    assert reusable(30, 100, 120, align=1, n_batch=512) == 30
    assert reusable(30, 100, 120, align=0, n_batch=512) == 0  # reuse off
    assert reusable(1, 1, 1, align=1, n_batch=512) == 0


def test_reusable_cuts_at_the_alignment_with_enough_tokens_after_it():
    assert reusable(30, 100, 120, align=4, n_batch=512) == 28
    assert reusable(100, 100, 100, align=4, n_batch=512) == 92  # <= 100 - 8, a multiple of 4
    assert reusable(10, 10, 20, align=4, n_batch=512) == 8
    assert reusable(10, 10, 17, align=4, n_batch=512) == 8  # 17 - 8 = 9: cut at 8, 9 tokens after it
    assert reusable(10, 10, 15, align=4, n_batch=512) == 4
    assert reusable(3, 100, 120, align=4, n_batch=512) == 0


def test_reusable_never_leaves_a_too_short_piece_before_a_chunk_boundary():
    # cut at 63 with chunks of 64: [63, 64) would be a one-token batch, so back to 0 (64 * 0)
    assert reusable(63, 200, 200, align=1, n_batch=64) == 0
    assert reusable(62, 200, 200, align=1, n_batch=64) == 62  # [62, 64) is two tokens
    assert reusable(130, 200, 200, align=1, n_batch=64) == 130
    assert reusable(63, 200, 65, align=1, n_batch=64) == 0  # [63, 64) then [64, 65): still one token before 64
    assert reusable(60, 200, 63, align=1, n_batch=64) == 60  # the prompt ends inside the chunk: [60, 63)


# --- the cache ---------------------------------------------------------------------------
def test_best_entry_is_the_longest_reusable_prefix_and_becomes_most_recent():
    c = PrefixStateCache(10_000, min_tokens=1)
    assert c.put([1, 2, 3, 4, 5], b"a") and c.put([1, 2, 9, 9], b"b") and c.put([7, 7, 7], b"c")
    entry, n = c.best([1, 2, 3, 4, 8, 8], lambda common: common)
    assert bytes(entry.blob) == b"a" and n == 4
    entry, n = c.best([1, 2, 9, 0], lambda common: common)
    assert bytes(entry.blob) == b"b" and n == 3
    assert c.best([5, 5], lambda common: common) == (None, 0)
    assert c.best([1, 2, 3], lambda common: 0) == (None, 0)  # nothing usable
    c.capacity_bytes = c.nbytes  # one more entry must evict the least recently used: [7, 7, 7]
    c.put([8, 8, 8], b"d")
    assert [bytes(e.blob) for e in c._entries.values()] == [b"a", b"b", b"d"] and c.stats.evicted == 1


def test_least_recently_used_goes_first_and_the_bound_holds():
    per = len(b"x" * 100) + np.zeros(4, dtype=np.int32).nbytes
    c = PrefixStateCache(3 * per, min_tokens=1)
    for i in range(3):
        c.put([i, i, i, i], b"x" * 100)
    c.best([0, 0, 0, 0], lambda common: common)  # touch entry 0
    c.put([9, 9, 9, 9], b"x" * 100)
    kept = sorted(int(e.tokens[0]) for e in c._entries.values())
    assert kept == [0, 2, 9] and c.nbytes <= c.capacity_bytes


def test_a_longer_prompt_supersedes_its_prefix_and_a_covered_one_is_not_stored():
    c = PrefixStateCache(10_000, min_tokens=1)
    c.put([1, 2, 3], b"short")
    assert c.put([1, 2, 3, 4, 5], b"long") and len(c) == 1
    assert not c.put([1, 2, 3, 4], b"covered") and len(c) == 1 and c.covers([1, 2])


def test_too_short_or_too_big_states_are_not_stored():
    c = PrefixStateCache(50, min_tokens=4)
    assert not c.put([1, 2, 3], b"x")
    assert not c.put([1, 2, 3, 4], b"x" * 100)
    assert len(c) == 0


# --- the model on the stand-in ---------------------------------------------------------------
def _provenance_ok(llm: FakeLlama) -> None:
    """Every position of the last prompt was computed in a batch of >= 2 (its own evaluation or
    an earlier prompt's), never by a one-token decode, and holds the prompt's token."""
    n = len(llm.prompts[-1])
    assert all(size >= 2 for (_, _, size) in llm.kv[:n]), llm.kv[:n]
    assert [t for t, _, _ in llm.kv[:n]] == llm.prompts[-1]


def test_a_shared_prefix_is_evaluated_once_and_answers_do_not_change():
    sysp = words(60, "s")
    reqs = [chat(sysp, words(5, f"q{i}-")) for i in range(4)]
    off = fake_model(align=0)
    want = [off.generate(r, max_tokens=4) for r in reqs]
    on = fake_model(align=1)
    got = [on.generate(r, max_tokens=4) for r in reqs]
    assert [c.text for c in got] == [c.text for c in want]
    assert [c.meta["prompt_eval_tokens"] for c in want] == [c.prompt_tokens for c in want]
    assert got[0].meta["prompt_eval_tokens"] == got[0].prompt_tokens
    shared = common_prefix(on.llm.prompts[0], on.llm.prompts[1])
    for c in got[1:]:
        assert c.meta["prefix_reused"] == shared and c.meta["prompt_eval_tokens"] == c.prompt_tokens - shared
    _provenance_ok(on.llm)


def test_generated_tokens_are_never_reused_even_when_the_next_prompt_repeats_them():
    m = fake_model(align=1)
    first = m.generate(chat("sys", words(20, "u")), max_tokens=6)
    follow = chat("sys", words(20, "u"))
    follow.append({"role": "assistant", "content": first.text})
    follow.append({"role": "user", "content": "more"})
    second = m.generate(follow, max_tokens=3)
    # the assistant turn's tokens were one-token decodes in the first call: decoded again here
    assert second.meta["prefix_reused"] <= first.prompt_tokens
    _provenance_ok(m.llm)


def test_a_repeated_prompt_still_decodes_its_last_tokens():
    m = fake_model(align=1)
    msgs = chat("sys", words(30, "w"))
    a, b = m.generate(msgs, max_tokens=3), m.generate(msgs, max_tokens=3)
    assert a.text == b.text and b.meta["prompt_eval_tokens"] == MIN_REST


def test_aligned_reuse_cuts_at_a_multiple_and_decodes_enough_after_it():
    m = fake_model(align=4)
    sysp = words(50, "s")
    m.generate(chat(sysp, "first question here"), max_tokens=3)
    c = m.generate(chat(sysp, "second one"), max_tokens=3)
    assert c.meta["prefix_reused"] % 4 == 0 and c.meta["prefix_reused"] > 0
    assert c.meta["prompt_eval_tokens"] >= min_rest(4)
    _provenance_ok(m.llm)


def test_the_rest_of_the_prompt_is_decoded_in_chunks_at_fresh_positions():
    m = fake_model(align=1, n_batch=16)
    sysp = words(40, "s")
    m.generate(chat(sysp, words(30, "a")), max_tokens=2)
    m.llm.batches.clear()
    c = m.generate(chat(sysp, words(30, "b")), max_tokens=2)
    cut = c.meta["prefix_reused"]
    prompt_batches = [b for b in m.llm.batches if b[1] > 1]
    assert prompt_batches[0][0] == cut and (cut + prompt_batches[0][1]) % 16 == 0
    assert all(start % 16 == 0 for start, _ in prompt_batches[1:])


def test_the_state_cache_serves_a_prefix_the_previous_call_did_not_share():
    sys_a, sys_b = words(80, "a"), words(80, "b")
    reqs = [chat((sys_a, sys_b)[i % 2], f"question {i}") for i in range(6)]
    off = fake_model(align=0)
    want = [off.generate(r, max_tokens=4).text for r in reqs]
    live = fake_model(align=1)
    live_out = [live.generate(r, max_tokens=4) for r in reqs]
    cached = fake_model(align=1, cache_mb=16)
    cache_out = [cached.generate(r, max_tokens=4) for r in reqs]
    assert [c.text for c in live_out] == want == [c.text for c in cache_out]
    live_eval = sum(c.meta["prompt_eval_tokens"] for c in live_out)
    cache_eval = sum(c.meta["prompt_eval_tokens"] for c in cache_out)
    assert cache_eval < live_eval / 2
    assert [c.meta["state_cache"] for c in cache_out][2:] == ["hit"] * 4
    assert cached.state_cache.stats.hits == 4 and len(cached.state_cache) >= 2
    _provenance_ok(cached.llm)


def test_no_state_cache_when_reuse_is_off():
    m = fake_model(align=0, cache_mb=16)
    assert m.state_cache is None and not m.reuse_prefix
    c = m.generate(chat("sys", "hello there"), max_tokens=2)
    assert c.meta["prompt_eval_tokens"] == c.prompt_tokens and "state_cache" not in c.meta


def test_a_failed_call_forgets_the_live_context():
    m = fake_model(align=1)
    m.generate(chat("sys", words(20, "x")), max_tokens=2)

    def boom(*a, **k):
        raise ValueError("Requested tokens exceed context window")

    m.llm.create_chat_completion, real = boom, m.llm.create_chat_completion
    from models.base import ModelError

    with pytest.raises(ModelError):
        m.generate(chat("sys", words(20, "x")), max_tokens=2)
    m.llm.create_chat_completion = real
    c = m.generate(chat("sys", words(20, "x")), max_tokens=2)
    assert c.meta["prefix_reused"] == 0 and m._call is None
