"""JSON-schema-constrained decoding through llguidance token masks (llama.cpp backend).

llama.cpp's GBNF grammar sampler checks every candidate token against the grammar's stacks at
every step (1.8-1.9x the cost of a free-text token here, bench/README.md); llguidance computes
the set of allowed next tokens from a lexer/parser over the tokenizer's trie and returns it as
a bitmask, applied to the logits through llama-cpp-python's `logits_processor` hook (a custom
sampler at the head of the chain, so greedy/top-k/top-p/temperature then run on the masked
logits as they do after the GBNF sampler).

The grammar llguidance enforces is the very one the GBNF engine would: llama-cpp-python's own
JSON-schema-to-GBNF conversion, with bounded repetitions written as `x{m,n}` instead of nested
optionals `(x (x ...)?)?` (the same language; the nested form is too deep for llguidance's
GBNF reader), converted to Lark by llguidance. So a token is allowed under one engine exactly
when it is under the other, and outputs stay the same (the bench and the integration tests
compare them). A schema whose grammar llguidance cannot read is decoded with GBNF
(`JsonMasks.grammar` returns None).
"""
from __future__ import annotations

import bisect
import ctypes
import json
import threading
import time
from typing import Any

import numpy as np

# llama-cpp-python's JSON-schema converter reads this module global at call time; while it is
# swapped for the compact form no other conversion may run (models/llamacpp.py takes the lock too)
CONVERT_LOCK = threading.Lock()


def schema_text(schema: dict[str, Any]) -> str:
    """The schema as the grammar converters read it, and the key their grammars are kept under:
    in the schema's own key order (never sorted), because a grammar writes properties in it."""
    return json.dumps(schema)


def _compact_repetition(item_rule: str, min_items: int, max_items: int | None, separator_rule: str | None = None,
                        item_rule_is_literal: bool = False) -> str:
    """llama_grammar._build_repetition's language, written with {m,n} instead of nested optionals."""
    hi = "" if max_items is None else str(max_items)
    if not separator_rule:
        if min_items == 0 and max_items == 1:
            return f"{item_rule}?"
        if min_items == 1 and max_items is None:
            return f"{item_rule}+"
        if min_items == 0 and max_items is None:
            return f"({item_rule})*"
        return f"({item_rule}){{{min_items},{hi}}}"
    if max_items == 0:
        return ""
    rest_hi = "" if max_items is None else str(max_items - 1)
    body = f"{item_rule} ({separator_rule} {item_rule}){{{max(min_items - 1, 0)},{rest_hi}}}"
    return body if min_items > 0 else f"({body})?"


def gbnf_for(schema_json: str) -> str:
    """The GBNF llama-cpp-python's GBNF engine enforces for this schema, repetitions compact."""
    from llama_cpp import llama_grammar as lg

    with CONVERT_LOCK:
        original = lg._build_repetition
        lg._build_repetition = _compact_repetition
        try:
            return lg.json_schema_to_gbnf(schema_json)
        finally:
            lg._build_repetition = original


def available() -> bool:
    try:
        import llguidance  # noqa: F401
        import llguidance.llamacpp  # noqa: F401
    except Exception:
        return False
    return True


def eog_tokens(llm: Any) -> list[int]:
    """Every end-of-generation token of the model's vocabulary (llama-cpp-python stops on any)."""
    import llama_cpp

    vocab = llm._model.vocab
    return [t for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)]


