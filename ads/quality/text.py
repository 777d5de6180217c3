"""Word tokens, n-grams and shingles: the one tokenisation every quality metric shares.

Novelty, distinct-n and Jaccard dissimilarity must agree on what a "word" is, or a text
judged novel by one would look repetitive to another. Words are lower-cased runs of
Unicode letters/digits (so Spanish and French text tokenises as well as English);
punctuation and spacing never make two texts differ.
"""
from __future__ import annotations

import re

_WORD = re.compile(r"\w+", re.UNICODE)

# Stands for "nothing left" (an empty text, or one that was all template). Two such texts
# are identical to each other and share nothing with any real text.
EMPTY_SHINGLE = "\x00empty"


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower()) if text else []


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    if n < 1:
        raise ValueError("n must be >= 1")
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def shingle_tokens(tokens: list[str], k: int) -> set[str]:
    """k-word shingles as space-joined strings; a text shorter than k is one shingle."""
    if k < 1:
        raise ValueError("k must be >= 1")
    if not tokens:
        return {EMPTY_SHINGLE}
    if len(tokens) <= k:
        return {" ".join(tokens)}
    return {" ".join(tokens[i:i + k]) for i in range(len(tokens) - k + 1)}


def shingles(text: str, k: int = 3) -> set[str]:
    return shingle_tokens(words(text), k)


def jaccard(a: set | frozenset, b: set | frozenset) -> float:
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def remove_covered(tokens: list[str], grams: set[tuple[str, ...]], g: int) -> list[str]:
    """Drop every token covered by an occurrence of one of the g-word `grams`.

    Cutting by overlapping g-grams rather than whole phrases survives small wording drift:
    a template sentence with one word changed still loses all of its other words.
    """
    if not grams or len(tokens) < g:
        return tokens
    keep = [True] * len(tokens)
    for i in range(len(tokens) - g + 1):
        if tuple(tokens[i:i + g]) in grams:
            for j in range(i, i + g):
                keep[j] = False
    return [t for t, k in zip(tokens, keep) if k]
