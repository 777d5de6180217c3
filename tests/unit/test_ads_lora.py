"""The LoRA options of the ADS loop (ads/active_search/lora.py): control flow on scripted models.

Training and serving are replaced by scripted stand-ins (a trainer that writes adapter files,
a server that returns a FakeModel whose id carries the adapter's fingerprint), so these tests
specify what is trained on (the acquired rows, never gold answers), where it is saved, which
model serves afterwards, resume and the config errors. The real training is
tests/integration/test_ads_lora_real.py. Tasks, APIs and the optimizer are test_ads_loop's.
"""
from __future__ import annotations

import json
import re

import pytest

import test_ads_loop as fakes  # scripted tasks, APIs, policy and optimizer (tests/unit on sys.path)
from ads.active_search import lora as ads_lora
from ads.active_search.loop import ADSConfig
from ads.active_search.outputs import run
from ads.active_search.policy import POLICY_SYSTEM
from ads.config import ConfigError, config_hash, load_config, validate
from ads.run import RunContext
from ads.store import JsonlStore
from apis.api_registry import ApiRegistry
from models.fake import FakeModel
from models.hf import adapter_fingerprint


def knows_closed_book(messages, kw):  # what the tuned policy is scripted to do: answer without data
    return re.findall(r"Key kw-(\w+)", messages[-1]["content"])[-1].title()


class Scripted:
    """Stand-ins for lora.train_adapter / serve_adapter; they record what they were given."""

    def __init__(self, tuned=knows_closed_book):
        self.trained: list[tuple[str, int, list]] = []
        self.served: list[str] = []
        self.tuned = tuned

    def trainer(self, base, examples, cfg, seed, out_dir, load):
        role = "optimizer" if "JSON schema" in examples[0].messages[0]["content"] else "policy"
        self.trained.append((role, seed, list(examples)))
        out_dir.mkdir(parents=True)
        (out_dir / "adapter_config.json").write_text(json.dumps({"r": cfg.lora.r}))
        (out_dir / "adapter_model.safetensors").write_bytes(json.dumps([e.source for e in examples]).encode())
        return {"trained": True, "losses": [2.0, 1.5], "steps": 2, "tokens": 100 * len(examples),
                "train_time_s": 0.01, "data": {"examples": len(examples), "used": len(examples)}}

    def server(self, mcfg, adapter, models_dir, load):
        self.served.append(str(adapter))
        return FakeModel(self.tuned, f"base+lora:{adapter_fingerprint(adapter)}")


def make(tmp_path, monkeypatch, scripted, optimizer=fakes.optimizer_fn, **loop):
    base = tmp_path / "base-model"  # a local "HF folder": what the transformers backend would load
    base.mkdir(exist_ok=True)
    (base / "config.json").write_text("{}")
    cfg = ADSConfig.model_validate({
        "name": "t", "results_dir": str(tmp_path / "results"), "cache": {"path": str(tmp_path / "c.sqlite")},
        "tracking": {"wandb": False}, "policy": {"name": str(base)}, "optimizer": {"name": str(base)},
        "loop": {"iterations": 2, "trajectories_per_task": 1, "lambda_cost": 0.05, "policy_update": "lora",
                 "evaluate": "every_iteration", "evaluate_before_training": True, **loop}})
    monkeypatch.setattr(ads_lora, "train_adapter", scripted.trainer)
    monkeypatch.setattr(ads_lora, "serve_adapter", scripted.server)
    return cfg, dict(policy_model=FakeModel(fakes.policy_fn, "fake-policy"),
                     optimizer_model=FakeModel(optimizer, "fake-opt"), api_model=FakeModel(["unused"]),
                     tasks=fakes.tasks(), registry=ApiRegistry([fakes.Retrieval()]))


