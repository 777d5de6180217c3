"""JSON-schema-constrained decoding through llguidance token masks (llama.cpp backend).

llama.cpp's GBNF grammar sampler checks candidate tokens against the grammar's stacks at every
step; llguidance computes the set of allowed next tokens from a lexer/parser over the
tokenizer's trie and returns it as a bitmask, which is applied to the logits before sampling
through llama-cpp-python's `logits_processor` hook (a custom sampler at the head of the chain,
so greedy/top-k/top-p/temperature then run on the masked logits as they do after GBNF).

The JSON compiled here keeps the shape GBNF enforces for these schemas (llama-cpp-python's
converter allows at most one space between tokens: `space ::= " "?`), so a small model's
output stays as compact. It enforces more of a schema than GBNF does (integer bounds, for one),
so outputs can differ from the GBNF engine's; the schema's validity check after parsing
(models/structured.py) stays where it is. A schema llguidance cannot compile is decoded with
GBNF instead (`JsonMasks.grammar` returns None).
"""
from __future__ import annotations

import json
import threading
from typing import Any, Callable

import numpy as np

# Whitespace between JSON tokens: at most one space, like llama-cpp-python's GBNF converter.
OPTIONS = {"whitespace_flexible": True, "whitespace_pattern": r" ?", "item_separator": ",",
           "key_separator": ":"}


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
        self._grammars: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self.errors: dict[str, str] = {}  # schema key -> why llguidance refused it (GBNF used instead)

    def tokenizer(self) -> Any:
        with self._lock:
            if self._tok is None:
                from llguidance.llamacpp import lltokenizer_from_vocab

                self._tok = lltokenizer_from_vocab(self.llm._model.vocab, n_vocab=self.n_vocab,
                                                   eos_token=eog_tokens(self.llm))
            return self._tok

    def grammar(self, schema: dict[str, Any]) -> str | None:
        """The llguidance grammar for a schema, or None if llguidance cannot compile it."""
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            from llguidance import LLMatcher

            try:
                g = LLMatcher.grammar_from_json_schema(key, overrides=OPTIONS)
                is_error, msgs = LLMatcher.validate_grammar_with_warnings(g, self.tokenizer())
            except (ValueError, TypeError, RuntimeError) as e:
                g, is_error, msgs = None, True, [str(e)]
            if is_error or msgs:  # a warning means a keyword was ignored: GBNF then, not a looser mask
                self.errors[key] = "; ".join(msgs)[:300]
                g = None
            self._grammars[key] = g
        return self._grammars[key]

    def processor(self, grammar: str) -> "MaskProcessor":
        return MaskProcessor(self.tokenizer(), grammar, self.n_vocab)


class MaskProcessor:
    """A llama-cpp-python logits processor for one completion: it feeds the tokens generated
    since its first call to an llguidance matcher and sets every disallowed logit to -inf."""

    def __init__(self, tokenizer: Any, grammar: str, n_vocab: int):
        from llguidance import LLMatcher

        self.matcher = LLMatcher(tokenizer, grammar, log_level=0)
        self.n_vocab = n_vocab
        self.mask = np.zeros((n_vocab + 31) // 32, dtype=np.int32)
        self.eos = tokenizer.eos_token
        self.n_prompt: int | None = None
        self.consumed = 0
        self.steps = 0
        self.mask_s = 0.0

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        import time

        t0 = time.perf_counter()
        if self.n_prompt is None:
            self.n_prompt = len(input_ids)  # the first call comes right after the prompt
        new = input_ids[self.n_prompt + self.consumed:]
        if len(new):
            self.matcher.consume_tokens([int(t) for t in new])
            self.consumed += len(new)
        if self.matcher.is_error():
            allowed = np.zeros(self.n_vocab, dtype=bool)
            allowed[self.eos] = True  # end the completion; the caller's JSON check counts it
        else:
            self.matcher.unsafe_compute_mask_ptr(self.mask.ctypes.data, self.mask.nbytes)
            allowed = np.unpackbits(self.mask.view(np.uint8), bitorder="little")[:self.n_vocab].view(bool)
        scores[~allowed] = -np.inf
        self.steps += 1
        self.mask_s += time.perf_counter() - t0
        return scores


ProcessorFactory = Callable[[dict[str, Any]], "MaskProcessor | None"]
