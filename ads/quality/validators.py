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

`build_validators(entries, judge_model=..., embedder=...)` validates each entry with a
strict pydantic model; an unknown `type` or key is a `ConfigError` naming it. A generator
config can declare `validators: list[ValidatorSpec] = []` to have the same check when its
YAML is loaded, and pass the parsed entries to `build_validators`.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Callable, Iterable, Literal, Mapping, Protocol, Union, runtime_checkable

import numpy as np
from pydantic import Field, field_validator, model_validator

from ads.config import ConfigError, Strict, validate
from ads.quality.diversity import distinct_n
from ads.quality.judge import FAITHFULNESS_CRITERIA, Criterion, Judge, JudgeConfig
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
class _LazyEmbedder:
    """Resolves the shared MiniLM embedder on first use, so building validators stays cheap."""

    def __init__(self, embedder: Any | None):
        self._e = embedder

    def encode(self, texts: list[str]) -> np.ndarray:
        if self._e is None:
            from ads.quality.embeddings import shared_embedder

            self._e = shared_embedder()
        return np.asarray(self._e.encode(texts), dtype=np.float32)


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


# --- YAML configs ----------------------------------------------------------------------------
class _Entry(Strict):
    name: str | None = None  # defaults to the type (plus the field when a type repeats)
    field: str | None = "text"


class LengthCfg(_Entry):
    type: Literal["length"]
    min_words: int | None = Field(None, ge=0)
    max_words: int | None = Field(None, ge=0)
    min_chars: int | None = Field(None, ge=0)
    max_chars: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _some_bound(self) -> "LengthCfg":
        if all(v is None for v in (self.min_words, self.max_words, self.min_chars, self.max_chars)):
            raise ValueError("give at least one of min_words, max_words, min_chars, max_chars")
        for lo, hi in ((self.min_words, self.max_words), (self.min_chars, self.max_chars)):
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"minimum {lo} is above maximum {hi}")
        return self


class RegexCfg(_Entry):
    type: Literal["regex"]
    pattern: str
    mode: Literal["search", "fullmatch"] = "search"
    must_match: bool = True
    ignore_case: bool = False

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as e:
            raise ValueError(f"not a valid regular expression: {e}") from None
        return v


class JsonSchemaCfg(_Entry):
    type: Literal["json_schema"]
    field: str | None = None  # None: the item itself
    schema_: dict[str, Any] = Field(alias="schema")

    @field_validator("schema_")
    @classmethod
    def _valid_schema(cls, v: dict[str, Any]) -> dict[str, Any]:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(v)
        except SchemaError as e:
            raise ValueError(f"not a valid JSON schema: {e.message}") from None
        return v


class DistinctNCfg(_Entry):
    type: Literal["distinct_n"]
    n: int = Field(2, ge=1, le=6)
    min: float = Field(0.5, ge=0, le=1)
    min_ngrams: int = Field(5, ge=1)


