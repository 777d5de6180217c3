"""The `apis:` config section and the one function that turns it into a live ApiRegistry.

The ADS config embeds `ApisConfig`, so every knob of the data-acquisition APIs (which corpus,
which BM25 backend, how many passages, what each call costs) is a typed, checked key of the
experiment's YAML. The model handed to `build_api_registry` is used as is: the caller wraps
it with the request cache and the ledger, so API-internal generations are replayed on
resume and charged like every other call.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from apis.api_registry import ApiLedger, ApiRegistry
from apis.corpus import CorpusConfig, load_corpus
from apis.demonstrations import DemonstrationApi
from apis.qa import QuestionAnsweringApi
from apis.retrieval import Bm25Index, Bm25Settings, RetrievalApi, TokenizerSettings
from models.base import Model
from models.model_config import ConfigError, Strict

API_NAMES = ("information_retrieval", "demonstration_generation", "question_answering")


class RetrievalConfig(Strict):
    backend: Literal["bm25s", "rank_bm25"] = "bm25s"
    method: Literal["robertson", "lucene", "atire", "bm25l", "bm25+"] = "robertson"
    # Anserini's defaults; on this corpus they find an article from its description more
    # often than 1.5/0.75 (see bench/README.md, "BM25 retrieval").
    k1: float = Field(0.9, gt=0)
    b: float = Field(0.4, ge=0, le=1)
    stopwords: Literal["english", "none"] = "english"
    stemmer: Literal["english", "none"] = "english"
    index_fields: list[Literal["title", "text", "description", "topic"]] = ["title", "text"]
    top_k: int = Field(3, ge=1, le=20)
    max_top_k: int = Field(20, ge=1, le=100)
    passage_chars: int = Field(700, ge=50)  # per passage in the observation text (the payload has all)
    persist: bool = True  # keep the bm25s index under <cache_dir>/indexes/

    def settings(self) -> Bm25Settings:
        return Bm25Settings(backend=self.backend, method=self.method, k1=self.k1, b=self.b,
                            index_fields=tuple(self.index_fields),
                            tokenizer=TokenizerSettings(stopwords=self.stopwords, stemmer=self.stemmer))


class DemonstrationsConfig(Strict):
    k: int = Field(3, ge=1)
    max_k: int = Field(8, ge=1, le=20)
    grounded: bool = False
    top_k: int = Field(2, ge=1, le=20)  # passages to ground on
    context_chars: int = Field(1500, ge=100)
    temperature: float = Field(0.7, ge=0)
    tokens_per_pair: int = Field(200, ge=32)


class QaConfig(Strict):
    grounded: bool = True
    top_k: int = Field(3, ge=1, le=20)
    max_tokens: int = Field(48, ge=4)
    passage_chars: int = Field(600, ge=50)
    max_answer_chars: int = Field(200, ge=1)  # the answer schema's maxLength; longer replies are rejected


class CostsConfig(Strict):
    """Cost units charged per call (errors cost `error`)."""

    information_retrieval: float = Field(1.0, ge=0)
    demonstration_generation: float = Field(3.0, ge=0)
    question_answering: float = Field(2.0, ge=0)
    error: float = Field(1.0, ge=0)


class ApisConfig(Strict):
    enabled: list[Literal["information_retrieval", "demonstration_generation", "question_answering"]] = \
        list(API_NAMES)
    corpus: CorpusConfig = CorpusConfig()
    retrieval: RetrievalConfig = RetrievalConfig()
    demonstrations: DemonstrationsConfig = DemonstrationsConfig()
    qa: QaConfig = QaConfig()
    costs: CostsConfig = CostsConfig()
    max_arg_length: int = Field(500, ge=1)  # characters, for every string argument
    seed: int = 0


def build_index(cfg: ApisConfig, cache_dir: str | Path | None = "cache", verbose: bool = True) -> Bm25Index:
    docs = load_corpus(cfg.corpus)
    persist_dir = cache_dir if (cfg.retrieval.persist and cache_dir is not None) else None
    return Bm25Index(docs, cfg.retrieval.settings(), cache_dir=persist_dir, verbose=verbose)


def build_api_registry(cfg: ApisConfig | None = None, model: Model | None = None, ledger: ApiLedger | None = None,
                       cache_dir: str | Path | None = "cache", index: Bm25Index | None = None) -> ApiRegistry:
    """The enabled APIs over one shared index. `index` skips loading when the caller has one."""
    cfg = cfg or ApisConfig()
    needs_model = [n for n in cfg.enabled if n != "information_retrieval"]
    if needs_model and model is None:
        raise ConfigError(f"apis.enabled: {needs_model} need a model; pass one or enable only information_retrieval")
    if cfg.demonstrations.k > cfg.demonstrations.max_k:
        raise ConfigError(f"apis.demonstrations.k ({cfg.demonstrations.k}) exceeds max_k ({cfg.demonstrations.max_k})")
    if cfg.retrieval.top_k > cfg.retrieval.max_top_k or cfg.qa.top_k > cfg.retrieval.max_top_k:
        raise ConfigError(f"apis: top_k exceeds apis.retrieval.max_top_k ({cfg.retrieval.max_top_k})")
    index = index or build_index(cfg, cache_dir)
    r, d, q, c, n = cfg.retrieval, cfg.demonstrations, cfg.qa, cfg.costs, cfg.max_arg_length
    apis = []
    for name in dict.fromkeys(cfg.enabled):
        if name == "information_retrieval":
            apis.append(RetrievalApi(index, cost=c.information_retrieval, default_top_k=r.top_k,
                                     max_top_k=r.max_top_k, max_query_chars=n, passage_chars=r.passage_chars))
        elif name == "demonstration_generation":
            apis.append(DemonstrationApi(model, index, cost=c.demonstration_generation, default_k=d.k,
                                         max_k=d.max_k, grounded=d.grounded, top_k=d.top_k,
                                         context_chars=d.context_chars, max_topic_chars=n,
                                         temperature=d.temperature, seed=cfg.seed,
                                         tokens_per_pair=d.tokens_per_pair))
        else:
            apis.append(QuestionAnsweringApi(model, index, cost=c.question_answering, grounded=q.grounded,
                                             default_top_k=q.top_k, max_top_k=r.max_top_k, max_question_chars=n,
                                             passage_chars=q.passage_chars, max_tokens=q.max_tokens,
                                             max_answer_chars=q.max_answer_chars, seed=cfg.seed))
    return ApiRegistry(apis, ledger=ledger, error_cost=c.error)
