"""Command line: `main.py [run] CONFIG [--set a.b=v ...] [--resume | --overwrite]` and tool subcommands.

A config's `kind:` picks the generator. Every user-facing failure (bad config, missing
file, unknown model, a run folder that needs --resume) is one line on stderr and exit
code 2, raised before anything is written.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

from ads.config import ConfigError, RunConfig, load_config, read_yaml
from ads.guard import is_fatal_model_error, is_user_error, run_guarded

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"

def _resolve_kind(kind: str) -> tuple[type[RunConfig], Callable[..., dict[str, Any]]]:
    from ads.harness.kinds import resolve

    return resolve(kind)


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """--set / --resume / --overwrite, spelled and explained the same in every command that runs a config."""
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, keeping its type (repeatable), e.g. --set loop.iterations=3")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue an interrupted run in its folder")
    g.add_argument("--overwrite", action="store_true", help="delete the run's folder and start again")


def cmd_run(args: argparse.Namespace) -> int:
    from ads.run import RunContext

    path = Path(args.config)
    data = read_yaml(path)
    # The perspectives seed's own JSON files carry no `kind`; their keys say what they are.
    kind = data.get("kind", "perspectives" if "agent_perspectives" in data else "ads")
    if not isinstance(kind, str):
        raise ConfigError(f"{path}: key 'kind' must be a string")
    try:
        cfg_cls, run_fn = _resolve_kind(kind)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    cfg = load_config(cfg_cls, path, args.set)
    ctx = RunContext.create(cfg, resume=args.resume, overwrite=args.overwrite)
    print(f"run {ctx.run_id}: writing to {ctx.run_dir}" + (" (resuming)" if args.resume else ""))
    try:
        run_fn(cfg, ctx)
    except Exception as e:
        if (is_user_error(e) or is_fatal_model_error(e)) and ctx.abort():
            print(f"(removed {ctx.run_dir}: nothing had been written yet)", file=sys.stderr)
        raise
    finally:
        ctx.close_executor()  # Ray workers and a cluster this run started
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from models.registry import available_names

    names = available_names(args.models_dir)
    if not names:
        print(f"no models in {args.models_dir}; run: bash setup.sh")
        return 1
    for name, path in sorted(names.items()):
        print(f"{name:<40} {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="main.py", description="Offline active data search and synthetic-data "
                                "generation with small local LLMs.")
    sub = p.add_subparsers(dest="command")

    def add_run_args(sp: argparse.ArgumentParser, default_config: str | None) -> None:
        sp.add_argument("config", nargs="?" if default_config else None, default=default_config,
                        help="YAML config (its 'kind:' picks the generator)")
        add_run_flags(sp)

    add_run_args(sub.add_parser("run", help="run an experiment from a config (default: configs/default.yaml)"),
                 str(DEFAULT_CONFIG))
    add_run_args(sub.add_parser("generate", help="same as run; reads better for generator recipes"), None)
    sp = sub.add_parser("models", help="list the model names the registry resolves")
    sp.add_argument("--models-dir", default="cache/models")
    for name, target, help_ in extra_commands():
        sp = sub.add_parser(name, help=help_, add_help=False)
        sp.add_argument("rest", nargs=argparse.REMAINDER)
    return p


# Commands that are not a generator's: (subcommand, "module:function(argv)->int", help)
TOOL_COMMANDS: list[tuple[str, str, str]] = [
    ("finetune", "ads.finetune:main", "LoRA fine-tune a small model on a generated dataset; score it on real held-out tasks"),
    ("classify", "ads.downstream.classifier:main", "topic classifier trained on synthetic texts, scored on real Wikipedia"),
    ("export", "ads.export.commands:export_main", "export a run (any generator) as a Hugging Face dataset with a card"),
    ("show", "ads.export.commands:show_main", "print sample records of a run (any generator), accepted or --rejected"),
    ("judge-check", "ads.quality.calibration:main", "does the config's judge separate planted good from bad items? (AUC per use)"),
]


def extra_commands() -> list[tuple[str, str, str]]:
    """The tool commands, then every generator's own command line (ads/harness/kinds.py), as
    `main.py <kind> ...` and its alias: `main.py tools generate ...` = `main.py tool_use generate ...`."""
    from ads.harness.kinds import commands

    gen = [(name, target, f"the {kind} generator's own commands (main.py {name} -h)")
           for name, (kind, target) in commands().items()]
    return TOOL_COMMANDS + gen


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=os.environ.get("ADS_LOG_LEVEL", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["run", *argv]
    elif argv[0].endswith((".yaml", ".yml")):
        argv = ["run", *argv]
    extra = {name: target for name, target, _ in extra_commands()}
    if argv[0] in extra:
        mod_name, fn_name = extra[argv[0]].split(":")
        return int(getattr(importlib.import_module(mod_name), fn_name)(argv[1:]) or 0)
    args = build_parser().parse_args(argv)

    def body() -> int:
        if args.command in ("run", "generate"):
            return cmd_run(args)
        if args.command == "models":
            return cmd_models(args)
        build_parser().print_help()
        return 2

    return run_guarded(body)