class EmbeddingSimilarityCfg(_Entry):
    type: Literal["embedding_similarity"]
    reference_field: str
    min: float | None = Field(None, ge=-1, le=1)
    max: float | None = Field(None, ge=-1, le=1)

    @model_validator(mode="after")
    def _some_bound(self) -> "EmbeddingSimilarityCfg":
        if self.min is None and self.max is None:
            raise ValueError("give min and/or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class EmbeddingSpreadCfg(_Entry):
    type: Literal["embedding_spread"]
    max_similarity: float = Field(0.95, gt=-1, le=1)


class JudgeFaithfulnessCfg(_Entry):
    type: Literal["judge_faithfulness"]
    source_field: str = "source"
    instruction_field: str | None = None
    min_score: float = Field(6, ge=0, le=10)
    max_attempts: int = Field(3, ge=1, le=10)


class JudgeScoreCfg(_Entry):
    type: Literal["judge_score"]
    criteria: list[Criterion] | None = None  # None: the default rubric
    criterion: str | None = None  # gate on one criterion instead of the weighted overall
    instruction_field: str | None = None
    reference_field: str | None = None
    min_score: float = Field(6, ge=0, le=10)
    max_attempts: int = Field(3, ge=1, le=10)


class NoveltyCfg(_Entry):
    type: Literal["novelty"]
    threshold: float = Field(0.5, gt=0, le=1)
    k: int = Field(3, ge=1, le=10)
    method: Literal["exact", "minhash"] = "exact"
    templates: list[str] = []
    patterns: list[str] = []
    learn_boilerplate: bool = False
    num_perm: int = Field(128, ge=16, le=1024)


# For generator configs: `validators: list[ValidatorSpec] = []` checks the block when the YAML
# is loaded (an unknown type or key is then a ConfigError naming `validators.<i>.<key>`).
ValidatorSpec = Annotated[Union[LengthCfg, RegexCfg, JsonSchemaCfg, DistinctNCfg, EmbeddingSimilarityCfg,
                                EmbeddingSpreadCfg, JudgeFaithfulnessCfg, JudgeScoreCfg, NoveltyCfg],
                          Field(discriminator="type")]

CONFIGS: dict[str, type[_Entry]] = {
    "length": LengthCfg, "regex": RegexCfg, "json_schema": JsonSchemaCfg, "distinct_n": DistinctNCfg,
    "embedding_similarity": EmbeddingSimilarityCfg, "embedding_spread": EmbeddingSpreadCfg,
    "judge_faithfulness": JudgeFaithfulnessCfg, "judge_score": JudgeScoreCfg, "novelty": NoveltyCfg,
}


def _make(cfg: _Entry, name: str, judge_model: Any, embedder: _LazyEmbedder) -> Validator:
    if isinstance(cfg, LengthCfg):
        return LengthValidator(name, cfg.field, cfg.min_words, cfg.max_words, cfg.min_chars, cfg.max_chars)
    if isinstance(cfg, RegexCfg):
        return RegexValidator(name, cfg.pattern, cfg.field, cfg.mode, cfg.must_match, cfg.ignore_case)
    if isinstance(cfg, JsonSchemaCfg):
        return JsonSchemaValidator(name, cfg.schema_, cfg.field)
    if isinstance(cfg, DistinctNCfg):
        return DistinctNValidator(name, cfg.n, cfg.min, cfg.field, cfg.min_ngrams)
    if isinstance(cfg, EmbeddingSimilarityCfg):
        return EmbeddingSimilarityValidator(name, cfg.reference_field, embedder, cfg.field, cfg.min, cfg.max)
    if isinstance(cfg, EmbeddingSpreadCfg):
        return EmbeddingSpreadValidator(name, embedder, cfg.field, cfg.max_similarity)
    if isinstance(cfg, JudgeFaithfulnessCfg):
        judge = Judge(judge_model, JudgeConfig(criteria=list(FAITHFULNESS_CRITERIA), max_attempts=cfg.max_attempts))
        return JudgeValidator(name, judge, cfg.min_score, cfg.field, cfg.source_field, cfg.instruction_field)
    if isinstance(cfg, JudgeScoreCfg):
        jc = JudgeConfig(max_attempts=cfg.max_attempts)
        if cfg.criteria:
            jc = JudgeConfig(criteria=cfg.criteria, max_attempts=cfg.max_attempts)
        return JudgeValidator(name, Judge(judge_model, jc), cfg.min_score, cfg.field, cfg.reference_field,
                              cfg.instruction_field, cfg.criterion)
    if isinstance(cfg, NoveltyCfg):
        filt = NoveltyFilter(cfg.threshold, k=cfg.k, method=cfg.method, templates=cfg.templates,
                             patterns=cfg.patterns, learn_boilerplate=cfg.learn_boilerplate, num_perm=cfg.num_perm)
        return NoveltyValidator(name, filt, cfg.field)
    raise AssertionError(type(cfg))


def build_validators(entries: Iterable[Mapping[str, Any] | _Entry] | None, *, judge_model: Any | None = None,
                     embedder: Any | None = None, source: str = "validators") -> list[Validator]:
    """Validators from a YAML `validators:` list. `judge_model` (a models.base.Model) is needed
    only by judge types; `embedder` (anything with `encode(texts) -> unit vectors`) defaults to
    the shared MiniLM, loaded on first use."""
    entries = list(entries or [])
    lazy = _LazyEmbedder(embedder)
    cfgs: list[_Entry] = []
    for i, e in enumerate(entries):
        where = f"{source}[{i}]"
        if isinstance(e, _Entry):  # already validated as part of a generator config
            e = e.model_dump(by_alias=True, exclude_unset=True)
        if not isinstance(e, Mapping):
            raise ConfigError(f"{where}: each validator is a mapping like {{type: length, max_words: 200}}, "
                              f"got {type(e).__name__}")
        kind = e.get("type")
        if kind not in CONFIGS:
            raise ConfigError(f"{where}: unknown validator type {kind!r} (known: {', '.join(CONFIGS)})")
        cfg = validate(CONFIGS[kind], dict(e), f"{where} (type {kind})")
        if kind in ("judge_faithfulness", "judge_score") and judge_model is None:
            raise ConfigError(f"{where}: validator type {kind!r} needs a judge model (set judge: in the config)")
        if isinstance(cfg, JudgeScoreCfg) and cfg.criterion is not None:
            names = [c.name for c in (cfg.criteria or JudgeConfig().criteria)]
            if cfg.criterion not in names:
                raise ConfigError(f"{where}: key 'criterion': {cfg.criterion!r} is not one of the rubric's {names}")
        cfgs.append(cfg)
    names = _names(cfgs, source)
    return [_make(c, n, judge_model, lazy) for c, n in zip(cfgs, names)]


def _names(cfgs: list[_Entry], source: str) -> list[str]:
    explicit = [c.name for c in cfgs if c.name]
    dup = sorted({n for n in explicit if explicit.count(n) > 1})
    if dup:
        raise ConfigError(f"{source}: validator names must be unique, repeated: {dup}")
    taken, out = set(explicit), []
    types = [c.type for c in cfgs]  # type: ignore[attr-defined]
    for c, t in zip(cfgs, types):
        if c.name:
            out.append(c.name)
            continue
        name = t if types.count(t) == 1 else f"{t}:{c.field}"
        base, n = name, 2
        while name in taken:
            name, n = f"{base}#{n}", n + 1
        taken.add(name)
        out.append(name)
    return out


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
