"""Typed, validated experiment configs loaded from YAML.

Every section is a pydantic model that forbids unknown keys and checks types strictly, so
a typo (`iteratons: 3`) or a wrong type (`top_k: five`) is one error naming the key and the
file, before anything is written. `--set a.b=value` overrides are parsed as YAML scalars and
validated by the same models, so they keep their types.
"""
from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from models.model_config import ModelConfig, Strict  # noqa: F401 (re-exported)
from models.errors import ConfigError  # noqa: F401 (re-exported)


class CacheConfig(Strict):
    enabled: bool = True
    path: str = "cache/requests.sqlite"


class TrackingConfig(Strict):
    wandb: bool = True
    project: str = "ads-harness"
    entity: str | None = None
    # None: the user's WANDB_MODE wins, else offline. Set explicitly to override both.
    mode: Literal["offline", "online", "disabled"] | None = None
    init_timeout_s: float = 60.0


class ExecutorConfig(Strict):
    """Where a generator's independent items run (ads/executor.py). Not part of the run id:
    a run started locally can be resumed on Ray and lands in the same folder.

    Ray only: a worker that dies while running an item (killed, OOM, `ray.kill`) is replaced by a
    fresh one and the item retried, at most `max_item_retries` times; `item_timeout_s` (None: no
    limit) kills and replaces the worker of an item running longer and retries it from the same
    budget. Each lost attempt is a `lost_worker` ledger entry with unknown (null) spend."""

    kind: Literal["local", "threads", "ray"] = "local"
    workers: int = Field(2, ge=1)  # Ray actors or threads, each with its own model instances
    address: str | None = None  # None: $RAY_ADDRESS if set, else a local cluster; "auto", "ray://host:10001"
    num_cpus_per_worker: float = Field(1.0, gt=0)
    runtime_env: dict[str, Any] | None = None  # passed to ray.init, e.g. {working_dir: ., excludes: [cache]}
    max_item_retries: int = Field(2, ge=0)  # per item, after its worker died or timed out (ray)
    # seconds one item may run on a Ray worker, counted from when the worker starts it (building the
    # worker's env from the factory is not counted); None: no limit
    item_timeout_s: float | None = Field(None, gt=0)


def _has(data: dict[str, Any], dotted: str) -> bool:
    *parents, last = dotted.split(".")
    for p in parents:
        data = data.get(p) if isinstance(data, dict) else None
    return isinstance(data, dict) and last in data


def _pop(data: dict[str, Any], dotted: str) -> Any:
    """Remove a (nested) key, copying the dicts on its way so the caller's data is left as it was."""
    *parents, last = dotted.split(".")
    node = data
    for p in parents:
        node[p] = dict(node[p])
        node = node[p]
    return node.pop(last)


def move_legacy_roles(data: Any, legacy: dict[str, str]) -> Any:
    """Every generator names its models the same way, `models: {role: ...}`; the top-level keys
    each one used before (`policy:`, `model:`, `judge:`, `model_config:`, a dotted path for a nested
    one such as `quality.judge.model`) are still read, and moved under `models:`. Given as well as
    `models.<role>`, the older key is an override (that is what `--set model.n_threads=1` or
    `--set judge=null` writes): a section is merged into the role's, anything else replaces it."""
    if not isinstance(data, dict) or not legacy or not any(_has(data, k) for k in legacy):
        return data
    data = dict(data)
    models = data.get("models", {})
    if not isinstance(models, dict):
        return data  # validation names the wrong type
    models = dict(models)
    for key, role in legacy.items():
        if not _has(data, key):
            continue
        value = _pop(data, key)
        have = models.get(role)
        models[role] = {**have, **value} if isinstance(have, dict) and isinstance(value, dict) else value
    data["models"] = models
    return data


