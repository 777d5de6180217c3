"""Validators: one check of one generated item, configured from a YAML `validators:` block.

Every validator answers `check(item) -> ValidationResult(name, passed, reason, score)` and
never raises on bad content: a missing field, a non-matching pattern, a failed judge call
are all `passed=False` with a reason that says what to look at. An item is a dict (dotted
`field` paths reach nested values) or a plain string (field `text`).

Kinds and YAML `type`s:

* rule-based, free: `length`, `regex`, `json_schema`, `distinct_n` (repetition inside one
  text, the usual failure of small models stuck in a loop);
* embedding-based (MiniLM, shared): `embedding_similarity` (cosine between two fields, e.g.
  a paraphrase and its source, within [min, max]), `embedding_spread` (rejects an item too
  close to an item already accepted);
* judge-based: `judge_faithfulness` (is the output supported by its source field?) and
  `judge_score` (a custom rubric), both through `ads.quality.judge.Judge`;
* `novelty`: shingle-Jaccard near-duplicate rejection (`ads.quality.novelty`).

Stateful validators (`embedding_spread`, `novelty`) remember only items the whole suite
accepted: `ValidatorSuite` calls their `commit` after an item passes everything.

The YAML side (one pydantic entry per `type`, `ValidatorSpec`, `build_validators`) lives in
`ads.quality.validator_specs`.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Mapping, Protocol, runtime_checkable

import numpy as np

from ads.quality.diversity import distinct_n
from ads.quality.judge import Judge
from ads.quality.novelty import NoveltyFilter
from ads.quality.text import words

Item = Mapping[str, Any] | str


@dataclass
class ValidationResult:
    name: str
    passed: bool
    reason: str
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ValidationResult":
        return cls(name=d["name"], passed=bool(d["passed"]), reason=d.get("reason", ""), score=d.get("score"))


@runtime_checkable
class Validator(Protocol):
    name: str
    cost: int  # 0 rule, 1 embedding, 2 model call: the suite runs cheap ones first

    def check(self, item: Item) -> ValidationResult: ...


_MISSING = object()


def get_field(item: Item, path: str | None) -> Any:
    """Value at a dotted path; a string item is its own `text` field. Missing -> _MISSING."""
    if isinstance(item, str):
        return item if path in (None, "text") else _MISSING
    if path is None:
        return item
    node: Any = item
    for part in path.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return "" if value is None else str(value)


class _Base:
    name: str
    cost = 0
    field: str | None = "text"

    def _text(self, item: Item, path: str | None = None) -> str | ValidationResult:
        path = self.field if path is None else path
        v = get_field(item, path)
        if v is _MISSING:
            return ValidationResult(self.name, False, f"missing field '{path}'")
        return as_text(v)

    def result(self, passed: bool, reason: str, score: float | None = None) -> ValidationResult:
        return ValidationResult(self.name, passed, reason, None if score is None else round(float(score), 6))


def _bounds(lo: float | None, hi: float | None) -> str:
    return f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"


# --- rule-based ------------------------------------------------------------------------------
class LengthValidator(_Base):
    def __init__(self, name: str, field: str | None = "text", min_words: int | None = None,
                 max_words: int | None = None, min_chars: int | None = None, max_chars: int | None = None):
        self.name, self.field = name, field
        self.min_words, self.max_words, self.min_chars, self.max_chars = min_words, max_words, min_chars, max_chars

    def check(self, item: Item) -> ValidationResult:
        t = self._text(item)
        if isinstance(t, ValidationResult):
            return t
        nw, nc = len(words(t)), len(t.strip())
        for what, n, lo, hi in (("words", nw, self.min_words, self.max_words), ("chars", nc, self.min_chars,
                                                                                self.max_chars)):
            if (lo is not None and n < lo) or (hi is not None and n > hi):
                return self.result(False, f"{n} {what}, outside {_bounds(lo, hi)}", nw)
        return self.result(True, f"{nw} words, {nc} chars", nw)


class RegexValidator(_Base):
    def __init__(self, name: str, pattern: str, field: str | None = "text", mode: str = "search",
                 must_match: bool = True, ignore_case: bool = False):
        self.name, self.field, self.mode, self.must_match = name, field, mode, must_match
        self.pattern = re.compile(pattern, (re.IGNORECASE if ignore_case else 0) | re.DOTALL)

    def check(self, item: Item) -> ValidationResult:
        t = self._text(item)
        if isinstance(t, ValidationResult):
            return t
        hit = (self.pattern.fullmatch(t) if self.mode == "fullmatch" else self.pattern.search(t)) is not None
        p = self.pattern.pattern[:60]
        if hit == self.must_match:
            return self.result(True, f"{'matches' if hit else 'does not match'} /{p}/")
        return self.result(False, f"{'matches forbidden' if hit else 'does not match'} /{p}/ ({self.mode})")


class JsonSchemaValidator(_Base):
    def __init__(self, name: str, schema: dict[str, Any], field: str | None = None):
        from jsonschema import Draft202012Validator

        self.name, self.field, self.schema = name, field, schema
        self._v = Draft202012Validator(schema)

    def check(self, item: Item) -> ValidationResult:
        v = get_field(item, self.field)
        if v is _MISSING:
            return self.result(False, f"missing field '{self.field}'")
        if isinstance(v, str):  # JSON text written by a model: parse it, tolerating prose around one object
            from models.structured import loads_bounded  # deep/huge JSON is a failed check, not a crash

            try:
                v = loads_bounded(v)
            except ValueError:
                from models.structured import extract_json

                v, err = extract_json(v)
                if err is not None:
                    return self.result(False, f"not JSON: {err}")
        errors = sorted(self._v.iter_errors(v), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            where = "/".join(str(p) for p in e.path) or "<root>"
            more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
            return self.result(False, f"schema violation at {where}: {e.message[:160]}{more}")
        return self.result(True, "valid against the schema")


class DistinctNValidator(_Base):
    def __init__(self, name: str, n: int = 2, min: float = 0.5, field: str | None = "text", min_ngrams: int = 5):
        self.name, self.field, self.n, self.min, self.min_ngrams = name, field, n, min, min_ngrams

    def check(self, item: Item) -> ValidationResult:
        t = self._text(item)
        if isinstance(t, ValidationResult):
            return t
        total = max(0, len(words(t)) - self.n + 1)
        if total < self.min_ngrams:
            return self.result(True, f"too short to judge repetition ({total} {self.n}-grams)")
        d = distinct_n(t, self.n)
        return self.result(d >= self.min, f"distinct-{self.n} {d:.3f} {'>=' if d >= self.min else '<'} {self.min}", d)


# --- embedding-based -------------------------------------------------------------------------
class EmbeddingSimilarityValidator(_Base):
    cost = 1

    def __init__(self, name: str, reference_field: str, embedder: Any, field: str | None = "text",
                 min: float | None = None, max: float | None = None):
        self.name, self.field, self.reference_field = name, field, reference_field
        self.min, self.max, self.embedder = min, max, embedder

    def check(self, item: Item) -> ValidationResult:
        a, b = self._text(item), self._text(item, self.reference_field)
        for t in (a, b):
            if isinstance(t, ValidationResult):
                return t
        if not a.strip() or not b.strip():
            return self.result(False, "empty text or reference")
        va, vb = self.embedder.encode([a, b])
        sim = float(np.dot(va, vb))
        ok = (self.min is None or sim >= self.min) and (self.max is None or sim <= self.max)
        return self.result(ok, f"cosine {sim:.3f} {'within' if ok else 'outside'} {_bounds(self.min, self.max)}", sim)


class EmbeddingSpreadValidator(_Base):
    """Rejects an item whose embedding is within `max_similarity` cosine of an accepted one."""

    cost = 1

    def __init__(self, name: str, embedder: Any, field: str | None = "text", max_similarity: float = 0.95):
        self.name, self.field, self.max_similarity, self.embedder = name, field, max_similarity, embedder
        self._pool: list[np.ndarray] = []
        self._matrix: np.ndarray | None = None
        self._lock = threading.Lock()

    def check(self, item: Item) -> ValidationResult:
        t = self._text(item)
        if isinstance(t, ValidationResult):
            return t
        v = self.embedder.encode([t])[0]
        with self._lock:
            if self._pool and self._matrix is None:
                self._matrix = np.stack(self._pool)
            sim = float((self._matrix @ v).max()) if self._pool else 0.0
        ok = sim < self.max_similarity
        return self.result(ok, f"max cosine to {len(self._pool)} accepted items {sim:.3f} "
                               f"{'<' if ok else '>='} {self.max_similarity}", sim)

    def commit(self, item: Item, item_id: str) -> None:
        t = self._text(item)
        if isinstance(t, str):
            v = self.embedder.encode([t])[0]
            with self._lock:
                self._pool.append(v)
                self._matrix = None


# --- judge-based -----------------------------------------------------------------------------
class JudgeValidator(_Base):
    cost = 2

    def __init__(self, name: str, judge: Judge, min_score: float, field: str | None = "text",
                 reference_field: str | None = None, instruction_field: str | None = None,
                 criterion: str | None = None):
        self.name, self.judge, self.min_score, self.field = name, judge, min_score, field
        self.reference_field, self.instruction_field, self.criterion = reference_field, instruction_field, criterion

    def check(self, item: Item) -> ValidationResult:
        resp = self._text(item)
        if isinstance(resp, ValidationResult):
            return resp
        extra = {}
        for key, path in (("reference", self.reference_field), ("instruction", self.instruction_field)):
            if path is not None:
                t = self._text(item, path)
                if isinstance(t, ValidationResult):
                    return t
                extra[key] = t
        sid = item.get("id", "judge") if isinstance(item, Mapping) else "judge"
        j = self.judge.judge(resp, sample_id=f"{self.name}:{sid}", **extra)
        if not j.ok:
            return self.result(False, j.error or "judge failure")
        score = j.overall if self.criterion is None else j.scores[self.criterion]
        ok = score >= self.min_score
        note = f" (clamped: {', '.join(j.clamped)})" if j.clamped else ""
        return self.result(ok, f"judge score {score:g} {'>=' if ok else '<'} {self.min_score}{note}: "
                               f"{j.rationale[:160]}", score)


# --- novelty ---------------------------------------------------------------------------------
class NoveltyValidator(_Base):
    def __init__(self, name: str, filt: NoveltyFilter, field: str | None = "text"):
        self.name, self.filter, self.field = name, filt, field

    def check(self, item: Item) -> ValidationResult:
        t = self._text(item)
        if isinstance(t, ValidationResult):
            return t
        r = self.filter.check(t)
        if r.is_novel:
            return self.result(True, f"max shingle similarity {r.max_sim:.3f} < {self.filter.threshold}", r.max_sim)
        return self.result(False, f"near-duplicate of {r.nearest_id} (similarity {r.max_sim:.3f})", r.max_sim)

    def commit(self, item: Item, item_id: str) -> None:
        t = self._text(item)
        if isinstance(t, str) and item_id not in self.filter:
            self.filter.add(item_id, t)


# --- the suite and its counts ----------------------------------------------------------------
@dataclass
class SuiteResult:
    passed: bool
    results: list[ValidationResult]
    skipped: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        return [r.name for r in self.results if not r.passed]

    @property
    def reasons(self) -> dict[str, str]:
        return {r.name: r.reason for r in self.results if not r.passed}

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "results": [r.to_dict() for r in self.results], "skipped": list(self.skipped)}


class ValidatorSuite:
    """Runs validators on items (cheapest first), counts outcomes per validator.

    With `fail_fast` (the default) the first failure stops the item, so a judge is only paid
    for items the free checks accept; the skipped validators are counted as `skipped`.
    """

    def __init__(self, validators: list[Validator], fail_fast: bool = True):
        names = [v.name for v in validators]
        if len(set(names)) != len(names):
            raise ValueError(f"validator names must be unique: {names}")
        self.validators = sorted(validators, key=lambda v: getattr(v, "cost", 0))  # stable
        self.fail_fast = fail_fast
        self._lock = threading.Lock()
        self._counts = {n: {"passed": 0, "failed": 0, "skipped": 0} for n in names}
        self._items = {"passed": 0, "failed": 0}
        self._auto_id = 0

    @classmethod
    def from_config(cls, entries: Iterable[Mapping[str, Any]] | None, *, fail_fast: bool = True,
                    **kwargs: Any) -> "ValidatorSuite":
        from ads.quality.validator_specs import build_validators  # the specs import the validators

        return cls(build_validators(entries, **kwargs), fail_fast=fail_fast)

    def run(self, item: Item, item_id: str | None = None) -> SuiteResult:
        results: list[ValidationResult] = []
        skipped: list[str] = []
        for v in self.validators:
            if self.fail_fast and results and not results[-1].passed:
                skipped.append(v.name)
                continue
            try:
                r = v.check(item)
            except Exception as e:  # a validator bug must not kill a long run; it is counted and shown
                r = ValidationResult(v.name, False, f"validator error: {type(e).__name__}: {e}")
            results.append(r)
        ok = all(r.passed for r in results)
        with self._lock:
            for r in results:
                self._counts[r.name]["passed" if r.passed else "failed"] += 1
            for n in skipped:
                self._counts[n]["skipped"] += 1
            self._items["passed" if ok else "failed"] += 1
            if item_id is None:
                self._auto_id += 1
                item_id = f"item-{self._auto_id}"
        if ok:
            for v in self.validators:
                commit: Callable[..., None] | None = getattr(v, "commit", None)
                if commit is not None:
                    commit(item, item_id)
        return SuiteResult(ok, results, skipped)

    def counts(self) -> dict[str, Any]:
        """{validator: {passed, failed, skipped, pass_rate}} plus `_items` for whole items."""
        with self._lock:
            out: dict[str, Any] = {n: _with_rate(c) for n, c in self._counts.items()}
            out["_items"] = _with_rate(self._items)
            return out


def _with_rate(c: Mapping[str, int]) -> dict[str, Any]:
    ran = c.get("passed", 0) + c.get("failed", 0)
    return {**c, "pass_rate": round(c.get("passed", 0) / ran, 4) if ran else None}


def validation_counts(results: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """Pass/fail counts per validator from stored outcomes, for run summaries and resumed runs.

    Accepts ValidationResult objects or their dicts, SuiteResult objects or their dicts
    (these also count `skipped`), and lists of any of these (one list per item).
    """
    counts: dict[str, dict[str, int]] = {}

    def bump(name: str, key: str) -> None:
        counts.setdefault(name, {"passed": 0, "failed": 0, "skipped": 0})[key] += 1

    def visit(x: Any) -> None:
        if isinstance(x, ValidationResult):
            bump(x.name, "passed" if x.passed else "failed")
        elif isinstance(x, SuiteResult):
            for r in x.results:
                visit(r)
            for n in x.skipped:
                bump(n, "skipped")
        elif isinstance(x, Mapping) and "results" in x:
            for r in x["results"]:
                visit(r)
            for n in x.get("skipped", ()):
                bump(n, "skipped")
        elif isinstance(x, Mapping) and "name" in x and "passed" in x:
            bump(str(x["name"]), "passed" if x["passed"] else "failed")
        elif isinstance(x, (list, tuple)):
            for r in x:
                visit(r)
        else:
            raise ValueError(f"not a validation result: {str(x)[:80]!r}")

    for x in results:
        visit(x)
    return {n: _with_rate(c) for n, c in sorted(counts.items())}
