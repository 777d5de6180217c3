"""The seed's flag-style command line (`python -m ads.generators.self_evolving`, `main.py evolve`).

The seed ran as a script with one flag per knob, in underscore spelling, and read its endpoint
from a `.env`; its commands keep working as written. Every flag is optional and lands on the
same SelfEvolvingConfig a YAML file gives (precedence in config_from_args), so the flag run and
`main.py run configs/self_evolving.yaml` are one generator with two front doors.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ads.config import ConfigError
from ads.generators.evolve.evolve_config import SelfEvolvingConfig

DEFAULT_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "self_evolving.yaml"


def _bool(v: str) -> bool:
    if v.lower() in ("true", "yes", "1", "on"):
        return True
    if v.lower() in ("false", "no", "0", "off"):
        return False
    raise ValueError(f"expected true/false, got {v!r}")


# flag -> (config key, type, help); every flag is optional and overrides the config file
FLAGS: list[tuple[str, str, Any, str]] = [
    ("--accept-target", "accept_target", int, "stop when the benchmark holds this many items"),
    ("--max-attempts", "max_attempts", int, "stop after this many attempts (rejections included)"),
    ("--min-score", "min_score", float, "reject items the judge scores below this (0-10)"),
    ("--ema-alpha", "ema_alpha", float, "EMA smoothing (higher = faster adaptation)"),
    ("--sim-threshold", "sim_threshold", float, "reject when shingle Jaccard to the pool reaches this"),
    ("--shingle-k", "shingle_k", int, "words per shingle"),
    ("--instruction-sim-threshold", "instruction_sim_threshold", float,
     "reject a reused instruction (3-word shingle Jaccard to a pooled instruction at/above this)"),
    ("--novelty-method", "novelty_method", str, "exact (inverted index) or minhash (LSH, large pools)"),
    ("--demo-k", "demo_k", int, "demonstration tasks shown to the generator"),
    ("--judge-novelty-veto", "judge_novelty_veto", _bool, "true/false: reject when the judge says "
                                                          "novel=false (default true)"),
    ("--gen-temperature", "gen_temp", float, "generator temperature"),
    ("--ans-temperature", "ans_temp", float, "answerer temperature"),
    ("--judge-temperature", "judge_temp", float, "judge temperature (retries use at least 0.7)"),
    ("--seed", "seed", int, "random seed (sampling, seeds, model seeds)"),
    ("--benchmark-path", "benchmark_path", str, "benchmark JSONL (default <run dir>/benchmark.jsonl; "
                                                "give --runlog-path with it)"),
    ("--runlog-path", "runlog_path", str, "event log JSONL (default <run dir>/run_logs.jsonl)"),
    ("--results-dir", "results_dir", str, "parent of run folders when --output-dir is not given"),
    ("--name", "name", str, "run name (the run folder is NAME-<config hash>)"),
]
ALIASES = {"--gen-temperature": ["--gen-temp"], "--ans-temperature": ["--ans-temp"],
           "--judge-temperature": ["--judge-temp"]}


def spellings(*flags: str) -> list[str]:
    """Each flag plus its underscore spelling: the seed's command line writes `--accept_target`,
    `--sim_threshold`, ...; both are accepted so the seed's commands run as written."""
    out = list(flags)
    for f in flags:
        alt = "--" + f[2:].replace("-", "_")
        if alt not in out:
            out.append(alt)
    return out


def build_parser() -> argparse.ArgumentParser:
    from ads.cli import add_run_flags

    p = argparse.ArgumentParser(
        prog="python -m ads.generators.self_evolving",
        description="Self-evolving benchmark generator: Self-Instruct tasks from a seed pool, shingle novelty "
                    "filter, answerer, LLM judge, EMA-driven category/difficulty. Flags override the config file.")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML config (default: %(default)s)")
    for flag, key, typ, help_ in FLAGS:
        kw: dict[str, Any] = {"dest": key, "type": typ, "default": None, "help": help_}
        if key == "novelty_method":
            kw["choices"] = ["exact", "minhash"]
        p.add_argument(*spellings(flag, *ALIASES.get(flag, [])), **kw)
    p.add_argument(*spellings("--output-dir"), dest="output_dir", default=None,
                   help="run folder (default: RESULTS_DIR/NAME-<config hash>)")
    p.add_argument("--model", default=None, help="generator model: registry name, .gguf path, or served model id "
                                                 "(default: MODEL from the environment or .env, else the config's)")
    p.add_argument(*spellings("--base-url"), dest="base_url", default=None,
                   help="OpenAI-compatible endpoint for the generator (and for the answerer/judge named with "
                        "--answerer-model/--judge-model); default: BASE_URL from the environment or .env")
    p.add_argument(*spellings("--env-file"), dest="env_file", default=".env",
                   help="dotenv file with BASE_URL, API_KEY, MODEL, TIMEOUT (the seed's settings; variables "
                        "already in the environment win; default: %(default)s in the working directory, "
                        "skipped when absent; '' to ignore)")
    p.add_argument(*spellings("--answerer-model"), dest="answerer_model", default=None,
                   help="answerer model (default: the generator's)")
    p.add_argument(*spellings("--judge-model"), dest="judge_model", default=None,
                   help="judge model (default: the generator's)")
    p.add_argument(*spellings("--n-threads"), dest="n_threads", type=int, default=None,
                   help="llama.cpp threads for every local model")
    p.add_argument(*spellings("--cache-path"), dest="cache_path", default=None, help="request cache (sqlite)")
    p.add_argument(*spellings("--no-cache"), dest="no_cache", action="store_true",
                   help="do not cache model requests")
    p.add_argument(*spellings("--no-wandb"), dest="no_wandb", action="store_true",
                   help="metrics.jsonl only, no offline W&B run")
    add_run_flags(p)  # --set, --resume, --overwrite: spelled as in every command that runs a config
    return p


