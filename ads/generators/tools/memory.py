"""Cross-conversation steering: an embedding memory of what the corpus already contains.

The planner describes each candidate chain in words (domain, pattern, tools, endpoint names and
descriptions), embeds the description with the offline MiniLM, and picks the candidate least
similar to any chain already in the corpus. With the memory off the first candidate is taken,
which is exactly what the sampler alone would produce, so "steering off vs on" isolates the
memory's effect (the diversity experiment, bench/diversity_tool_use.py). Only chosen chains are
remembered, so a resumed run rebuilds the memory from the plans stored in its records.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np


class CorpusMemory:
    """`k`: a candidate's familiarity is its mean cosine similarity to its k nearest remembered
    chains. With k=1 (nearest neighbour only) one near-copy anywhere decides, and once the corpus
    is large every candidate has one, so the choice turns to noise; the mean over a few
    neighbours measures how crowded the candidate's region is."""

    def __init__(self, embedder: Any | None = None, enabled: bool = True, k: int = 3):
        if k < 1:
            raise ValueError("k must be >= 1")
        self.enabled, self.k = enabled, k
        self._embedder = embedder
        self._rows: list[np.ndarray] = []
        self.texts: list[str] = []

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from ads.quality.embeddings import shared_embedder

            self._embedder = shared_embedder()
        return self._embedder

    def __len__(self) -> int:
        return len(self.texts)

    def add(self, text: str) -> None:
        if not self.enabled:
            return
        self.texts.append(text)
        self._rows.append(np.asarray(self.embedder.encode([text]), dtype=np.float32)[0])

    def familiarity(self, texts: Sequence[str]) -> list[float]:
        """Per text, the mean similarity to its k most similar remembered texts (0.0 when empty)."""
        if not self._rows or not texts:
            return [0.0] * len(texts)
        q = np.asarray(self.embedder.encode(list(texts)), dtype=np.float32)
        sims = q @ np.stack(self._rows).T
        k = min(self.k, sims.shape[1])
        top = np.sort(sims, axis=1)[:, -k:]
        return [float(x) for x in top.mean(axis=1)]

    def choose(self, texts: Sequence[str]) -> tuple[int, list[float]]:
        """Index of the least familiar candidate and the scores behind the choice (ties: lowest index)."""
        if not self.enabled or len(texts) <= 1:
            return 0, []
        sims = self.familiarity(texts)
        best = min(range(len(texts)), key=lambda i: (round(sims[i], 6), i))
        return best, [round(s, 4) for s in sims]
