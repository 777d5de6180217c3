"""Resolve a model config (a short name, a file, a folder or an endpoint) to a loaded Model.

Names come from two places: the short names of the assets setup.sh installs
(`smollm2-135m`, `qwen2.5-coder-0.5b-instruct`), and, for every GGUF in the models folder,
a slug of the `general.name` in its metadata (so the Qwen file also answers to
`qwen2.5-coder-0.5b-instruct-awq`, the name its GGUF gives). A llama.cpp model gets one
instance per role: llama.cpp reuses the state of the prompt prefix a call shares with the
previous call on the same instance, and each role's prompts share a long prefix with that
role's previous prompt (its system text, the API menu, a task's reference block), not with
the other role's. Other backends share one instance between roles.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from models.model_config import ModelConfig
from models.assets import ASSETS, SETUP_STEP
from models.errors import ModelLoadError, ModelNotFoundError
from models.base import Model


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-")


@dataclass(frozen=True)
class ResolvedModel:
    backend: str  # llamacpp | transformers | openai
    location: str  # file, folder, or served model name
    model_id: str


def available_names(models_dir: str | Path) -> dict[str, Path]:
    """name -> GGUF path for everything installed in models_dir."""
    models_dir = Path(models_dir)
    names: dict[str, Path] = {}
    for asset in ASSETS:
        p = models_dir / asset.file
        if p.exists():
            names[asset.name] = p
    stamps_file = models_dir / ".verified.json"
    stamps = json.loads(stamps_file.read_text()) if stamps_file.exists() else {}
    for p in sorted(models_dir.glob("*.gguf")):
        general = stamps.get(p.name, {}).get("general_name")
        if general is None:
            try:
                from models.assets import check_gguf_header

                general = check_gguf_header(p)
            except Exception:
                continue
        names.setdefault(slug(general), p)
        names.setdefault(p.stem, p)
    return names


def resolve(cfg: ModelConfig, models_dir: str | Path = "cache/models") -> ResolvedModel:
    backend = cfg.backend
    if cfg.base_url or cfg.base_urls or backend == "openai":
        if not (cfg.base_url or cfg.base_urls):
            raise ModelLoadError(f"model {cfg.name!r}: backend 'openai' needs base_url (e.g. http://127.0.0.1:8080/v1)")
        return ResolvedModel("openai", cfg.name, cfg.name)
    if backend == "fake":
        raise ModelLoadError("backend 'fake' is for unit tests and is constructed in code, not from a config")
    path = Path(cfg.name).expanduser()
    if path.exists():
        if path.is_dir():
            if backend == "llamacpp":
                raise ModelLoadError(f"model {cfg.name!r}: llamacpp needs a .gguf file, this is a folder")
            return ResolvedModel("transformers", str(path), path.name)
        if path.suffix != ".gguf":
            raise ModelLoadError(f"model {cfg.name!r}: expected a .gguf file or a Hugging Face model folder")
        return ResolvedModel("transformers" if backend == "transformers" else "llamacpp", str(path), path.stem)
    names = available_names(models_dir)
    key = cfg.name if cfg.name in names else slug(cfg.name)
    if key in names:
        p = names[key]
        return ResolvedModel("transformers" if backend == "transformers" else "llamacpp", str(p), key)
    known = sorted({a.name for a in ASSETS} | set(names))
    hint = (f"it is installed by {SETUP_STEP}" if cfg.name in {a.name for a in ASSETS}
            else f"known names: {', '.join(known) or 'none installed yet'}; the offline models are installed by {SETUP_STEP}")
    raise ModelNotFoundError(f"model {cfg.name!r} not found in {models_dir}: {hint}; "
                             f"or give a path to a .gguf file / HF folder, or a base_url for a server")


def load(cfg: ModelConfig, models_dir: str | Path = "cache/models") -> Model:
    r = resolve(cfg, models_dir)
    if r.backend == "openai":
        from models.openai_compat import OpenAICompatModel
        from models.openai_pool import OpenAICompatPool

        if cfg.base_urls:
            return OpenAICompatPool.from_config(cfg)
        return OpenAICompatModel.from_config(cfg)
    if r.backend == "transformers":
        from models.hf import HFModel

        loc = Path(r.location)
        if loc.is_file():
            return HFModel(loc.parent, gguf_file=loc.name, adapter=cfg.adapter, model_id=r.model_id)
        return HFModel(loc, adapter=cfg.adapter, model_id=r.model_id)
    from models.llamacpp import LlamaCppModel

    return LlamaCppModel(r.location, model_id=r.model_id, n_ctx=cfg.n_ctx, n_threads=cfg.n_threads,
                         reuse_prefix=cfg.reuse_prefix, prefix_cache_mb=cfg.prefix_cache_mb,
                         json_decoding=cfg.json_decoding)


class ModelPool:
    """Loads each distinct model once (a llama.cpp model once per role) and hands it out."""

    def __init__(self, models_dir: str | Path = "cache/models"):
        self.models_dir = models_dir
        self._models: dict[str, Model] = {}
        self._lock = threading.Lock()

    def get(self, cfg: ModelConfig, role: str | None = None) -> Model:
        r = resolve(cfg, self.models_dir)
        per_role = role if r.backend == "llamacpp" else None
        key = json.dumps([r.backend, r.location, cfg.n_ctx, cfg.adapter, cfg.base_url, cfg.base_urls, cfg.reuse_prefix,
                          per_role] + ([cfg.prefix_cache_mb, cfg.json_decoding] if r.backend == "llamacpp" else []))
        with self._lock:
            if key not in self._models:
                self._models[key] = load(cfg, self.models_dir)
            return self._models[key]
