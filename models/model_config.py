"""The config base every section uses, and how a model role is configured.

It lives with the models (the bottom layer) so that `models/` and `apis/` validate their own
sections without importing the harness above them; `ads/config.py` builds run configs on it.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.errors import ConfigError  # noqa: F401 (re-exported: sections raise it)


class Strict(BaseModel):
    # allow_inf_nan=False: a NaN threshold compares False with everything and an inf λ turns every
    # reward into -inf; both used to be accepted by every float field of every config.
    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True, allow_inf_nan=False)


class ModelConfig(Strict):
    """Which model plays a role, and how to reach it. Keys never live here, only env var names."""

    name: str = "smollm2-135m"  # registry name, a .gguf path, an HF folder, or a served model id
    backend: Literal["auto", "llamacpp", "transformers", "openai", "fake"] = "auto"
    n_ctx: int = Field(2048, ge=256)
    n_threads: int | None = None
    # llama-cpp: reuse the KV cache of the prompt prefix shared with the previous request.
    # None: only if this build's logits are verified not to depend on it (models/llamacpp.py)
    reuse_prefix: bool | None = None
    # llama-cpp: MB of RAM (per model instance) for the KV states of recent prompts, so a call
    # reuses a prefix shared with any of them, not only with the previous call (under the same
    # rule as reuse_prefix, so it never changes an output; models/prefix_cache.py). 0: only the
    # previous call's
    prefix_cache_mb: int = Field(256, ge=0)
    # llama-cpp: how JSON-schema-constrained calls are decoded: llguidance token masks over the
    # grammar GBNF would use (models/constrained.py: the same outputs, ~1.7x cheaper per token
    # here; a schema it cannot read, or no llguidance installed, falls back to GBNF), or
    # llama.cpp's GBNF grammar sampler
    json_decoding: Literal["gbnf", "llguidance"] = "llguidance"
    adapter: str | None = None  # LoRA adapter folder (transformers backend)
    base_url: str | None = None  # OpenAI-compatible endpoint; implies backend openai
    base_urls: list[str] | None = None  # a pool of servers with the same model (models/openai_pool.py)
    # None: OPENAI_API_KEY for https://api.openai.com, no key for any other server
    api_key_env: str | None = None
    # send the key over plain http to a host that is not loopback (refused unless this is true)
    allow_insecure_http: bool = False
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(4, ge=0)
    max_concurrency: int = Field(4, ge=1)
    requests_per_minute: float | None = Field(None, gt=0)  # a negative rate raised inside the token bucket
    tokens_per_minute: float | None = Field(None, gt=0)

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v and not v.replace("_", "").isalnum():
            raise ValueError("must be the NAME of an environment variable holding the key, not the key itself")
        return v
