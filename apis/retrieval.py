"""BM25 retrieval over the corpus, with an index that persists and repairs itself.

Two backends score with the same tokens: `bm25s` (sparse matrix of precomputed scores, the
default) and `rank_bm25` (BM25Okapi, the pure-Python reference, kept to check bm25s against
and for the benchmark). The bm25s index is saved under
`<cache_dir>/indexes/<fingerprint>/`, where the fingerprint hashes every document id and
indexed text together with the tokenizer and scoring settings, so a changed corpus gets a
new index and an unchanged one loads in a fraction of the build time.

A save is written to a temporary folder and renamed into place, with a manifest (sizes and
sha256 of every file) written last. A folder that fails the manifest check, e.g. one cut
short by a kill, or edited by hand, is reported and rebuilt instead of loaded.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from apis.api_registry import ArgSpec, Observation
from apis.corpus import Document
from models.files import pid_alive

MANIFEST = "manifest.json"
INDEX_FORMAT = 1
BM25S_METHODS = ("robertson", "lucene", "atire", "bm25l", "bm25+")


class ApiInputError(ValueError):
    """Input that passes type checks but cannot be served (e.g. a query of stopwords only)."""


# --- tokenization ----------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenizerSettings:
    """One tokenizer for documents and queries and for both backends, so their scores agree."""

    lower: bool = True
    pattern: str = r"(?u)\b\w\w+\b"  # scikit-learn's CountVectorizer default, as bm25s uses
    stopwords: Literal["english", "none"] = "english"
    stemmer: Literal["english", "none"] = "english"  # Snowball (PyStemmer): "myths" and "myth" match

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Tokenizer:
    def __init__(self, settings: TokenizerSettings = TokenizerSettings()):
        self.settings = settings
        self._re = re.compile(settings.pattern)
        if settings.stopwords == "english":
            from bm25s.stopwords import STOPWORDS_EN

            self._stop = frozenset(STOPWORDS_EN)
        else:
            self._stop = frozenset()
        self._stem = None
        if settings.stemmer == "english":
            import Stemmer

            self._stem = Stemmer.Stemmer("english").stemWords

    def __call__(self, text: str) -> list[str]:
        if self.settings.lower:
            text = text.lower()
        words = [t for t in self._re.findall(text) if t not in self._stop]
        return self._stem(words) if self._stem is not None and words else words


# --- results ---------------------------------------------------------------------------------
@dataclass
class Hit:
    doc: Document
    score: float
    rank: int

    def passage(self) -> dict[str, Any]:
        return {"id": self.doc.id, "title": self.doc.title, "text": self.doc.text, "score": round(self.score, 4)}


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores, best first; ties broken by document order (deterministic)."""
    n = scores.shape[0]
    k = min(k, n)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    cand = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
    # a tie at the k-th score may leave better-ordered equal docs outside: widen to all of them
    kth = scores[cand].min()
    cand = np.flatnonzero(scores >= kth)
    order = np.lexsort((cand, -scores[cand]))
    return cand[order][:k]


# --- the index -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bm25Settings:
    backend: Literal["bm25s", "rank_bm25"] = "bm25s"
    method: str = "robertson"  # bm25s scoring variant; rank_bm25 is always Okapi (= robertson)
    k1: float = 0.9  # Anserini's defaults (see apis/factory.py RetrievalConfig)
    b: float = 0.4
    index_fields: tuple[str, ...] = ("title", "text")
    tokenizer: TokenizerSettings = field(default_factory=TokenizerSettings)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def indexed_text(doc: Document, fields: Sequence[str]) -> str:
    return "\n".join(getattr(doc, f) for f in fields if getattr(doc, f))


