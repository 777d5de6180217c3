"""Rewards the router learns from.

Item reward, in [0, 1], from the validator suite's outcome:
* malformed reply (no JSON, schema violation, model error): 0;
* rejected by a validator: `partial_credit` x (validators passed / validators in the suite),
  so an arm that gets most checks right is still told apart from one that gets none;
* accepted: (1 - quality_weight) + quality_weight x mean quality score, where the quality
  scores are the validators' own measurements mapped to [0, 1]: distinct-n as is, judge
  score / 10, novelty and embedding spread as 1 - similarity to the nearest accepted item.
  With no scoring validator an accepted item earns 1.

Batch reward (one router pull = one batch) is the mean item reward; with the downstream
signal on, it is mixed with `weight` x the batch's downstream reward:
* the downstream task trains the TF-IDF + logistic-regression classifier
  (ads/downstream/classifier.py) on every accepted record so far, its label being the record's
  `label_field` (a facet such as `topic`), and scores it on a fixed validation sample of REAL
  labelled texts. `task: wiki_topic` uses the offline Wikipedia topic labels (drawn from the
  classifier's training side of its split; the held-out side is kept for the final report,
  never for rewards). `task: labelled_jsonl` makes the same reward available to any recipe
  with a labelled target: `eval_path` is a JSONL file of real (text, label) examples, split
  once by the seed into a validation sample (reward) and a held-out rest (final report);
  labels are matched case-insensitively to the file's label set;
* a batch's downstream reward is clip(0.5 + gain_scale x accuracy gain, 0, 1), the gain being
  the accuracy with this batch minus the accuracy before it; a batch with nothing accepted
  gets 0, the first batch with something accepted a neutral 0.5.
`downstream.enabled` turns the reward on; `downstream.report` (or `enabled`) adds the final
held-out report (synthetic accuracy, majority baseline, trained-on-real bound) to the summary.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Iterable, Literal

from pydantic import Field, model_validator

from ads.config import Strict
from ads.quality.validators import (DistinctNValidator, EmbeddingSpreadValidator, JudgeValidator, NoveltyValidator,
                                    SuiteResult, ValidatorSuite)


class DownstreamConfig(Strict):
    enabled: bool = False  # mix the downstream gain into the router's reward
    report: bool = False  # score the final dataset on the real held-out split even when the reward is off
    # wiki_topic: topic classifier scored on real Wikipedia labels; labelled_jsonl: any labelled JSONL file
    task: Literal["wiki_topic", "labelled_jsonl"] = "wiki_topic"
    label_field: str = "topic"  # the field of a generated record that holds its label (usually a facet)
    eval_path: str | None = None  # labelled_jsonl: real labelled examples, one JSON object a line
    eval_text_field: str = "text"
    eval_label_field: str | None = None  # None: the same name as label_field
    weight: float = Field(0.5, ge=0, le=1)
    gain_scale: float = Field(10.0, gt=0)
    validation_size: int = Field(1000, ge=10)

    @model_validator(mode="after")
    def _eval_file(self) -> "DownstreamConfig":
        if self.task == "labelled_jsonl" and not self.eval_path:
            raise ValueError("task labelled_jsonl needs eval_path (a JSONL file of real labelled texts)")
        if self.task == "wiki_topic" and self.eval_path:
            raise ValueError("eval_path is for task labelled_jsonl; wiki_topic uses the offline Wikipedia labels")
        return self


class RewardConfig(Strict):
    partial_credit: float = Field(0.5, ge=0, le=1)
    quality_weight: float = Field(0.3, ge=0, le=1)
    downstream: DownstreamConfig = DownstreamConfig()


def _quality(validator: Any, score: float | None) -> float | None:
    if score is None:
        return None
    if isinstance(validator, DistinctNValidator):
        return max(0.0, min(1.0, score))
    if isinstance(validator, JudgeValidator):
        return max(0.0, min(1.0, score / 10.0))
    if isinstance(validator, (NoveltyValidator, EmbeddingSpreadValidator)):
        return max(0.0, min(1.0, 1.0 - score))
    return None


def item_reward(cfg: RewardConfig, suite: ValidatorSuite, result: SuiteResult | None) -> float:
    """Reward of one item; `result` None means the reply was malformed."""
    if result is None:
        return 0.0
    n = len(suite.validators)
    if not result.passed:
        passed = sum(r.passed for r in result.results)
        return round(cfg.partial_credit * passed / n, 6) if n else 0.0
    by_name = {v.name: v for v in suite.validators}
    qs = [q for r in result.results if (q := _quality(by_name.get(r.name), r.score)) is not None]
    quality = sum(qs) / len(qs) if qs else 1.0
    return round((1 - cfg.quality_weight) + cfg.quality_weight * quality, 6)


def batch_reward(cfg: RewardConfig, item_rewards: list[float], downstream: float | None) -> float:
    base = sum(item_rewards) / len(item_rewards) if item_rewards else 0.0
    if downstream is None:
        return round(base, 6)
    w = cfg.downstream.weight
    return round((1 - w) * base + w * downstream, 6)


def downstream_batch_reward(cfg: DownstreamConfig, acc_before: float | None, acc_after: float, accepted: int) -> float:
    """`acc_before` None: the first batch with data, whose gain cannot be measured (a classifier
    trained on one batch is no baseline): neutral 0.5, so the arm pulled first is not penalised."""
    if accepted == 0:
        return 0.0
    if acc_before is None:
        return 0.5
    return round(max(0.0, min(1.0, 0.5 + cfg.gain_scale * (acc_after - acc_before))), 6)


class LabelledScorer:
    """Accuracy on real labels of a classifier trained on synthetic records.

    `validation` (texts, labels) scores every batch for the reward; `heldout` is only used by
    `report()` at the end, so the number a run is judged by was never optimised against.
    """

    def __init__(self, cfg: DownstreamConfig, validation: tuple[list[str], list[str]],
                 heldout: tuple[list[str], list[str]], source: str):
        from ads.downstream.classifier import RealSplit

        self.cfg, self.source = cfg, source
        self.labels = sorted(set(validation[1]) | set(heldout[1]))
        self.split = RealSplit((), (), tuple(validation[0]), tuple(validation[1]))
        self.validation, self.heldout = validation, heldout

    def _training(self, records: Iterable[dict[str, Any]]) -> tuple[list[str], list[str], dict[str, int]]:
        from ads.downstream.classifier import normalize_topic

        texts, ys, skipped = [], [], 0
        for r in records:
            lbl = normalize_topic(str(r.get(self.cfg.label_field, "")), self.labels)
            if lbl is not None and isinstance(r.get("text"), str) and r["text"].strip():
                texts.append(r["text"])
                ys.append(lbl)
            else:
                skipped += 1
        return texts, ys, {"used": len(texts), "unknown_label_or_empty": skipped}

    def accuracy(self, records: Iterable[dict[str, Any]]) -> float:
        from ads.downstream.classifier import fit_and_score

        texts, ys, _ = self._training(records)
        return round(fit_and_score(texts, ys, self.split), 4)

    def report(self, records: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """The final score on the held-out side, beside the majority baseline and a trained-on-real bound
        (the same classifier trained on the validation side): the same keys as the wiki topic report."""
        from collections import Counter

        from ads.downstream.classifier import RealSplit, fit_and_score

        texts, ys, counts = self._training(records)
        test = RealSplit((), (), tuple(self.heldout[0]), tuple(self.heldout[1]))
        majority = Counter(self.validation[1]).most_common(1)[0][0]
        maj = sum(y == majority for y in self.heldout[1]) / len(self.heldout[1])
        upper = fit_and_score(list(self.validation[0]), list(self.validation[1]), test)
        acc = fit_and_score(texts, ys, test)
        span = upper - maj
        return {"source": self.source, "heldout_n": len(self.heldout[1]), "labels": self.labels,
                "majority_accuracy": round(maj, 4), "real_upper_bound": round(upper, 4),
                "synthetic_accuracy": round(acc, 4), "gap_closed": round((acc - maj) / span, 4) if span > 0 else None,
                "synthetic": counts}


def load_labelled_jsonl(cfg: DownstreamConfig, seed: int = 0) -> LabelledScorer:
    """A scorer over a JSONL file of real labelled texts; a bad file is a ConfigError naming the line."""
    from ads.config import ConfigError

    path = Path(cfg.eval_path or "")
    label_key = cfg.eval_label_field or cfg.label_field
    if not path.is_file():
        raise ConfigError(f"reward.downstream.eval_path: {path} is not a file")
    texts, labels = [], []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise ConfigError(f"{path}:{n}: not JSON ({e})") from None
            t, y = (row.get(cfg.eval_text_field), row.get(label_key)) if isinstance(row, dict) else (None, None)
            if not isinstance(t, str) or not t.strip() or y is None or not str(y).strip():
                raise ConfigError(f"{path}:{n}: needs a non-empty {cfg.eval_text_field!r} and {label_key!r}")
            texts.append(t)
            labels.append(str(y).strip())
    if len(set(labels)) < 2 or len(texts) < 4:
        raise ConfigError(f"{path}: needs at least 4 labelled texts and 2 labels, found {len(texts)} texts, "
                          f"labels {sorted(set(labels))}")
    idx = list(range(len(texts)))
    random.Random(f"downstream:{seed}").shuffle(idx)
    n_val = min(cfg.validation_size, len(idx) // 2)
    val, held = idx[:n_val], idx[n_val:]
    return LabelledScorer(cfg, ([texts[i] for i in val], [labels[i] for i in val]),
                          ([texts[i] for i in held], [labels[i] for i in held]),
                          source=f"real held-out labelled texts from {path}")


class TopicScorer:
    """Accuracy on real Wikipedia topic labels of a classifier trained on synthetic records."""

    source = "real held-out Wikipedia extracts"

    def __init__(self, cfg: DownstreamConfig, seed: int = 0):
        from ads.downstream.classifier import RealSplit, real_split

        if cfg.task != "wiki_topic":
            raise ValueError(f"TopicScorer is the wiki_topic task, not {cfg.task!r}")
        self.cfg = cfg
        full = real_split()
        idx = list(range(len(full.train_texts)))
        random.Random(f"downstream:{seed}").shuffle(idx)
        idx = idx[:cfg.validation_size]
        self.split = RealSplit((), (), tuple(full.train_texts[i] for i in idx),
                               tuple(full.train_labels[i] for i in idx))

    @property
    def labels(self) -> list[str]:
        from ads.downstream.classifier import real_split

        return real_split().labels

    def accuracy(self, records: Iterable[dict[str, Any]]) -> float:
        from ads.downstream.classifier import fit_and_score, normalize_topic

        texts, ys = [], []
        for r in records:
            lbl = normalize_topic(str(r.get(self.cfg.label_field, "")), self.labels)
            if lbl is not None and isinstance(r.get("text"), str) and r["text"].strip():
                texts.append(r["text"])
                ys.append(lbl)
        return round(fit_and_score(texts, ys, self.split), 4)

    def report(self, records: Iterable[dict[str, Any]]) -> dict[str, Any]:
        from ads.downstream.classifier import classifier_report

        rep = classifier_report([{"text": r.get("text", ""), "topic": str(r.get(self.cfg.label_field, ""))}
                                 for r in records])
        return {"source": self.source, **{k: rep[k] for k in ("heldout_n", "majority_accuracy", "real_upper_bound",
                                                             "synthetic_accuracy", "gap_closed", "synthetic")}}


def make_scorer(cfg: DownstreamConfig, seed: int = 0) -> TopicScorer | LabelledScorer:
    """The downstream scorer the config names."""
    return TopicScorer(cfg, seed) if cfg.task == "wiki_topic" else load_labelled_jsonl(cfg, seed)
