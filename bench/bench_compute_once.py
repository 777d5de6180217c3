"""Compute each token once (issue 21): the default experiment and one other generator, each run
with the new features off and on, from an empty request cache every time, in one invocation.

Arms (every model role of the run gets the same settings):
  off    reuse_prefix false, prefix_cache_mb 0, json_decoding gbnf: every prompt decoded from scratch,
         JSON through llama.cpp's GBNF sampler (what the default Qwen experiment did before issue 21:
         its GGUF failed the split probe)
  reuse  the probed prefix reuse with the previous call only (prefix_cache_mb 0), GBNF
  cache  probed prefix reuse + the prompt state cache (prefix_cache_mb, default 256), GBNF
  on     the defaults: reuse + state cache + llguidance token masks for JSON
Each arm's wall time (the whole `main.py` process), the prompt tokens the models were asked to
process and actually evaluated (ledger_summary.json), and whether its records equal the first
arm's, compared by id with the kill loop's rules (tests/integration/killing.py: clocks, cache
flags and replayed-token counts left out; the record files come from the generator's contract)
are printed. Every arm must give the same records: none of these settings may change an output.

    .venv/bin/python bench/bench_compute_once.py --quick           # minutes: downscaled runs
    .venv/bin/python bench/bench_compute_once.py                   # the default experiment at full size
    .venv/bin/python bench/bench_compute_once.py --arms off,reuse,cache,on --repeats 2 --json out.json

With --repeats > 1 the arm order alternates (off,on then on,off ...) so that drifting machine
load falls on both. The machine's load average is printed at the start and end of every run:
on a shared machine wall ratios are only worth what that load allows.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from killing import GeneratorSpec, _env, first_difference, outputs, run_dir  # noqa: E402

# name -> (spec, the config's model sections, --set options of the quick and the full mode)
EXPERIMENTS: dict[str, tuple[GeneratorSpec, list[str], list[str], list[str]]] = {
    "default": (
        GeneratorSpec("default", ["configs/default.yaml"], files=["evaluation_results.json", "training_metrics.json"],
                      timeout_s=7200),
        ["policy", "optimizer"],
        ["tasks.families={wiki: 2}", "tasks.test_families={wiki: 2}", "tasks.instructions_per_task=3",
         "tasks.train_instructions=2", "loop.iterations=1", "loop.trajectories_per_task=2"],
        []),
    "wiki_topics": (
        GeneratorSpec("wiki_topics", ["configs/recipes/wiki_topic_texts.yaml"], files=["state.json", "summary.json"],
                      volatile={"tokens", "ledger", "resumed_from_items", "plots"}, timeout_s=7200),
        ["model"],
        ["recipe.target_count=6", "loop.batch_size=3", "loop.max_iterations=4", "loop.max_tokens=60",
         "reward.downstream.enabled=false", "reward.downstream.report=false"],
        ["recipe.target_count=24", "loop.batch_size=3", "loop.max_iterations=16", "loop.max_tokens=110",
         "reward.downstream.enabled=false", "reward.downstream.report=false"]),
}


def arm_sets(arm: str, sections: list[str], cache_mb: int) -> list[str]:
    values = {"off": {"reuse_prefix": "false", "prefix_cache_mb": "0", "json_decoding": "gbnf"},
              "reuse": {"reuse_prefix": "null", "prefix_cache_mb": "0", "json_decoding": "gbnf"},
              "cache": {"reuse_prefix": "null", "prefix_cache_mb": str(cache_mb), "json_decoding": "gbnf"},
              "on": {"reuse_prefix": "null", "prefix_cache_mb": str(cache_mb), "json_decoding": "llguidance"}}[arm]
    return [f"{s}.{k}={v}" for s in sections for k, v in values.items()]


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def run_arm(name: str, arm: str, tmp: Path, sets: list[str], timeout_s: float) -> dict[str, Any]:
    spec = EXPERIMENTS[name][0]
    results, cache = tmp / f"{name}-{arm}", tmp / f"{name}-{arm}.sqlite"
    shutil.rmtree(results, ignore_errors=True)
    cache.unlink(missing_ok=True)  # an empty request cache every time
    cmd = [sys.executable, "main.py", "generate", *spec.argv, "--set", f"results_dir={results}",
           "--set", f"cache.path={cache}", "--set", "tracking.wandb=false"]
    for s in sets:
        cmd += ["--set", s]
    load0, t0 = load_average(), time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       timeout=timeout_s)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{name}/{arm} exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    d = run_dir(results)
    led = json.loads((d / "ledger_summary.json").read_text())
    return {"experiment": name, "arm": arm, "wall_s": round(wall, 1), "load_start": load0, "load_end": load_average(),
            "ledger": led["run"], "by_role": led["by_role"], "records": outputs(spec, d), "dir": str(d)}


def summarise(runs: list[dict[str, Any]], arms: list[str]) -> list[dict[str, Any]]:
    rows = []
    for name in dict.fromkeys(r["experiment"] for r in runs):
        mine = [r for r in runs if r["experiment"] == name]
        ref = next(r for r in mine if r["arm"] == arms[0])
        base_wall = sum(r["wall_s"] for r in mine if r["arm"] == arms[0])
        for arm in arms:
            rs = [r for r in mine if r["arm"] == arm]
            led = rs[0]["ledger"]
            wall = sum(r["wall_s"] for r in rs)
            same = all(r["records"] == ref["records"] for r in rs)
            other = next((r for r in rs if r["records"] != ref["records"]), None)
            diff = "" if other is None else first_difference(ref["records"], other["records"])
            n_records = sum(len(v) for k, v in ref["records"].items() if k.endswith(".jsonl"))
            rows.append({
                "experiment": name, "arm": arm, "runs": len(rs), "wall_s": round(wall / len(rs), 1),
                "wall_ratio_vs_first": round(base_wall / wall, 3) if wall else None,
                "model_calls": led.get("model_calls"), "prompt_tokens": led.get("prompt_tokens"),
                "prompt_tokens_computed": led.get("prompt_tokens_computed"),
                "computed_prompt_ratio": led.get("computed_prompt_ratio"),
                "completion_tokens": led.get("completion_tokens"), "prefill_s": led.get("prefill_s"),
                "decode_s": led.get("decode_s"), "records_identical_to_first": same, "records": n_records,
                "first_difference": diff[:300], "load": [f"{r['load_start']} -> {r['load_end']}" for r in rs]})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="downscaled runs (minutes), to check it works")
    ap.add_argument("--experiments", default=",".join(EXPERIMENTS), help=f"of {list(EXPERIMENTS)}")
    ap.add_argument("--arms", default="off,on", help="of off,reuse,cache,on; the first is the reference")
    ap.add_argument("--cache-mb", type=int, default=256, help="prefix_cache_mb of the cache/on arms")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--set", dest="extra", action="append", default=[],
                    help="another --set for every run, e.g. policy.name=smollm2-135m")
    ap.add_argument("--json", help="also write the figures (no records) to this file")
    ap.add_argument("--keep", action="store_true", help="keep the run folders (printed)")
    args = ap.parse_args()
    arms = args.arms.split(",")
    names = args.experiments.split(",")
    bad = (set(arms) - {"off", "reuse", "cache", "on"}) | (set(names) - set(EXPERIMENTS))
    if bad:
        raise SystemExit(f"unknown arm or experiment: {sorted(bad)}")
    tmp = Path(tempfile.mkdtemp(prefix="compute-once-"))
    mode = "quick" if args.quick else "full"
    print(f"machine: {os.cpu_count()} CPUs, load average {load_average()} at start; {mode} mode; arms {arms}; "
          f"run folders under {tmp}", flush=True)
    runs = []
    try:
        for name in names:
            spec, sections, quick, full = EXPERIMENTS[name]
            for rep in range(args.repeats):
                for arm in (arms if rep % 2 == 0 else arms[::-1]):
                    sets = (quick if args.quick else full) + args.extra + arm_sets(arm, sections, args.cache_mb)
                    tag = arm if args.repeats == 1 else f"{arm}{rep}"
                    r = run_arm(name, arm, tmp / tag, sets, spec.timeout_s)
                    led = r["ledger"]
                    print(f"  {name:<12} {arm:<6} {r['wall_s']:>8.1f} s  prompt {led.get('prompt_tokens')} computed "
                          f"{led.get('prompt_tokens_computed')} ({led.get('computed_prompt_ratio')})  "
                          f"load {r['load_start']} -> {r['load_end']}", flush=True)
                    runs.append(r)
        rows = summarise(runs, arms)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nload average at end {load_average()}")
    head = ["experiment", "arm", "wall s", f"wall ratio ({arms[0]}/arm)", "calls", "prompt tokens", "computed",
            "computed/requested", "prefill s", "decode s", f"records = {arms[0]}'s"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(str(x) for x in [
            r["experiment"], r["arm"], r["wall_s"], r["wall_ratio_vs_first"], r["model_calls"], r["prompt_tokens"],
            r["prompt_tokens_computed"], r["computed_prompt_ratio"], r["prefill_s"], r["decode_s"],
            f"{'yes' if r['records_identical_to_first'] else 'NO'} ({r['records']})"]) + " |")
    for r in rows:
        if not r["records_identical_to_first"]:
            print(f"{r['experiment']}/{r['arm']}: first difference {r['first_difference']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"load_end": load_average(), "rows": rows}, indent=2))
    return 0 if all(r["records_identical_to_first"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
