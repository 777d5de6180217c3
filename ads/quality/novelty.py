"""Near-duplicate rejection: k-word shingle Jaccard against the pool of accepted outputs.

`NoveltyFilter.check(text)` answers `(is_novel, max_sim, nearest_id)`: a text is rejected
when its Jaccard similarity to some pooled text reaches `threshold`. Two backends share that
interface:

* `method="exact"`: an inverted index from shingle to pooled texts, so a check touches only
  texts sharing at least one shingle and the similarity is exact. Memory and work per check
  grow with the total number of shingles pooled.
* `method="minhash"`: MinHash signatures in a datasketch LSH index. Time per check stays
  flat as the pool grows, whatever the texts' length or how common their phrases; `max_sim`
  is then the MinHash estimate (standard error about 0.045 at J=0.5 with 128 permutations),
  computed only for LSH candidates (texts far below the threshold report 0.0). The LSH
  candidate threshold defaults to `threshold - 0.1`, so pairs just above the threshold are
  still found; candidates are then decided on the estimate.

Which one: on short texts (10-22 words) the exact index was faster and leaner than LSH up to
100k texts (bench/README.md, "Novelty: MinHash LSH"); LSH pays off for long outputs, whose
many shingles make postings long and the exact index large.

Generators fill templates ("Q: What is the capital of {country}? ..."), and the template's
own words make every output look like every other: without care, all template-made outputs
merge into one cluster and all but the first are rejected. Template text is therefore
removed before shingling, from three sources:

* `templates`: template strings with `{slot}` placeholders. A text that matches a template
  keeps only its slot values; otherwise every word covered by a 3-word sequence of the
  template's literal text (or by a 2-word literal run) is cut, which survives small wording
  drift. Single template words between slots are left alone (too common to cut safely).
* `patterns`: regular expressions whose matches are removed (fixed headers, signatures).
* `learn_boilerplate=True`: shingles that occur in at least `boilerplate_min_df` of the
  texts seen so far (checked or added, counted once per distinct text, from
  `boilerplate_min_texts` texts on) are boilerplate. Learning stops after
  `boilerplate_warmup` distinct texts, or at once with `fit_boilerplate(sample)`; from then
  on the set is frozen, which MinHash needs (a signature cannot forget a shingle). Texts
  rejected during learning still count, so a filter that starts out rejecting every
  template output does learn its way out (the outputs rejected before that are lost: fit
  on a sample first to lose none).
"""
from __future__ import annotations

import re
import threading
import zlib
from collections import Counter, defaultdict
from typing import Iterable, NamedTuple, Sequence

import numpy as np

from ads.quality.text import EMPTY_SHINGLE, jaccard, ngrams, remove_covered, shingle_tokens, words

_SLOT = re.compile(r"\{[^{}]*\}")


class NoveltyCheck(NamedTuple):
    is_novel: bool
    max_sim: float
    nearest_id: str | None


class _Template:
    """One `{slot}` template: a full-match regex, plus its literal word runs for partial cuts."""

    def __init__(self, template: str):
        if not _SLOT.search(template):
            raise ValueError(f"template {template[:60]!r} has no {{slot}} placeholder; use patterns= for fixed text")
        parts = _SLOT.split(template)
        regex = []
        for j, part in enumerate(parts):
            toks = words(part)
            regex.append(r"\W*" + r"\W+".join(re.escape(t) for t in toks) + r"\W*" if toks else r"\W*")
            if j < len(parts) - 1:
                regex.append(r"(.*?)")
        self.full = re.compile("".join(regex), re.IGNORECASE | re.DOTALL)
        runs = [words(p) for p in parts]
        # literal word runs as overlapping 3-grams (2-word runs whole), for partial cuts
        self.grams3 = {g for r in runs for g in ngrams(r, 3)}
        self.grams2 = {tuple(r) for r in runs if len(r) == 2}

    def slots(self, text: str) -> list[str] | None:
        m = self.full.fullmatch(text)
        return None if m is None else [g for g in m.groups() if g]


def _without(shingles: frozenset[str], boiler: frozenset[str]) -> frozenset[str]:
    if not boiler:
        return shingles
    rest = shingles - boiler
    return rest if rest else frozenset({EMPTY_SHINGLE})


