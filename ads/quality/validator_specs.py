"""Validator specs: the YAML `validators:` entries and the builder that turns them into validators.

`build_validators(entries, judge_model=..., embedder=...)` validates each entry with a
strict pydantic model; an unknown `type` or key is a `ConfigError` naming it. A generator
config can declare `validators: list[ValidatorSpec] = []` to have the same check when its
YAML is loaded, and pass the parsed entries to `build_validators`. The validators themselves
and `ValidatorSuite` are in `ads.quality.validators`.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Iterable, Literal, Mapping, Union

import numpy as np
from pydantic import Field, field_validator, model_validator

from ads.config import ConfigError, Strict, validate
from ads.quality.judge import FAITHFULNESS_CRITERIA, Criterion, Judge, JudgeConfig
from ads.quality.novelty import NoveltyFilter
from ads.quality.validators import (DistinctNValidator, EmbeddingSimilarityValidator, EmbeddingSpreadValidator,
                                    JsonSchemaValidator, JudgeValidator, LengthValidator, NoveltyValidator,
                                    RegexValidator, Validator)

class _LazyEmbedder:
    """Resolves the shared MiniLM embedder on first use, so building validators stays cheap."""

    def __init__(self, embedder: Any | None):
        self._e = embedder

    def encode(self, texts: list[str]) -> np.ndarray:
        if self._e is None:
            from ads.quality.embeddings import shared_embedder

            self._e = shared_embedder()
        return np.asarray(self._e.encode(texts), dtype=np.float32)



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
