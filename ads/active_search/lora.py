"""The LoRA options of the ADS loop: fine-tune the policy and/or the optimizer after each iteration.

`loop.policy_update: lora` (default `in_context`): after training iteration N, the rows of the
tasks' acquired training datasets (training_data.jsonl) become supervised examples: demonstration
and QA pairs as instruction/response, passages as text to recall ("Tell me about <title>." ->
the passage). Never gold answers: the policy learns only from what the optimizer acquired. A
LoRA adapter is trained on the policy's base weights (peft + accelerate, the loop of
`ads.downstream.train`), saved under `<run>/policy_lora/itN/`, and from then on the policy role is
served by the transformers backend with that adapter (`models.hf.HFModel`), still through the
run context's request cache and ledger. The adapter's fingerprint is part of the model id, so
cached answers of the base model are never replayed for the tuned one. The dataset stays in
context as well; the evaluation's no_data method is then the tuned policy without context.

`loop.optimizer_update: lora` (default `exemplars`): the same for the optimizer, on accepted
(optimizer prompt -> plan JSON) pairs, under `<run>/optimizer_lora/itN/`. The exemplar memory still
fills the prompt (the adapter is trained on prompts that contain it); set `loop.exemplars: 0`
for the adapter alone. The transformers backend cannot enforce the plan's JSON schema (llama.cpp
does, with a grammar): the schema is stated in the system prompt and an unparseable plan is a
counted rejection (`parse_failures`), never a crash.

Each adapter is trained afresh on the base weights from the data of iterations 1..N
(`lora_update.data: cumulative`, the default) or of iteration N only (`iteration`), so every
adapter is a function of the stored records alone and a resumed run rebuilds the same set.

Resume: an adapter is written to a hidden temporary folder, completed by a marker file
(`ads_lora.json`, holding the training stats and the weights' fingerprint), then renamed into
place; a rename is atomic, so `itN/` either is complete or does not exist. A resumed run loads a
complete adapter instead of retraining it; a leftover temporary folder, or an `itN/` whose
marker or weights are missing or do not match the recorded fingerprint, is deleted and retrained.

Cost accounting: each training run is one ledger entry (kind `train`, role `policy_lora` /
`optimizer_lora`, iteration `lora-N`), its processed tokens (forward + backward, padding
excluded) in `prompt_tokens` and its wall time in `wall_s`; the training metrics of iteration N
carry the loss curve, steps, time and tokens under `policy_lora` / `optimizer_lora`.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

from pydantic import Field

from ads.config import ConfigError, ModelConfig, Strict
from ads.downstream.train import LoraSection, TrainConfig
from ads.ledger import LedgerEntry
from ads.store import atomic_write_json, read_json

if TYPE_CHECKING:  # pragma: no cover
    from ads.active_search.loop import ActiveDataSearch

MARKER = "ads_lora.json"
ROLES = ("policy", "optimizer")


class LoraUpdateConfig(Strict):
    """Hyper-parameters of the LoRA updates (used only when loop.policy_update / optimizer_update is lora).

    Defaults are sized for a 135M model on 2 CPU cores: a rank-8 adapter on the attention
    projections, 2 epochs at a LoRA-typical learning rate, at most 40 optimizer steps per update.
    """

    lora: LoraSection = LoraSection()
    train: TrainConfig = TrainConfig(epochs=2, max_steps=None, lr=5e-4, batch_size=4, max_len=1024,
                                     lr_schedule="linear", device="auto", log_every=5)
    max_steps_cap: int | None = Field(40, ge=1)  # upper bound on steps when train.max_steps is None
    data: Literal["cumulative", "iteration"] = "cumulative"
    max_examples: int | None = Field(256, ge=1)  # keep the most recent N examples


def check_lora_config(cfg: Any) -> None:
    """Config-time checks (ADSConfig validator): a LoRA option needs a local base the transformers backend loads."""
    for role, key, default in (("policy", "loop.policy_update", "in_context"),
                               ("optimizer", "loop.optimizer_update", "exemplars")):
        if getattr(cfg.loop, key.split(".")[1]) != "lora":
            continue
        m: ModelConfig = getattr(cfg, role)
        why = None
        if m.base_url or m.backend == "openai":
            why = f"{role}.backend is an OpenAI-compatible endpoint ({role}.base_url), whose weights are not here"
        elif m.backend in ("llamacpp", "fake"):
            why = f"{role}.backend is {m.backend!r}, which cannot load a LoRA adapter"
        elif m.adapter:
            why = f"{role}.adapter is already set (the LoRA update trains its own adapter on the base weights)"
        elif getattr(getattr(cfg, "executor", None), "kind", "local") != "local":
            why = (f"executor.kind is {cfg.executor.kind!r}: adapters are trained and swapped in by the driver, "
                   f"and Ray workers build their own models from the config, so they would not see them")
        if why:
            raise ValueError(f"{key}: 'lora' trains a LoRA adapter on the {role}'s local weights and serves it with "
                             f"the transformers backend, but {why}; use {role}.backend: auto or transformers with "
                             f"a local .gguf file or Hugging Face folder, or set {key}: {default}")


# --- training examples ----------------------------------------------------------------------
@dataclass(frozen=True)
class ChatExample:
    messages: tuple[dict[str, str], ...]  # system + user, exactly as the role sees them at inference
    response: str
    source: str  # trajectory id


def policy_examples(ads: "ActiveDataSearch", it: int, data: str) -> list[ChatExample]:
    """One example per acquired dataset row (training_data.jsonl), in the policy's chat format:
    pairs as instruction -> response, passages as "Tell me about <title>." -> the passage.
    Gold answers never enter: what the policy learns is only what the optimizer acquired."""
    from ads.active_search.policy import POLICY_SYSTEM
    from ads.active_search.training_data import as_sft_pair

    out = []
    for r in ads.training_data:
        if not _in_window(r["iteration"], it, data):
            continue
        instruction, response = as_sft_pair(r)
        if not response.strip():
            continue
        msgs = ({"role": "system", "content": POLICY_SYSTEM}, {"role": "user", "content": f"Task: {instruction}"})
        out.append(ChatExample(msgs, response, r["id"]))
    return out


def optimizer_examples(ads: "ActiveDataSearch", it: int, data: str) -> list[ChatExample]:
    """(optimizer prompt with its exemplars, the weakness signal and the schema note -> accepted plan).

    Accepted "fetch nothing" plans are included: they teach where data does not pay. The
    prompt is the one the optimizer is given at inference on the transformers backend.
    """
    from ads.active_search.planning import task_key
    from models.hf import with_schema_prompt

    tasks = {t.id: t for t in ads.trained}
    before = {}
    for r in ads.trajectories:
        if r.get("answers_before") is not None:
            before.setdefault((r["iteration"], r["task_id"]), list(zip(r["answers_before"], r["scores_before"])))
    out = []
    for r in ads.trajectories:
        if not r.get("accepted") or not _in_window(r["iteration"], it, data):
            continue
        task = tasks.get(r["task_id"])
        current = before.get((r["iteration"], r["task_id"]))
        if task is None or current is None:
            continue
        exemplars = ads.memory.nearest(task_key(task), ads.cfg.loop.exemplars, exclude=task.id,
                                       before=(r["iteration"], 0))
        msgs = with_schema_prompt(ads.optimizer.messages(task, current, exemplars), ads.optimizer.schema)
        out.append(ChatExample(tuple(msgs), json.dumps({"calls": r["calls"]}, ensure_ascii=False), r["id"]))
    return out


def _in_window(rec_it: Any, it: int, data: str) -> bool:
    return isinstance(rec_it, int) and (rec_it == it if data == "iteration" else rec_it <= it)


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


# --- training and serving ---------------------------------------------------------------------
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


def train_adapter(base: tuple[Path, str | None, str], examples: list[ChatExample], cfg: LoraUpdateConfig,
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
            import math

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


def adapter_complete(d: Path) -> bool:
    """True when d holds a finished adapter: marker, config and weights, weights matching the marker."""
    from models.hf import adapter_fingerprint

    if not (d / MARKER).is_file() or not (d / "adapter_config.json").is_file():
        return False
    if not ((d / "adapter_model.safetensors").is_file() or (d / "adapter_model.bin").is_file()):
        return False
    meta = read_json(d / MARKER, None)
    return isinstance(meta, dict) and meta.get("weights") == adapter_fingerprint(d).rsplit("-", 1)[-1]


class LoraUpdates:
    """Runs the configured LoRA updates at the end of each iteration and swaps the tuned models in.

    `trainer` and `server` default to the real ones above; unit tests pass scripted ones.
    """

    def __init__(self, ads: "ActiveDataSearch", trainer: Callable[..., dict[str, Any]] | None = None,
                 server: Callable[..., Any] | None = None):
        self.ads = ads
        loop = ads.cfg.loop
        self.roles = [r for r, on in (("policy", loop.policy_update == "lora"),
                                      ("optimizer", getattr(loop, "optimizer_update", "exemplars") == "lora")) if on]
        self.trainer = trainer or train_adapter
        self.server = server or serve_adapter
        self.adapters: dict[str, Path] = {}  # role -> the adapter that serves now
        self.sources: dict[str, list[str]] = {}  # role -> the trajectory ids that adapter was trained on
        # Fail before any record is written when the base is not local weights (checked again at use).
        self.bases = {role: resolve_base(getattr(ads.cfg, role), ads.cfg.models_dir) for role in self.roles}
        self._pristine: dict[tuple[Path, str | None], tuple[Any, Any]] = {}

    def _loader(self, role: str) -> Callable[[], tuple[Any, Any]]:
        """A private copy of the role's base weights per call; the base is read from disk once per run
        (a GGUF takes ~10-35 s to dequantize on 2 busy cores, a copy of 135M float32 weights < 1 s)."""
        folder, gguf, _ = self.bases[role]

        def load() -> tuple[Any, Any]:
            import copy

            from models.hf import load_causal_lm

            if (folder, gguf) not in self._pristine:
                self._pristine[(folder, gguf)] = load_causal_lm(folder, gguf)
            model, tok = self._pristine[(folder, gguf)]
            return copy.deepcopy(model), tok

        return load

    @property
    def enabled(self) -> bool:
        return bool(self.roles)

    def after_iteration(self, it: int) -> dict[str, Any]:
        return {f"{role}_lora": self.update(role, it) for role in self.roles}

    def update(self, role: str, it: int) -> dict[str, Any]:
        ads, cfg = self.ads, self.ads.cfg.lora_update
        root = ads.ctx.run_dir / f"{role}_lora"
        final = root / f"it{it}"
        if adapter_complete(final):
            meta = read_json(final / MARKER)
            self.sources[role] = meta.get("sources", [])
            info = {**meta["stats"], "adapter": str(final), "resumed": True}
        else:
            self._clean(root, final)
            examples = (policy_examples if role == "policy" else optimizer_examples)(ads, it, cfg.data)
            if cfg.max_examples and len(examples) > cfg.max_examples:
                examples = examples[-cfg.max_examples:]
            if not examples:
                info = {"trained": False, "reason": "no accepted data to train on", "data": {"examples": 0}}
            elif [e.source for e in examples] == self.sources.get(role):
                info = {"trained": False, "reason": "no new accepted data since the adapter that serves now",
                        "data": {"examples": len(examples)}}
            else:
                info = self._train(role, it, examples, root, final)
                if info.get("trained"):
                    self.sources[role] = [e.source for e in examples]
        if info.get("trained"):
            self._swap(role, final)
            info["model_id"] = self._model(role).model_id
        else:  # keep what serves now (the base, or the previous iteration's adapter)
            info["model_id"] = self._model(role).model_id
        self._log(role, it, info)
        return info

    # -- pieces -----------------------------------------------------------------------------
    @staticmethod
    def _clean(root: Path, final: Path) -> None:
        if final.exists():  # half-written or tampered: retrain
            shutil.rmtree(final)
        if root.is_dir():
            for p in root.glob(f".{final.name}.tmp*"):
                shutil.rmtree(p, ignore_errors=True)

    def _train(self, role: str, it: int, examples: list[ChatExample], root: Path, final: Path) -> dict[str, Any]:
        from models.hf import adapter_fingerprint

        ads = self.ads
        tmp = root / f".{final.name}.tmp{os.getpid()}"
        root.mkdir(parents=True, exist_ok=True)
        print(f"[{role} lora] iteration {it}: training on {len(examples)} examples")
        t0 = time.perf_counter()
        stats = self.trainer(self.bases[role], examples, ads.cfg.lora_update, ads.cfg.seed + it, tmp,
                             load=self._loader(role))
        wall = time.perf_counter() - t0
        stats = {**stats, "examples": len(examples), "wall_s": round(wall, 2)}
        base_id = self.bases[role][2]
        ads.ctx.ledger.record(LedgerEntry(kind="train", role=f"{role}_lora", model=base_id,
                                          prompt_tokens=int(stats.get("tokens", 0)), wall_s=wall,
                                          iteration=f"lora-{it}", task_id=f"{role}_lora-it{it}"))
        if not stats.get("trained"):
            shutil.rmtree(tmp, ignore_errors=True)
            return stats
        weights = adapter_fingerprint(tmp).rsplit("-", 1)[-1]
        atomic_write_json(tmp / MARKER, {"role": role, "iteration": it, "base": base_id, "weights": weights,
                                         "data_mode": ads.cfg.lora_update.data, "stats": stats,
                                         "sources": [e.source for e in examples], "created": time.time()})
        os.replace(tmp, final)  # atomic: final/ is complete or absent
        losses = stats.get("losses") or []
        print(f"[{role} lora] iteration {it}: {stats.get('steps')} steps, loss "
              f"{losses[0] if losses else '?'} -> {losses[-1] if losses else '?'}, {stats.get('train_time_s')} s")
        return {**stats, "adapter": str(final), "resumed": False}

    def _model(self, role: str) -> Any:
        return self.ads.policy_model if role == "policy" else self.ads.optimizer_model

    def _swap(self, role: str, adapter: Path) -> None:
        ads = self.ads
        if self.adapters.get(role) == adapter:
            return
        served = ads.ctx.wrap(self.server(getattr(ads.cfg, role), adapter, ads.cfg.models_dir,
                                          load=self._loader(role)), role)
        self.adapters[role] = adapter
        ads.set_model(role, served)

    def _log(self, role: str, it: int, info: dict[str, Any]) -> None:
        losses = info.get("losses") or []
        flat = {f"{role}_lora/trained": float(bool(info.get("trained"))),
                f"{role}_lora/examples": float(info.get("examples", 0))}
        if losses:
            flat.update({f"{role}_lora/first_loss": losses[0], f"{role}_lora/final_loss": losses[-1]})
        for k in ("train_time_s", "tokens", "steps"):
            if isinstance(info.get(k), (int, float)):
                flat[f"{role}_lora/{k}"] = info[k]
        self.ads.ctx.tracker.log(flat, step=it)


def adapters_in(run_dir: Path) -> dict[str, list[str]]:
    """Completed adapters of a run folder by role (for reports)."""
    out = {}
    for role in ROLES:
        root = Path(run_dir) / f"{role}_lora"
        out[role] = sorted(p.name for p in root.glob("it*") if adapter_complete(p)) if root.is_dir() else []
    return out


__all__ = ["LoraUpdateConfig", "LoraUpdates", "check_lora_config", "policy_examples", "optimizer_examples",
           "encode_examples", "adapter_complete", "adapters_in", "train_adapter", "serve_adapter"]
