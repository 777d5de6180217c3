"""Throughput of the executors on one machine: local vs Ray workers, in-process llama.cpp vs a server.

The workload is N independent generations (distinct prompts, seeded per item, greedy) on the
SmolLM2 GGUF, run through `ads.executor` exactly as a generator's loop runs its items:

  local / llama.cpp      LocalExecutor, one in-process model (n_threads = --threads)
  ray / llama.cpp        RayExecutor, --workers actors, each loading its own model (n_threads = 1)
  local / server         LocalExecutor, OpenAICompatModel -> `python -m llama_cpp.server` (one request at a time)
  ray / server           RayExecutor, --workers actors each with its own client -> the same server

Every side generates the same items; the script checks that each side's texts equal those of the
first side with the same backend (same seed, same outputs; the server applies its own sampling
defaults, so its texts differ from in-process ones) and prints items/s, completion tokens/s and the ratio to the
first side. Startup (Ray cluster, actors, model loads, server start) and one warm-up item per
worker are timed separately and not counted in throughput.

  .venv/bin/python bench/bench_executor.py --n 16 --max-tokens 48
  .venv/bin/python bench/bench_executor.py --sides local-llamacpp,ray-llamacpp   # without the server
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ads.config import ModelConfig  # noqa: E402
from ads.executor import LocalExecutor  # noqa: E402
from ads.ray_executor import RayExecutor  # noqa: E402

GGUF = ROOT / "cache" / "models" / "smollm2-135m.gguf"
TOPICS = ["rivers", "volcanoes", "bridges", "owls", "glaciers", "comets", "deserts", "violins", "tides", "bees",
          "lighthouses", "coral reefs", "windmills", "penguins", "canyons", "maple trees"]


class ModelEnv:
    """Factory: builds the model a worker holds (picklable: just a ModelConfig)."""

    def __init__(self, mcfg: ModelConfig, max_tokens: int):
        self.mcfg, self.max_tokens = mcfg, max_tokens

    def __call__(self):
        from models.registry import load

        self.model = load(self.mcfg, ROOT / "cache" / "models")
        return self


def generate(env: ModelEnv, i: int) -> tuple[str, int]:
    topic = TOPICS[i % len(TOPICS)]
    msgs = [{"role": "user", "content": f"Write two sentences about {topic} (item {i})."}]
    out = env.model.generate(msgs, max_tokens=env.max_tokens, temperature=0.0, seed=0, sample_id=f"bench:{i}")
    return out.text, out.completion_tokens


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(threads: int) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(GGUF), "--host", "127.0.0.1", "--port",
           str(port), "--n_ctx", "2048", "--n_threads", str(threads), "--verbose", "false"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    url = f"http://127.0.0.1:{port}/v1"
    t0 = time.time()
    while time.time() - t0 < 180:
        if proc.poll() is not None:
            raise SystemExit(f"llama_cpp.server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("llama_cpp.server not ready after 180 s")


def run_side(name: str, args, url: str | None) -> dict:
    executor_kind, backend = name.split("-")
    if backend == "server":
        mcfg = ModelConfig(name="smollm2-135m", base_url=url, api_key_env="", timeout_s=300,
                           max_concurrency=args.workers)
    else:
        mcfg = ModelConfig(name="smollm2-135m", n_ctx=2048,
                           n_threads=args.threads if executor_kind == "local" else 1)
    factory = ModelEnv(mcfg, args.max_tokens)
    t0 = time.perf_counter()
    if executor_kind == "local":
        ex, env = LocalExecutor(), factory()
    else:
        ex, env = RayExecutor(workers=args.workers), None
    # warm-up, not timed: one item per worker (loads each Ray worker's model; first-call costs everywhere)
    ex.map(generate, list(range(args.workers)), env=env, factory=factory)
    startup = time.perf_counter() - t0
    items = list(range(1000, 1000 + args.n))
    t0 = time.perf_counter()
    results = ex.map(generate, items, env=env, factory=factory)
    wall = time.perf_counter() - t0
    ex.close()
    tokens = sum(t for _, t in results)
    return {"side": name, "startup_s": startup, "wall_s": wall, "items_s": len(items) / wall,
            "tok_s": tokens / wall, "tokens": tokens, "texts": [t for t, _ in results]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads of the local side and the server")
    ap.add_argument("--sides", default="local-llamacpp,ray-llamacpp,local-server,ray-server")
    args = ap.parse_args()
    sides = args.sides.split(",")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (1 min) at start; "
          f"{args.n} items x max {args.max_tokens} tokens, greedy, {args.workers} Ray workers")
    proc = url = None
    rows = []
    try:
        for side in sides:
            if side.endswith("server") and proc is None:
                t0 = time.perf_counter()
                proc, url = start_server(args.threads)
                print(f"llama_cpp.server up in {time.perf_counter() - t0:.1f}s at {url}")
            rows.append(run_side(side, args, url))
            r = rows[-1]
            print(f"  {side:<16} startup {r['startup_s']:6.1f}s  run {r['wall_s']:6.1f}s  {r['items_s']:.3f} items/s  "
                  f"{r['tok_s']:.1f} tok/s  (load avg {os.getloadavg()[0]:.2f})", flush=True)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    base = rows[0]
    first = {}  # backend -> first side run with it
    print(f"\n{'side':<16} {'items/s':>8} {'tok/s':>7} {'vs ' + base['side']:>22}  same texts as")
    for r in rows:
        backend = r["side"].split("-")[1]
        ref = first.setdefault(backend, r)
        same = "" if ref is r else f"{ref['side']}: {r['texts'] == ref['texts']}"
        print(f"{r['side']:<16} {r['items_s']:8.3f} {r['tok_s']:7.1f} {r['items_s'] / base['items_s']:21.2f}x  {same}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