def corpus_fingerprint(docs: Sequence[Document], settings: Bm25Settings) -> str:
    """sha256 over every id and indexed text, the tokenizer and the scoring parameters."""
    h = hashlib.sha256()
    cfg = {k: v for k, v in settings.to_dict().items() if k != "backend"}
    h.update(json.dumps({"format": INDEX_FORMAT, **cfg}, sort_keys=True).encode())
    for d in docs:
        for part in (d.id, indexed_text(d, settings.index_fields)):
            b = part.encode("utf-8")
            h.update(len(b).to_bytes(8, "little"))
            h.update(b)
    return h.hexdigest()[:24]


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Bm25Index:
    """Top-k BM25 search over a list of Documents.

    `cache_dir` enables persistence (bm25s backend only; rank_bm25 is rebuilt in memory).
    `load_status` says what happened: "built", "loaded", or "rebuilt: <reason>".
    """

    def __init__(self, docs: Sequence[Document], settings: Bm25Settings = Bm25Settings(),
                 cache_dir: str | Path | None = None, verbose: bool = True):
        if not docs:
            raise ValueError("Bm25Index needs at least one document")
        if settings.backend == "bm25s" and settings.method not in BM25S_METHODS:
            raise ValueError(f"unknown bm25s method {settings.method!r}; choose from {list(BM25S_METHODS)}")
        self.docs = list(docs)
        self.settings = settings
        self.tokenizer = Tokenizer(settings.tokenizer)
        self.verbose = verbose
        self.fingerprint = corpus_fingerprint(self.docs, settings)
        self.path: Path | None = None
        self.load_status = ""
        t0 = time.perf_counter()
        if settings.backend == "rank_bm25":
            self._build_rank_bm25()
            self.load_status = "built"
        else:
            if cache_dir is not None:
                self.path = Path(cache_dir) / "indexes" / self.fingerprint
                self._load_or_build()
            else:
                self._build_bm25s()
                self.load_status = "built"
        self.setup_s = time.perf_counter() - t0

    def __len__(self) -> int:
        return len(self.docs)

    # -- building ---------------------------------------------------------------------------
    def _tokens(self) -> list[list[str]]:
        return [self.tokenizer(indexed_text(d, self.settings.index_fields)) for d in self.docs]

    def _build_rank_bm25(self) -> None:
        from rank_bm25 import BM25Okapi

        tokens = self._tokens()
        # BM25Okapi divides by the mean length; an all-empty corpus would divide by zero
        self._okapi = BM25Okapi([t or [""] for t in tokens], k1=self.settings.k1, b=self.settings.b)

    def _build_bm25s(self) -> None:
        import bm25s

        s = self.settings
        retriever = bm25s.BM25(method=s.method, k1=s.k1, b=s.b)
        retriever.index(self._tokens(), show_progress=False)
        self._bm25s = retriever

    def _say(self, msg: str) -> None:
        if self.verbose:
            print(f"[bm25] {msg}", file=sys.stderr, flush=True)

    def _load_or_build(self) -> None:
        assert self.path is not None
        self._clean_stale_temp_dirs()
        if self.path.exists():
            reason = self.verify(self.path)
            if reason is None:
                try:
                    self._load_bm25s(self.path)
                    self.load_status = "loaded"
                    return
                except Exception as e:  # a manifest-valid folder bm25s still cannot read
                    reason = f"bm25s could not load it ({type(e).__name__}: {e})"
            self._say(f"index at {self.path} is incomplete or corrupt ({reason}); rebuilding it")
            shutil.rmtree(self.path, ignore_errors=True)
            self.load_status = f"rebuilt: {reason}"
        else:
            self.load_status = "built"
        t0 = time.perf_counter()
        self._build_bm25s()
        self._save(self.path)
        self._say(f"built index of {len(self.docs)} documents in {time.perf_counter() - t0:.1f}s -> {self.path}")

    def _load_bm25s(self, path: Path) -> None:
        import bm25s

        retriever = bm25s.BM25.load(str(path), load_corpus=False, show_progress=False, verbosity=0)
        if retriever.scores["num_docs"] != len(self.docs):
            raise ValueError(f"index has {retriever.scores['num_docs']} documents, corpus has {len(self.docs)}")
        self._bm25s = retriever

    def _save(self, path: Path) -> None:
        """Write into a temporary sibling, add the manifest last, then rename into place."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f"{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            self._bm25s.save(str(tmp), show_progress=False)
            files = {p.name: {"size": p.stat().st_size, "sha256": _sha256_file(p)}
                     for p in sorted(tmp.iterdir()) if p.is_file()}
            manifest = {"format": INDEX_FORMAT, "fingerprint": self.fingerprint, "num_docs": len(self.docs),
                        "settings": self.settings.to_dict(), "files": files, "created": time.time()}
            with open(tmp / MANIFEST, "w", encoding="utf-8") as f:
                json.dump(manifest, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.rename(tmp, path)
            except OSError:
                if self.verify(path) is None:  # another process finished the same index first
                    shutil.rmtree(tmp, ignore_errors=True)
                else:
                    raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _clean_stale_temp_dirs(self) -> None:
        assert self.path is not None
        if not self.path.parent.is_dir():
            return
        for p in self.path.parent.glob(f"{self.path.name}.tmp-*"):
            try:
                pid = int(p.name.split(".tmp-", 1)[1].split("-", 1)[0])
            except ValueError:
                pid = -1
            if pid != os.getpid() and not pid_alive(pid):
                shutil.rmtree(p, ignore_errors=True)

    def verify(self, path: Path) -> str | None:
        """None when the folder holds a complete index for this corpus, else the reason it does not."""
        mpath = path / MANIFEST
        if not mpath.is_file():
            return "no manifest (the save never finished)"
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except ValueError:
            return "the manifest is not valid JSON"
        if not isinstance(manifest, dict) or manifest.get("fingerprint") != self.fingerprint:
            return "the manifest belongs to another corpus"
        if manifest.get("num_docs") != len(self.docs):
            return "the document count differs"
        files = manifest.get("files") or {}
        if not files:
            return "the manifest lists no files"
        for name, meta in files.items():
            p = path / name
            if not p.is_file():
                return f"{name} is missing"
            if p.stat().st_size != meta.get("size"):
                return f"{name} has {p.stat().st_size} bytes, expected {meta.get('size')}"
            if _sha256_file(p) != meta.get("sha256"):
                return f"{name} does not match its checksum"
        return None

    # -- searching --------------------------------------------------------------------------
    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for the query (zeros when no query word is indexed)."""
        tokens = self.tokenizer(query)
        if self.settings.backend == "rank_bm25":
            return np.asarray(self._okapi.get_scores(tokens), dtype=np.float64)
        r = self._bm25s
        ids = [r.vocab_dict[t] for t in tokens if t in r.vocab_dict]
        if not ids:
            return np.zeros(len(self.docs), dtype=np.float32)
        return r.get_scores_from_ids(ids)

    def search(self, query: str, top_k: int = 5) -> list[Hit]:
        """The top_k documents with a positive score, best first."""
        s = self.scores(query)
        return [Hit(doc=self.docs[i], score=float(s[i]), rank=r + 1)
                for r, i in enumerate(top_k_indices(s, top_k)) if s[i] > 0]


