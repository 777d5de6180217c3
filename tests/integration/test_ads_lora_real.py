"""The ADS LoRA options on the real SmolLM2 and real Wikipedia tasks (one tiny iteration each).

`policy_update: lora`: the policy (SmolLM2, llama.cpp before training) answers questions about
real Wikipedia articles with BM25 passages; after iteration 1 a LoRA is trained on the acquired
passages (as text to recall, never gold answers) with peft on the dequantized GGUF, saved, and
the held-out evaluation runs on the transformers backend with that adapter. The optimizer here is scripted to always search with the task's
text, so the policy always has acquired data to train on (what the real optimizer writes is
covered by test_ads_real.py; whether it fetches anything is not what this test is about).

`optimizer_update: lora`: the real SmolLM2 optimizer (grammar-constrained on llama.cpp in
iteration 1) is tuned on its accepted (prompt -> plan JSON) pairs and then plans the held-out
tasks unconstrained on transformers with the adapter.

Both assert that training really happened (a loss curve, adapter files whose LoRA B matrices
moved off their zero init, a ledger entry with its tokens) and that the evaluation after
training was served by the adapter (the model id carries the adapter's fingerprint).
"""
from __future__ import annotations

import json
import math

from ads.config import CacheConfig, ModelConfig, TrackingConfig
from ads.downstream.train import TrainConfig
from ads.active_search.instruction_sets import TasksConfig
from ads.active_search.loop import ADSConfig, LoopConfig
from ads.active_search.lora import LoraUpdateConfig, adapter_complete
from ads.active_search.outputs import run
from ads.run import RunContext
from apis.factory import ApisConfig
from models.fake import FakeModel
from models.hf import adapter_fingerprint

SEARCH_TASK = json.dumps({"calls": [{"name": "information_retrieval", "arguments": {"query": "{task}"}}]})


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _config(tmp_path, **loop):
    small = ModelConfig(name="smollm2-135m", n_ctx=2048, n_threads=2)
    return ADSConfig(
        name="ci-ads-lora", seed=0, policy=small, optimizer=small,
        tasks=TasksConfig(families={"wiki": 2}, test_families={"wiki": 1}, instructions_per_task=3,
                          train_instructions=2),
        apis=ApisConfig.model_validate({"retrieval": {"top_k": 1, "passage_chars": 300},
                                        "demonstrations": {"k": 1}}),
        loop=LoopConfig(iterations=1, trajectories_per_task=1, max_calls=1, optimizer_max_tokens=64,
                        context_chars=400, answer_max_tokens=12,
                        accept_threshold=-1.0, null_plan_candidate=False, **loop),
        lora_update=LoraUpdateConfig(train=TrainConfig(max_steps=3, batch_size=2, max_len=1024, lr=1e-3,
                                                       num_threads=2)),
        cache=CacheConfig(path=str(tmp_path / "requests.sqlite")),
        tracking=TrackingConfig(wandb=False),
    )


def _check_adapter(d, role, stats):
    from safetensors.torch import load_file

    a = d / f"{role}_lora" / "it1"
    assert adapter_complete(a)
    assert stats["trained"] is True and stats["steps"] == 3 and stats["tokens"] > 0
    assert len(stats["losses"]) == 3 and all(math.isfinite(x) and x > 0 for x in stats["losses"])
    weights = load_file(str(a / "adapter_model.safetensors"))
    lora_b = [t for k, t in weights.items() if "lora_B" in k]
    assert lora_b and any(float(t.abs().sum()) > 0 for t in lora_b), "LoRA B starts at zero; training moved it"
    led = _jsonl(d / "ledger.jsonl")
    train = [r for r in led if r["kind"] == "train" and r["role"] == f"{role}_lora"]
    assert len(train) == 1 and train[0]["prompt_tokens"] == stats["tokens"] and train[0]["wall_s"] > 0
    model_id = f"smollm2-135m+lora:{adapter_fingerprint(a)}"
    assert stats["model_id"] == model_id
    calls = [r for r in led if r["kind"] == "model" and r["role"] == role and r["iteration"] == "eval-1"]
    assert calls and {r["model"] for r in calls} == {model_id}
    assert any(not r["cached"] and r["completion_tokens"] > 0 for r in calls)  # really decoded with the adapter
    return model_id


def test_policy_lora_update_trains_saves_and_serves_the_adapter(tmp_path, smollm_path):
    cfg = _config(tmp_path, policy_update="lora")
    ctx = RunContext.create(cfg, run_dir=tmp_path / "run")
    run(cfg, ctx, optimizer_model=FakeModel(lambda m, kw: SEARCH_TASK, "scripted-search"))
    d = tmp_path / "run"
    stats = json.loads((d / "training_metrics.json").read_text())[0]["policy_lora"]
    rows = _jsonl(d / "training_data.jsonl")  # one passage per trained task (top_k 1): the training set
    assert stats["examples"] == len(rows) == 2 and stats["data"]["used"] == 2
    model_id = _check_adapter(d, "policy", stats)
    ev = json.loads((d / "evaluation_results.json").read_text())
    assert ev["final"]["models"]["policy"] == model_id
    # the trajectories of iteration 1 were answered by the base policy on llama.cpp
    led = _jsonl(d / "ledger.jsonl")
    assert {r["model"] for r in led if r["role"] == "policy" and r["iteration"] == 1} == {"smollm2-135m"}


def test_optimizer_lora_update_trains_on_accepted_plans(tmp_path, smollm_path):
    # one API and no exemplars keep the optimizer's prompts (~600 tokens with the schema note) cheap to train on
    cfg = _config(tmp_path, optimizer_update="lora", exemplars=0)
    cfg = cfg.model_copy(update={"apis": cfg.apis.model_copy(update={"enabled": ["information_retrieval"]}),
                                 "lora_update": cfg.lora_update.model_copy(update={
                                     "train": cfg.lora_update.train.model_copy(update={"batch_size": 1})})})
    ctx = RunContext.create(cfg, run_dir=tmp_path / "run")
    run(cfg, ctx)
    d = tmp_path / "run"
    stats = json.loads((d / "training_metrics.json").read_text())[0]["optimizer_lora"]
    # threshold -1 and no null candidate: every trained task whose plan parsed accepts it, and each is one example
    accepted = [t for t in _jsonl(d / "trajectories.jsonl") if t["accepted"]]
    assert stats["examples"] == len(accepted) >= 1
    model_id = _check_adapter(d, "optimizer", stats)
    ev = json.loads((d / "evaluation_results.json").read_text())
    assert ev["final"]["models"]["optimizer"] == model_id
    assert ev["final"]["methods"]["learned"]["n_tasks"] == 3  # a plan or a counted parse failure, never a crash
