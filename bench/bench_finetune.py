"""Training throughput: the harness's LoRA loop (ads.downstream.train.train_lora, via accelerate)
vs a bare peft loop (`model(**batch).loss.backward(); opt.step(); opt.zero_grad()`).

Same process, same LoRA-wrapped SmolLM2 (GGUF dequantized), same batches of exactly
batch x max_len tokens (default 4 x 256). The two loops alternate in rounds of a few steps
so both see the same machine load (on a shared CPU, load drifts faster than a multi-step round:
an earlier 3-steps-per-round version read 0.75 and 1.0 on consecutive runs); one warm-up step
each is not timed. The harness loop
includes what a run pays for: accelerate's prepared optimizer/loader, the LR scheduler,
gradient clipping and per-step loss/token bookkeeping. Printed: tokens/s of each and the ratio.

    .venv/bin/python bench/bench_finetune.py [--model cache/models/smollm2-135m.gguf] [--steps 1] [--rounds 4]

On a machine where the GGUF and the Wikipedia package cannot travel (a lent GPU box takes
64 MiB), `--init-from-config DIR` builds the same architecture from DIR's config.json and
tokenizer at random init (throughput depends on shapes, not on weights) and `--texts FILE`
reads the real Wikipedia texts from a JSONL export (`--export-texts FILE` writes one here).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ads.downstream.data import SFTExample, encode_all  # noqa: E402
from ads.downstream.train import (LoraSection, TrainConfig, add_lora, make_accelerator, make_loader,  # noqa: E402
                                  train_lora)
from models.hf import load_causal_lm  # noqa: E402


def wiki_docs(texts: str | None) -> list[tuple[str, str]]:
    """(title, text) of the real Wikipedia articles, from the installed package or a JSONL export."""
    if texts:
        rows = [json.loads(line) for line in Path(texts).read_text(encoding="utf-8").splitlines() if line.strip()]
        return [(r["title"], r["text"]) for r in rows]
    from apis.corpus import load_corpus

    return [(d.title, d.text) for d in sorted(load_corpus(None), key=lambda d: d.id)]


def long_examples(n: int, texts: str | None = None) -> list[SFTExample]:
    """Real Wikipedia text, each response long enough to fill max_len after truncation."""
    docs = wiki_docs(texts)
    out, i = [], 0
    while len(out) < n:
        body = " ".join(t for _, t in docs[i:i + 6])
        out.append(SFTExample(prompt=f"Write about {docs[i][0]}.", response=body, where=f"bench-{i}"))
        i += 6
    return out


def load_model(args: argparse.Namespace):
    if not args.init_from_config:
        return load_causal_lm(args.model)
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.init_from_config, local_files_only=True)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    config = AutoConfig.from_pretrained(args.init_from_config, local_files_only=True)
    return AutoModelForCausalLM.from_config(config), tok


def export(args: argparse.Namespace) -> None:
    """Write the benchmark's inputs for another machine: config + tokenizer folder, texts JSONL."""
    model, tok = load_causal_lm(args.model)
    out = Path(args.export_dir)
    if hasattr(model.config, "quantization_config"):  # a plain float architecture, not "load this GGUF"
        del model.config.quantization_config
    model.config.save_pretrained(out)
    tok.save_pretrained(out)
    docs = wiki_docs(None)[:2000]
    with open(out / "texts.jsonl", "w", encoding="utf-8") as f:
        for title, text in docs:
            f.write(json.dumps({"title": title, "text": text}, ensure_ascii=False) + "\n")
    print(f"wrote {out}: config, tokenizer, {len(docs)} texts")