class _ExactIndex:
    """Inverted index shingle -> pooled texts; the similarity computed is the exact Jaccard."""

    def __init__(self) -> None:
        self._postings: dict[str, list[int]] = defaultdict(list)
        self._sizes: list[int] = []
        self._ids: list[str] = []

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, item_id: str, sh: frozenset[str]) -> None:
        i = len(self._ids)
        self._ids.append(item_id)
        self._sizes.append(len(sh))
        for s in sh:
            self._postings[s].append(i)

    def nearest(self, sh: frozenset[str]) -> tuple[float, str | None]:
        counts: Counter[int] = Counter()
        for s in sh:
            p = self._postings.get(s)
            if p:
                counts.update(p)
        best, best_i, lq = 0.0, None, len(sh)
        for i, c in counts.items():
            j = c / (lq + self._sizes[i] - c)
            if j > best or (j == best and best_i is not None and i < best_i):
                best, best_i = j, i
        return best, (self._ids[best_i] if best_i is not None else None)


class _MinHashIndex:
    """MinHash signatures (datasketch, 32-bit affine scheme) in an LSH index.

    Shingles are hashed with CRC32 (deterministic across processes, about twice as fast as
    datasketch's default SHA-1; MinHash pre-mixes the value before permuting it). Only the
    uint32 signature is kept per text, for the candidate similarity estimate.
    """

    def __init__(self, threshold: float, num_perm: int, seed: int):
        from datasketch import MinHash, MinHashLSH

        self._proto = MinHash(num_perm=num_perm, seed=seed, hashfunc=zlib.crc32)
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._sigs: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._sigs)

    @property
    def params(self) -> tuple[int, int]:
        return self._lsh.b, self._lsh.r

    def signature(self, sh: Iterable[str]):
        m = self._proto.copy()
        m.update_batch([s.encode("utf-8") for s in sh])
        return m

    def add(self, item_id: str, sh: frozenset[str]) -> None:
        m = self.signature(sh)
        self._lsh.insert(item_id, m, check_duplication=False)
        self._sigs[item_id] = m.hashvalues

    def nearest(self, sh: frozenset[str]) -> tuple[float, str | None]:
        m = self.signature(sh)
        cands = self._lsh.query(m)
        if not cands:
            return 0.0, None
        cands.sort()  # deterministic tie-breaking
        sims = (np.stack([self._sigs[c] for c in cands]) == m.hashvalues).mean(axis=1)
        i = int(np.argmax(sims))
        return float(sims[i]), cands[i]


