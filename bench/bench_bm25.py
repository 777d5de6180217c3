"""bm25s vs rank-bm25 (BM25Okapi): queries per second and top-5 agreement, in one run.

Both backends go through `apis.retrieval.Bm25Index` with identical tokens (lowercase, English
stopwords, Snowball stemming) and the same top-k selection, so the difference measured is the
scoring engine alone. Queries are real: the Wikipedia short descriptions of randomly drawn
English articles ("1968 film by Stanley Kubrick").

Corpora:
- wiki-10k: the 10,033 English vital-article summaries (the default corpus).
- wiki-100k: real multilingual text, built here: every English, Spanish and French summary
  (26,227 documents) plus every window of two and of three consecutive sentences of each
  summary (110,079 in all), then a seeded sample of exactly 100,000 of them.

rank-bm25 scores every document in Python per query (~0.1 s at 100k), so it gets a few
hundred queries there; bm25s runs the identical query list.

    PYTHONPATH=. .venv/bin/python bench/bench_bm25.py [--queries-10k 1000] [--queries-100k 300]
"""
from __future__ import annotations

import argparse
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from apis.corpus import Document, load_wiki  # noqa: E402
from apis.factory import RetrievalConfig  # noqa: E402
from apis.retrieval import Bm25Index, Bm25Settings  # noqa: E402

_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-ZÀ-ÖØ-Þ¿¡«\"(])")


def sentence_windows(doc: Document, size: int = 2) -> list[Document]:
    sents = [s for s in _SENT.split(doc.text) if s.strip()]
    return [Document(id=f"{doc.id}#w{size}.{i}", title=doc.title, text=" ".join(sents[i:i + size]))
            for i in range(0, len(sents) - size + 1)]


def build_100k(seed: int, target: int = 100_000) -> tuple[list[Document], str]:
    docs: list[Document] = []
    for lang in ("en-us", "es-es", "fr-fr"):
        for d in load_wiki(lang=lang):
            full = Document(id=f"{lang}:{d.id}", title=d.title, text=d.text)
            docs.append(full)
            docs.extend(sentence_windows(full, 2))
            docs.extend(sentence_windows(full, 3))
    pool = len(docs)
    if pool > target:
        docs = random.Random(seed).sample(docs, target)
    note = f"{pool:,} candidate documents (26,227 summaries + 2- and 3-sentence windows), sampled to {len(docs):,}"
    return docs, note


def run_queries(index: Bm25Index, queries: list[str], k: int = 5) -> tuple[float, list[list[str]]]:
    t0 = time.perf_counter()
    results = [[h.doc.id for h in index.search(q, k)] for q in queries]
    return time.perf_counter() - t0, results


def compare(name: str, docs: list[Document], queries: list[str], settings: Bm25Settings) -> dict:
    print(f"\n== {name}: {len(docs):,} documents, {len(queries)} queries", flush=True)
    t0 = time.perf_counter()
    fast = Bm25Index(docs, settings, verbose=False)
    build_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = Bm25Index(docs, Bm25Settings(**{**settings.__dict__, "backend": "rank_bm25"}), verbose=False)
    build_ref = time.perf_counter() - t0
    run_queries(fast, queries[:20])  # warm caches
    t_fast, res_fast = run_queries(fast, queries)
    t_ref, res_ref = run_queries(ref, queries)
    overlap = sum(len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(res_fast, res_ref)) / len(queries)
    same = sum(a == b for a, b in zip(res_fast, res_ref)) / len(queries)
    top1 = sum(bool(a) and bool(b) and a[0] == b[0] for a, b in zip(res_fast, res_ref)) / len(queries)
    qps_fast, qps_ref = len(queries) / t_fast, len(queries) / t_ref
    row = {"corpus": name, "docs": len(docs), "queries": len(queries), "build_bm25s_s": build_fast,
           "build_rank_bm25_s": build_ref, "qps_bm25s": qps_fast, "qps_rank_bm25": qps_ref,
           "ratio": qps_fast / qps_ref, "ms_bm25s": 1000 * t_fast / len(queries),
           "ms_rank_bm25": 1000 * t_ref / len(queries), "top5_overlap": overlap, "top5_identical": same,
           "top1_agree": top1}
    print(f"build: bm25s {build_fast:.1f}s, rank-bm25 {build_ref:.1f}s")
    print(f"bm25s     {qps_fast:10.1f} q/s  ({row['ms_bm25s']:.3f} ms/query)")
    print(f"rank-bm25 {qps_ref:10.1f} q/s  ({row['ms_rank_bm25']:.3f} ms/query)")
    print(f"speed-up  {row['ratio']:10.1f}x   top-5 overlap {overlap:.4f}, identical top-5 lists {same:.4f}, "
          f"same top-1 {top1:.4f}", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries-10k", type=int, default=1000)
    ap.add_argument("--queries-100k", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--method", default="robertson")
    args = ap.parse_args()
    settings = RetrievalConfig(method=args.method).settings()  # the API's defaults otherwise
    print(f"settings: {settings}")
    wiki = load_wiki()
    rng = random.Random(args.seed)
    described = [d for d in wiki if d.description]
    queries = [d.description for d in rng.sample(described, max(args.queries_10k, args.queries_100k))]
    rows = [compare("wiki-10k", wiki, queries[: args.queries_10k], settings)]
    big, note = build_100k(args.seed)
    print(f"\nwiki-100k: {note}")
    rows.append(compare("wiki-100k", big, queries[: args.queries_100k], settings))
    print("\n| corpus | docs | queries | bm25s q/s | rank-bm25 q/s | speed-up | top-5 overlap | identical top-5 |"
          " same top-1 | build bm25s / rank-bm25 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['corpus']} | {r['docs']:,} | {r['queries']} | {r['qps_bm25s']:,.0f} | {r['qps_rank_bm25']:,.1f} "
              f"| {r['ratio']:,.0f}x | {r['top5_overlap']:.3f} | {r['top5_identical']:.3f} | {r['top1_agree']:.3f} "
              f"| {r['build_bm25s_s']:.1f} s / {r['build_rank_bm25_s']:.1f} s |")


if __name__ == "__main__":
    main()
