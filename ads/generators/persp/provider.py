"""Which provider serves `model_config.model_name`, and the ModelConfig that reaches it.

Detection order (an explicit `api_provider` other than "auto" always wins):
1. a `base_url` in model_config: an OpenAI-compatible server ("openai_compatible");
2. a name the local registry resolves (a short name like `smollm2-135m`, or a .gguf path): "local";
3. anything else is an error. A hosted provider ("openai", "together") is used only when the
   config names it in `api_provider`: a typo in a local model name (or a model not installed
   yet) used to be routed to api.openai.com / api.together.xyz with the user's key. The error
   says which provider the name looks like and the line to add.
Hosted providers are reached through the shared OpenAI-compatible client, which does its own
throttling and retries; their key is read from the environment variable named in the config.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ads.config import ConfigError, ModelConfig
from ads.generators.persp.settings import PerspModelConfig

OPENAI_PREFIXES = ("gpt-", "o1", "o3", "o4", "text-davinci-", "davinci-", "chatgpt-")
HOSTED = {
    "openai": ("https://api.openai.com/v1", "OPENAI_API_KEY"),
    "together": ("https://api.together.xyz/v1", "TOGETHER_API_KEY"),
}


@dataclass(frozen=True)
class ProviderChoice:
    provider: str  # local | openai | together | openai_compatible
    model: ModelConfig
    how: str  # why this provider was chosen, for the run's metadata


def _is_local(name: str, models_dir: str) -> bool:
    """True when the registry resolves the name to a GGUF file or model folder on this machine."""
    from models.errors import ModelLoadError
    from models.registry import resolve

    try:
        return resolve(ModelConfig(name=name), models_dir).backend in ("llamacpp", "transformers")
    except (ModelLoadError, ValueError, OSError):  # not installed / not a model file
        return False


def detect_provider(mc: PerspModelConfig, requested: str = "auto", models_dir: str = "cache/models") -> tuple[str, str]:
    name = mc.model_name
    if requested != "auto":
        return requested, "api_provider set in the config"
    if mc.base_url:
        return "openai_compatible", f"base_url {mc.base_url}"
    if _is_local(name, models_dir):
        return "local", f"{name!r} resolves to a local model in {models_dir}"
    hosted = ("openai" if name.lower().startswith(OPENAI_PREFIXES)
              else "together" if "/" in name and not name.endswith(".gguf") else None)
    if hosted is not None:
        raise ConfigError(f"model_config.model_name: {name!r} is not a local model in {models_dir}; it looks like a "
                          f"{hosted} model, but nothing is sent to a hosted API unless the config says so: add "
                          f"`api_provider: {hosted}` (key in ${HOSTED[hosted][1]}), or give a local name / .gguf path")
    raise ConfigError(f"model_config.model_name: {name!r} is not a local model in {models_dir} (run "
                      f"`main.py models` to list them), has no OpenAI prefix and no org/ prefix; give a .gguf path, "
                      f"a local name, or a base_url for an OpenAI-compatible server")


def choose(mc: PerspModelConfig, requested: str = "auto", models_dir: str = "cache/models",
           check_key: bool = True) -> ProviderChoice:
    provider, how = detect_provider(mc, requested, models_dir)
    common = dict(name=mc.model_name, n_ctx=mc.n_ctx, n_threads=mc.n_threads, timeout_s=mc.timeout_s,
                  max_retries=mc.max_retries, max_concurrency=mc.max_concurrency,
                  requests_per_minute=mc.requests_per_minute, tokens_per_minute=mc.tokens_per_minute)
    if provider == "local":
        if mc.base_url:
            raise ConfigError("model_config.base_url: api_provider 'local' runs the GGUF in-process; drop base_url")
        return ProviderChoice(provider, ModelConfig(backend="auto", **common), how)
    if provider in HOSTED:
        url, env = HOSTED[provider]
        url, env = mc.base_url or url, mc.api_key_env or env
    else:  # openai_compatible: a local llama-server or vLLM usually needs no key
        if not mc.base_url:
            raise ConfigError("model_config.base_url: api_provider 'openai_compatible' needs base_url "
                              "(e.g. http://127.0.0.1:8080/v1)")
        url, env = mc.base_url, mc.api_key_env or ""
    if check_key and provider in HOSTED and not os.environ.get(env):
        raise ConfigError(f"model_config: provider {provider!r} ({how}) needs an API key in the environment "
                          f"variable {env}; set it, or use a local model")
    return ProviderChoice(provider, ModelConfig(backend="openai", base_url=url, api_key_env=env, **common), how)