def config_from_args(args: Any, env: Any = None) -> SelfEvolvingConfig:
    """Config file < BASE_URL/API_KEY/MODEL/TIMEOUT (environment, then .env) < --set < flags.

    `env`: the EndpointSettings to apply; None reads them from `args.env_file` and os.environ.
    """
    from ads.config import apply_overrides, move_legacy_roles, read_yaml, validate
    from ads.generators.evolve.env import apply_to_generator, endpoint_settings

    if env is None:
        env, _ = endpoint_settings(getattr(args, "env_file", ".env"))
    source = f"{args.config} (with command-line flags)"
    roles = SelfEvolvingConfig.LEGACY_ROLE_KEYS

    def models_of(data: dict[str, Any]) -> dict[str, Any]:
        """The config's `models:` section (older top-level role keys moved in), ready for flags."""
        moved = move_legacy_roles(data, roles)  # a new dict without the older keys (or data itself)
        if moved is not data:
            data.clear()
            data.update(moved)
        models = data.setdefault("models", {})
        if not isinstance(models, dict):
            validate(SelfEvolvingConfig, data, source)  # names the key and the wrong type
        return models

    data = read_yaml(args.config)
    if env.any:
        models = models_of(data)
        models["generator"] = apply_to_generator(dict(models.get("generator") or {}), env)
    data = apply_overrides(data, args.set)
    if data.setdefault("kind", "self_evolving") != "self_evolving":
        raise ConfigError(f"{args.config}: kind is {data['kind']!r}, this command runs 'self_evolving'")
    for _, key, _, _ in FLAGS:
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    models = models_of(data)
    given = {"name": args.model, "base_url": args.base_url, "n_threads": args.n_threads}
    gen = {**(models.get("generator") or {}), **{k: v for k, v in given.items() if v is not None}}
    models["generator"] = gen
    for role, name in (("answerer", args.answerer_model), ("judge", args.judge_model)):
        if name is not None:  # same endpoint/settings as the generator, another model
            models[role] = {**gen, "name": name}
        elif args.n_threads is not None and isinstance(models.get(role), dict):
            models[role] = {**models[role], "n_threads": args.n_threads}
    if args.cache_path is not None or args.no_cache:
        cache = dict(data.get("cache") or {})
        if args.cache_path is not None:
            cache["path"] = args.cache_path
        if args.no_cache:
            cache["enabled"] = False
        data["cache"] = cache
    if args.no_wandb:
        data["tracking"] = {**(data.get("tracking") or {}), "wandb": False}
    return validate(SelfEvolvingConfig, data, source)


def main(argv: list[str] | None = None) -> int:
    import logging
    import os

    from ads.guard import run_guarded
    from ads.run import RunContext

    logging.basicConfig(level=os.environ.get("ADS_LOG_LEVEL", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)

    def body() -> int:
        from ads.generators.evolve.env import endpoint_settings, export_api_key
        from ads.generators.self_evolving import run

        env, _ = endpoint_settings(args.env_file)
        cfg = config_from_args(args, env)
        export_api_key(env)  # a key from .env reaches the HTTP client through the environment, never the config
        ctx = RunContext.create(cfg, resume=args.resume, overwrite=args.overwrite, run_dir=args.output_dir)
        print(f"run {ctx.run_id}: writing to {ctx.run_dir}" + (" (resuming)" if args.resume else ""))
        if env.sources:  # names and origins only: the key's value is never printed
            print("endpoint settings: " + ", ".join(env.sources))
        run(cfg, ctx)
        return 0

    return run_guarded(body)
