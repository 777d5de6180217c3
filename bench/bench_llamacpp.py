"""Harness `generate` vs a bare `llama_cpp.Llama`, same GGUF, same prompts, one process.

The harness path is the full stack a run uses: ledger -> request cache (all misses: a fresh
database) -> LlamaCppModel, once with prefix reuse from the previous call only (on if the
load-time probe finds this build's logits independent of the batch split), once as a run
configures it since issue 21 (ModelConfig default: also the prompt state cache, 256 MB; its
lookups, saves and loads are pure overhead on these prompts, which share little) and once
resetting the context before every call. The bare path is `Llama.create_chat_completion`
with its defaults (it always reuses the previous call's prefix). Calls rotate prompt by prompt
so all paths see the same machine load; the tokens/s of each path and its ratio to bare are
printed.

    .venv/bin/python bench/bench_llamacpp.py [--model cache/models/smollm2-135m.gguf] [--prompts 24]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ads.ledger import CostLedger, LedgeredModel  # noqa: E402
from models.caching import CachingModel, RequestCache  # noqa: E402
from models.llamacpp import LlamaCppModel  # noqa: E402

TOPICS = ["the sea", "volcanoes", "the Roman Empire", "photosynthesis", "chess", "the Moon", "jazz", "glaciers",
          "bees", "the printing press", "rainforests", "electricity", "the Nile", "mathematics", "bridges",
          "the violin", "deserts", "coffee", "satellites", "earthquakes", "the Renaissance", "whales", "trains", "salt"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="cache/models/smollm2-135m.gguf")
    ap.add_argument("--prompts", type=int, default=24)
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()
    from llama_cpp import Llama

    threads = os.cpu_count() or 1
    bare = Llama(model_path=args.model, n_ctx=2048, n_threads=threads, verbose=False)
    tmp = Path(tempfile.mkdtemp())

    def harness(reuse: bool | None, name: str, cache_mb: int = 0) -> LedgeredModel:
        inner = LlamaCppModel(args.model, n_ctx=2048, n_threads=threads, reuse_prefix=reuse, prefix_cache_mb=cache_mb)
        return LedgeredModel(CachingModel(inner, RequestCache(tmp / f"{name}.sqlite")), CostLedger(), "bench")

    auto, reset, cached = harness(None, "auto"), harness(False, "reset"), harness(None, "cached", 256)
    reuse_on = auto.reuse_prefix  # the wrappers delegate attributes
    paths = {"bare llama_cpp.Llama": lambda m, n: bare.create_chat_completion(m, max_tokens=n, temperature=0.0)
             ["usage"]["completion_tokens"],
             f"harness (reuse_prefix={reuse_on})": lambda m, n: auto.generate(m, max_tokens=n).completion_tokens,
             "harness (+ state cache 256 MB)": lambda m, n: cached.generate(m, max_tokens=n).completion_tokens,
             "harness (reset every call)": lambda m, n: reset.generate(m, max_tokens=n).completion_tokens}
    prompts = [[{"role": "user", "content": f"Write three sentences about {TOPICS[i % len(TOPICS)]} (#{i})."}]
               for i in range(args.prompts)]
    for f in paths.values():  # warm-up
        f([{"role": "user", "content": "Hello."}], 8)
    secs = dict.fromkeys(paths, 0.0)
    toks = dict.fromkeys(paths, 0)
    names = list(paths)
    per_prompt: dict[str, list[float]] = {k: [] for k in names[1:]}  # bare seconds / path seconds
    for i, msgs in enumerate(prompts):  # rotate the order so all paths see the same machine load
        took = {}
        for name in names[i % len(names):] + names[:i % len(names)]:
            t0 = time.perf_counter()
            toks[name] += paths[name](msgs, args.max_tokens)
            took[name] = time.perf_counter() - t0
            secs[name] += took[name]
        for k in per_prompt:  # same prompt, same tokens (greedy), seconds apart: paired against load drift
            per_prompt[k].append(took[names[0]] / took[k])
    rate = {k: toks[k] / secs[k] for k in paths}
    print(f"model {args.model}, {args.prompts} prompts, max_tokens {args.max_tokens}, {threads} threads")
    print(f"{'path':<34}{'completion tokens':>18}{'seconds':>10}{'tokens/s':>10}{'vs bare':>9}")
    for k in paths:
        print(f"{k:<34}{toks[k]:>18}{secs[k]:>10.2f}{rate[k]:>10.1f}{rate[k] / rate[names[0]]:>9.3f}")
    for k, rs in per_prompt.items():
        rs.sort()
        print(f"paired per-prompt ratio, {k}: median {rs[len(rs) // 2]:.3f} (range {rs[0]:.2f}..{rs[-1]:.2f})")
    for k in names[1:3]:
        print(f"ratio {k} / bare tokens/s: {rate[k] / rate[names[0]]:.3f}  (target >= 0.95)")


if __name__ == "__main__":
    main()
