"""What a LoRA update of the ADS loop trains on, and the training and serving of one adapter.

Kept apart from the schedule (lora.py: when an adapter is trained, resumed or swapped in)
because these are functions of records and weights alone: the examples come from the run's
stored records, so a resumed run rebuilds exactly the set an interrupted one trained on, and
unit tests replace `train_adapter` / `serve_adapter` with scripted stand-ins without touching
the schedule.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ads.config import ConfigError, ModelConfig

if TYPE_CHECKING:  # pragma: no cover
    from ads.active_search.instruction_sets import Task
    from ads.active_search.lora import LoraUpdateConfig
    from ads.active_search.planning import ExemplarMemory, Optimizer


@dataclass(frozen=True)
class ChatExample:
    messages: tuple[dict[str, str], ...]  # system + user, exactly as the role sees them at inference
    response: str
    source: str  # trajectory id


def in_window(rec_it: Any, it: int, data: str) -> bool:
    """Whether a record of iteration rec_it feeds the adapter of iteration it (`lora_update.data`)."""
    return isinstance(rec_it, int) and (rec_it == it if data == "iteration" else rec_it <= it)


def policy_examples(rows: Iterable[dict[str, Any]], it: int, data: str) -> list[ChatExample]:
    """One example per acquired dataset row (training_data.jsonl), in the policy's chat format:
    pairs as instruction -> response, passages as "Tell me about <title>." -> the passage.
    Gold answers never enter: what the policy learns is only what the optimizer acquired."""
    from ads.active_search.policy import POLICY_SYSTEM
    from ads.active_search.training_data import as_sft_pair

    out = []
    for r in rows:
        if not in_window(r["iteration"], it, data):
            continue
        instruction, response = as_sft_pair(r)
        if not response.strip():
            continue
        msgs = ({"role": "system", "content": POLICY_SYSTEM}, {"role": "user", "content": f"Task: {instruction}"})
        out.append(ChatExample(msgs, response, r["id"]))
    return out


def optimizer_examples(records: list[dict[str, Any]], tasks: list["Task"], memory: "ExemplarMemory",
                       optimizer: "Optimizer", n_exemplars: int, it: int, data: str) -> list[ChatExample]:
    """(optimizer prompt with its exemplars, the weakness signal and the schema note -> accepted plan),
    from the trajectory records.

    Accepted "fetch nothing" plans are included: they teach where data does not pay. The
    prompt is the one the optimizer is given at inference on the transformers backend.
    """
    from ads.active_search.planning import task_key
    from models.hf import with_schema_prompt

    by_id = {t.id: t for t in tasks}
    before = {}
    for r in records:
        if r.get("answers_before") is not None:
            before.setdefault((r["iteration"], r["task_id"]), list(zip(r["answers_before"], r["scores_before"])))
    out = []
    for r in records:
        if not r.get("accepted") or not in_window(r["iteration"], it, data):
            continue
        task = by_id.get(r["task_id"])
        current = before.get((r["iteration"], r["task_id"]))
        if task is None or current is None:
            continue
        exemplars = memory.nearest(task_key(task), n_exemplars, exclude=task.id, before=(r["iteration"], 0))
        msgs = with_schema_prompt(optimizer.messages(task, current, exemplars), optimizer.schema)
        out.append(ChatExample(tuple(msgs), json.dumps({"calls": r["calls"]}, ensure_ascii=False), r["id"]))
    return out


def encode_chat_example(tokenizer: Any, ex: ChatExample, max_len: int) -> tuple[dict[str, list[int]] | None, str]:
    """Like ads.downstream.data.encode_example, with the system prompt kept: loss on the answer only."""
    from ads.downstream.data import IGNORE
    from models.hf import render_chat

    msgs = list(ex.messages)
    prompt_text = render_chat(tokenizer, msgs, add_generation_prompt=True)
    full = render_chat(tokenizer, [*msgs, {"role": "assistant", "content": ex.response}], add_generation_prompt=False)
    answer = full[len(prompt_text):] if full.startswith(prompt_text) else ex.response + (tokenizer.eos_token or "")
    p_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    a_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    if len(p_ids) + len(a_ids) > max_len:
        return None, "too_long"
    return {"input_ids": p_ids + a_ids, "labels": [IGNORE] * len(p_ids) + a_ids}, "ok"


def encode_examples(tokenizer: Any, examples: list[ChatExample], max_len: int) -> tuple[list[dict], dict[str, int]]:
    """Encode all; an example longer than max_len is dropped and counted."""
    from ads.downstream.data import encode_counting

    return encode_counting(examples, lambda ex: encode_chat_example(tokenizer, ex, max_len), ("ok", "too_long"))


# --- weights --------------------------------------------------------------------------------------
def resolve_base(mcfg: ModelConfig, models_dir: str) -> tuple[Path, str | None, str]:
    """(folder, gguf file or None, base model id) of a role's local weights, as transformers loads them."""
    from models.errors import ModelLoadError
    from models.registry import resolve

    try:
        r = resolve(mcfg.model_copy(update={"backend": "transformers", "adapter": None}), models_dir)
    except ModelLoadError as e:
        raise ConfigError(f"LoRA update: the base model cannot be loaded by transformers: {e}") from None
    loc = Path(r.location)
    return (loc.parent, loc.name, r.model_id) if loc.is_file() else (loc, None, r.model_id)