class NoveltyFilter:
    def __init__(self, threshold: float = 0.5, *, k: int = 3, method: str = "exact",
                 templates: Sequence[str] = (), patterns: Sequence[str] = (),
                 learn_boilerplate: bool = False, boilerplate_min_df: float = 0.5,
                 boilerplate_min_texts: int = 20, boilerplate_warmup: int = 200,
                 num_perm: int = 128, seed: int = 1, lsh_threshold: float | None = None):
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        if k < 1:
            raise ValueError("k must be >= 1")
        if method not in ("exact", "minhash"):
            raise ValueError(f"method must be 'exact' or 'minhash', got {method!r}")
        if not 0.0 < boilerplate_min_df <= 1.0:
            raise ValueError("boilerplate_min_df must be in (0, 1]")
        if boilerplate_min_texts < 2 or boilerplate_warmup < boilerplate_min_texts:
            raise ValueError("need 2 <= boilerplate_min_texts <= boilerplate_warmup")
        self.threshold, self.k, self.method = threshold, k, method
        self._templates = [_Template(t) for t in templates]
        self._patterns = [re.compile(p) for p in patterns]
        self.min_df, self.min_texts, self.warmup = boilerplate_min_df, boilerplate_min_texts, boilerplate_warmup
        self._boiler: frozenset[str] = frozenset()
        self._frozen = not learn_boilerplate
        self._df: Counter[str] = Counter()
        self._seen: set[int] = set()
        self._cached_boiler: tuple[int, frozenset[str]] = (-1, frozenset())
        self._buffer: list[tuple[str, frozenset[str]]] = []  # added while still learning
        if lsh_threshold is None:  # see the module docstring: recall near the threshold
            lsh_threshold = min(1.0, max(0.05, threshold - 0.1))
        self._index = _ExactIndex() if method == "exact" else _MinHashIndex(lsh_threshold, num_perm, seed)
        self._ids: set[str] = set()
        self._lock = threading.RLock()
        self.checks = 0
        self.rejections = 0

    # -- text -> shingles ---------------------------------------------------------------
    def strip(self, text: str) -> list[str]:
        """The words of `text` that are not template text (patterns, then templates)."""
        for p in self._patterns:
            text = p.sub(" ", text)
        for t in self._templates:
            slots = t.slots(text)
            if slots is not None:
                return words(" ".join(slots))
        toks = words(text)
        for t in self._templates:
            toks = remove_covered(remove_covered(toks, t.grams3, 3), t.grams2, 2)
        return toks

    def raw_shingles(self, text: str) -> frozenset[str]:
        return frozenset(shingle_tokens(self.strip(text), self.k))

    def shingles(self, text: str) -> frozenset[str]:
        """What the filter compares: stripped shingles minus the boilerplate known now."""
        with self._lock:
            return _without(self.raw_shingles(text), self.boilerplate)

    # -- boilerplate ----------------------------------------------------------------------
    @property
    def boilerplate(self) -> frozenset[str]:
        with self._lock:
            return self._boiler if self._frozen else self._learned()

    @property
    def learning(self) -> bool:
        return not self._frozen

    def _learned(self) -> frozenset[str]:
        n = len(self._seen)
        if n < self.min_texts:
            return frozenset()
        if self._cached_boiler[0] != n:
            cut = self.min_df * n
            self._cached_boiler = (n, frozenset(s for s, c in self._df.items() if c >= cut and s != EMPTY_SHINGLE))
        return self._cached_boiler[1]

    def _observe(self, text: str, raw: frozenset[str]) -> None:
        if self._frozen:
            return
        key = hash(text)
        if key in self._seen:
            return
        self._seen.add(key)
        self._df.update(raw)
        if len(self._seen) >= self.warmup:
            self._freeze(self._learned())

    def _freeze(self, boiler: frozenset[str]) -> None:
        self._boiler, self._frozen = boiler, True
        self._df, self._seen = Counter(), set()
        for item_id, raw in self._buffer:
            self._index.add(item_id, _without(raw, boiler))
        self._buffer = []

    def fit_boilerplate(self, texts: Iterable[str]) -> frozenset[str]:
        """Learn boilerplate from a sample of outputs now and freeze it (re-indexing the pool)."""
        with self._lock:
            df: Counter[str] = Counter()
            distinct = {t for t in texts}
            if len(distinct) < 2:
                raise ValueError("fit_boilerplate needs at least two distinct texts")
            for t in distinct:
                df.update(self.raw_shingles(t))
            cut = self.min_df * len(distinct)
            self._freeze(frozenset(s for s, c in df.items() if c >= cut and s != EMPTY_SHINGLE))
            return self._boiler

    # -- the interface --------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._ids

    def check(self, text: str) -> NoveltyCheck:
        with self._lock:
            raw = self.raw_shingles(text)
            self._observe(text, raw)
            if self._frozen:
                sim, nearest = self._index.nearest(_without(raw, self._boiler))
            else:
                boiler = self._learned()
                q = _without(raw, boiler)
                sim, nearest = 0.0, None
                for item_id, p in self._buffer:
                    s = jaccard(q, _without(p, boiler))
                    if s > sim:
                        sim, nearest = s, item_id
            novel = sim < self.threshold
            self.checks += 1
            self.rejections += not novel
            return NoveltyCheck(novel, round(float(sim), 6), nearest)

    def add(self, item_id: str, text: str) -> None:
        with self._lock:
            if item_id in self._ids:
                raise ValueError(f"id {item_id!r} is already in the novelty pool")
            raw = self.raw_shingles(text)
            self._observe(text, raw)
            self._ids.add(item_id)
            if self._frozen:
                self._index.add(item_id, _without(raw, self._boiler))
            else:
                self._buffer.append((item_id, raw))

    def check_and_add(self, item_id: str, text: str) -> NoveltyCheck:
        """Check, and pool the text when it is novel (the usual generator step)."""
        with self._lock:
            res = self.check(text)
            if res.is_novel:
                self.add(item_id, text)
            return res

    def stats(self) -> dict[str, object]:
        with self._lock:
            return {"method": self.method, "pool": len(self._ids), "checks": self.checks,
                    "rejections": self.rejections, "boilerplate_shingles": len(self.boilerplate),
                    "learning_boilerplate": not self._frozen}
