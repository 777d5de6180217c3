"""The registry of generator kinds: the `kind:` of a YAML config -> the Generator class.

Entries are "module:Class" strings, imported on first use so `main.py --help` stays instant.
A generator whose seed has its own command line names it here (`commands`), and
`main.py <kind> ...` (or a shorter alias, `main.py tools ...`) runs it.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from models.errors import ConfigError


@dataclass(frozen=True)
class Kind:
    generator: str  # "module:GeneratorClass"
    commands: str | None = None  # "module:main(argv) -> int": the seed's own command line, `main.py <kind> ...`
    aliases: tuple[str, ...] = ()  # shorter subcommand names for `commands`


GENERATORS: dict[str, Kind] = {
    "ads": Kind("ads.active_search.experiment:ADSGenerator"),
    "bandit": Kind("ads.generators.bandit_recipes:BanditGenerator"),
    "self_evolving": Kind("ads.generators.self_evolving:SelfEvolvingGenerator",
                          commands="ads.generators.self_evolving:main", aliases=("evolve",)),
    "perspectives": Kind("ads.generators.persp.unit_generator:PerspectivesGenerator",
                         commands="ads.generators.perspectives:main"),
    "tool_use": Kind("ads.generators.tool_use:ToolUseGenerator", commands="ads.generators.tool_use:main",
                     aliases=("tools",)),
}


def register(kind: str, generator: str, commands: str | None = None) -> None:
    """Add a kind ("module:GeneratorClass"), e.g. from a plugin or a test."""
    GENERATORS[kind] = Kind(generator, commands)


def kinds() -> list[str]:
    return sorted(GENERATORS)


def commands() -> dict[str, tuple[str, str]]:
    """Subcommand name -> (kind, "module:main") for every kind with its own command line."""
    out = {}
    for kind, k in GENERATORS.items():
        if k.commands:
            for name in (kind, *k.aliases):
                out[name] = (kind, k.commands)
    return out


def generator_class(kind: str) -> Any:
    if kind not in GENERATORS:
        raise ConfigError(f"key 'kind': unknown kind {kind!r}; choose from {kinds()}")
    mod, _, name = GENERATORS[kind].generator.partition(":")
    return getattr(importlib.import_module(mod), name)


def resolve(kind: str) -> tuple[type, Any]:
    """(config class, run function(cfg, ctx, **components) -> summary) of a kind."""
    from ads.harness.runner import run_generator

    cls = generator_class(kind)

    def run(cfg: Any, ctx: Any, **components: Any) -> dict[str, Any]:
        return run_generator(cls, cfg, ctx, **components)

    return cls.config_class, run