# --- the API ---------------------------------------------------------------------------------
def format_passages(passages: Sequence[dict[str, Any]], max_chars: int) -> str:
    lines = []
    for i, p in enumerate(passages, 1):
        text = p["text"] if len(p["text"]) <= max_chars else p["text"][: max_chars].rsplit(" ", 1)[0] + " ..."
        lines.append(f"({i}) {p['title']}: {text}")
    return "\n".join(lines)


class RetrievalApi:
    """information_retrieval(query, top_k?): the best-matching passages of the corpus."""

    name = "information_retrieval"
    description = "search an encyclopedia of 10,000 Wikipedia articles; returns the top_k matching passages"

    def __init__(self, index: Bm25Index, *, cost: float = 1.0, default_top_k: int = 3, max_top_k: int = 20,
                 max_query_chars: int = 500, passage_chars: int = 700, description: str | None = None):
        self.index = index
        self.cost = cost
        self.default_top_k = default_top_k
        self.passage_chars = passage_chars
        if description:
            self.description = description
        self.args = {
            "query": ArgSpec("string", "keywords or a question", max_length=max_query_chars),
            "top_k": ArgSpec("integer", "number of passages", required=False, minimum=1, maximum=max_top_k,
                             default=default_top_k),
        }

    def __call__(self, query: str, top_k: int | None = None) -> Observation:
        k = top_k or self.default_top_k
        if not self.index.tokenizer(query):
            raise ApiInputError("the query has no searchable words (only stopwords or punctuation)")
        hits = self.index.search(query, k)
        passages = [h.passage() for h in hits]
        text = format_passages(passages, self.passage_chars) if passages else f"No passages match {query!r}."
        return Observation(text=text, payload={"query": query, "top_k": k, "passages": passages}, cost=self.cost)