def test_policy_is_tuned_on_the_acquired_rows_never_on_gold_and_serves_the_evaluation(tmp_path, monkeypatch):
    s = Scripted()
    cfg, parts = make(tmp_path, monkeypatch, s)
    ctx = RunContext.create(cfg)
    run(cfg, ctx, **parts)
    d = ctx.run_dir
    # trained after iteration 1 on the three acquired passages; in iteration 2 nothing new was
    # acquired (the tuned policy already answers), so it1's adapter keeps serving
    assert [(r, len(ex)) for r, _, ex in s.trained] == [("policy", 3)]
    ex = s.trained[0][2][0]
    assert ex.messages == ({"role": "system", "content": POLICY_SYSTEM},
                           {"role": "user", "content": "Task: Tell me about Alpha."})
    assert ex.response == "The answer is Alpha." and ex.source.startswith("task-alpha:passage:")
    golds = {i.gold for t in fakes.tasks()[0] for i in t.instructions}
    assert not any(e.response in golds for e in s.trained[0][2])  # never a gold answer as a target
    a = d / "policy_lora" / "it1"
    assert ads_lora.adapter_complete(a)
    assert json.loads((a / "ads_lora.json").read_text())["stats"]["losses"] == [2.0, 1.5]
    assert [p.name for p in (d / "policy_lora").iterdir()] == ["it1"]
    ev = json.loads((d / "evaluation_results.json").read_text())
    fp = adapter_fingerprint(a)
    assert [e["models"]["policy"] for e in ev["per_iteration"]] == ["fake-policy", f"base+lora:{fp}", f"base+lora:{fp}"]
    led = JsonlStore(d / "ledger.jsonl", id_field="_none").read()
    assert {r["model"] for r in led if r["role"] == "policy" and r["iteration"] == "eval-2"} == {f"base+lora:{fp}"}
    assert {r["model"] for r in led if r["role"] == "policy" and r["iteration"] == "eval-0"} == {"fake-policy"}
    # the tuned (scripted) policy answers closed-book, so the held-out no-data score moved 0 -> 1
    assert [e["methods"]["no_data"]["mean_score"] for e in ev["per_iteration"]] == [0.0, 1.0, 1.0]
    tm = json.loads((d / "training_metrics.json").read_text())
    assert tm[0]["policy_lora"]["trained"] and tm[0]["policy_lora"]["model_id"] == f"base+lora:{fp}"
    assert tm[1]["policy_lora"]["trained"] is False and "no new accepted data" in tm[1]["policy_lora"]["reason"]
    train = [r for r in led if r["kind"] == "train"]
    assert [(r["role"], r["iteration"], r["prompt_tokens"]) for r in train] == [("policy_lora", "lora-1", 300)]
    assert json.loads((d / "summary.json").read_text())["final_models"]["policy"] == f"base+lora:{fp}"
    assert {e["models"]["optimizer"] for e in ev["per_iteration"]} == {"fake-opt"}


def more_each_iteration(messages, kw):
    """Iteration 1 retrieves with {task}; iteration 2 asks for more (a new passage), so data grows."""
    more = " more" if ":it2:" in str(kw["sample_id"]) else ""
    return json.dumps({"calls": [{"name": "information_retrieval", "arguments": {"query": "{task}" + more}}]})


class MoreRetrieval(fakes.Retrieval):
    def __call__(self, query, top_k=None):
        obs = super().__call__(query, top_k)
        if "more" in query:
            obs.payload["passages"] = [{**p, "text": p["text"] + " More."} for p in obs.payload["passages"]]
        return obs


