"""A cheap downstream check: a topic classifier trained only on synthetic texts, tested on real ones.

TF-IDF + logistic regression is trained on generated (text, topic) records and scored on
real Wikipedia extracts with their real topic labels (11 topics; "Uncategorized" is not a
topic and is dropped). The held-out set is a fixed stratified 20% split of the real
articles, so every score is on the same 1,807 texts. Two reference points come with it:
- the majority baseline (always the most common real topic, "People"): ~0.20
- the trained-on-real upper bound (the same classifier trained on the other 80%): ~0.90
so a synthetic dataset's accuracy reads as a fraction of what real data of that size buys.

The vectorizer vocabulary comes from the synthetic texts only; nothing about the real set
leaks into training. `classifier_reward(records)` is the accuracy alone, as a reward
signal a generator can call after each batch (about a second for a few thousand records).

    python -m ads.downstream.classifier SYNTHETIC.jsonl [--text-field text --topic-field topic]
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from ads.config import ConfigError

DROP_TOPICS = {"Uncategorized"}
HELDOUT_FRACTION = 0.2
SPLIT_SEED = 0


class SyntheticDataError(ConfigError):
    """Synthetic records that cannot be used; the message names the record and the field."""


@dataclass(frozen=True)
class RealSplit:
    train_texts: tuple[str, ...]
    train_labels: tuple[str, ...]
    test_texts: tuple[str, ...]
    test_labels: tuple[str, ...]

    @property
    def labels(self) -> list[str]:
        return sorted(set(self.test_labels))


@lru_cache(maxsize=1)
def real_split() -> RealSplit:
    """The fixed stratified split of real topic-labelled Wikipedia extracts (sorted by title first)."""
    from sklearn.model_selection import train_test_split

    from apis.corpus import load_corpus

    docs = sorted((d for d in load_corpus(None) if d.topic and d.topic not in DROP_TOPICS), key=lambda d: d.id)
    texts, labels = [d.text for d in docs], [d.topic for d in docs]
    xtr, xte, ytr, yte = train_test_split(texts, labels, test_size=HELDOUT_FRACTION, stratify=labels,
                                          random_state=SPLIT_SEED)
    return RealSplit(tuple(xtr), tuple(ytr), tuple(xte), tuple(yte))


def make_classifier() -> Any:
    """TF-IDF (sublinear tf, unigrams) + multinomial logistic regression (saga: ~1 s on 7k texts)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(TfidfVectorizer(sublinear_tf=True, min_df=1),
                         LogisticRegression(C=10.0, solver="saga", tol=1e-3, max_iter=300, random_state=0))


def _accuracy(pred: Iterable[str], gold: Iterable[str]) -> float:
    pred, gold = list(pred), list(gold)
    return sum(p == g for p, g in zip(pred, gold)) / len(gold)