class RunConfig(Strict):
    """Fields every run shares. Generators subclass this and add their own section, including
    `models:` (a section per model role) and, in `LEGACY_ROLE_KEYS`, the older top-level key of
    each role that configs may still use."""

    LEGACY_ROLE_KEYS: ClassVar[dict[str, str]] = {}

    kind: str = "ads"
    name: str = "run"
    seed: int = 0
    results_dir: str = "results"
    models_dir: str = "cache/models"
    cache: CacheConfig = CacheConfig()
    tracking: TrackingConfig = TrackingConfig()
    executor: ExecutorConfig = ExecutorConfig()

    @model_validator(mode="before")
    @classmethod
    def _legacy_roles(cls, data: Any) -> Any:
        return move_legacy_roles(data, cls.LEGACY_ROLE_KEYS)


C = TypeVar("C", bound=BaseModel)


def _format_errors(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<top level>"
        if not loc.isprintable():  # a key with a control character must not break the one-line message
            loc = loc.encode("unicode_escape").decode("ascii")
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see configs/ for the accepted keys)"
        lines.append(f"{source}: key '{loc}': {msg}")
    return "\n".join(lines)


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte {raw[e.start]:#04x}); save the file as UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str], source: str = "--set") -> dict[str, Any]:
    """Apply `a.b.c=value` strings; values are YAML scalars/flow collections (safe-loaded)."""
    data = copy.deepcopy(data)  # not a JSON round trip: YAML dates/timestamps are not JSON serialisable
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"{source} {item!r}: expected KEY=VALUE, e.g. --set ads.iterations=3")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"{source} {key}: value {raw!r} is not a valid YAML scalar ({e})") from None
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            if not isinstance(node.setdefault(p, {}), dict):
                raise ConfigError(f"{source} {key}: '{p}' is not a section")
            node = node[p]
        node[parts[-1]] = value
    return data


def validate(cls: type[C], data: dict[str, Any], source: str) -> C:
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, source)) from None


def load_config(cls: type[C], path: str | Path | None, overrides: list[str] | None = None) -> C:
    data = read_yaml(path) if path else {}
    source = str(path) if path else "<defaults>"
    # the file's own older role keys first, so that --set models.<role>... lands on them
    data = move_legacy_roles(data, getattr(cls, "LEGACY_ROLE_KEYS", {}))
    data = apply_overrides(data, overrides or [])
    return validate(cls, data, source + (" (with --set overrides)" if overrides else ""))


def _hash_compatible(node: Any) -> Any:
    """Keep run ids as they were before ModelConfig gained allow_insecure_http and api_key_env
    became optional (issue 22): neither changes what a run produces. Likewise prefix_cache_mb and
    json_decoding (issue 21): reused prompt states and llguidance's masks over GBNF's grammar
    never change an output, so any value keeps the run id."""
    if isinstance(node, list):
        return [_hash_compatible(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _hash_compatible(v) for k, v in node.items()}
    if "allow_insecure_http" in out and "api_key_env" in out and "base_url" in out:  # a ModelConfig
        if out["allow_insecure_http"] is False:
            del out["allow_insecure_http"]
        if out["api_key_env"] is None:
            out["api_key_env"] = "OPENAI_API_KEY"
        out.pop("prefix_cache_mb", None)
        out.pop("json_decoding", None)
    return out


def config_hash(cfg: BaseModel) -> str:
    data = _hash_compatible(cfg.model_dump(mode="json"))
    data.pop("executor", None)  # where items run does not change what they produce
    # ADS LoRA options (ads/active_search/lora.py) left off change nothing: the run id stays what it was
    loop = data.get("loop") if isinstance(data.get("loop"), dict) else {}
    if loop.get("optimizer_update") == "exemplars":
        loop.pop("optimizer_update")
    if "lora_update" in data and loop.get("policy_update") != "lora" and "optimizer_update" not in loop:
        data.pop("lora_update")
    blob = json.dumps(data, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def dump_yaml(cfg: BaseModel) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json", by_alias=True), sort_keys=False, allow_unicode=True)