def test_resume_loads_saved_adapters_and_retrains_only_half_written_ones(tmp_path, monkeypatch):
    def setup(s):
        cfg, parts = make(tmp_path, monkeypatch, s, optimizer=more_each_iteration, null_plan_candidate=False,
                          accept_threshold=-1.0)
        parts["registry"] = ApiRegistry([MoreRetrieval()])
        return cfg, parts

    s = Scripted(tuned=fakes.policy_fn)  # the tuned policy still reads its context
    cfg, parts = setup(s)
    ctx = RunContext.create(cfg)
    run(cfg, ctx, **parts)
    d = ctx.run_dir
    assert [len(ex) for _, _, ex in s.trained] == [3, 6]  # cumulative: the rows of iterations 1..N
    fp1 = adapter_fingerprint(d / "policy_lora" / "it1")
    first = json.loads((d / "evaluation_results.json").read_text())["final"]
    # a kill while iteration 2's adapter was being written: a temp folder, no it2/
    (d / "policy_lora" / "it2").rename(d / "policy_lora" / ".it2.tmp999")
    (d / "policy_lora" / ".it2.tmp999" / "ads_lora.json").unlink()
    (d / "summary.json").unlink()
    s2 = Scripted(tuned=fakes.policy_fn)
    cfg2, parts2 = setup(s2)
    run(cfg2, RunContext.create(cfg2, resume=True), **parts2)
    assert [(r, seed) for r, seed, _ in s2.trained] == [("policy", cfg.seed + 2)]  # it1 loaded, it2 retrained
    assert adapter_fingerprint(d / "policy_lora" / "it1") == fp1
    assert ads_lora.adapter_complete(d / "policy_lora" / "it2") and not list((d / "policy_lora").glob(".*"))
    assert json.loads((d / "evaluation_results.json").read_text())["final"]["methods"] == first["methods"]
    tm = json.loads((d / "training_metrics.json").read_text())
    assert tm[0]["policy_lora"]["resumed"] is True and tm[1]["policy_lora"]["resumed"] is False
    # weights that do not match the marker (a torn write) are not trusted: retrained
    (d / "policy_lora" / "it1" / "adapter_model.safetensors").write_bytes(b"torn")
    (d / "summary.json").unlink()
    s3 = Scripted(tuned=fakes.policy_fn)
    cfg3, parts3 = setup(s3)
    run(cfg3, RunContext.create(cfg3, resume=True), **parts3)
    assert [seed for _, seed, _ in s3.trained] == [cfg.seed + 1]  # it2 stays: it is complete
    assert adapter_fingerprint(d / "policy_lora" / "it1") == fp1  # same records -> same training set


def test_optimizer_lora_trains_on_accepted_plans_and_junk_from_it_is_a_counted_rejection(tmp_path, monkeypatch):
    s = Scripted(tuned=lambda m, kw: "Sure! Here is a plan: search for it")  # the tuned optimizer writes junk
    cfg, parts = make(tmp_path, monkeypatch, s, policy_update="in_context", optimizer_update="lora")
    ctx = RunContext.create(cfg)
    run(cfg, ctx, **parts)
    d = ctx.run_dir
    # iteration 2: the tuned optimizer's junk loses to the null plan (accepted: new training data)
    assert [(r, len(ex)) for r, _, ex in s.trained] == [("optimizer", 3), ("optimizer", 6)]
    assert [json.loads(e.response) for e in s.trained[1][2][3:]] == [{"calls": []}] * 3
    ex = s.trained[0][2]
    assert all("JSON schema" in e.messages[0]["content"] for e in ex)
    assert "Key kw-alpha question 0" in ex[0].messages[1]["content"] and "(score 0.00)" in ex[0].messages[1]["content"]
    held = [i.prompt for t in fakes.tasks()[0] for i in t.held_out]
    assert not any(h in e.messages[1]["content"] for h in held for e in ex)  # no held-out instruction leaks in
    assert json.loads(ex[0].response) == {"calls": [{"name": "information_retrieval",
                                                      "arguments": {"query": "{task}"}}]}
    tm = json.loads((d / "training_metrics.json").read_text())
    assert tm[1]["parse_failures"] == 3  # written by it1's adapter, counted, not fatal
    ev = json.loads((d / "evaluation_results.json").read_text())
    assert "+lora:it2-" in ev["final"]["models"]["optimizer"] and ev["final"]["models"]["policy"] == "fake-policy"


