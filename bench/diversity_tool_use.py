"""Diversity experiment for the tool-use generator: cross-conversation steering off vs on.

Two arms that differ only in `corpus_memory` (same seed, same sampler, same candidates):
  A: steering off: each conversation takes the sampler's first chain;
  B: steering on: the sampler proposes `--candidates` chains and the MiniLM embedding memory
     picks the one least similar to the chains already in the corpus.

Part 1 (plans, no language model): `--plans` chains per arm, the corpus-level picture.
Part 2 (real model): `--n` full conversations per arm through `ads.generators.tool_use.run`
(user proxy, assistant, offline executor, validators; the judge too with --evaluate), written
as JSONL run folders under --out, then scored by the same `metrics` code as the CLI.

Prints both arms side by side with the ratio B/A, and writes <out>/diversity_experiment.json.

    .venv/bin/python bench/diversity_tool_use.py --model smollm2-135m --n 10 --plans 200
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

from ads.config import load_config  # noqa: E402
from ads.generators.tool_use import run  # noqa: E402
from ads.generators.tools.metrics import diversity  # noqa: E402
from ads.generators.tools.pipeline import ToolUsePipeline  # noqa: E402
from ads.generators.tools.tool_use_config import DEFAULT_CONFIG, ToolUseConfig, load_built  # noqa: E402
from ads.report import print_table  # noqa: E402
from ads.store import atomic_write_json  # noqa: E402

KEYS = ["tool_entropy_bits", "tool_entropy_normalized", "endpoint_entropy_bits", "endpoint_entropy_normalized",
        "domain_entropy_bits", "pattern_entropy_bits", "endpoint_set_jaccard_dissimilarity",
        "tool_set_jaccard_dissimilarity", "distinct_tools", "distinct_endpoints", "unique_chains",
        "opening_distinct_2"]


def plan_records(built, cfg: ToolUseConfig, memory_on: bool, n: int, embedder) -> list[dict]:
    """n chains as the generator would choose them, shaped like records for `diversity`."""
    pipe = ToolUsePipeline(built, model=None, seed=cfg.seed, mode=cfg.mode, min_steps=cfg.min_steps,  # type: ignore[arg-type]
                           max_steps=cfg.max_steps, candidates=cfg.candidates, corpus_memory=memory_on,
                           embedder=embedder, evaluate=False, novelty_threshold=None, memory_k=cfg.memory_k)
    out = []
    for i in range(n):
        plan, _ = pipe.plan(i)
        pipe.remember(plan)
        tools = list(dict.fromkeys(built.reg.endpoints[e].tool_id for e in plan.endpoint_ids))
        out.append({"messages": [], "metadata": {"tool_ids_used": tools, "endpoint_ids": plan.endpoint_ids,
                                                 "domain": plan.domain, "pattern_type": plan.pattern_type}})
    return out


def side_by_side(title: str, a: dict, b: dict) -> list[list[str]]:
    rows = []
    for k in KEYS:
        ratio = f"{b[k] / a[k]:.2f}x" if a.get(k) else "-"
        rows.append([k, str(a[k]), str(b[k]), ratio])
    print_table(title, ["metric", "A: steering off", "B: steering on", "B/A"], rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(DEFAULT_CONFIG))
    ap.add_argument("--model", default="smollm2-135m", help="registry name or .gguf path")
    ap.add_argument("--n", type=int, default=10, help="conversations per arm with the real model (0: skip)")
    ap.add_argument("--plans", type=int, default=200, help="chains per arm without a model (0: skip)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--mode", default="mixed")
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--evaluate", action="store_true", help="judge each conversation too (slower)")
    ap.add_argument("--out", default="results/diversity_tool_use")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    out = Path(args.out)
    base = [f"seed={args.seed}", f"mode={args.mode}", f"candidates={args.candidates}", f"model.name={args.model}",
            f"evaluate={'true' if args.evaluate else 'false'}", f"n={max(args.n, 1)}", "tracking.wandb=false",
            f"results_dir={out}", f"cache.path={out / 'requests.sqlite'}", *args.set]
    cfg = load_config(ToolUseConfig, args.config, base)
    built = load_built(cfg)
    from ads.quality.embeddings import shared_embedder

    embedder = shared_embedder()
    report: dict = {"command": "bench/diversity_tool_use.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                    "seed": args.seed, "mode": args.mode, "candidates": args.candidates,
                    "tool_set": {"endpoints": len(built.reg.endpoints), "tools": len(built.reg.tools())}}
    if args.plans:
        t0 = time.time()
        arms = {on: diversity(plan_records(built, cfg, on, args.plans, embedder), len(built.reg.tools()),
                              len(built.reg.endpoints)) for on in (False, True)}
        report["plans"] = {"n": args.plans, "off": arms[False], "on": arms[True], "seconds": round(time.time() - t0, 1)}
        side_by_side(f"Part 1: {args.plans} chains per arm, no model ({time.time() - t0:.0f} s)", arms[False],
                     arms[True])
    if args.n:
        from ads.run import RunContext

        res = {}
        for on in (False, True):
            arm_cfg = load_config(ToolUseConfig, args.config,
                                  base + [f"corpus_memory={'true' if on else 'false'}",
                                          f"name=diversity-{'on' if on else 'off'}"])
            ctx = RunContext.create(arm_cfg, resume=True)
            t0 = time.time()
            summary = run(arm_cfg, ctx, embedder=embedder, progress=True)
            res[on] = {"diversity": summary["diversity"], "evaluation": summary["evaluation"],
                       "output": summary["output"], "seconds": round(time.time() - t0, 1),
                       "ledger": summary["ledger"]["run"]}
        report["conversations"] = {"n": args.n, "model": args.model, "off": res[False], "on": res[True]}
        side_by_side(f"Part 2: {args.n} conversations per arm, {args.model}", res[False]["diversity"],
                     res[True]["diversity"])
        for on in (False, True):
            e = res[on]["evaluation"]
            print(f"arm {'B on ' if on else 'A off'}: {res[on]['output']}; {res[on]['seconds']} s; passed "
                  f"{e['passed']}/{e['n']}; judge mean {e['mean_score']}")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "diversity_experiment.json", report)
    print(f"wrote {out / 'diversity_experiment.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
