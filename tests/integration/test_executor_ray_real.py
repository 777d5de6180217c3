"""Local vs Ray executor on the real SmolLM2 GGUF, real Wikipedia BM25: the same records.

Tiny on purpose, so it runs in CI (2 Ray workers on 2 cores, each loading its own model and BM25
index): one iteration, one trajectory per task, two training tasks in one batch (one per worker),
one held-out task, short generations. The request cache is off so both runs really generate;
equality then rests on per-item seeding alone.
"""
from __future__ import annotations

import json

import pytest

from ads.config import CacheConfig, ExecutorConfig, ModelConfig, TrackingConfig
from ads.generators.active_search import ADSConfig, LoopConfig
from ads.generators.ads_runner import run
from ads.run import RunContext
from ads.tasks import TasksConfig
from apis.factory import ApisConfig


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _local_and_ray(tmp_path, model: ModelConfig, tokens: dict) -> dict:
    out = {}
    for kind in ("local", "ray"):
        cfg = ADSConfig(
            name="ci-exec", seed=0, policy=model, optimizer=model,
            tasks=TasksConfig(families={"wiki_name": 2}, test_families={"wiki_name": 1}),
            apis=ApisConfig.model_validate({"retrieval": {"top_k": tokens["top_k"],
                                                          "passage_chars": tokens["passage_chars"]},
                                            "demonstrations": {"k": 1}}),
            loop=LoopConfig(iterations=1, trajectories_per_task=1, max_calls=1,
                            optimizer_max_tokens=tokens["optimizer_max_tokens"],
                            answer_max_tokens=tokens["answer_max_tokens"], reasoning_max_tokens=16,
                            context_chars=tokens["context_chars"], evaluate_before_training=False, task_batch=2),
            cache=CacheConfig(enabled=False), tracking=TrackingConfig(wandb=False),
            executor=ExecutorConfig(kind=kind, workers=2),
        )
        ctx = RunContext.create(cfg, run_dir=tmp_path / kind)
        run(cfg, ctx)
        d = tmp_path / kind
        out[kind] = {name: _records(d / f"{name}.jsonl") for name in ("trajectories", "eval", "acquired_data")}
        out[kind]["ledger"] = [{k: v for k, v in r.items() if k not in ("ts", "wall_s")}
                               for r in _records(d / "ledger.jsonl")]
    assert out["local"]["trajectories"] and out["local"]["eval"]
    assert any(r["kind"] == "model" and not r["cached"] for r in out["ray"]["ledger"])  # really generated
    # the batch's two training tasks (task_batch 2: sent to the two actors at once) came back from Ray
    assert len({r["task_id"] for r in out["ray"]["trajectories"]}) == 2
    for key in out["local"]:
        assert out["ray"][key] == out["local"][key], key
    return out


# In CI. reuse_prefix off: each call decodes its whole prompt, so no model load runs the
# split-invariance probe, which was ~45% of a process's CPU here (3 loads: driver, 2 workers);
# prefix reuse keeps answers identical whatever came before by its own test (test_llamacpp_real.py), and
# the slow variant below runs the executor with it on. Measured: see docs/executor.md.
def test_ray_two_workers_match_local_on_smollm(tmp_path, smollm_path):
    pytest.importorskip("ray")
    small = ModelConfig(name="smollm2-135m", n_ctx=1024, n_threads=1, reuse_prefix=False)
    _local_and_ray(tmp_path, small, dict(top_k=1, passage_chars=200, optimizer_max_tokens=48, answer_max_tokens=8,
                                         context_chars=300))


# The former CI-size run, with the default prefix reuse (load-time probe per process): 228 s wall on
# the shared 2-core machine at load average ~10, so slow; the test above keeps the capability in CI.
@pytest.mark.slow
def test_ray_two_workers_match_local_on_smollm_with_prefix_reuse(tmp_path, smollm_path):
    pytest.importorskip("ray")
    small = ModelConfig(name="smollm2-135m", n_ctx=2048, n_threads=1)
    _local_and_ray(tmp_path, small, dict(top_k=2, passage_chars=300, optimizer_max_tokens=64, answer_max_tokens=32,
                                         context_chars=600))