def test_no_accepted_data_trains_nothing_and_keeps_the_base_policy(tmp_path, monkeypatch):
    s = Scripted()
    cfg, parts = make(tmp_path, monkeypatch, s, iterations=1)
    parts["policy_model"] = FakeModel(["I do not know"], "fake-policy")  # data never helps: null plans win
    ctx = RunContext.create(cfg)
    run(cfg, ctx, **parts)
    tm = json.loads((ctx.run_dir / "training_metrics.json").read_text())
    assert s.trained == [] and tm[0]["policy_lora"] == {"trained": False, "reason": "no accepted data to train on",
                                                        "data": {"examples": 0}, "model_id": "fake-policy"}
    assert not (ctx.run_dir / "policy_lora").exists()


@pytest.mark.parametrize("overrides,needle", [
    ({"loop": {"policy_update": "lora"}, "policy": {"backend": "openai", "base_url": "http://x/v1"}},
     "loop.policy_update: 'lora'"),
    ({"loop": {"policy_update": "lora"}, "policy": {"backend": "llamacpp"}}, "policy.backend is 'llamacpp'"),
    ({"loop": {"optimizer_update": "lora"}, "optimizer": {"base_url": "http://x/v1"}}, "loop.optimizer_update"),
    ({"loop": {"policy_update": "lora"}, "policy": {"adapter": "some/adapter"}}, "policy.adapter is already set"),
    ({"loop": {"optimizer_update": "sgd"}}, "loop.optimizer_update"),
    ({"loop": {"policy_update": "lora"}, "executor": {"kind": "ray"}}, "executor.kind is 'ray'"),
    ({"lora_update": {"train": {"max_len": 4}}}, "lora_update.train.max_len"),
    ({"lora_update": {"lora": {"rank": 4}}}, "lora_update.lora.rank"),
])
def test_bad_lora_configs_are_one_error_naming_the_key(overrides, needle):
    with pytest.raises(ConfigError) as e:
        validate(ADSConfig, overrides, "cfg.yaml")
    assert needle in str(e.value)


def test_lora_options_validate_and_defaults_stay_in_context():
    cfg = load_config(ADSConfig, None, ["loop.policy_update=lora", "loop.optimizer_update=lora",
                                        "lora_update.train.max_steps=3"])
    assert cfg.loop.policy_update == cfg.loop.optimizer_update == "lora" and cfg.lora_update.train.max_steps == 3
    d = ADSConfig()
    assert (d.loop.policy_update, d.loop.optimizer_update) == ("in_context", "exemplars")


def test_a_base_transformers_cannot_load_is_a_config_error_before_any_record(tmp_path, monkeypatch):
    s = Scripted()
    cfg, parts = make(tmp_path, monkeypatch, s)
    models = cfg.models.model_copy(update={"policy": cfg.models.policy.model_copy(update={"name": "no-such-model"})})
    cfg = cfg.model_copy(update={"models": models})
    ctx = RunContext.create(cfg)
    with pytest.raises(ConfigError, match="no-such-model"):
        run(cfg, ctx, **parts)
    assert not ctx.has_records()


def test_run_id_ignores_lora_settings_while_the_options_are_off():
    base = ADSConfig()
    tuned_hp = ADSConfig.model_validate({"lora_update": {"train": {"lr": 1e-3}}})
    assert config_hash(tuned_hp) == config_hash(base)  # older configs keep their run folders
    on = ADSConfig.model_validate({"loop": {"policy_update": "lora"}})
    on_hp = ADSConfig.model_validate({"loop": {"policy_update": "lora"}, "lora_update": {"train": {"lr": 1e-3}}})
    opt = ADSConfig.model_validate({"loop": {"optimizer_update": "lora"}})
    assert len({config_hash(c) for c in (base, on, on_hp, opt)}) == 4
