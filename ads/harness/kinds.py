"""The registry of generator kinds: the `kind:` of a YAML config -> the Generator class.

Entries are "module:Class" strings, imported on first use so `main.py --help` stays instant.
A generator whose seed has its own command line names it in its class (`commands`), and
`main.py <kind> ...` runs it.
"""
from __future__ import annotations

import importlib
from typing import Any

from models.errors import ConfigError

GENERATORS: dict[str, str] = {
    "ads": "ads.active_search.outputs:ADSConfig:run",
    "bandit": "ads.generators.bandit_recipes:BanditGenerator",
    "self_evolving": "ads.generators.self_evolving:SelfEvolvingConfig:run",
    "perspectives": "ads.generators.perspectives:PerspectivesConfig:run",
    "tool_use": "ads.generators.tool_use:ToolUseConfig:run",
}


def register(kind: str, target: str) -> None:
    """Add a kind ("module:GeneratorClass"), e.g. from a plugin or a test."""
    GENERATORS[kind] = target


def kinds() -> list[str]:
    return sorted(GENERATORS)


def generator_class(kind: str) -> Any:
    if kind not in GENERATORS:
        raise ConfigError(f"key 'kind': unknown kind {kind!r}; choose from {kinds()}")
    mod, _, name = GENERATORS[kind].partition(":")
    return getattr(importlib.import_module(mod), name.split(":")[0])


def resolve(kind: str) -> tuple[type, Any]:
    """(config class, run function(cfg, ctx, **components) -> summary) of a kind."""
    from ads.harness.runner import run_generator

    target = GENERATORS.get(kind, "")
    if target.count(":") == 2:  # a generator not yet on the contract: module:Config:run
        mod_name, cls_name, fn_name = target.split(":")
        mod = importlib.import_module(mod_name)
        return getattr(mod, cls_name), getattr(mod, fn_name)
    cls = generator_class(kind)

    def run(cfg: Any, ctx: Any, **components: Any) -> dict[str, Any]:
        return run_generator(cls, cfg, ctx, **components)

    return cls.config_class, run
