"""Downstream fine-tuning: train a LoRA on a generated dataset, score the model on real held-out tasks.

The question a synthetic dataset has to answer is whether a small model trained on it gets
better at real work. `run_finetune` trains a LoRA adapter (peft) on SmolLM2 or any causal
LM that transformers loads (a GGUF is dequantized), through one `accelerate` loop that is
the same code on CPU and GPU, and scores the model on real gold tasks before and after:
Wikipedia "which subject is described" and GSM8K, from a held-out pool no built-in training
set touches (see ads.downstream.evalset). The adapter folder it saves loads in
`models.hf.HFModel(..., adapter=...)`, so a tuned model can play any role in a later run.

Outputs in the run folder: finetune_results.json (config, data stats, loss curve, train
time, tokens/s, before/after scores), eval_before.jsonl / eval_after.jsonl (every answer),
adapter/ (peft files + ads_finetune.json naming the base model), metrics.jsonl, and a W&B
offline run when wandb is installed (never fatal; see ads.tracking).

    python -m ads.finetune configs/finetune.yaml [--set train.max_steps=20] [--run-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Literal

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see models/hf.py; must precede the torch import
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pydantic import Field  # noqa: E402

from ads.config import (ModelConfig, Strict, TrackingConfig, config_hash, dump_yaml,  # noqa: E402
                        load_config)
from ads.downstream.data import DataConfig, encode_all, load_examples  # noqa: E402
from ads.downstream.evaluate import EvalConfig, evaluate  # noqa: E402
from ads.downstream.evalset import build_eval_set  # noqa: E402
from ads.downstream.train import (LoraSection, TrainConfig, add_lora, make_accelerator, make_loader,  # noqa: E402
                                  mean_loss, train_lora)
from ads.store import atomic_write_json, atomic_write_text  # noqa: E402

__all__ = ["FinetuneConfig", "run_finetune", "main"]


class BaseModelSection(Strict):
    # a .gguf file (loaded dequantized), a Hugging Face model folder, or a registry name
    base: str = "cache/models/smollm2-135m.gguf"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"


class FinetuneConfig(Strict):
    kind: Literal["finetune"] = "finetune"
    name: str = "finetune"
    seed: int = 0
    results_dir: str = "results"
    models_dir: str = "cache/models"
    data: DataConfig = DataConfig()
    model: BaseModelSection = BaseModelSection()
    lora: LoraSection = LoraSection()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    tracking: TrackingConfig = TrackingConfig()
    probe_batches: int = Field(2, ge=0)  # fixed training batches whose loss is measured before and after


def resolve_base(cfg: FinetuneConfig) -> tuple[Path, str | None]:
    """(folder, gguf file name or None) for the configured base model."""
    from models.registry import resolve

    r = resolve(ModelConfig(name=cfg.model.base, backend="transformers"), cfg.models_dir)
    loc = Path(r.location)
    return (loc.parent, loc.name) if loc.is_file() else (loc, None)


def default_run_dir(cfg: FinetuneConfig) -> Path:
    return Path(cfg.results_dir) / f"{cfg.name}-{config_hash(cfg)[:8]}"


def _scores(ev: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ev.items() if k != "records"}


def _delta(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, float] | None:
    if before is None:
        return None
    d = {"mean_score": round(after["mean_score"] - before["mean_score"], 4)}
    for fam, s in after["by_family"].items():
        d[f"{fam}.mean_score"] = round(s["mean_score"] - before["by_family"][fam]["mean_score"], 4)
        d[f"{fam}.exact"] = round(s["exact"] - before["by_family"][fam]["exact"], 4)
    return d


def run_finetune(cfg: FinetuneConfig, run_dir: Path) -> dict[str, Any]:
    """Train, evaluate before/after, save the adapter and the results; returns the results dict."""
    import torch
    from accelerate.utils import set_seed

    from ads.tracking import Tracker
    from models.hf import load_causal_lm

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    # Everything that can fail on user input fails here, before the model loads.
    examples = load_examples(cfg.data)
    items = build_eval_set(cfg.eval.tasks, cfg.eval.seed if cfg.eval.seed is not None else cfg.seed)
    folder, gguf_file = resolve_base(cfg)
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
    set_seed(cfg.seed)
    accelerator = make_accelerator(cfg.train)
    device = accelerator.device
    base_desc = str(folder / gguf_file) if gguf_file else str(folder)
    print(f"[finetune] {len(examples)} examples from {cfg.data.path}; base {base_desc}; device {device}")

    t0 = time.perf_counter()
    model, tok = load_causal_lm(folder, gguf_file, dtype=getattr(torch, cfg.model.dtype))
    load_s = time.perf_counter() - t0
    encoded, data_stats = encode_all(tok, examples, cfg.train.max_len)
    print(f"[finetune] tokenized: {data_stats}")
    tracker = Tracker(run_dir, run_dir.name, cfg.tracking, cfg.model_dump(mode="json"))
    try:
        model.to(device)
        before = None
        if cfg.eval.before:
            before = evaluate(model, tok, items, cfg.eval, device)
            _write_jsonl(run_dir / "eval_before.jsonl", before["records"])
            print(f"[finetune] before: mean score {before['mean_score']} on {before['n']} real tasks "
                  f"({before['eval_time_s']} s)")
            tracker.log({f"eval_before/{k}": v for k, v in _flat(before).items()}, step=0)

        set_seed(cfg.seed)  # LoRA init and data order do not depend on whether the "before" eval ran
        model = add_lora(model, cfg.lora)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        loader = make_loader(encoded, cfg.train.batch_size, tok.pad_token_id, cfg.seed)
        probe = list(make_loader(encoded, cfg.train.batch_size, tok.pad_token_id, cfg.seed, shuffle=False))
        probe = probe[: cfg.probe_batches]
        probe_before = mean_loss(model, probe, device) if probe else None

        def on_log(rec: dict[str, Any]) -> None:
            tracker.log({"train/loss": rec["loss"], "train/lr": rec["lr"], "train/tokens": rec["tokens"]},
                        step=rec["step"])
            print(f"[finetune] step {rec['step']}: loss {rec['loss']:.4f}  ({rec['elapsed_s']:.1f} s)")

        stats, model = train_lora(model, loader, cfg.train, accelerator, on_log=on_log)
        model = accelerator.unwrap_model(model)
        probe_after = mean_loss(model, probe, device) if probe else None
        after = evaluate(model, tok, items, cfg.eval, device)
        _write_jsonl(run_dir / "eval_after.jsonl", after["records"])
        print(f"[finetune] after: mean score {after['mean_score']} ({after['eval_time_s']} s)")
        tracker.log({f"eval_after/{k}": v for k, v in _flat(after).items()}, step=stats["steps"])

        adapter_dir = run_dir / "adapter"
        model.save_pretrained(str(adapter_dir), save_embedding_layers=False)
        atomic_write_json(adapter_dir / "ads_finetune.json", {"base_folder": str(folder), "gguf_file": gguf_file,
                                                              "run_dir": str(run_dir)})
        results = {
            "run_dir": str(run_dir),
            "base_model": base_desc,
            "adapter_dir": str(adapter_dir),
            "data": {"path": cfg.data.path, **data_stats},
            "model": {"load_s": round(load_s, 2), "trainable_params": trainable,
                      "total_params": sum(p.numel() for p in model.parameters())},
            "train": {**stats, "probe_loss_before": _r(probe_before), "probe_loss_after": _r(probe_after),
                      "batch_size": cfg.train.batch_size, "max_len": cfg.train.max_len},
            "eval": {"n": len(items), "tasks": dict(cfg.eval.tasks),
                     "before": _scores(before) if before else None, "after": _scores(after),
                     "delta": _delta(before, after)},
            "total_time_s": round(time.perf_counter() - t_start, 2),
            "config": cfg.model_dump(mode="json"),
        }
        atomic_write_json(run_dir / "finetune_results.json", results)
        tracker.summary({"train_time_s": stats["train_time_s"], "tokens_per_s": stats["tokens_per_s"],
                         "final_loss": stats["losses"][-1] if stats["losses"] else None,
                         "eval_after": after["mean_score"],
                         **({"eval_before": before["mean_score"]} if before else {})})
    finally:
        tracker.finish()
    print_report(results)
    return results


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 5)


def _flat(ev: dict[str, Any]) -> dict[str, float]:
    out = {"mean_score": ev["mean_score"]}
    for fam, s in ev["by_family"].items():
        out[f"{fam}.mean_score"] = s["mean_score"]
        out[f"{fam}.exact"] = s["exact"]
    return out


def print_report(res: dict[str, Any]) -> None:
    tr, ev = res["train"], res["eval"]
    print(f"\nFine-tune {res['run_dir']}")
    print(f"  data: {res['data']['used']} examples used of {res['data']['examples']} "
          f"({res['data']['truncated']} truncated, {res['data']['too_long']} too long)")
    print(f"  train: {tr['steps']} steps on {tr['device']}, {tr['train_time_s']} s, {tr['tokens']} tokens, "
          f"{tr['tokens_per_s']} tokens/s; probe loss {tr['probe_loss_before']} -> {tr['probe_loss_after']}")
    fams = sorted(ev["after"]["by_family"])
    print(f"  held-out real tasks (n={ev['n']}):  {'':8}" + "".join(f"{f + ' score/exact':>26}" for f in fams))
    for label in ("before", "after"):
        s = ev[label]
        if s is None:
            continue
        cells = "".join(f"{s['by_family'][f]['mean_score']:>18.3f}/{s['by_family'][f]['exact']:.3f}" for f in fams)
        print(f"  {label:>6}: mean {s['mean_score']:.3f}{cells}")
    print(f"  adapter: {res['adapter_dir']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ads.finetune", description=__doc__.split("\n\n")[0])
    default_cfg = Path(__file__).resolve().parent.parent / "configs" / "finetune.yaml"
    ap.add_argument("config", nargs="?", default=str(default_cfg))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--run-dir", default=None, help="default: RESULTS_DIR/NAME-<config hash>")
    args = ap.parse_args(argv)
    from ads.guard import run_guarded

    def body() -> None:
        cfg = load_config(FinetuneConfig, args.config, args.set)
        run_finetune(cfg, Path(args.run_dir) if args.run_dir else default_run_dir(cfg))

    return run_guarded(body)


if __name__ == "__main__":
    sys.exit(main())