def bare_loop(model, batches, lr: float, autocast: str = "no") -> tuple[float, int]:
    """The plain loop; under bf16/fp16 it autocasts the forward as accelerate does, for a fair ratio."""
    import contextlib

    import torch

    dev = next(model.parameters()).device.type
    cast = (torch.autocast(dev, dtype=torch.bfloat16 if autocast == "bf16" else torch.float16)
            if autocast != "no" else contextlib.nullcontext())
    scaler = torch.amp.GradScaler(dev) if autocast == "fp16" else None
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    tokens = 0
    t0 = time.perf_counter()
    for batch in batches:
        with cast:
            loss = model(**batch).loss
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        opt.zero_grad()
        tokens += int(batch["attention_mask"].sum())
    if dev == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="cache/models/smollm2-135m.gguf")
    ap.add_argument("--steps", type=int, default=1, help="optimizer steps per loop per round")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--init-from-config", default=None, metavar="DIR",
                    help="random-init model from DIR's config.json + tokenizer (no weights needed)")
    ap.add_argument("--texts", default=None, metavar="FILE", help="Wikipedia texts JSONL (title, text)")
    ap.add_argument("--export-dir", default=None, metavar="DIR", help="write config, tokenizer and texts, then exit")
    ap.add_argument("--mixed-precision", default="no", choices=["no", "bf16", "fp16"])
    args = ap.parse_args()
    if args.export_dir:
        return export(args)
    import torch

    torch.manual_seed(0)
    model, tok = load_model(args)
    model = add_lora(model, LoraSection())
    cfg = TrainConfig(max_steps=args.steps, batch_size=args.batch_size, max_len=args.max_len, lr=1e-4,
                      lr_schedule="constant", log_every=10_000)
    encoded, stats = encode_all(tok, long_examples(args.batch_size * args.steps, args.texts), args.max_len)
    assert stats["truncated"] == len(encoded), "every example must fill max_len"
    loader = make_loader(encoded, args.batch_size, tok.pad_token_id, seed=0, shuffle=False)
    batches = list(loader)
    accelerator = make_accelerator(TrainConfig(device="auto", mixed_precision=args.mixed_precision))
    dev = accelerator.device
    batches_dev = [{k: v.to(dev) for k, v in b.items()} for b in batches]
    model.to(dev)
    name = f"{args.init_from_config} (random init)" if args.init_from_config else args.model
    print(f"model {name} + LoRA r={LoraSection().r}; device {dev}; torch threads {torch.get_num_threads()}; "
          f"batch {args.batch_size} x {args.max_len} tokens; {args.steps} steps x {args.rounds} rounds per loop; "
          f"mixed precision {accelerator.mixed_precision}")
    # warm-up, untimed
    bare_loop(model, batches_dev[:1], 1e-4, accelerator.mixed_precision)
    train_lora(model, make_loader(encoded[: args.batch_size], args.batch_size, tok.pad_token_id, 0, False),
               cfg.model_copy(update={"max_steps": 1}), accelerator)
    t_h = t_b = 0.0
    tok_h = tok_b = 0
    per_round: list[float] = []
    for r in range(args.rounds):
        order = ("harness", "bare") if r % 2 == 0 else ("bare", "harness")
        for which in order:
            if which == "bare":
                dt, n = bare_loop(model, batches_dev, 1e-4, accelerator.mixed_precision)
                t_b, tok_b = t_b + dt, tok_b + n
            else:
                stats, _ = train_lora(model, loader, cfg, accelerator)
                dt, n = stats["train_time_s"], stats["tokens"]
                t_h, tok_h = t_h + dt, tok_h + n
            print(f"  round {r + 1} {which:>7}: {n} tokens in {dt:.2f} s = {n / dt:.1f} tokens/s "
                  f"({dt / args.steps:.2f} s/step)")
            if which == "bare":
                bare_dt = dt
            else:
                harness_dt = dt
        per_round.append(bare_dt / harness_dt)
    h, b = tok_h / t_h, tok_b / t_b
    per_round.sort()
    print(f"\nharness loop (accelerate): {h:.1f} tokens/s   bare peft loop: {b:.1f} tokens/s   "
          f"ratio harness/bare = {h / b:.3f} (target >= 0.8); per-round ratios {min(per_round):.2f}.."
          f"{max(per_round):.2f}, median {per_round[len(per_round) // 2]:.2f}")


if __name__ == "__main__":
    main()