def fit_and_score(texts: list[str], labels: list[str], split: RealSplit | None = None) -> float:
    """Train on (texts, labels); accuracy on the real held-out set. One class: predicts it always."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    split = split or real_split()
    classes = set(labels)
    if not texts:
        return 0.0
    if len(classes) == 1:
        return _accuracy([labels[0]] * len(split.test_labels), split.test_labels)
    clf = make_classifier()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(texts, labels)
    return _accuracy(clf.predict(list(split.test_texts)), split.test_labels)


@lru_cache(maxsize=1)
def references() -> dict[str, Any]:
    """Majority baseline and trained-on-real upper bound on the held-out set (computed once)."""
    split = real_split()
    majority_label, _ = Counter(split.train_labels).most_common(1)[0]
    return {
        "heldout_n": len(split.test_labels),
        "train_real_n": len(split.train_labels),
        "labels": split.labels,
        "majority_label": majority_label,
        "majority_accuracy": round(_accuracy([majority_label] * len(split.test_labels), split.test_labels), 4),
        "real_upper_bound": round(fit_and_score(list(split.train_texts), list(split.train_labels), split), 4),
    }


# --- synthetic records ---------------------------------------------------------------------
def normalize_topic(topic: str, labels: list[str]) -> str | None:
    key = " ".join(topic.lower().replace("&", "and").split())
    for lbl in labels:
        if key == lbl.lower():
            return lbl
    return None


def prepare_records(records: Iterable[dict[str, Any]], text_field: str = "text", topic_field: str = "topic",
                    where: str = "records") -> tuple[list[str], list[str], dict[str, int]]:
    """(texts, labels, counts). Missing fields are errors; a topic outside the 11 is counted and skipped."""
    labels = real_split().labels
    texts, ys = [], []
    counts = {"records": 0, "used": 0, "unknown_topic": 0, "empty_text": 0}
    for i, r in enumerate(records):
        counts["records"] += 1
        if not isinstance(r, dict):
            raise SyntheticDataError(f"{where}[{i}]: expected an object, got {type(r).__name__}")
        for f in (text_field, topic_field):
            if f not in r:
                raise SyntheticDataError(f"{where}[{i}]: missing field {f!r} (fields present: {sorted(r)[:12]})")
            if not isinstance(r[f], str):
                raise SyntheticDataError(f"{where}[{i}]: field {f!r} must be a string, got {type(r[f]).__name__}")
        if not r[text_field].strip():
            counts["empty_text"] += 1
            continue
        lbl = normalize_topic(r[topic_field], labels)
        if lbl is None:
            counts["unknown_topic"] += 1
            continue
        texts.append(r[text_field])
        ys.append(lbl)
        counts["used"] += 1
    return texts, ys, counts


def classifier_reward(synthetic_records: Iterable[dict[str, Any]], text_field: str = "text",
                      topic_field: str = "topic") -> float:
    """Accuracy on the real held-out topics of a classifier trained on these synthetic records only."""
    texts, labels, _ = prepare_records(synthetic_records, text_field, topic_field)
    return round(fit_and_score(texts, labels), 4)


def load_jsonl(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise SyntheticDataError(f"synthetic data file not found: {path}")
    from ads.store import jsonl_lines

    # jsonl_lines splits on "\n" only: str.splitlines() also broke records at U+2028 / U+0085,
    # which the stores write raw inside strings; and it reports non-UTF-8 bytes by file and line.
    return [r for _, r in jsonl_lines(path, SyntheticDataError)]


def classifier_report(synthetic_records: Iterable[dict[str, Any]], text_field: str = "text",
                      topic_field: str = "topic", where: str = "records") -> dict[str, Any]:
    """Synthetic accuracy next to the majority baseline and the real upper bound, and where it sits between."""
    texts, labels, counts = prepare_records(synthetic_records, text_field, topic_field, where)
    acc = fit_and_score(texts, labels)
    ref = references()
    span = ref["real_upper_bound"] - ref["majority_accuracy"]
    return {
        **ref,
        "synthetic": counts,
        "synthetic_topics": dict(Counter(labels)),
        "synthetic_accuracy": round(acc, 4),
        "ratio_to_upper_bound": round(acc / ref["real_upper_bound"], 4),
        # 0 = no better than always answering "People", 1 = as good as real training data
        "gap_closed": round((acc - ref["majority_accuracy"]) / span, 4) if span > 0 else None,
    }


def print_report(rep: dict[str, Any]) -> None:
    print(f"Topic classifier on {rep['heldout_n']} real held-out Wikipedia extracts ({len(rep['labels'])} topics)")
    print(f"  majority baseline ({rep['majority_label']}): {rep['majority_accuracy']:.3f}")
    print(f"  trained on {rep['synthetic']['used']} synthetic texts: {rep['synthetic_accuracy']:.3f}"
          f"  (ratio to upper bound {rep['ratio_to_upper_bound']:.2f}, gap closed {rep['gap_closed']:.2f})")
    print(f"  trained on {rep['train_real_n']} real texts (upper bound): {rep['real_upper_bound']:.3f}")
    if rep["synthetic"]["unknown_topic"]:
        print(f"  skipped {rep['synthetic']['unknown_topic']} synthetic records with a topic outside the 11")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ads.downstream.classifier", description=__doc__.split("\n\n")[0])
    ap.add_argument("path", help="JSONL of synthetic records with a text and a topic field")
    ap.add_argument("--text-field", default="text")
    ap.add_argument("--topic-field", default="topic")
    ap.add_argument("--out", help="also write the report as JSON here")
    args = ap.parse_args(argv)
    try:
        rep = classifier_report(load_jsonl(args.path), args.text_field, args.topic_field, where=args.path)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_report(rep)
    if args.out:
        from ads.store import atomic_write_json

        atomic_write_json(args.out, rep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