def train_adapter(base: tuple[Path, str | None, str], examples: list[ChatExample], cfg: "LoraUpdateConfig",
                  seed: int, out_dir: Path, load: Callable[[], tuple[Any, Any]] | None = None) -> dict[str, Any]:
    """Train a fresh LoRA on the base weights and save it (peft files) into out_dir; returns stats.

    `load()` gives a private (model, tokenizer) copy of the base; default: load it from disk.
    """
    import torch
    from accelerate.utils import set_seed

    from ads.downstream.train import add_lora, make_accelerator, make_loader, train_lora
    from models.hf import load_causal_lm

    folder, gguf, _ = base
    old_threads = torch.get_num_threads()
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    try:
        t0 = time.perf_counter()
        model, tok = load() if load is not None else load_causal_lm(folder, gguf)
        load_s = time.perf_counter() - t0
        set_seed(seed)
        encoded, enc_stats = encode_examples(tok, examples, cfg.train.max_len)
        if not encoded:
            return {"trained": False, "reason": f"no example fits lora_update.train.max_len={cfg.train.max_len}",
                    "data": enc_stats}
        tcfg = cfg.train
        if tcfg.max_steps is None and cfg.max_steps_cap is not None:
            natural = max(1, math.ceil(tcfg.epochs * math.ceil(len(encoded) / tcfg.batch_size) / tcfg.grad_accum))
            tcfg = tcfg.model_copy(update={"max_steps": min(natural, cfg.max_steps_cap)})
        accelerator = make_accelerator(tcfg)
        model = add_lora(model, cfg.lora)
        loader = make_loader(encoded, tcfg.batch_size, tok.pad_token_id, seed)
        stats, model = train_lora(model, loader, tcfg, accelerator)
        model = accelerator.unwrap_model(model)
        out_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(out_dir), save_embedding_layers=False)
        del model
        return {"trained": True, "data": enc_stats, "load_s": round(load_s, 2), **stats}
    finally:
        torch.set_num_threads(old_threads)


def serve_adapter(mcfg: ModelConfig, adapter: Path, models_dir: str,
                  load: Callable[[], tuple[Any, Any]] | None = None) -> Any:
    """The role's model on the transformers backend with the adapter merged (model_id carries its fingerprint).

    Same result as `models.registry.load` with `adapter=` set; `load()` supplies a private copy of
    the base weights already in memory instead of reading (and, for a GGUF, dequantizing) them again.
    """
    from models.hf import HFModel
    from models.registry import load as load_from_registry

    mcfg = mcfg.model_copy(update={"backend": "transformers", "adapter": str(adapter)})
    if load is None:
        return load_from_registry(mcfg, models_dir)
    folder, gguf, base_id = resolve_base(mcfg, models_dir)
    model, tok = load()
    return HFModel(folder, gguf_file=gguf, adapter=adapter, model_id=base_id, model=model, tokenizer=tok)
