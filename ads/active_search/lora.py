"""The LoRA options of the ADS loop: fine-tune the policy and/or the optimizer after each iteration.

`loop.policy_update: lora` (default `in_context`): after training iteration N, the rows of the
tasks' acquired training datasets (training_data.jsonl) become supervised examples: demonstration
and QA pairs as instruction/response, passages as text to recall ("Tell me about <title>." ->
the passage). Never gold answers: the policy learns only from what the optimizer acquired. A
LoRA adapter is trained on the policy's base weights (peft + accelerate, the loop of
`ads.downstream.train`), saved under `<run>/policy_lora/itN/`, and from then on the policy role is
served by the transformers backend with that adapter (`models.hf.HFModel`), still through the
run context's request cache and ledger. The tuned model enters the loop through its one seam,
`ActiveDataSearch.set_model`, which also forgets the answers the old model gave. The adapter's
fingerprint is part of the model id, so cached answers of the base model are never replayed for
the tuned one. The dataset stays in
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

The update runs in the driver at the end of an iteration (ADSGenerator.end_round); what it
trains on and how is lora_training.py.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

from pydantic import Field

from ads.active_search.lora_training import (ChatExample, optimizer_examples, policy_examples, resolve_base,
                                             serve_adapter, train_adapter)
from ads.config import ModelConfig, Strict
from ads.downstream.train import LoraSection, TrainConfig
from ads.ledger import LedgerEntry
from ads.store import atomic_write_json, read_json

if TYPE_CHECKING:  # pragma: no cover
    from ads.active_search.experiment import ADSGenerator

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
        m: ModelConfig = getattr(cfg.models, role)
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

    It reads the generator's records (training_data, trajectories), tasks and memory, and
    reaches the models only through the loop's `set_model` seam. `trainer` and `server`
    default to lora_training's (looked up here, so tests can patch this module); unit tests
    pass scripted ones.
    """

    def __init__(self, gen: "ADSGenerator", trainer: Callable[..., dict[str, Any]] | None = None,
                 server: Callable[..., Any] | None = None):
        self.gen = gen
        loop = gen.cfg.loop
        self.roles = [r for r, on in (("policy", loop.policy_update == "lora"),
                                      ("optimizer", loop.optimizer_update == "lora")) if on]
        self.trainer = trainer or train_adapter
        self.server = server or serve_adapter
        self.adapters: dict[str, Path] = {}  # role -> the adapter that serves now
        self.sources: dict[str, list[str]] = {}  # role -> the trajectory ids that adapter was trained on
        # Fail before any record is written when the base is not local weights (checked again at use).
        self.bases = {role: resolve_base(getattr(gen.cfg.models, role), gen.cfg.models_dir) for role in self.roles}
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

    def after_iteration(self, it: int) -> dict[str, dict[str, Any]]:
        """{"<role>_lora": what happened} for each configured role (its flat metrics: `metrics`)."""
        return {f"{role}_lora": self.update(role, it) for role in self.roles}

    def update(self, role: str, it: int) -> dict[str, Any]:
        gen, cfg = self.gen, self.gen.cfg.lora_update
        root = gen.ctx.run_dir / f"{role}_lora"
        final = root / f"it{it}"
        if adapter_complete(final):
            meta = read_json(final / MARKER)
            self.sources[role] = meta.get("sources", [])
            info = {**meta["stats"], "adapter": str(final), "resumed": True}
        else:
            self._clean(root, final)
            examples = self._examples(role, it, cfg.data)
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
        # else: what serves now keeps serving (the base, or the previous iteration's adapter)
        info["model_id"] = gen.ads.models_in_use()[role]
        return info

    # -- pieces -----------------------------------------------------------------------------
    def _examples(self, role: str, it: int, data: str) -> list[ChatExample]:
        gen = self.gen
        if role == "policy":
            return policy_examples(gen.training_data, it, data)
        return optimizer_examples(gen.trajectories.read(), gen.trained, gen.memory, gen.ads.optimizer,
                                  gen.cfg.loop.exemplars, it, data)

    @staticmethod
    def _clean(root: Path, final: Path) -> None:
        if final.exists():  # half-written or tampered: retrain
            shutil.rmtree(final)
        if root.is_dir():
            for p in root.glob(f".{final.name}.tmp*"):
                shutil.rmtree(p, ignore_errors=True)

    def _train(self, role: str, it: int, examples: list[ChatExample], root: Path, final: Path) -> dict[str, Any]:
        from models.hf import adapter_fingerprint

        cfg, ctx = self.gen.cfg, self.gen.ctx
        tmp = root / f".{final.name}.tmp{os.getpid()}"
        root.mkdir(parents=True, exist_ok=True)
        print(f"[{role} lora] iteration {it}: training on {len(examples)} examples")
        t0 = time.perf_counter()
        stats = self.trainer(self.bases[role], examples, cfg.lora_update, cfg.seed + it, tmp, load=self._loader(role))
        wall = time.perf_counter() - t0
        stats = {**stats, "examples": len(examples), "wall_s": round(wall, 2)}
        base_id = self.bases[role][2]
        ctx.ledger.record(LedgerEntry(kind="train", role=f"{role}_lora", model=base_id,
                                      prompt_tokens=int(stats.get("tokens", 0)), wall_s=wall,
                                      iteration=f"lora-{it}", task_id=f"{role}_lora-it{it}"))
        if not stats.get("trained"):
            shutil.rmtree(tmp, ignore_errors=True)
            return stats
        weights = adapter_fingerprint(tmp).rsplit("-", 1)[-1]
        atomic_write_json(tmp / MARKER, {"role": role, "iteration": it, "base": base_id, "weights": weights,
                                         "data_mode": cfg.lora_update.data, "stats": stats,
                                         "sources": [e.source for e in examples], "created": time.time()})
        os.replace(tmp, final)  # atomic: final/ is complete or absent
        losses = stats.get("losses") or []
        print(f"[{role} lora] iteration {it}: {stats.get('steps')} steps, loss "
              f"{losses[0] if losses else '?'} -> {losses[-1] if losses else '?'}, {stats.get('train_time_s')} s")
        return {**stats, "adapter": str(final), "resumed": False}

    def _swap(self, role: str, adapter: Path) -> None:
        if self.adapters.get(role) == adapter:
            return
        gen = self.gen
        served = gen.ctx.wrap(self.server(getattr(gen.cfg.models, role), adapter, gen.cfg.models_dir,
                                          load=self._loader(role)), role)
        self.adapters[role] = adapter
        gen.ads.set_model(role, served)


def metrics(updates: dict[str, dict[str, Any]]) -> dict[str, float]:
    """after_iteration's result as flat tracker metrics (`policy_lora/final_loss`, ...)."""
    flat: dict[str, float] = {}
    for key, info in updates.items():
        losses = info.get("losses") or []
        flat[f"{key}/trained"] = float(bool(info.get("trained")))
        flat[f"{key}/examples"] = float(info.get("examples", 0))
        if losses:
            flat.update({f"{key}/first_loss": losses[0], f"{key}/final_loss": losses[-1]})
        for k in ("train_time_s", "tokens", "steps"):
            if isinstance(info.get(k), (int, float)):
                flat[f"{key}/{k}"] = info[k]
    return flat


def adapters_in(run_dir: Path) -> dict[str, list[str]]:
    """Completed adapters of a run folder by role (for reports)."""
    out = {}
    for role in ROLES:
        root = Path(run_dir) / f"{role}_lora"
        out[role] = sorted(p.name for p in root.glob("it*") if adapter_complete(p)) if root.is_dir() else []
    return out


__all__ = ["LoraUpdateConfig", "LoraUpdates", "check_lora_config", "metrics", "adapter_complete", "adapters_in",
           "train_adapter", "serve_adapter"]
