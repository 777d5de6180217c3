"""Harness `generate` vs a bare `llama_cpp.Llama`, same GGUF, same prompts, one process.

The harness path is the full stack a run uses: ledger -> request cache (all misses: a fresh
database) -> LlamaCppModel (context reset per call for reproducibility). The bare path is
`Llama.create_chat_completion` with its defaults. Calls are interleaved prompt by prompt so
both see the same machine load; the ratio of completion tokens per second is printed.

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
    tmp = tempfile.mkdtemp()
    harness = LedgeredModel(CachingModel(LlamaCppModel(args.model, n_ctx=2048, n_threads=threads),
                                         RequestCache(Path(tmp) / "bench.sqlite")), CostLedger(), "bench")
    prompts = [[{"role": "user", "content": f"Write three sentences about {TOPICS[i % len(TOPICS)]} (#{i})."}]
               for i in range(args.prompts)]
    # warm-up both paths once
    bare.create_chat_completion(prompts[0], max_tokens=8, temperature=0.0)
    harness.generate(prompts[0], max_tokens=8, sample_id="warm")
    t_bare = t_h = 0.0
    tok_bare = tok_h = 0
    for i, msgs in enumerate(prompts):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for which in order:
            t0 = time.perf_counter()
            if which == 0:
                out = bare.create_chat_completion(msgs, max_tokens=args.max_tokens, temperature=0.0)
                t_bare += time.perf_counter() - t0
                tok_bare += out["usage"]["completion_tokens"]
            else:
                c = harness.generate(msgs, max_tokens=args.max_tokens, temperature=0.0)
                t_h += time.perf_counter() - t0
                tok_h += c.completion_tokens
    r_bare, r_h = tok_bare / t_bare, tok_h / t_h
    print(f"model {args.model}, {args.prompts} prompts, max_tokens {args.max_tokens}, {threads} threads")
    print(f"{'path':<28}{'completion tokens':>18}{'seconds':>10}{'tokens/s':>10}")
    print(f"{'bare llama_cpp.Llama':<28}{tok_bare:>18}{t_bare:>10.2f}{r_bare:>10.1f}")
    print(f"{'harness generate (full)':<28}{tok_h:>18}{t_h:>10.2f}{r_h:>10.1f}")
    print(f"ratio harness/bare tokens/s: {r_h / r_bare:.3f}  (target >= 0.9)")


if __name__ == "__main__":
    main()