class JsonMasks:
    """Compiled schemas and the tokenizer llguidance needs, for one llama.cpp model.

    Building the tokenizer walks the vocabulary once (~0.3-1 s): it is done on first use."""

    def __init__(self, llm: Any):
        self.llm = llm
        self.n_vocab = llm.n_vocab()
        self._tok: Any = None
        self.by_bytes: dict[bytes, list[int]] = {}  # the text of every token llguidance reads as text
        self.sorted_pieces: list[tuple[bytes, int]] = []
        # tokens llguidance treats as special (control tokens, <...> user-defined ones) but GBNF
        # reads as their text (llama.cpp's piece cache renders them), except end-of-generation
        # ones: their text as ordinary tokens
        self.special_text: dict[int, list[int]] = {}
        self._grammars: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self.errors: dict[str, str] = {}  # schema key -> why llguidance refused it (GBNF used instead)

    def tokenizer(self) -> Any:
        with self._lock:
            if self._tok is None:
                import llama_cpp
                from llguidance import LLTokenizer

                vocab = self.llm._model.vocab
                eog = set(eog_tokens(self.llm))
                buf = ctypes.create_string_buffer(16 * 1024 + 1)
                tokens: list[bytes] = []  # as llguidance.llamacpp.lltokenizer_from_vocab builds them
                for t in range(self.n_vocab):
                    n = llama_cpp.llama_token_to_piece(vocab, t, buf, 16 * 1024, 0, True)  # as GBNF reads it
                    if n < 0:
                        raise ValueError(f"token {t}: no piece ({n})")
                    piece = bytes(buf[:n])
                    attr = llama_cpp.llama_vocab_get_attr(vocab, t)
                    special = bool(attr & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL or (
                        attr & llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED and piece.startswith(b"<")
                        and piece.endswith(b">")))
                    tokens.append(b"\xff" + piece if special else piece)
                    if not piece or t in eog:
                        continue
                    if special:
                        self.special_text[t] = self.llm.tokenize(piece, add_bos=False, special=False)
                    else:
                        self.by_bytes.setdefault(piece, []).append(t)
                self.sorted_pieces = sorted((p, t) for p, ts in self.by_bytes.items() for t in ts)
                fptr = ctypes.cast(llama_cpp.llama_cpp._lib.llama_tokenize, ctypes.c_void_p).value
                self._tok = LLTokenizer.from_llamacpp(tokens=tokens, vocab_ptr=vocab, tokenize_fptr=fptr,
                                                      eos_token=sorted(eog), slices=None)
            return self._tok

    def grammar(self, schema: dict[str, Any]) -> str | None:
        """The llguidance grammar for a schema, or None if llguidance cannot read it."""
        key = schema_text(schema)
        if key not in self._grammars:
            import llguidance
            from llguidance import LLMatcher

            try:
                g = llguidance.grammar_from("gbnf", gbnf_for(key))
                is_error, msgs = LLMatcher.validate_grammar_with_warnings(g, self.tokenizer())
            except (ValueError, TypeError, RuntimeError, RecursionError) as e:
                g, is_error, msgs = None, True, [str(e)]
            if is_error:
                self.errors[key] = "; ".join(msgs)[:300]
                g = None
            self._grammars[key] = g
        return self._grammars[key]

    def processor(self, grammar: str) -> "MaskProcessor":
        return MaskProcessor(self, grammar)

    def extending(self, prefix: bytes) -> list[int]:
        """Tokens whose bytes start with `prefix` and are longer."""
        lo = bisect.bisect_right(self.sorted_pieces, (prefix, self.n_vocab))
        out = []
        for piece, t in self.sorted_pieces[lo:]:
            if not piece.startswith(prefix):
                break
            out.append(t)
        return out


class MaskProcessor:
    """A llama-cpp-python logits processor for one completion: it feeds the tokens generated
    since its first call to an llguidance matcher and sets every disallowed logit to -inf.

    Two places where llguidance's mask and llama.cpp's GBNF sampler differ are brought to GBNF's
    choice: where the grammar forces the next bytes (a key, a closing quote), llguidance allows
    only the tokenizer's canonical split of them, GBNF any token that continues the text (so
    there every token that is a prefix of the forced bytes, and every longer one starting with
    them that the matcher accepts, is allowed); and GBNF reads control tokens as their text
    (`<|im_start|>` may sit inside a JSON string), llguidance never allows them (so each is
    allowed when the matcher accepts its text, and consumed as that text)."""

    def __init__(self, masks: JsonMasks, grammar: str):
        from llguidance import LLMatcher

        self.masks = masks
        self.matcher = LLMatcher(masks.tokenizer(), grammar, log_level=0)
        self.n_vocab = masks.n_vocab
        self.mask = np.zeros((self.n_vocab + 31) // 32, dtype=np.int32)
        self.eos = masks.tokenizer().eos_token
        self.n_prompt: int | None = None
        self.consumed = 0
        self.steps = 0
        self.forced_steps = 0
        self.mask_s = 0.0

    def allowed(self) -> np.ndarray:
        """Which tokens may come next (a bool per vocabulary entry)."""
        if self.matcher.is_error():
            allowed = np.zeros(self.n_vocab, dtype=bool)
            allowed[self.eos] = True  # end the completion; the caller's JSON check counts it
            return allowed
        self.matcher.unsafe_compute_mask_ptr(self.mask.ctypes.data, self.mask.nbytes)
        allowed = np.unpackbits(self.mask.view(np.uint8), bitorder="little")[:self.n_vocab].astype(bool)
        forced = self.matcher.compute_ff_bytes()
        if forced:
            self.forced_steps += 1
            for n in range(1, len(forced) + 1):
                for t in self.masks.by_bytes.get(forced[:n], ()):
                    allowed[t] = True
            for t in self.masks.extending(forced):
                if not allowed[t] and self.matcher.validate_tokens([t]) == 1:
                    allowed[t] = True
        for t, plain in self.masks.special_text.items():
            if plain and self.matcher.validate_tokens(plain) == len(plain):
                allowed[t] = True
        return allowed

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        if self.n_prompt is None:
            self.n_prompt = len(input_ids)  # the first call comes right after the prompt
        new = input_ids[self.n_prompt + self.consumed:]
        if len(new):
            special = self.masks.special_text
            text: list[int] = []
            for t in map(int, new):
                text.extend(special.get(t, (t,)))
            self.matcher.consume_tokens(text)
            self.consumed += len(new)
        scores[~self.allowed()] = -np.inf
        self.steps += 1
        self.mask_s += time.perf_counter() - t0
        return scores
